import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import { validateWorkdir } from './rootfs';
import { DEFAULT_CAPABILITIES } from './capabilities';
import { applySecurity, type SecurityInput } from './security';
import type { OciDeviceRule, OciMount, OciRlimit, OciSpec, OciUser } from './oci';

export { DEFAULT_CAPABILITIES };
export type { OciCapabilities, OciDevice, OciDeviceRule, OciMount, OciProcess, OciRlimit, OciSpec, OciUser } from './oci';

/**
 * OCI runtime spec (config.json) for one container, with Docker's defaults: the same
 * namespaces, capabilities, masked and read-only paths, default mounts and device cgroup
 * rules as moby's oci/defaults.go, so a program sees the same box under berth as under
 * Docker, with Docker's default seccomp profile (security.ts). Not applied: AppArmor.
 *
 * buildSpec is pure apart from reading the host's rlimits and finding tini-static (both
 * can be passed in, `host`) and, for `security`, the default seccomp profile and the host's
 * device nodes, so tests and dry runs see exactly what would be written.
 */

/** A bind mount (or another mount type) added to the container. */
export interface MountInput {
  source: string;
  /** Absolute path inside the container. */
  destination: string;
  /** Default 'bind'. */
  type?: string;
  /** Mount options, e.g. ['ro']; 'rbind' is added to a bind mount that names neither bind nor rbind. */
  options?: string[];
}

/** A resource limit; `type` as in the OCI spec ('RLIMIT_NOFILE') or Docker's ulimit name ('nofile'). */
export interface RlimitInput {
  type: string;
  soft: number | bigint;
  hard: number | bigint;
}

export interface ContainerSpecInput {
  /** Absolute path of the container's root filesystem on the host. */
  rootfs: string;
  /** The process to run, already resolved (entrypoint + cmd). */
  args: string[];
  /** KEY=value pairs. PATH (Docker's default) and HOSTNAME are added when missing. */
  env?: string[];
  /** Working directory inside the container; default '/'. /proc and below are refused. */
  cwd?: string;
  uid?: number;
  gid?: number;
  additionalGids?: number[];
  hostname?: string;
  /** The UTS domain name (Config.Domainname). */
  domainname?: string;
  readonlyRootfs?: boolean;
  /** Memory limit in bytes (Docker's minimum is 6 MiB). */
  memoryBytes?: number;
  /** Memory + swap in bytes; -1 unlimited; default twice memoryBytes, as Docker. */
  memorySwapBytes?: number;
  /** CPUs, e.g. 1.5; becomes a CFS quota over a 100 ms period. */
  cpus?: number;
  /** Maximum number of tasks; <= 0 or undefined: unlimited. */
  pidsLimit?: number;
  /**
   * Allocate a pty (`docker run -t`): runc makes it inside the container and hands the
   * master to berth-monitor through a console socket (CreateIO.tty must then be given).
   */
  terminal?: boolean;
  /** The pty's initial size (with terminal); rows are `height`, columns `width`. */
  consoleSize?: { height: number; width: number };
  /** cgroupfs path, e.g. /berth-<suffix>/<id>. */
  cgroupsPath: string;
  mounts?: MountInput[];
  /** Join this network namespace (e.g. /run/netns/x); absent: a new one with loopback only. */
  netnsPath?: string;
  /** Share the host's network namespace (`--network host`). */
  hostNetwork?: boolean;
  /** Run tini as pid 1 (`docker run --init`). */
  init?: boolean;
  /** /dev/shm size in bytes; default 64 MiB. */
  shmSizeBytes?: number;
  /** User rlimits; merged over the default RLIMIT_NOFILE and capped at the host's hard limits. */
  rlimits?: RlimitInput[];
  /** Stored as OCI annotations. */
  labels?: Record<string, string>;
  /** Capabilities, privileged, seccomp, sysctls, devices (default: Docker's defaults). */
  security?: SecurityInput;
}

/** What buildSpec reads from the host; pass it to build a spec for another host or in a test. */
export interface HostInfo {
  /** Hard limit per RLIMIT_* name; RLIM_INFINITY for unlimited. */
  rlimits: Record<string, bigint>;
  /** The kernel's ceiling for RLIMIT_NOFILE (/proc/sys/fs/nr_open). */
  nrOpen?: bigint;
  /** tini-static on the host, for `init`. */
  initPath?: string;
}

export const OCI_VERSION = '1.0.2';
export const RLIM_INFINITY = (1n << 64n) - 1n;
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where Docker puts its init inside the container. */
export const CONTAINER_INIT_PATH = '/sbin/docker-init';
/** Docker's RLIMIT_NOFILE (dockerd runs with LimitNOFILE=1048576 and containers inherit it). */
export const DEFAULT_NOFILE = 1048576;
const MIN_MEMORY = 6 * 1024 * 1024;
const CPU_PERIOD = 100_000;

/** Hidden from the container (runc mounts /dev/null or an empty tmpfs over them). */
export const MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/interrupts', '/proc/kcore', '/proc/keys',
  '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug',
  '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS: readonly string[] = [
  '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger',
];

/** Docker's device cgroup: deny all, then the usual character devices; never fuse. */
export const DEFAULT_DEVICE_RULES: readonly OciDeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // /dev/zero
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // /dev/null
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // /dev/urandom
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // /dev/random
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // /dev/tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // /dev/console
  { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }, // /dev/fuse
];

function defaultMounts(shmSize: number): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${Math.ceil(shmSize / 1024)}k`] },
  ];
}

/** Line titles of /proc/<pid>/limits, by RLIMIT_* name. */
const LIMIT_TITLES: Record<string, string> = {
  'Max cpu time': 'RLIMIT_CPU',
  'Max file size': 'RLIMIT_FSIZE',
  'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK',
  'Max core file size': 'RLIMIT_CORE',
  'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC',
  'Max open files': 'RLIMIT_NOFILE',
  'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS',
  'Max file locks': 'RLIMIT_LOCKS',
  'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE',
  'Max nice priority': 'RLIMIT_NICE',
  'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

/** Parse /proc/<pid>/limits into hard limits by RLIMIT_* name. */
export function parseLimits(text: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const line of text.split('\n')) {
    const m = /^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
    const name = m && LIMIT_TITLES[m[1]];
    if (!m || !name) continue;
    out[name] = m[3] === 'unlimited' ? RLIM_INFINITY : BigInt(m[3]);
  }
  return out;
}

/** This host as buildSpec sees it: berthd's own hard limits (runc and the container inherit them). */
export function readHostInfo(): HostInfo {
  const info: HostInfo = { rlimits: parseLimits(fs.readFileSync('/proc/self/limits', 'utf8')) };
  try {
    info.nrOpen = BigInt(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
  } catch {
    // not Linux-like enough to tell: the hard limit alone caps RLIMIT_NOFILE
  }
  const init = findInitBinary();
  if (init) info.initPath = init;
  return info;
}

/** Debian's tini-static (package tini), or Docker's docker-init, if installed. */
export function findInitBinary(): string | undefined {
  const candidates = ['/usr/bin/tini-static', '/usr/sbin/tini-static', '/usr/local/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/docker/docker-init'];
  return candidates.find((p) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

function rlimitName(type: string): string {
  const t = type.toUpperCase();
  return t.startsWith('RLIMIT_') ? t : `RLIMIT_${t}`;
}

function toLimit(v: number | bigint, what: string): bigint {
  if (typeof v === 'bigint') return v < 0n ? RLIM_INFINITY : v;
  if (v === -1 || v === Infinity) return RLIM_INFINITY;
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new InvalidArgumentError(`invalid ${what}: ${v}`, { hint: 'use a whole number, or -1 for unlimited' });
  }
  return BigInt(v);
}

/** A number when JSON can carry it exactly, else the bigint (only RLIM_INFINITY in practice). */
function limitValue(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * The container's rlimits: Docker's RLIMIT_NOFILE, then the caller's, each capped at the
 * host's hard limit so runc never has to raise one (it cannot without CAP_SYS_RESOURCE).
 */
export function buildRlimits(user: RlimitInput[] | undefined, host: HostInfo): OciRlimit[] {
  const wanted = new Map<string, { soft: bigint; hard: bigint }>();
  wanted.set('RLIMIT_NOFILE', { soft: BigInt(DEFAULT_NOFILE), hard: BigInt(DEFAULT_NOFILE) });
  for (const r of user ?? []) {
    const type = rlimitName(r.type);
    if (!Object.values(LIMIT_TITLES).includes(type)) {
      throw new InvalidArgumentError(`unknown rlimit ${r.type}`, { hint: 'use a name such as nofile, nproc, core, memlock or stack' });
    }
    const soft = toLimit(r.soft, `${type} soft limit`);
    const hard = toLimit(r.hard, `${type} hard limit`);
    if (soft > hard) {
      throw new InvalidArgumentError(`${type}: soft limit ${soft} is above hard limit ${hard}`, { hint: 'give a soft limit no larger than the hard limit' });
    }
    wanted.set(type, { soft, hard });
  }
  const out: OciRlimit[] = [];
  for (const [type, { soft, hard }] of wanted) {
    let cap = host.rlimits[type] ?? RLIM_INFINITY;
    if (type === 'RLIMIT_NOFILE' && host.nrOpen !== undefined && host.nrOpen < cap) cap = host.nrOpen;
    const h = hard < cap ? hard : cap;
    const s = soft < h ? soft : h;
    out.push({ type, soft: limitValue(s), hard: limitValue(h) });
  }
  return out;
}

function checkAbsolute(p: string, what: string): void {
  if (!path.isAbsolute(p)) {
    throw new InvalidArgumentError(`${what} must be an absolute path: ${JSON.stringify(p)}`, { hint: `give ${what} as an absolute path, e.g. /data` });
  }
}

function checkCgroupsPath(p: string): void {
  if (!p.startsWith('/') || p.split('/').some((c) => c === '..' || c === '.') || p.endsWith('/') || p.includes('//')) {
    throw new InvalidArgumentError(`invalid cgroupsPath ${JSON.stringify(p)}`, { hint: 'use a cgroupfs path such as /berth-<suffix>/<id>' });
  }
}

function userMount(m: MountInput): OciMount {
  checkAbsolute(m.destination, 'a mount destination');
  const type = m.type ?? 'bind';
  const options = [...(m.options ?? [])];
  if (type === 'bind') {
    checkAbsolute(m.source, 'a bind mount source');
    if (!options.includes('bind') && !options.includes('rbind')) options.push('rbind');
  }
  return { destination: path.posix.normalize(m.destination), type, source: m.source, options };
}

/** The OCI config.json for one container, with Docker's defaults. */
export function buildSpec(c: ContainerSpecInput, host: HostInfo = readHostInfo()): OciSpec {
  checkAbsolute(c.rootfs, 'the rootfs');
  if (!c.args || c.args.length === 0 || c.args[0] === '') {
    throw new InvalidArgumentError('no command to run', { hint: 'give a command, or use an image with an entrypoint or cmd' });
  }
  checkCgroupsPath(c.cgroupsPath);
  const cwd = validateWorkdir(c.cwd ?? '/');
  if (c.consoleSize) {
    const { height, width } = c.consoleSize;
    for (const v of [height, width]) {
      if (!Number.isInteger(v) || v < 1 || v > 10000) {
        throw new InvalidArgumentError(`invalid console size ${height}x${width}`, { hint: 'give whole numbers of rows and columns between 1 and 10000' });
      }
    }
    if (!c.terminal) {
      throw new InvalidArgumentError('a console size was given without a terminal', { hint: 'allocate a terminal (-t) or drop the size' });
    }
  }

  const env = [...(c.env ?? [])];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH_ENV);
  if (c.hostname && !env.some((e) => e.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${c.hostname}`);

  const user: OciUser = { uid: c.uid ?? 0, gid: c.gid ?? 0 };
  for (const id of [user.uid, user.gid, ...(c.additionalGids ?? [])]) {
    if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
      throw new InvalidArgumentError(`invalid user or group id ${id}`, { hint: 'use ids between 0 and 2147483647' });
    }
  }
  if (c.additionalGids?.length) user.additionalGids = [...c.additionalGids];

  let args = [...c.args];
  const mounts = defaultMounts(c.shmSizeBytes ?? 64 * 1024 * 1024);
  const extra = (c.mounts ?? []).map(userMount);
  if (c.init) {
    const initPath = host.initPath;
    if (!initPath) {
      throw new FailedPreconditionError('--init needs tini-static on the host and none was found', { hint: 'install it: apt-get install -y tini' });
    }
    extra.push({ destination: CONTAINER_INIT_PATH, type: 'bind', source: initPath, options: ['bind', 'ro'] });
    args = [CONTAINER_INIT_PATH, '--', ...args];
  }
  // A user mount on a default destination (e.g. a bigger /dev/shm) replaces the default.
  const taken = new Set(extra.map((m) => m.destination));

  const resources: OciSpec['linux']['resources'] = { devices: DEFAULT_DEVICE_RULES.map((d) => ({ ...d })) };
  if (c.memoryBytes !== undefined && c.memoryBytes > 0) {
    if (!Number.isSafeInteger(c.memoryBytes) || c.memoryBytes < MIN_MEMORY) {
      throw new InvalidArgumentError(`memory limit ${c.memoryBytes} is too small`, { hint: 'the minimum memory limit is 6 MiB (6m)' });
    }
    const swap = c.memorySwapBytes ?? c.memoryBytes * 2;
    if (swap !== -1 && swap < c.memoryBytes) {
      throw new InvalidArgumentError('the memory+swap limit is below the memory limit', { hint: 'give a memory-swap at least as large as memory, or -1 for unlimited swap' });
    }
    resources.memory = { limit: c.memoryBytes, swap };
  }
  if (c.cpus !== undefined && c.cpus !== 0) {
    if (!(c.cpus > 0) || c.cpus > 1024) {
      throw new InvalidArgumentError(`invalid cpus value ${c.cpus}`, { hint: 'give a positive number of CPUs such as 0.5 or 2' });
    }
    resources.cpu = { quota: Math.round(c.cpus * CPU_PERIOD), period: CPU_PERIOD };
  }
  if (c.pidsLimit !== undefined && c.pidsLimit > 0) {
    if (!Number.isSafeInteger(c.pidsLimit)) {
      throw new InvalidArgumentError(`invalid pids limit ${c.pidsLimit}`, { hint: 'give a whole number, or 0 for unlimited' });
    }
    resources.pids = { limit: c.pidsLimit };
  }

  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: !!c.terminal,
      ...(c.terminal && c.consoleSize ? { consoleSize: { height: c.consoleSize.height, width: c.consoleSize.width } } : {}),
      user,
      args,
      env,
      cwd,
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: buildRlimits(c.rlimits, host),
      noNewPrivileges: false,
      oomScoreAdj: 0,
    },
    root: { path: c.rootfs, readonly: !!c.readonlyRootfs },
    mounts: [...mounts.filter((m) => !taken.has(m.destination)), ...extra],
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'mount' },
        { type: 'uts' },
        { type: 'ipc' },
        ...(c.hostNetwork ? [] : [c.netnsPath ? { type: 'network', path: c.netnsPath } : { type: 'network' }]),
      ],
      cgroupsPath: c.cgroupsPath,
      resources,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (c.hostname) spec.hostname = c.hostname;
  if (c.domainname) spec.domainname = c.domainname;
  if (c.labels && Object.keys(c.labels).length) spec.annotations = { ...c.labels };
  applySecurity(spec, c.security);
  return spec;
}

/** config.json text for a spec: bigints (RLIM_INFINITY) are written as exact JSON integers. */
export function specToJson(spec: OciSpec): string {
  const text = JSON.stringify(spec, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000bigint:${v}` : v), 1);
  return text.replace(/"\\u0000bigint:(\d+)"/g, '$1');
}
