import * as fs from 'node:fs';
import * as os from 'node:os';
import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Seccomp profiles in Docker's format (the one `--security-opt seccomp=FILE` takes and
 * the one of containers-common's /usr/share/containers/seccomp.json, which is Docker's
 * default profile kept by the podman project), translated into the OCI spec's
 * `linux.seccomp` for one container: rules are kept or left out by the container's
 * capabilities (`includes.caps` / `excludes.caps`), by this host's architecture
 * (`includes.arches`, `archMap`) and by its kernel (`includes.minKernel`), as moby does.
 *
 * Example: a rule `{names: ['bpf'], action: 'SCMP_ACT_ALLOW', includes: {caps: ['CAP_SYS_ADMIN']}}`
 * is in the spec of a container with CAP_SYS_ADMIN only; without it the default action
 * (an error) answers bpf(2).
 */

/** Where Debian's golang-github-containers-common puts the default profile. */
export const DEFAULT_PROFILE_PATH = '/usr/share/containers/seccomp.json';

interface Filter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

interface ProfileSyscall {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  includes?: Filter;
  excludes?: Filter;
}

/** A profile as Docker reads it. */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  syscalls?: ProfileSyscall[];
  flags?: string[];
}

/** The OCI spec's linux.seccomp. */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  flags?: string[];
  syscalls: Array<{ names: string[]; action: string; errnoRet?: number; args?: SeccompArg[] }>;
}

/** This host as the profile's filters see it. */
export interface SeccompHost {
  /** Go's GOARCH name (amd64, arm64, ...), as `includes.arches` is written. */
  goArch: string;
  /** libseccomp's name for the native architecture (SCMP_ARCH_X86_64, ...). */
  scmpArch: string;
  /** The kernel release, for `includes.minKernel`. */
  kernel: string;
}

const ARCHES: Record<string, { goArch: string; scmpArch: string }> = {
  x64: { goArch: 'amd64', scmpArch: 'SCMP_ARCH_X86_64' },
  arm64: { goArch: 'arm64', scmpArch: 'SCMP_ARCH_AARCH64' },
  ia32: { goArch: '386', scmpArch: 'SCMP_ARCH_X86' },
  arm: { goArch: 'arm', scmpArch: 'SCMP_ARCH_ARM' },
  ppc64: { goArch: 'ppc64le', scmpArch: 'SCMP_ARCH_PPC64LE' },
  s390x: { goArch: 's390x', scmpArch: 'SCMP_ARCH_S390X' },
  riscv64: { goArch: 'riscv64', scmpArch: 'SCMP_ARCH_RISCV64' },
};

export function seccompHost(): SeccompHost {
  const a = ARCHES[process.arch] ?? { goArch: process.arch, scmpArch: `SCMP_ARCH_${process.arch.toUpperCase()}` };
  return { ...a, kernel: os.release() };
}

let defaultProfile: SeccompProfile | undefined;

/** The default profile, read once. A host without it cannot run containers as Docker does. */
export function loadDefaultProfile(file = DEFAULT_PROFILE_PATH): SeccompProfile {
  if (file === DEFAULT_PROFILE_PATH && defaultProfile) return defaultProfile;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new FailedPreconditionError(`the default seccomp profile ${file} is missing`, {
      hint: 'install it: apt-get install -y golang-github-containers-common (or run with --security-opt seccomp=unconfined)',
    });
  }
  const p = file === DEFAULT_PROFILE_PATH ? asDockerDefault(parseProfile(text)) : parseProfile(text);
  if (file === DEFAULT_PROFILE_PATH) defaultProfile = p;
  return p;
}

/**
 * Where containers-common's copy is looser than moby's default profile (checked against
 * moby's profiles/seccomp/default.json): it allows these calls to every container. Docker's
 * allows each only with the capability it is listed under (a call under two capabilities is
 * allowed by either), and answers EPERM without it.
 */
export const DOCKER_CAP_GATED: Readonly<Record<string, readonly string[]>> = {
  CAP_SYS_ADMIN: ['clone3', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'mount', 'mount_setattr', 'move_mount', 'open_tree', 'quotactl_fd', 'setns', 'syslog', 'umount', 'umount2', 'unshare'],
  CAP_SYSLOG: ['syslog'],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_PTRACE: ['pidfd_getfd'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'],
};

/** Calls containers-common's copy allows and Docker's default never does, whatever the capabilities. */
export const DOCKER_NEVER: readonly string[] = ['add_key', 'keyctl', 'pivot_root', 'request_key'];

/**
 * clone(2) with a namespace flag (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET)
 * needs CAP_SYS_ADMIN in Docker's profile; plain fork and threads do not. The flags are
 * argument 0 (argument 1 on s390).
 */
const CLONE_NS_FLAGS = 0x7e020000;

/** clone3 without CAP_SYS_ADMIN answers ENOSYS, as in Docker, so libc falls back to clone. */
const ENOSYS = 38;
const EPERM = 1;

/** containers-common's profile made to block everything Docker's default blocks. */
function asDockerDefault(p: SeccompProfile): SeccompProfile {
  const gated = new Set(Object.values(DOCKER_CAP_GATED).flat());
  const strip = new Set([...gated, ...DOCKER_NEVER, 'clone']);
  const syscalls: ProfileSyscall[] = [];
  for (const s of p.syscalls ?? []) {
    const unconditional = s.action === 'SCMP_ACT_ALLOW' && !s.includes?.caps?.length;
    const names = (s.names?.length ? s.names : [s.name as string]).filter((n) => !(unconditional && strip.has(n)));
    if (names.length) syscalls.push({ ...s, name: undefined, names });
  }
  for (const [cap, names] of Object.entries(DOCKER_CAP_GATED)) {
    syscalls.push({ names: [...names], action: 'SCMP_ACT_ALLOW', includes: { caps: [cap] } });
  }
  const caps = (n: string) => Object.keys(DOCKER_CAP_GATED).filter((c) => DOCKER_CAP_GATED[c].includes(n));
  for (const n of gated) {
    syscalls.push({ names: [n], action: 'SCMP_ACT_ERRNO', errnoRet: n === 'clone3' ? ENOSYS : EPERM, excludes: { caps: caps(n) } });
  }
  syscalls.push({ names: [...DOCKER_NEVER], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM });
  const cloneRule = (index: number): SeccompArg[] => [{ index, value: CLONE_NS_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }];
  syscalls.push(
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: cloneRule(0), excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] } },
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: cloneRule(1), includes: { arches: ['s390', 's390x'] }, excludes: { caps: ['CAP_SYS_ADMIN'] } },
  );
  return { ...p, syscalls };
}

const ACTIONS = new Set(['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY']);

function bad(why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid seccomp profile: ${why}`, {
    hint: "give a profile in Docker's format (defaultAction, syscalls with names and action), or seccomp=unconfined",
  });
}

/** A profile's JSON text, checked for the shape the translation relies on. */
export function parseProfile(text: string): SeccompProfile {
  let p: SeccompProfile;
  try {
    p = JSON.parse(text) as SeccompProfile;
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  if (!p || typeof p !== 'object' || Array.isArray(p)) throw bad('not a JSON object');
  if (typeof p.defaultAction !== 'string' || !ACTIONS.has(p.defaultAction)) throw bad(`unknown defaultAction ${JSON.stringify(p.defaultAction)}`);
  if (p.architectures?.length && p.archMap?.length) throw bad("'architectures' and 'archMap' cannot both be given");
  for (const s of p.syscalls ?? []) {
    if (!s || typeof s !== 'object') throw bad('a syscalls entry is not an object');
    if (s.name && s.names?.length) throw bad("a rule has both 'name' and 'names'");
    if (!s.name && !s.names?.length) throw bad('a rule names no syscall');
    if (typeof s.action !== 'string' || !ACTIONS.has(s.action)) throw bad(`unknown action ${JSON.stringify(s.action)}`);
  }
  return p;
}

function kernelAtLeast(kernel: string, min: string): boolean {
  const v = (s: string) => s.split(/[.-]/).slice(0, 2).map((x) => parseInt(x, 10) || 0);
  const [a, b] = v(kernel);
  const [c, d] = v(min);
  return a > c || (a === c && b >= d);
}

/** The profile as the OCI spec of a container with capabilities `caps` on `host`. */
export function translateProfile(p: SeccompProfile, caps: readonly string[], host: SeccompHost = seccompHost()): OciSeccomp {
  let architectures = [...(p.architectures ?? [])];
  for (const m of p.archMap ?? []) {
    if (m.architecture === host.scmpArch) architectures = [m.architecture, ...(m.subArchitectures ?? [])];
  }
  const syscalls: OciSeccomp['syscalls'] = [];
  for (const s of p.syscalls ?? []) {
    const inc = s.includes ?? {};
    const exc = s.excludes ?? {};
    if (inc.arches?.length && !inc.arches.includes(host.goArch)) continue;
    if (inc.caps?.length && !inc.caps.every((c) => caps.includes(c))) continue;
    if (inc.minKernel && !kernelAtLeast(host.kernel, inc.minKernel)) continue;
    if (exc.arches?.length && exc.arches.includes(host.goArch)) continue;
    if (exc.caps?.length && exc.caps.some((c) => caps.includes(c))) continue;
    const rule: OciSeccomp['syscalls'][number] = { names: s.names?.length ? [...s.names] : [s.name as string], action: s.action };
    if (typeof s.errnoRet === 'number') rule.errnoRet = s.errnoRet;
    if (s.args?.length) rule.args = s.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: a.op }));
    syscalls.push(rule);
  }
  const out: OciSeccomp = { defaultAction: p.defaultAction, architectures, syscalls };
  if (typeof p.defaultErrnoRet === 'number') out.defaultErrnoRet = p.defaultErrnoRet;
  if (p.flags?.length) out.flags = [...p.flags];
  return out;
}
