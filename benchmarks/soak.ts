import * as fs from 'node:fs';
import * as http from 'node:http';
import { randomInt } from 'node:crypto';
import { BenchDaemon } from './daemon';
import { CONFIG_FIELDS, HOST_CONFIG_FIELDS } from '../src/engine/create-fields';

/**
 * Soak (issue 18): `runs` containers (default 1,000; BERTH_SOAK_RUNS to change) run to the
 * end and removed through the API, 4 at a time, while a fuzzer throws random create bodies
 * at the same daemon. Prints berthd's RSS and open file descriptors as it goes and at the
 * end, against the start (after a warm-up): flat means no leak. Also counts the fuzzer's
 * answers: any 500 is a defect.
 */
export async function benchSoak(work: string): Promise<void> {
  const runs = Number(process.env.BERTH_SOAK_RUNS ?? 1000);
  const d = await BenchDaemon.start(work);
  try {
    console.log(`\n# soak: ${runs} runs of busybox true, with the create fuzzer alongside`);
    for (let i = 0; i < 20; i++) await runOnce(d.socket); // warm-up: caches, first-use opens
    const start = sample(d.pid);
    const rows: string[] = [`  ${'runs'.padStart(6)} ${'RSS MB'.padStart(8)} ${'fds'.padStart(5)}`, `  ${'0'.padStart(6)} ${start.rss.toFixed(1).padStart(8)} ${String(start.fds).padStart(5)}`];
    let started = 0;
    let finished = 0;
    let stop = false;
    const answers = new Map<number, number>();
    const fuzzer = (async () => {
      while (!stop) {
        const r = await call(d.socket, 'POST', '/containers/create', randomBody()).catch(() => ({ status: -1, json: {} as Record<string, unknown> }));
        answers.set(r.status, (answers.get(r.status) ?? 0) + 1);
        if (r.status === 201) await call(d.socket, 'DELETE', `/containers/${r.json.Id}?force=1`).catch(() => undefined);
      }
    })();
    const worker = async (): Promise<void> => {
      while (started < runs) {
        started++;
        await runOnce(d.socket);
        finished++;
        if (finished % Math.max(1, Math.floor(runs / 10)) === 0) {
          const s = sample(d.pid);
          rows.push(`  ${String(finished).padStart(6)} ${s.rss.toFixed(1).padStart(8)} ${String(s.fds).padStart(5)}`);
        }
      }
    };
    const t0 = Date.now();
    await Promise.all([worker(), worker(), worker(), worker()]);
    stop = true;
    await fuzzer;
    const end = sample(d.pid);
    console.log(rows.join('\n'));
    console.log(`  ${runs} runs in ${((Date.now() - t0) / 1000).toFixed(1)} s; fuzzer answers: ${[...answers].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(', ')}`);
    console.log(`  RSS ${start.rss.toFixed(1)} → ${end.rss.toFixed(1)} MB (ratio ${(end.rss / start.rss).toFixed(2)}x), fds ${start.fds} → ${end.fds}`);
    console.log(`  target: flat RSS and fds (no growth with the number of runs), no 500 from the fuzzer`);
  } finally {
    await d.stop();
  }
}

function sample(pid: number): { rss: number; fds: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  return { rss: kb / 1024, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
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

function call(socket: string, method: string, p: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = http.request({ socketPath: socket, method, path: `/v1.41${p}`, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: Record<string, unknown> = {};
        try {
          json = text ? JSON.parse(text) : {};
        } catch {
          json = { raw: text };
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}
