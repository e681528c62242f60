import { z } from 'zod';
import { LIMITS } from '../limits';
import { bool, int, obj, setMap, str, strList, strMap, strSlice } from '../validate';
import { compactUnknownFields } from '../../engine/create-fields';
import { consoleSize, endpointSettings, envList, hostname, labels, resources, RESOURCE_HINTS, restartPolicy, signal, uint, under, type BodySpec } from './common';

/**
 * POST /containers/create: Docker's Config, HostConfig and NetworkingConfig, typed and
 * bounded. What the values mean (and which fields berth refuses) is the engine's to check
 * (create-fields.ts, create-config.ts); this makes sure it is only ever handed the types
 * it expects, and that nothing runc would choke on (a 65-character hostname, a NUL in an
 * env var, a 300k-entry Env) gets as far as a record.
 */

const MAX_TMPFS_BYTES = Number.MAX_SAFE_INTEGER;

/** A tmpfs option string whose size= the kernel can take: bytes (k/m/g) or a percentage of RAM up to 100. */
const tmpfsOptions = str().refine(
  (data) =>
    data.split(',').every((o) => {
      const m = /^\s*size=(\d+)([kmgKMG%]?)\s*$/.exec(o);
      if (!m) return !/^\s*size=/.test(o);
      const n = Number(m[1]);
      if (m[2] === '%') return n >= 1 && n <= 100;
      const mult = { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
      return Number.isSafeInteger(n) && n * mult <= MAX_TMPFS_BYTES;
    }),
  { message: 'has a size= the kernel cannot take (give bytes with k/m/g, or 1% to 100%)' },
);

const mount = obj({
  Type: str(32),
  Source: str(LIMITS.pathBytes),
  Target: str(LIMITS.pathBytes),
  ReadOnly: bool,
  Consistency: str(32),
  BindOptions: obj({ Propagation: str(32), NonRecursive: bool, CreateMountpoint: bool, ReadOnlyNonRecursive: bool, ReadOnlyForceRecursive: bool }),
  VolumeOptions: obj({ NoCopy: bool, Labels: labels, DriverConfig: obj({ Name: str(), Options: strMap(64) }), Subpath: str(LIMITS.pathBytes) }),
  TmpfsOptions: obj({ SizeBytes: uint(), Mode: int(0, 0o7777) }),
});

const healthcheck = obj({
  Test: strList(LIMITS.argCount, LIMITS.envEntryBytes),
  Interval: uint(),
  Timeout: uint(),
  StartPeriod: uint(),
  StartInterval: uint(),
  Retries: int(0, 2 ** 31 - 1),
});

/** Config: the fields `docker commit` also takes. */
export const configShape = {
  Hostname: hostname,
  Domainname: hostname,
  User: str(),
  AttachStdin: bool,
  AttachStdout: bool,
  AttachStderr: bool,
  ExposedPorts: setMap(LIMITS.portCount, 64),
  Tty: bool,
  OpenStdin: bool,
  StdinOnce: bool,
  Env: envList,
  Cmd: strSlice(),
  Healthcheck: healthcheck,
  ArgsEscaped: bool,
  Image: str(),
  Volumes: setMap(LIMITS.mountCount),
  WorkingDir: str(LIMITS.pathBytes),
  Entrypoint: strSlice(),
  NetworkDisabled: bool,
  MacAddress: str(64),
  OnBuild: strList(LIMITS.listCount, LIMITS.envEntryBytes),
  Labels: labels,
  StopSignal: signal,
  StopTimeout: int(-1, 2 ** 31 - 1),
  Shell: strSlice(LIMITS.listCount),
};

const hostConfig = obj({
  ...resources,
  Binds: strList(LIMITS.mountCount, LIMITS.pathBytes * 2 + 64),
  ContainerIDFile: str(LIMITS.pathBytes),
  LogConfig: obj({ Type: str(64), Config: strMap(64) }),
  NetworkMode: str(256),
  PortBindings: z
    .record(str(64), z.union([z.array(obj({ HostIp: str(64), HostPort: str(32) })).max(LIMITS.listCount), z.null()], { message: 'must be a list of {"HostIp", "HostPort"}' }))
    .refine((m) => Object.keys(m).length <= LIMITS.portCount, { message: `more than ${LIMITS.portCount} ports` }),
  RestartPolicy: restartPolicy,
  AutoRemove: bool,
  VolumeDriver: str(64),
  VolumesFrom: strList(LIMITS.mountCount, 256),
  Mounts: z.array(mount).max(LIMITS.mountCount, { message: `more than ${LIMITS.mountCount} mounts` }),
  ConsoleSize: consoleSize,
  Annotations: strMap(),
  CapAdd: strList(64, 64),
  CapDrop: strList(64, 64),
  CgroupnsMode: str(32),
  Dns: strList(64, 64),
  DnsOptions: strList(64, 256),
  DnsSearch: strList(64, 256),
  ExtraHosts: strList(LIMITS.listCount, 512),
  GroupAdd: strList(LIMITS.listCount, 64),
  IpcMode: str(256),
  Cgroup: str(256),
  Links: strList(LIMITS.listCount, 512),
  OomScoreAdj: int(-1000, 1000),
  PidMode: str(256),
  Privileged: bool,
  PublishAllPorts: bool,
  ReadonlyRootfs: bool,
  SecurityOpt: strList(64, 64 << 10),
  StorageOpt: strMap(64),
  Tmpfs: z.record(str(LIMITS.pathBytes), tmpfsOptions).refine((m) => Object.keys(m).length <= LIMITS.mountCount, { message: `more than ${LIMITS.mountCount} tmpfs mounts` }),
  UTSMode: str(256),
  UsernsMode: str(256),
  ShmSize: uint(),
  Sysctls: strMap(LIMITS.listCount),
  Runtime: str(LIMITS.pathBytes),
  Isolation: str(32),
  MaskedPaths: strList(LIMITS.listCount, LIMITS.pathBytes),
  ReadonlyPaths: strList(LIMITS.listCount, LIMITS.pathBytes),
});

type Body = Record<string, unknown> & { HostConfig?: Record<string, unknown> | null };

const len = (v: unknown): number => (Array.isArray(v) ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0);

/** What execve gets from the body: Env, Entrypoint and Cmd, each string with its NUL and pointer. */
function execBytes(b: Body): number {
  let n = 0;
  for (const k of ['Env', 'Entrypoint', 'Cmd']) {
    const v = b[k];
    for (const s of typeof v === 'string' ? [v] : Array.isArray(v) ? v : []) n += Buffer.byteLength(s as string) + 1 + 8;
  }
  return n;
}

function mountCount(b: Body): number {
  const hc = b.HostConfig ?? {};
  return len(hc.Binds) + len(hc.Mounts) + len(hc.Tmpfs) + len(hc.VolumesFrom) + len(b.Volumes);
}

export const createBodySchema = obj({
  ...configShape,
  HostConfig: hostConfig,
  NetworkingConfig: obj({
    EndpointsConfig: z
      .record(str(256), z.union([endpointSettings, z.null()], { message: 'must be an endpoint settings object' }))
      .refine((m) => Object.keys(m).length <= 64, { message: 'more than 64 networks' }),
  }),
})
  .refine((b) => execBytes(b as Body) <= LIMITS.execBytes, { message: `Env, Entrypoint and Cmd together take more than ${LIMITS.execBytes} bytes`, path: ['Env'] })
  .refine((b) => mountCount(b as Body) <= LIMITS.mountCount, { message: `more than ${LIMITS.mountCount} mounts (Binds, Mounts, Tmpfs, Volumes, VolumesFrom together)`, path: ['HostConfig', 'Mounts'] });

const CONFIG_HINTS = {
  Hostname: 'give a hostname of up to 64 letters, digits, ".", "-" or "_" (docker run -h NAME)',
  Domainname: 'give a domain name of up to 64 letters, digits, ".", "-" or "_"',
  Env: `give Env as ["KEY=value", ...]: at most ${LIMITS.envCount} variables, each under 128 KiB, all with Cmd under ${LIMITS.execBytes >> 20} MiB; pass bulk data in a file or volume instead`,
  Cmd: 'give a command as a list of strings, e.g. ["sh", "-c", "echo hi"]',
  Entrypoint: 'give an entrypoint as a list of strings, e.g. ["/bin/sh", "-c"]',
  Labels: `give Labels as an object of strings, e.g. {"app": "db"}: at most ${LIMITS.labelCount}, ${LIMITS.labelTotalBytes >> 10} KiB in all`,
  StopSignal: 'give a signal name such as SIGTERM, or its number',
  StopTimeout: 'give whole seconds (--stop-timeout), or -1 to wait for ever',
  ExposedPorts: 'e.g. "ExposedPorts": {"80/tcp": {}}',
  Volumes: 'e.g. "Volumes": {"/data": {}}',
  Healthcheck: 'e.g. "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000}',
  WorkingDir: 'give an absolute path, e.g. /app',
  User: 'give a user name or uid, with an optional :group',
  Tty: 'true or false',
};

const HOST_HINTS = {
  ...RESOURCE_HINTS,
  Binds: `e.g. "Binds": ["/host/dir:/data:ro", "vol:/data"]; at most ${LIMITS.mountCount} mounts`,
  Mounts: `e.g. "Mounts": [{"Type": "volume", "Source": "vol", "Target": "/data"}]; at most ${LIMITS.mountCount} mounts`,
  VolumesFrom: 'e.g. "VolumesFrom": ["other:ro"]',
  Tmpfs: 'e.g. "Tmpfs": {"/run": "rw,noexec,size=64m"}',
  NetworkMode: 'give a network name: bridge, host, none or a user-defined network',
  PortBindings: 'e.g. "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}',
  LogConfig: 'e.g. "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}',
  ConsoleSize: 'give [height, width]',
  OomScoreAdj: 'give a whole number from -1000 to 1000',
};

export const CREATE_BODY: BodySpec = {
  schema: createBodySchema,
  what: 'container create body',
  compact: compactUnknownFields,
  hints: {
    ...CONFIG_HINTS,
    HostConfig: 'HostConfig must be an object, e.g. {"Memory": 67108864}',
    ...under('HostConfig', HOST_HINTS),
    NetworkingConfig: 'e.g. "NetworkingConfig": {"EndpointsConfig": {"mynet": {"Aliases": ["db"]}}}',
  },
};

/** POST /commit's body: a Config that overrides the container's. */
export const COMMIT_BODY: BodySpec = {
  schema: obj(configShape),
  what: 'commit config',
  hints: CONFIG_HINTS,
};
