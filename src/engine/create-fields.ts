import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * The rule, in one table: every field of Docker Engine API 1.41's create body (Config and
 * HostConfig) with what berth does with it.
 *
 * - `honoured`: berth does what Docker does with it (the module that does is named).
 * - `refused`: set to anything but its default, create answers INVALID_ARGUMENT naming the
 *   field, with the hint. Values listed in `accepts` are honoured (e.g. IpcMode "private").
 * - `no-op`: accepted and kept (inspect shows it) but it changes nothing, for the reason
 *   given — a field that means nothing on this host, or that only a client reads.
 *
 * A field that is in no table (newer than 1.41, or a typo) is refused the same way when it
 * is set. checkCreateFields runs first in create, so nothing is made for a refused body.
 */

export type FieldRule =
  | { status: 'honoured'; by: string }
  | { status: 'refused'; hint: string; accepts?: readonly unknown[] }
  | { status: 'no-op'; reason: string };

const honoured = (by: string): FieldRule => ({ status: 'honoured', by });
const refused = (hint: string, accepts?: readonly unknown[]): FieldRule => ({ status: 'refused', hint, ...(accepts ? { accepts } : {}) });
const noop = (reason: string): FieldRule => ({ status: 'no-op', reason });

export const CONFIG_FIELDS: Readonly<Record<string, FieldRule>> = {
  Hostname: honoured('create-config (UTS hostname, /etc/hostname, /etc/hosts)'),
  Domainname: honoured('launch-plan (the UTS domain name)'),
  User: honoured('launch-plan (looked up in the image)'),
  AttachStdin: honoured('the attach streams'),
  AttachStdout: honoured('the attach streams'),
  AttachStderr: honoured('the attach streams'),
  ExposedPorts: honoured('network (publish-all, inspect)'),
  Tty: honoured('berth-monitor (a pty)'),
  OpenStdin: honoured('stdin-pipe'),
  StdinOnce: honoured('stdin-pipe'),
  Env: honoured('create-config (merged with the image)'),
  Cmd: honoured('create-config'),
  Healthcheck: honoured('health'),
  ArgsEscaped: noop('Windows only: Linux commands are argument lists, never one escaped string'),
  Image: honoured('create'),
  Volumes: honoured('mounts (anonymous volumes)'),
  WorkingDir: honoured('launch-plan'),
  Entrypoint: honoured('create-config'),
  NetworkDisabled: refused('use --network none for a container without a network'),
  MacAddress: honoured('network (the veth inside the container)'),
  OnBuild: noop('only a build of an image FROM a commit of this container runs ONBUILD; kept for commit'),
  Labels: honoured('create-config'),
  StopSignal: honoured('stop'),
  StopTimeout: honoured('stop'),
  Shell: honoured('health (the shell of CMD-SHELL checks); kept for commit'),
};

const WINDOWS_ONLY = 'Windows only: berth runs Linux containers; leave it 0';

export const HOST_CONFIG_FIELDS: Readonly<Record<string, FieldRule>> = {
  CpuShares: refused('berth sets no relative CPU weight; limit CPUs with --cpus'),
  Memory: honoured('spec (memory cgroup)'),
  CgroupParent: refused("berth puts each daemon's containers under its own cgroup parent; drop --cgroup-parent"),
  BlkioWeight: refused('berth sets no block I/O weight; drop --blkio-weight'),
  BlkioWeightDevice: refused('berth sets no block I/O weights; drop --blkio-weight-device'),
  BlkioDeviceReadBps: refused('berth sets no block I/O limits; drop --device-read-bps'),
  BlkioDeviceWriteBps: refused('berth sets no block I/O limits; drop --device-write-bps'),
  BlkioDeviceReadIOps: refused('berth sets no block I/O limits; drop --device-read-iops'),
  BlkioDeviceWriteIOps: refused('berth sets no block I/O limits; drop --device-write-iops'),
  CpuPeriod: honoured('spec (CFS quota over the period)'),
  CpuQuota: honoured('spec (CFS quota over the period)'),
  CpuRealtimePeriod: refused('berth gives containers no real-time CPU time; drop --cpu-rt-period'),
  CpuRealtimeRuntime: refused('berth gives containers no real-time CPU time; drop --cpu-rt-runtime'),
  CpusetCpus: refused('berth does not pin containers to CPUs; limit CPUs with --cpus'),
  CpusetMems: refused('berth does not pin containers to memory nodes; drop --cpuset-mems'),
  Devices: honoured('security (device nodes and their cgroup rules)'),
  DeviceCgroupRules: honoured('security (device cgroup rules)'),
  DeviceRequests: refused('berth has no device drivers (GPUs); map a device with --device'),
  KernelMemory: refused('kernel memory limits are deprecated in Docker and not set by berth; drop --kernel-memory'),
  KernelMemoryTCP: refused('kernel TCP memory limits are not set by berth; drop it'),
  MemoryReservation: refused('berth sets no soft memory limit; use --memory for a hard one'),
  MemorySwap: honoured('spec (memory+swap cgroup limit)'),
  MemorySwappiness: refused('berth leaves swappiness to the kernel; drop --memory-swappiness', [-1]),
  NanoCpus: honoured('spec (CFS quota)'),
  OomKillDisable: refused('berth never disables the OOM killer; drop --oom-kill-disable'),
  Init: honoured('spec (tini as pid 1)'),
  PidsLimit: honoured('spec (pids cgroup)'),
  Ulimits: honoured('security-config (rlimits, refused above the host hard limit)'),
  CpuCount: refused(WINDOWS_ONLY),
  CpuPercent: refused(WINDOWS_ONLY),
  IOMaximumIOps: refused(WINDOWS_ONLY),
  IOMaximumBandwidth: refused(WINDOWS_ONLY),
  Binds: honoured('mounts'),
  ContainerIDFile: noop('the client writes the id file (docker run --cidfile); the daemon only keeps the name'),
  LogConfig: honoured('log-drivers'),
  NetworkMode: honoured('network (bridge, host, none, or a user-defined network: user-networks)'),
  PortBindings: honoured('network (published ports)'),
  RestartPolicy: honoured('restart-policy'),
  AutoRemove: honoured('engine (--rm)'),
  VolumeDriver: refused("berth's volumes all come from its own driver ('local' to clients); drop --volume-driver", ['local']),
  VolumesFrom: honoured('mounts'),
  Mounts: honoured('mounts'),
  CapAdd: honoured('security (capabilities)'),
  CapDrop: honoured('security (capabilities)'),
  CgroupnsMode: refused("berth containers share the host's cgroup namespace (Docker's 'host' on cgroup v1)", ['host']),
  Dns: honoured('dns-options (resolv.conf)'),
  DnsOptions: honoured('dns-options (resolv.conf)'),
  DnsSearch: honoured('dns-options (resolv.conf)'),
  ExtraHosts: honoured('dns-options (/etc/hosts)'),
  GroupAdd: honoured('launch-plan (supplementary groups)'),
  IpcMode: refused('berth gives every container its own IPC namespace (private); sharing one is not supported', ['private', 'shareable']),
  Cgroup: refused("berth cannot put a container in another's cgroup; drop --cgroup"),
  Links: honoured('container-links (/etc/hosts entries and, on the default bridge, link env vars)'),
  OomScoreAdj: honoured('security (oom_score_adj)'),
  PidMode: refused('berth gives every container its own PID namespace; --pid host and container:NAME are not supported'),
  Privileged: honoured('security (--privileged)'),
  PublishAllPorts: honoured('network (-P)'),
  ReadonlyRootfs: honoured('spec (read-only root)'),
  SecurityOpt: honoured('security-config (no-new-privileges, seccomp; apparmor=unconfined and label=disable are what berth does anyway)'),
  StorageOpt: refused('berth sets no per-container storage options (overlayfs has no size limit); drop --storage-opt'),
  Tmpfs: honoured('security-config (tmpfs mounts)'),
  UTSMode: refused('berth gives every container its own UTS namespace; --uts host is not supported'),
  UsernsMode: refused("berth does not remap users: containers run in the host's user namespace ('host')", ['host']),
  ShmSize: honoured('spec (/dev/shm size)'),
  Sysctls: honoured('security-config (namespaced sysctls)'),
  Runtime: honoured('engine (the OCI runtime binary)'),
  ConsoleSize: honoured("tty (the pty's first size)"),
  Isolation: refused("Windows only: on Linux the only isolation is 'default'", ['default']),
  MaskedPaths: honoured('security (masked paths)'),
  ReadonlyPaths: honoured('security (read-only paths)'),
};

/** A value that asks for nothing: what clients send when the user gave no flag. */
export function isDefaultValue(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0 || v.every((x) => x === 0); // ConsoleSize [0, 0]
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

function checkSection(section: 'Config' | 'HostConfig', obj: Record<string, unknown>, table: Readonly<Record<string, FieldRule>>, skip: readonly string[]): void {
  for (const [key, value] of Object.entries(obj)) {
    if (skip.includes(key) || isDefaultValue(value)) continue;
    const rule = table[key];
    if (!rule) {
      throw new InvalidArgumentError(`${section}.${key} is not a field berth knows`, {
        hint: 'berth speaks the Docker Engine API v1.41; drop the field, or check its spelling',
      });
    }
    if (rule.status !== 'refused' || rule.accepts?.some((a) => a === value)) continue;
    throw new InvalidArgumentError(`${section}.${key} is not supported: ${JSON.stringify(value)}`, { hint: rule.hint });
  }
}

/**
 * Refuse a create body that sets a field berth refuses (or does not know). Body-level
 * members other than Config's (HostConfig, NetworkingConfig) are checked by their owners.
 */
export function checkCreateFields(body: Record<string, unknown>): void {
  // dockerode sends its query options (`name`, `platform`) in the body as well; the query
  // parameter is what Docker reads, and its JSON decoder passes these over.
  checkSection('Config', body, CONFIG_FIELDS, ['HostConfig', 'NetworkingConfig', 'name', 'platform']);
  const hc = body.HostConfig;
  if (hc !== undefined && hc !== null) {
    if (typeof hc !== 'object' || Array.isArray(hc)) throw new InvalidArgumentError('HostConfig must be an object', { hint: 'e.g. "HostConfig": {"Memory": 67108864}' });
    checkSection('HostConfig', hc as Record<string, unknown>, HOST_CONFIG_FIELDS, []);
  }
}

/**
 * The body as create reads it, for a large body checked in a worker: a Config or HostConfig
 * field that no table knows is only ever refused by name (its value is read only to see
 * whether it is set), so when it is set its value, however large, is handed on as `true`.
 * Every answer stays the same; a 4 MB member berth does not know then costs the daemon's
 * thread nothing to parse again. Fields it does not know that are not set stay as sent.
 */
export function compactUnknownFields(body: unknown): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  const out: Record<string, unknown> = compactSection(body as Record<string, unknown>, CONFIG_FIELDS, ['HostConfig', 'NetworkingConfig', 'name', 'platform']);
  const hc = out.HostConfig;
  if (hc && typeof hc === 'object' && !Array.isArray(hc)) out.HostConfig = compactSection(hc as Record<string, unknown>, HOST_CONFIG_FIELDS, []);
  return out;
}

function compactSection(obj: Record<string, unknown>, table: Readonly<Record<string, FieldRule>>, skip: readonly string[]): Record<string, unknown> {
  // The same lookup as checkSection's; fromEntries, so a "__proto__" member stays a member.
  return Object.fromEntries(Object.entries(obj).map(([key, value]) => [key, skip.includes(key) || table[key] || isDefaultValue(value) ? value : true]));
}
