import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ContainerAccess } from './container-access';
import type { ContainerRecord } from './container-record';
import { cgroupDirs } from './host';

/**
 * GET /containers/{id}/stats: Docker's stats JSON read from the container's cgroup (v2;
 * v1 hierarchies when that is what the host has) and its veth's counters.
 *
 * Each sample is a handful of small synchronous reads (cgroup and sysfs files are
 * generated on read, microseconds each), and /proc/stat is read once per 100 ms for
 * every container sampled then, so streaming many containers costs little.
 */

export interface CpuStats {
  cpu_usage: { total_usage: number; usage_in_kernelmode: number; usage_in_usermode: number; percpu_usage?: number[] };
  system_cpu_usage: number;
  online_cpus: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

export interface NetStats {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

export interface StatsSample {
  read: string;
  preread: string;
  name: string;
  id: string;
  pids_stats: { current?: number; limit?: number };
  blkio_stats: {
    io_service_bytes_recursive: BlkioEntry[] | null;
    io_serviced_recursive: BlkioEntry[] | null;
    io_queue_recursive: null;
    io_service_time_recursive: null;
    io_wait_time_recursive: null;
    io_merged_recursive: null;
    io_time_recursive: null;
    sectors_recursive: null;
  };
  num_procs: number;
  storage_stats: Record<string, never>;
  cpu_stats: CpuStats;
  precpu_stats: CpuStats;
  memory_stats: { usage?: number; limit?: number; max_usage?: number; stats?: Record<string, number> };
  networks?: Record<string, NetStats>;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';
const CLK_TCK = 100;

function emptyCpu(): CpuStats {
  return { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, system_cpu_usage: 0, online_cpus: 0, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
}

const scratch = Buffer.alloc(64 * 1024);

/** A small generated file (cgroup, sysfs, procfs): open, one read into a shared buffer, close. */
function read(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (let got = 1; got > 0 && n < scratch.length; n += got) got = fs.readSync(fd, scratch, n, scratch.length - n, null);
    return scratch.toString('utf8', 0, n);
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

function num(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (t === '' || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" lines (cpu.stat, memory.stat) as a map. */
function keyed(s: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (s ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

let procStat: { at: number; value: number } | undefined;

/** Host CPU time in ns (the sum of /proc/stat's cpu line), Docker's system_cpu_usage; cached 100 ms. */
function systemCpu(): number {
  const now = Date.now();
  if (procStat && now - procStat.at < 100) return procStat.value;
  const line = (read('/proc/stat') ?? '').split('\n').find((l) => l.startsWith('cpu ')) ?? '';
  const ticks = line.split(/\s+/).slice(1, 9).reduce((a, b) => a + (Number(b) || 0), 0);
  procStat = { at: now, value: (ticks * 1e9) / CLK_TCK };
  return procStat.value;
}

function onlineCpus(): number {
  return os.availableParallelism?.() ?? os.cpus().length;
}

/** One sample of a cgroup v2 directory. */
function sampleV2(dir: string): Pick<StatsSample, 'cpu_stats' | 'memory_stats' | 'pids_stats' | 'blkio_stats'> {
  const cpu = keyed(read(path.join(dir, 'cpu.stat')));
  const mstat = keyed(read(path.join(dir, 'memory.stat')));
  const usage = num(read(path.join(dir, 'memory.current')));
  const limit = num(read(path.join(dir, 'memory.max'))) ?? os.totalmem();
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of (read(path.join(dir, 'io.stat')) ?? '').split('\n')) {
    const m = /^(\d+):(\d+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const kv = Object.fromEntries(m[3].split(/\s+/).map((p) => p.split('=')).map(([k, v]) => [k, Number(v) || 0]));
    const [major, minor] = [Number(m[1]), Number(m[2])];
    bytes.push({ major, minor, op: 'read', value: kv.rbytes ?? 0 }, { major, minor, op: 'write', value: kv.wbytes ?? 0 });
    ios.push({ major, minor, op: 'read', value: kv.rios ?? 0 }, { major, minor, op: 'write', value: kv.wios ?? 0 });
  }
  return {
    cpu_stats: {
      cpu_usage: { total_usage: (cpu.usage_usec ?? 0) * 1000, usage_in_kernelmode: (cpu.system_usec ?? 0) * 1000, usage_in_usermode: (cpu.user_usec ?? 0) * 1000 },
      system_cpu_usage: systemCpu(),
      online_cpus: onlineCpus(),
      throttling_data: { periods: cpu.nr_periods ?? 0, throttled_periods: cpu.nr_throttled ?? 0, throttled_time: (cpu.throttled_usec ?? 0) * 1000 },
    },
    memory_stats: { usage, limit, stats: mstat },
    pids_stats: { current: num(read(path.join(dir, 'pids.current'))), limit: num(read(path.join(dir, 'pids.max'))) },
    blkio_stats: blkio(bytes, ios),
  };
}

/**
 * A container's v1 hierarchy for each controller berth reads, found once: the mount
 * whose name lists the controller (`cpu,cpuacct`, `memory`, ...), so a sample reads each
 * file from the one place it is instead of trying every hierarchy.
 */
function v1Dirs(dirs: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const controller of ['cpu', 'cpuacct', 'memory', 'pids', 'blkio']) {
    // /sys/fs/cgroup/<controllers>/...: the hierarchy's mount names its controllers.
    const dir = dirs.find((d) => d.split('/')[4]?.split(',').includes(controller));
    if (dir) out.set(controller, dir);
  }
  return out;
}

/** One sample of cgroup v1 hierarchies (`byController` from v1Dirs). */
function sampleV1(byController: Map<string, string>): Pick<StatsSample, 'cpu_stats' | 'memory_stats' | 'pids_stats' | 'blkio_stats'> {
  const find = (file: string) => {
    const dir = byController.get(file.slice(0, file.indexOf('.')));
    return dir === undefined ? undefined : read(path.join(dir, file));
  };
  const acct = keyed(find('cpuacct.stat'));
  const tickNs = 1e9 / CLK_TCK;
  const thr = keyed(find('cpu.stat'));
  const mstat = keyed(find('memory.stat'));
  const rawLimit = num(find('memory.limit_in_bytes'));
  const blk = (file: string) =>
    (find(file) ?? '')
      .split('\n')
      .map((l) => /^(\d+):(\d+)\s+(\w+)\s+(\d+)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => !!m && m[3] !== 'Total')
      .map((m) => ({ major: Number(m[1]), minor: Number(m[2]), op: m[3].toLowerCase(), value: Number(m[4]) }));
  return {
    cpu_stats: {
      cpu_usage: { total_usage: num(find('cpuacct.usage')) ?? 0, usage_in_kernelmode: (acct.system ?? 0) * tickNs, usage_in_usermode: (acct.user ?? 0) * tickNs },
      system_cpu_usage: systemCpu(),
      online_cpus: onlineCpus(),
      throttling_data: { periods: thr.nr_periods ?? 0, throttled_periods: thr.nr_throttled ?? 0, throttled_time: thr.throttled_time ?? 0 },
    },
    memory_stats: {
      usage: num(find('memory.usage_in_bytes')),
      // v1 writes an unlimited limit as a huge page-aligned number.
      limit: rawLimit === undefined || rawLimit > os.totalmem() ? os.totalmem() : rawLimit,
      stats: mstat,
    },
    pids_stats: { current: num(find('pids.current')), limit: num(find('pids.max')) },
    blkio_stats: blkio(blk('blkio.throttle.io_service_bytes'), blk('blkio.throttle.io_serviced')),
  };
}

function blkio(bytes: BlkioEntry[] | null, ios: BlkioEntry[] | null): StatsSample['blkio_stats'] {
  return {
    io_service_bytes_recursive: bytes,
    io_serviced_recursive: ios,
    io_queue_recursive: null,
    io_service_time_recursive: null,
    io_wait_time_recursive: null,
    io_merged_recursive: null,
    io_time_recursive: null,
    sectors_recursive: null,
  };
}

/**
 * The container's interfaces as it sees them: /proc/PID/net/dev, one read for every
 * counter (rx and tx are the container's own).
 */
function network(rec: ContainerRecord): Record<string, NetStats> | undefined {
  if (rec.Network?.Mode !== 'bridge' || !rec.State.Pid) return undefined;
  const text = read(`/proc/${rec.State.Pid}/net/dev`);
  if (!text) return undefined;
  const out: Record<string, NetStats> = {};
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    out[m[1]] = { rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3], tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11] };
  }
  return Object.keys(out).length ? out : undefined;
}

export class ContainerStats {
  /** Per container id: where its cgroup files are (v2: one dir; v1: per controller). */
  private readonly places = new Map<string, { v2?: string; v1?: Map<string, string> }>();

  constructor(private readonly access: ContainerAccess) {}

  private place(id: string): { v2?: string; v1?: Map<string, string> } | undefined {
    let p = this.places.get(id);
    if (p) return p;
    const dirs = cgroupDirs(this.access.cgroupsPath(id)).filter((d) => fs.existsSync(d));
    if (dirs.length === 0) return undefined;
    // Pure v2 only: a hybrid host's 'unified' mount holds none of the controllers read here.
    p = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? { v2: dirs[0] } : { v1: v1Dirs(dirs) };
    if (this.places.size > 1000) this.places.clear();
    this.places.set(id, p);
    return p;
  }

  /** One sample; `prev` becomes its precpu_stats (Docker's CPU % needs two). */
  sample(ref: string, prev?: StatsSample): StatsSample {
    const rec = this.access.record(ref);
    const now = new Date().toISOString();
    const base: StatsSample = {
      read: now,
      preread: prev?.read ?? ZERO_TIME,
      name: rec.Name,
      id: rec.Id,
      pids_stats: {},
      blkio_stats: blkio(null, null),
      num_procs: 0,
      storage_stats: {},
      cpu_stats: emptyCpu(),
      precpu_stats: prev?.cpu_stats ?? emptyCpu(),
      memory_stats: {},
    };
    if (!rec.State.Running) return { ...base, read: ZERO_TIME };
    const place = this.place(rec.Id);
    if (!place) return base;
    const s = place.v2 ? sampleV2(place.v2) : sampleV1(place.v1!);
    const net = network(rec);
    return { ...base, ...s, ...(net ? { networks: net } : {}) };
  }

  /**
   * Samples every second until `signal` aborts (or, with `stream` false, one sample that
   * has a previous one a second before, as Docker's `stream=false`; `oneShot` skips that wait).
   */
  async *samples(ref: string, opts: { stream: boolean; oneShot?: boolean; signal: AbortSignal }): AsyncGenerator<StatsSample> {
    this.access.record(ref); // a 404 before anything is sent
    if (!opts.stream) {
      if (opts.oneShot) {
        yield this.sample(ref);
        return;
      }
      const first = this.sample(ref);
      await sleep(1000, opts.signal);
      yield this.sample(ref, first);
      return;
    }
    let prev: StatsSample | undefined;
    while (!opts.signal.aborted) {
      let s: StatsSample;
      try {
        s = this.sample(ref, prev);
      } catch {
        return; // removed meanwhile
      }
      yield s;
      prev = s;
      await sleep(1000, opts.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
