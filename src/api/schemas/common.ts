import { z } from 'zod';
import { LIMITS } from '../limits';
import { bool, int, obj, str, strList, strMap, type Hints, type Schema } from '../validate';
import { parseSignal } from '../../engine/signals';

/** A body's schema, the words its errors use ("container create body") and its field hints. */
export interface BodySpec {
  schema: Schema;
  what: string;
  hints: Hints;
  /**
   * For a large body checked in a worker (json-pool.ts): the body as the handler needs it,
   * made small where the handler reads less than was sent, so the daemon's thread parses
   * little of it again. Runs after the schema check; must keep every answer the same.
   */
  compact?: (body: unknown) => unknown;
}

const MAX = Number.MAX_SAFE_INTEGER;
/** Bytes, counts and other int64s that cannot be negative. */
export const uint = () => int(0, MAX);

const utf8 = (s: string) => Buffer.byteLength(s);

/** Env: KEY=value strings with a name, no NUL, each within what execve takes. */
export const envList = z
  .array(str(LIMITS.envEntryBytes).refine((e) => e !== '' && !e.startsWith('='), { message: 'has no variable name (KEY=value)' }))
  .max(LIMITS.envCount, { message: `more than ${LIMITS.envCount} variables` });

/** Labels: a map of strings, bounded in count, key, value and total size. */
export const labels = strMap(LIMITS.labelCount, LIMITS.labelKeyBytes, LIMITS.labelValueBytes).refine(
  (m) => Object.entries(m).reduce((n, [k, v]) => n + utf8(k) + utf8(v), 0) <= LIMITS.labelTotalBytes,
  { message: `labels total more than ${LIMITS.labelTotalBytes} bytes` },
);

/** A hostname or domain name the kernel's sethostname takes and resolvers read: letters, digits, '.', '-', '_'. */
export const hostname = z
  .string()
  .max(LIMITS.hostnameBytes, { message: `longer than ${LIMITS.hostnameBytes} characters (the kernel's limit)` })
  .refine((h) => h === '' || /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(h), { message: 'may hold only letters, digits, ".", "-" and "_", starting with a letter or digit' });

export const signal = str(32).refine(
  (s) => {
    if (s === '') return true;
    try {
      parseSignal(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'is not a signal this host knows' },
);

export const restartPolicy = obj({
  Name: z.enum(['', 'no', 'always', 'on-failure', 'unless-stopped'], { message: "must be one of '', no, always, on-failure, unless-stopped" }),
  MaximumRetryCount: int(0, 2 ** 31 - 1),
});

/** [height, width] of a terminal. */
export const consoleSize = z.tuple([int(0, 65535), int(0, 65535)]);

/** The resources Docker's create and update share (HostConfig's Resources). */
export const resources = {
  CpuShares: int(0, 262144),
  Memory: uint(),
  CgroupParent: str(LIMITS.pathBytes),
  BlkioWeight: int(0, 1000),
  BlkioWeightDevice: z.array(obj({ Path: str(LIMITS.pathBytes), Weight: int(0, 1000) })).max(LIMITS.tableCount),
  BlkioDeviceReadBps: throttle(),
  BlkioDeviceWriteBps: throttle(),
  BlkioDeviceReadIOps: throttle(),
  BlkioDeviceWriteIOps: throttle(),
  CpuPeriod: uint().refine((n) => n === 0 || (n >= 1000 && n <= 1_000_000), { message: 'must be 0 or from 1000 to 1000000 microseconds' }),
  CpuQuota: int(-1, MAX).refine((n) => n <= 0 || n >= 1000, { message: 'must be -1, 0 or at least 1000 microseconds' }),
  CpuRealtimePeriod: uint(),
  CpuRealtimeRuntime: int(-1, MAX),
  CpusetCpus: str(),
  CpusetMems: str(),
  Devices: z
    .array(obj({ PathOnHost: str(LIMITS.pathBytes), PathInContainer: str(LIMITS.pathBytes), CgroupPermissions: str(8) }))
    .max(LIMITS.tableCount, { message: `more than ${LIMITS.tableCount} devices` }),
  DeviceCgroupRules: strList(LIMITS.tableCount, 64),
  DeviceRequests: z.array(z.looseObject({})).max(LIMITS.tableCount),
  KernelMemory: int(-1, MAX),
  KernelMemoryTCP: int(-1, MAX),
  MemoryReservation: uint(),
  MemorySwap: int(-1, MAX),
  MemorySwappiness: int(-1, 100),
  NanoCpus: int(0, 4096 * 1e9),
  OomKillDisable: bool,
  Init: bool,
  PidsLimit: int(-1, MAX),
  Ulimits: z
    .array(obj({ Name: str(32), Soft: int(-1, MAX), Hard: int(-1, MAX) }))
    .max(LIMITS.tableCount, { message: `more than ${LIMITS.tableCount} ulimits` }),
  CpuCount: uint(),
  CpuPercent: int(0, 100),
  IOMaximumIOps: uint(),
  IOMaximumBandwidth: uint(),
};

function throttle() {
  return z.array(obj({ Path: str(LIMITS.pathBytes), Rate: uint() })).max(LIMITS.tableCount);
}

/** A network endpoint's settings (NetworkingConfig.EndpointsConfig values, network connect). */
export const endpointSettings = obj({
  IPAMConfig: obj({ IPv4Address: str(64), IPv6Address: str(64), LinkLocalIPs: strList(64, 64) }),
  Links: strList(),
  Aliases: strList(),
  NetworkID: str(256),
  EndpointID: str(256),
  Gateway: str(64),
  IPAddress: str(64),
  IPPrefixLen: int(0, 128),
  IPv6Gateway: str(64),
  GlobalIPv6Address: str(64),
  GlobalIPv6PrefixLen: int(0, 128),
  MacAddress: str(64),
  DriverOpts: strMap(64),
});

export const RESOURCE_HINTS: Hints = {
  Memory: 'give bytes, at least 6 MiB (-m 64m), or 0 for no limit',
  MemorySwap: 'give bytes at least --memory, or -1 for unlimited swap',
  NanoCpus: 'give CPUs times 1e9, e.g. --cpus 1.5 is 1500000000',
  CpuPeriod: 'give --cpu-period in microseconds, 1000 to 1000000',
  CpuQuota: 'give --cpu-quota in microseconds, at least 1000, or -1',
  Ulimits: 'e.g. "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}] (-1: unlimited)',
  RestartPolicy: 'e.g. "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}',
  PidsLimit: 'give a whole number of processes; 0 or -1 for no limit',
  Devices: 'e.g. [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]',
};

/** Prefix every key of `hints` with `prefix.`. */
export function under(prefix: string, hints: Hints): Hints {
  return Object.fromEntries(Object.entries(hints).map(([k, v]) => [`${prefix}.${k}`, v]));
}
