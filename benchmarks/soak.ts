import * as fs from 'node:fs';
import { randomInt } from 'node:crypto';
import { BenchDaemon } from './daemon';
import { rawCall } from '../test/helpers/raw-api';
import { Inspector, type MemoryUsage } from './inspector';
import { CONFIG_FIELDS, HOST_CONFIG_FIELDS } from '../src/engine/create-fields';

/**
 * Soak (issue 18): `runs` containers (default 1,000; BERTH_SOAK_RUNS to change) run to the
 * end and removed through the API, 4 at a time, while a fuzzer throws random create bodies
 * at the same daemon. Prints berthd's RSS, V8 heap and open file descriptors at the start
 * (after a warm-up), every 100 runs and at the end, and its peak RSS. RSS alone mixes what
 * berthd holds with garbage V8 has not collected yet (it rises and falls in a sawtooth as
 * major GCs come), so at the start and the end a full GC is forced through the inspector
 * (the daemon runs with --inspect on loopback) and RSS and heap are read again: flat after
 * GC means nothing is retained per container or request. BERTH_SOAK_GC=every forces one
 * at every row too (which hides the sawtooth). Also counts the fuzzer's answers: any 500
 * is a defect. BERTH_SOAK_SNAPSHOTS=DIR writes heap snapshots at the start and the end
 * there, to compare in DevTools (a snapshot costs the daemon ~100 MB of malloc'd memory
 * that glibc keeps, so RSS after one is not comparable).
 */
export async function benchSoak(work: string): Promise<void> {
  const runs = Number(process.env.BERTH_SOAK_RUNS ?? 1000);
  const snapshots = process.env.BERTH_SOAK_SNAPSHOTS;
  const gcEveryRow = process.env.BERTH_SOAK_GC === 'every';
  const d = await BenchDaemon.start(work, { nodeArgs: ['--inspect=127.0.0.1:0'] });
  const inspector = await Inspector.fromLog(d.logFile);
  try {
    console.log(`\n# soak: ${runs} runs of busybox true, 4 at a time, with the create fuzzer alongside`);
    for (let i = 0; i < 20; i++) await runOnce(d.socket); // warm-up: caches, first-use opens
    const header = ['runs', 'RSS MB', 'heap total', 'heap used', 'fds', 'RSS after GC', 'heap total after GC', 'heap used after GC'];
    const widths = header.map((h) => Math.max(6, h.length));
    const line = (cells: string[]) => '  ' + cells.map((c, i) => c.padStart(widths[i])).join(' ');
    const rows: string[] = [line(header)];
    const row = async (n: number, gc: boolean): Promise<Sample> => {
      const s = await sample(d.pid, inspector, gc);
      rows.push(line([String(n), s.rss.toFixed(1), s.heap.heapTotal.toFixed(1), s.heap.heapUsed.toFixed(1), String(s.fds), s.gc?.rss.toFixed(1) ?? '-', s.gc?.heapTotal.toFixed(1) ?? '-', s.gc?.heapUsed.toFixed(1) ?? '-']));
      return s;
    };
    const start = await row(0, true);
    if (snapshots) await inspector.heapSnapshot(`${snapshots}/soak-start.heapsnapshot`);
    let started = 0;
    let finished = 0;
    let stop = false;
    const answers = new Map<number, number>();
    let fuzzed = 0;
    const fuzzer = (async () => {
      while (!stop) {
        const r = await call(d.socket, 'POST', '/containers/create', randomBody()).catch(() => ({ status: -1, json: {} as Record<string, unknown> }));
        fuzzed++;
        answers.set(r.status, (answers.get(r.status) ?? 0) + 1);
        if (r.status === 201) await call(d.socket, 'DELETE', `/containers/${r.json.Id}?force=1`).catch(() => undefined);
      }
    })();
    const samples: Promise<Sample>[] = [];
    const worker = async (): Promise<void> => {
      while (started < runs) {
        started++;
        await runOnce(d.socket);
        finished++;
        if (finished % 100 === 0 && finished < runs) samples.push(row(finished, gcEveryRow));
      }
    };
    const t0 = Date.now();
    await Promise.all([worker(), worker(), worker(), worker()]);
    const seconds = (Date.now() - t0) / 1000;
    stop = true;
    await fuzzer;
    await Promise.all(samples);
    const end = await row(runs, true);
    if (snapshots) await inspector.heapSnapshot(`${snapshots}/soak-end.heapsnapshot`);
    console.log(rows.join('\n'));
    console.log(`  ${runs} runs in ${seconds.toFixed(1)} s; ${fuzzed} fuzzed creates, answers: ${[...answers].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(', ')}`);
    const ratio = (a: number, b: number) => `${a.toFixed(1)} → ${b.toFixed(1)} MB (${(b / a).toFixed(2)}x)`;
    console.log(`  peak RSS ${peakRss(d.pid).toFixed(1)} MB; RSS ${ratio(start.rss, end.rss)}; after GC: RSS ${ratio(start.gc!.rss, end.gc!.rss)}, heap used ${ratio(start.gc!.heapUsed, end.gc!.heapUsed)}; fds ${start.fds} → ${end.fds}`);
    console.log(`  target: flat RSS after GC, heap and fds (no growth with the number of runs), no 500 from the fuzzer`);
  } finally {
    inspector.close();
    await d.stop();
  }
}

interface Sample {
  rss: number;
  fds: number;
  heap: MemoryUsage;
  gc?: MemoryUsage;
}

/** VmHWM: the most RSS the daemon has had. */
function peakRss(pid: number): number {
  return Number(/^VmHWM:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** RSS and fds as they are, then the same after a full GC. */
async function sample(pid: number, inspector: Inspector, gc: boolean): Promise<Sample> {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  const heap = await inspector.measure();
  return { rss: kb / 1024, fds, heap, gc: gc ? await inspector.collectAndMeasure() : undefined };
}

async function runOnce(socket: string): Promise<void> {
  const c = await call(socket, 'POST', '/containers/create', JSON.stringify({ Image: 'busybox', Cmd: ['true'], HostConfig: { NetworkMode: 'none' } }));
  if (c.status !== 201) throw new Error(`create: ${c.status} ${JSON.stringify(c.json)}`);
  const id = c.json.Id as string;
  const s = await call(socket, 'POST', `/containers/${id}/start`);
  if (s.status !== 204) throw new Error(`start: ${s.status} ${JSON.stringify(s.json)}`);
  await call(socket, 'POST', `/containers/${id}/wait`);
  const r = await call(socket, 'DELETE', `/containers/${id}`);
  if (r.status !== 204) throw new Error(`remove: ${r.status} ${JSON.stringify(r.json)}`);
}

const LEAVES: unknown[] = [null, true, false, 0, -1, 65, 1e300, 2 ** 53, 'true', '', 'sleep', '/tmp', '/tmp:/mnt', 'vol:/data', 'bridge', 'none', 'SIGTERM', 'A=b', '80/tcp', 'always', [], {}, ['A=b'], { a: 5 }, 'x'.repeat(300)];

function randomValue(depth = 0): unknown {
  const k = randomInt(10);
  if (depth < 2 && k === 0) return Array.from({ length: randomInt(4) }, () => randomValue(depth + 1));
  if (depth < 2 && k === 1) return Object.fromEntries(Array.from({ length: randomInt(3) }, () => [String(LEAVES[randomInt(LEAVES.length)]).slice(0, 8), randomValue(depth + 1)]));
  return LEAVES[randomInt(LEAVES.length)];
}

/** A create body with a few random Config and HostConfig fields (Image is busybox, so some succeed). */
function randomBody(): string {
  const config = Object.keys(CONFIG_FIELDS).filter((k) => k !== 'Image');
  const host = Object.keys(HOST_CONFIG_FIELDS);
  const body: Record<string, unknown> = { Image: 'busybox', Cmd: ['true'], HostConfig: { NetworkMode: 'none' } };
  for (let i = randomInt(4); i > 0; i--) body[config[randomInt(config.length)]] = randomValue();
  const hc = body.HostConfig as Record<string, unknown>;
  for (let i = randomInt(4); i > 0; i--) hc[host[randomInt(host.length)]] = randomValue();
  return JSON.stringify(body);
}

/** A raw API call, versioned as the soak's clients send them. */
function call(socket: string, method: string, p: string, body?: string) {
  return rawCall(socket, method, `/v1.41${p}`, body);
}
