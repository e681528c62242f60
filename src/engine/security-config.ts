import * as path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { allCapabilities, effectiveCapabilities, normalizeCapabilities } from '../runtime/capabilities';
import { parseProfile } from '../runtime/seccomp';
import { checkDevicePermissions, devicesFor, parseDeviceCgroupRule, type SeccompChoice, type SecurityInput } from '../runtime/security';
import { RLIM_INFINITY, type HostInfo, type MountInput, type RlimitInput } from '../runtime/spec';
import type { HostConfig } from './service';

/**
 * HostConfig's security and host-resource fields, checked at create (so a bad one is an
 * INVALID_ARGUMENT naming the field before anything is made) and turned into the runtime's
 * input at start: CapAdd, CapDrop, Privileged, SecurityOpt, Ulimits, Sysctls, Devices,
 * DeviceCgroupRules, Tmpfs, GroupAdd, OomScoreAdj, MaskedPaths and ReadonlyPaths.
 */

/** What SecurityOpt says, Docker's way (`no-new-privileges`, `seccomp=unconfined|<profile JSON>`). */
export interface SecurityOpts {
  noNewPrivileges: boolean;
  seccomp: SeccompChoice;
}

const OPT_HINT = 'berth takes no-new-privileges[=true|false], seccomp=unconfined, seccomp=<profile JSON> (the CLI reads the file), apparmor=unconfined and label=disable';

export function parseSecurityOpt(list: unknown): SecurityOpts {
  const out: SecurityOpts = { noNewPrivileges: false, seccomp: { kind: 'default' } };
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError('HostConfig.SecurityOpt must be a list of strings', { hint: 'e.g. "SecurityOpt": ["no-new-privileges"]' });
  }
  for (const opt of list as string[]) {
    // Docker also reads the old `key:value` form.
    const m = /^([a-z-]+)(?:[=:]([\s\S]*))?$/.exec(opt);
    const key = m?.[1];
    const value = m?.[2];
    if (key === 'no-new-privileges') {
      if (value !== undefined && value !== 'true' && value !== 'false') {
        throw new InvalidArgumentError(`invalid --security-opt ${JSON.stringify(opt)}`, { hint: 'use no-new-privileges, no-new-privileges=true or no-new-privileges=false' });
      }
      out.noNewPrivileges = value !== 'false';
    } else if (key === 'seccomp' && value !== undefined && value !== '') {
      if (value === 'unconfined') out.seccomp = { kind: 'unconfined' };
      else {
        parseProfile(value); // refused now, not at start
        out.seccomp = { kind: 'profile', json: value };
      }
    } else if ((key === 'apparmor' && value === 'unconfined') || (key === 'label' && value === 'disable')) {
      // berth applies no AppArmor profile and no SELinux label: this is what it does anyway.
    } else {
      throw new InvalidArgumentError(`security option ${JSON.stringify(opt.length > 80 ? opt.slice(0, 80) + '…' : opt)} is not supported (HostConfig.SecurityOpt)`, { hint: OPT_HINT });
    }
  }
  return out;
}

/** Sysctls that are per container (namespaced), as Docker and runc allow them. */
const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

export function checkSysctls(v: unknown, hostNetwork: boolean): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError('HostConfig.Sysctls must be an object of strings', { hint: 'e.g. "Sysctls": {"net.ipv4.ip_forward": "1"}' });
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, string>)) {
    const hint = 'only namespaced sysctls can be set per container: net.* (not with --network host), kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*';
    if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/.test(k) || /[\n\0]/.test(val)) {
      throw new InvalidArgumentError(`invalid sysctl ${JSON.stringify(k)}=${JSON.stringify(val)} (HostConfig.Sysctls)`, { hint: 'use --sysctl name=value, e.g. net.ipv4.ip_unprivileged_port_start=0' });
    }
    if (k.startsWith('net.')) {
      if (hostNetwork) throw new InvalidArgumentError(`sysctl ${k} is not allowed in the host's network namespace (HostConfig.Sysctls)`, { hint: 'net.* sysctls need the container\'s own network: drop --network host' });
    } else if (!IPC_SYSCTLS.has(k) && !k.startsWith('fs.mqueue.')) {
      throw new InvalidArgumentError(`sysctl ${k} is not allowed: it is not namespaced (HostConfig.Sysctls)`, { hint });
    }
    out[k] = val;
  }
  return out;
}

const RLIMIT_NAMES = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** HostConfig.Ulimits checked against this host: a hard limit above the host's is refused now. */
export function checkUlimits(v: unknown, host: HostInfo | undefined): RlimitInput[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InvalidArgumentError('HostConfig.Ulimits must be a list', { hint: 'e.g. "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]' });
  const out: RlimitInput[] = [];
  for (const u of v as Array<{ Name?: unknown; Soft?: unknown; Hard?: unknown }>) {
    const name = typeof u?.Name === 'string' ? u.Name : '';
    if (!RLIMIT_NAMES.includes(name)) {
      throw new InvalidArgumentError(`unknown ulimit ${JSON.stringify(u?.Name)} (HostConfig.Ulimits)`, { hint: `use one of ${RLIMIT_NAMES.join(', ')}` });
    }
    const num = (x: unknown) => (typeof x === 'number' && Number.isSafeInteger(x) && x >= -1 ? x : NaN);
    const soft = num(u.Soft);
    const hard = num(u.Hard);
    if (Number.isNaN(soft) || Number.isNaN(hard)) {
      throw new InvalidArgumentError(`invalid ulimit ${name}: soft and hard must be whole numbers (-1 unlimited)`, { hint: `e.g. --ulimit ${name}=1024:2048` });
    }
    const big = (x: number) => (x === -1 ? RLIM_INFINITY : BigInt(x));
    if (big(soft) > big(hard)) {
      throw new InvalidArgumentError(`ulimit ${name}: soft limit ${soft} is above the hard limit ${hard}`, { hint: `give soft <= hard, e.g. --ulimit ${name}=${hard}:${hard}` });
    }
    const type = `RLIMIT_${name.toUpperCase()}`;
    let cap = host?.rlimits[type];
    if (type === 'RLIMIT_NOFILE' && host?.nrOpen !== undefined && (cap === undefined || host.nrOpen < cap)) cap = host.nrOpen;
    if (cap !== undefined && big(hard) > cap) {
      throw new InvalidArgumentError(`ulimit ${name}: hard limit ${hard === -1 ? 'unlimited' : hard} is above this host's hard limit ${cap === RLIM_INFINITY ? 'unlimited' : cap} (HostConfig.Ulimits)`, {
        hint: `give at most ${cap} (see \`ulimit -H\` for the daemon), or raise the daemon's own limit`,
      });
    }
    out.push({ type: name, soft, hard });
  }
  return out;
}

/** Docker's tmpfs mount options: flags and the tmpfs size/mode/uid/gid/nr_* settings. */
const TMPFS_FLAGS = new Set(['ro', 'rw', 'exec', 'noexec', 'suid', 'nosuid', 'dev', 'nodev', 'sync', 'async', 'dirsync', 'atime', 'noatime', 'diratime', 'nodiratime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'mand', 'nomand']);
const TMPFS_KEYED = /^(size=\d+[kmgKMG%]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+|nr_inodes=\d+[kmgKMG]?|nr_blocks=\d+[kmgKMG]?|mpol=[a-z:0-9,-]+|tmpcopyup)$/;
const OPPOSITES: Array<[string, string]> = [['ro', 'rw'], ['exec', 'noexec'], ['suid', 'nosuid'], ['dev', 'nodev'], ['sync', 'async'], ['atime', 'noatime'], ['diratime', 'nodiratime'], ['relatime', 'norelatime'], ['strictatime', 'nostrictatime']];

/** HostConfig.Tmpfs (`{"/run": "rw,size=64m"}`) checked; the mounts it makes, Docker's defaults first. */
export function tmpfsMounts(v: unknown): MountInput[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError('HostConfig.Tmpfs must be an object of option strings', { hint: 'e.g. "Tmpfs": {"/run": "rw,noexec,size=64m"}' });
  }
  const out: MountInput[] = [];
  for (const [dest, data] of Object.entries(v as Record<string, string>)) {
    if (!path.isAbsolute(dest) || path.posix.normalize(dest) === '/') {
      throw new InvalidArgumentError(`invalid tmpfs destination ${JSON.stringify(dest)} (HostConfig.Tmpfs)`, { hint: 'mount a tmpfs on an absolute path other than /, e.g. --tmpfs /run' });
    }
    // Docker's order: noexec,nosuid,nodev first, the user's after; a later flag wins over its opposite.
    const opts = ['noexec', 'nosuid', 'nodev'];
    for (const o of data.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!TMPFS_FLAGS.has(o) && !TMPFS_KEYED.test(o)) {
        throw new InvalidArgumentError(`unknown tmpfs option ${JSON.stringify(o)} for ${dest} (HostConfig.Tmpfs)`, { hint: 'use options such as rw, ro, exec, noexec, size=64m, mode=1777, uid=1000' });
      }
      const pair = OPPOSITES.find(([a, b]) => a === o || b === o);
      const key = o.includes('=') ? o.slice(0, o.indexOf('=') + 1) : undefined;
      for (let i = opts.length - 1; i >= 0; i--) {
        if ((pair && pair.includes(opts[i])) || (key && opts[i].startsWith(key))) opts.splice(i, 1);
      }
      opts.push(o.replace(/^size=(\d+)([kmgKMG])$/, (_m, n: string, u: string) => `size=${n}${u.toLowerCase()}`));
    }
    out.push({ type: 'tmpfs', source: 'tmpfs', destination: path.posix.normalize(dest), options: opts });
  }
  return out;
}

function pathList(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((p) => typeof p !== 'string' || !path.isAbsolute(p))) {
    throw new InvalidArgumentError(`HostConfig.${field} must be a list of absolute paths`, { hint: `e.g. "${field}": ["/proc/kcore"], or [] for none` });
  }
  return v as string[];
}

function groupList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((g) => typeof g !== 'string' || g === '' || g.includes(':'))) {
    throw new InvalidArgumentError('HostConfig.GroupAdd must be a list of group names or ids', { hint: 'e.g. --group-add audio --group-add 1001' });
  }
  return v as string[];
}

/** Everything above, checked at create. Throws INVALID_ARGUMENT naming the field. */
export function checkSecurityConfig(hc: HostConfig, host: HostInfo | undefined, hostNetwork: boolean): void {
  normalizeCapabilities(hc.CapAdd, 'CapAdd');
  normalizeCapabilities(hc.CapDrop, 'CapDrop');
  if (hc.Privileged !== undefined && hc.Privileged !== null && typeof hc.Privileged !== 'boolean') {
    throw new InvalidArgumentError('HostConfig.Privileged must be true or false', { hint: 'e.g. "Privileged": true' });
  }
  parseSecurityOpt(hc.SecurityOpt);
  checkUlimits(hc.Ulimits, host);
  checkSysctls(hc.Sysctls, hostNetwork);
  if (hc.Devices !== undefined && hc.Devices !== null) {
    if (!Array.isArray(hc.Devices)) throw new InvalidArgumentError('HostConfig.Devices must be a list', { hint: 'e.g. [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]' });
    for (const d of hc.Devices) {
      checkDevicePermissions(d?.CgroupPermissions);
      devicesFor(d);
    }
  }
  if (hc.DeviceCgroupRules !== undefined && hc.DeviceCgroupRules !== null) {
    if (!Array.isArray(hc.DeviceCgroupRules)) throw new InvalidArgumentError('HostConfig.DeviceCgroupRules must be a list', { hint: "e.g. [\"c 1:3 rwm\"]" });
    for (const r of hc.DeviceCgroupRules) parseDeviceCgroupRule(r);
  }
  tmpfsMounts(hc.Tmpfs);
  groupList(hc.GroupAdd);
  pathList(hc.MaskedPaths, 'MaskedPaths');
  pathList(hc.ReadonlyPaths, 'ReadonlyPaths');
  const oom = hc.OomScoreAdj;
  if (oom !== undefined && oom !== null && (typeof oom !== 'number' || !Number.isInteger(oom) || oom < -1000 || oom > 1000)) {
    throw new InvalidArgumentError(`Invalid value ${JSON.stringify(oom)}, range for oom score adj is [-1000, 1000]`, { hint: 'give --oom-score-adj a whole number from -1000 to 1000' });
  }
}

/** The runtime's security input for a container's HostConfig (checked at create). */
export function securityInput(hc: HostConfig): SecurityInput {
  const opts = parseSecurityOpt(hc.SecurityOpt);
  const privileged = hc.Privileged === true;
  const sec: SecurityInput = {
    capabilities: effectiveCapabilities({ add: normalizeCapabilities(hc.CapAdd, 'CapAdd'), drop: normalizeCapabilities(hc.CapDrop, 'CapDrop'), privileged }),
    privileged,
    noNewPrivileges: opts.noNewPrivileges,
    seccomp: opts.seccomp,
    sysctls: checkSysctls(hc.Sysctls, hc.NetworkMode === 'host'),
    devices: hc.Devices ?? [],
    deviceCgroupRules: hc.DeviceCgroupRules ?? [],
  };
  const masked = pathList(hc.MaskedPaths, 'MaskedPaths');
  const ro = pathList(hc.ReadonlyPaths, 'ReadonlyPaths');
  if (masked) sec.maskedPaths = masked;
  if (ro) sec.readonlyPaths = ro;
  if (typeof hc.OomScoreAdj === 'number') sec.oomScoreAdj = hc.OomScoreAdj;
  return sec;
}

/** HostConfig.GroupAdd as given (names resolved against the image at start). */
export function groupAdd(hc: HostConfig): string[] {
  return groupList(hc.GroupAdd);
}

/** A --tmpfs on the destination of a volume or bind is Docker's "Duplicate mount point". */
export function checkTmpfsTargets(hc: HostConfig, mounts: Array<{ Destination: string }>): void {
  for (const t of tmpfsMounts(hc.Tmpfs)) {
    if (mounts.some((m) => path.posix.normalize(m.Destination) === t.destination)) {
      throw new InvalidArgumentError(`Duplicate mount point: ${t.destination} (HostConfig.Tmpfs)`, { hint: 'mount one thing on a path: drop the --tmpfs or the volume there' });
    }
  }
}

/** An exec's capabilities (`--privileged`: all the kernel has) and the container's no-new-privileges. */
export function execSecurity(hc: HostConfig, privileged: boolean): { capabilities?: string[]; noNewPrivileges: boolean } {
  return { ...(privileged ? { capabilities: allCapabilities() } : {}), noNewPrivileges: parseSecurityOpt(hc.SecurityOpt).noNewPrivileges };
}
