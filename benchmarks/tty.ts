import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import * as pty from 'node-pty';
import { Transport, readAll } from '../src/client/transport';
import { BenchDaemon } from './daemon';
import { median, sh } from './lib';

/**
 * Interactive mode: (1) throughput of 100 MB through a tty container's pty with no client,
 * one and three attached clients (each reading everything through the API's attach hijack),
 * against a bare `runc run` with a terminal read by one reader (node-pty); (2) keystroke
 * round trip (one byte typed, its echo back) through `berth`'s attach against the same
 * through a bare `runc run` under node-pty. Target: berth keeps the container's speed.
 */
const BYTES = 100_000_000;
const SCRIPT = `head -c ${BYTES} /dev/zero | tr '\\0' x`;
const KEYS = 200;

export async function benchTty(work: string, rounds = 3): Promise<void> {
  const d = await BenchDaemon.start(work);
  const t = new Transport(d.socket);
  const runcRoot = path.join(work, 'runc-root');
  const bundle = prepareBundle(work);
  try {
    d.berth(['run', '--rm', 'busybox', 'true']); // makes busybox, warms caches

    // (1) throughput.
    const rows: Array<{ what: string; mbs: number[]; note: string[] }> = [
      { what: 'runc run -t under node-pty (1 reader)', mbs: [], note: [] },
      { what: 'berth tty, no client attached', mbs: [], note: [] },
      { what: 'berth tty, 1 attached client', mbs: [], note: [] },
      { what: 'berth tty, 3 attached clients', mbs: [], note: [] },
    ];
    for (let r = 0; r < rounds; r++) {
      const ref = await runcThroughput(runcRoot, bundle, `tput-${process.pid}-${r}`);
      rows[0].mbs.push(BYTES / 1e6 / (ref.ms / 1000));
      rows[0].note.push(`${(ref.bytes / 1e6).toFixed(1)} MB read`);
      for (const [i, clients] of [[1, 0], [2, 1], [3, 3]] as const) {
        const res = await berthThroughput(t, clients);
        rows[i].mbs.push(BYTES / 1e6 / (res.ms / 1000));
        rows[i].note.push(res.note);
      }
    }
    const ref = median(rows[1].mbs);
    const rref = median(rows[0].mbs);
    console.log(`\n## tty output throughput: ${BYTES / 1e6} MB through the pty (\`${SCRIPT}\`), start to exit, ${rounds} rounds`);
    for (const r of rows) {
      const m = median(r.mbs);
      console.log(
        `  ${r.what.padEnd(40)} median ${m.toFixed(1).padStart(7)} MB/s  (runs ${r.mbs.map((x) => x.toFixed(0)).join(', ')})  vs no client ${(m / ref).toFixed(2)}x  vs runc ${(m / rref).toFixed(2)}x`,
      );
      console.log(`    ${r.note.join(' | ')}`);
    }
    console.log('  target: attached clients keep the container at the no-client speed (ratio ~1.0x)');

    // (2) keystroke latency.
    const refLat = await runcLatency(runcRoot, bundle, `lat-${process.pid}`);
    const berthLat = await berthLatency(t);
    console.log(`\n## keystroke round trip: 1 byte typed, until its echo is read back (\`cat\` on a pty), ${KEYS} keys`);
    for (const [what, xs] of [['runc run -t under node-pty', refLat], ['berth attach (API hijack)', berthLat]] as const) {
      console.log(`  ${what.padEnd(40)} median ${median(xs).toFixed(3).padStart(7)} ms  p99 ${p99(xs).toFixed(3).padStart(7)} ms  ratio median ${(median(xs) / median(refLat)).toFixed(2)}x  p99 ${(p99(xs) / p99(refLat)).toFixed(2)}x`);
    }
  } finally {
    for (const id of listRunc(runcRoot)) spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id]);
    await d.stop();
  }
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)];
}

async function createTty(t: Transport, cmd: string[], openStdin = false): Promise<string> {
  const { Id } = await t.json<{ Id: string }>('POST', '/containers/create', {
    body: { Image: 'busybox', Cmd: cmd, Tty: true, OpenStdin: openStdin, AttachStdin: openStdin, AttachStdout: true, AttachStderr: true, HostConfig: { ConsoleSize: [24, 80] } },
  });
  return Id;
}

async function remove(t: Transport, id: string): Promise<void> {
  const res = await t.request('DELETE', `/containers/${id}`, { query: { force: 1 } }).catch(() => undefined);
  if (res) await readAll(res);
}

/** One attached client through the hijack: counts everything it reads until berthd ends the stream. */
function counter(sock: Socket): { bytes: () => number; done: Promise<number> } {
  let n = 0;
  const done = new Promise<number>((resolve) => {
    sock.on('data', (b: Buffer) => (n += b.length));
    sock.on('close', () => resolve(n));
    sock.on('error', () => resolve(n));
  });
  return { bytes: () => n, done };
}

async function berthThroughput(t: Transport, clients: number): Promise<{ ms: number; note: string }> {
  const id = await createTty(t, ['sh', '-c', SCRIPT]);
  try {
    const socks: Socket[] = [];
    for (let i = 0; i < clients; i++) socks.push(await t.hijack('POST', `/containers/${id}/attach`, { query: { stream: 1, stdout: 1, stderr: 1 } }));
    const counters = socks.map(counter);
    const t0 = process.hrtime.bigint();
    await readAll(await t.request('POST', `/containers/${id}/start`));
    const w = JSON.parse((await readAll(await t.request('POST', `/containers/${id}/wait`))).toString('utf8')) as { StatusCode: number };
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    // The clients' streams end once the exit is recorded; wait for them (bounded) to see what they got.
    const got = await Promise.all(counters.map((c) => Promise.race([c.done, new Promise<number>((r) => setTimeout(() => r(c.bytes()), 20_000))])));
    const allMs = Number(process.hrtime.bigint() - t0) / 1e6;
    for (const s of socks) s.destroy();
    const lost = got.some((b) => b < BYTES);
    const note = clients
      ? `${lost ? 'OUTPUT LOST: ' : ''}exit ${w.StatusCode} after ${ms.toFixed(0)} ms; clients read ${got.map((b) => (b / 1e6).toFixed(1)).join('/')} MB, last done at ${allMs.toFixed(0)} ms`
      : `exit ${w.StatusCode} after ${ms.toFixed(0)} ms`;
    return { ms, note };
  } finally {
    await remove(t, id);
  }
}

/** A bundle with busybox's sh, head, tr and cat; a terminal; args set per run. */
function prepareBundle(work: string): string {
  const bundle = path.join(work, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  for (const b of ['sh', 'head', 'tr', 'cat']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', b));
  for (const dir of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
  sh('runc', ['spec', '--bundle', bundle]);
  return bundle;
}

function writeSpec(bundle: string, args: string[]): void {
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = true;
  spec.process.args = args;
  spec.process.env = ['PATH=/bin', 'TERM=xterm'];
  spec.root.readonly = false;
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
}

function listRunc(root: string): string[] {
  const r = spawnSync('runc', ['--root', root, 'list', '-q'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}

function spawnRunc(root: string, bundle: string, id: string): pty.IPty {
  return pty.spawn('runc', ['--root', root, 'run', '--bundle', bundle, id], { cols: 80, rows: 24, env: process.env as { [k: string]: string } });
}

async function runcThroughput(root: string, bundle: string, id: string): Promise<{ ms: number; bytes: number }> {
  writeSpec(bundle, ['sh', '-c', SCRIPT]);
  const t0 = process.hrtime.bigint();
  const p = spawnRunc(root, bundle, id);
  let bytes = 0;
  p.onData((s) => (bytes += s.length));
  await new Promise<void>((resolve) => p.onExit(() => resolve()));
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes };
}

/** Type one byte, wait until it is read back; KEYS times (after a warm-up until the first echo). */
async function roundTrips(send: (b: string) => void, onData: (f: (s: string) => void) => void): Promise<number[]> {
  let waiting: { ch: string; resolve: () => void } | undefined;
  let seen = '';
  onData((s) => {
    seen += s;
    if (waiting && seen.includes(waiting.ch)) {
      const w = waiting;
      waiting = undefined;
      w.resolve();
    }
  });
  const one = (ch: string, timeout: number) =>
    new Promise<boolean>((resolve) => {
      seen = '';
      const timer = setTimeout(() => {
        waiting = undefined;
        resolve(false);
      }, timeout);
      waiting = {
        ch,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      send(ch);
    });
  // Warm-up: the process is up and echoing.
  let up = false;
  for (let i = 0; i < 100 && !up; i++) up = await one('w', 200);
  if (!up) throw new Error('no echo from the tty');
  await one('\r', 2000);
  const ms: number[] = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < KEYS; i++) {
    const ch = letters[i % letters.length];
    const t0 = process.hrtime.bigint();
    if (!(await one(ch, 5000))) throw new Error(`no echo for key ${i}`);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (i % 50 === 49) await one('\r', 2000); // keep the line short (cat prints it back)
  }
  return ms;
}

async function runcLatency(root: string, bundle: string, id: string): Promise<number[]> {
  writeSpec(bundle, ['cat']);
  const p = spawnRunc(root, bundle, id);
  const exited = new Promise<void>((resolve) => p.onExit(() => resolve()));
  try {
    return await roundTrips((b) => p.write(b), (f) => p.onData(f));
  } finally {
    p.write('\r\x04');
    const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
    if (!ok) {
      spawnSync('runc', ['--root', root, 'delete', '-f', id]);
      p.kill('SIGKILL');
    }
  }
}

async function berthLatency(t: Transport): Promise<number[]> {
  const id = await createTty(t, ['cat'], true);
  try {
    await readAll(await t.request('POST', `/containers/${id}/start`));
    const sock = await t.hijack('POST', `/containers/${id}/attach`, { query: { stream: 1, stdin: 1, stdout: 1, stderr: 1 } });
    sock.setNoDelay(true);
    try {
      return await roundTrips((b) => sock.write(b), (f) => sock.on('data', (d: Buffer) => f(d.toString('latin1'))));
    } finally {
      sock.destroy();
    }
  } finally {
    await remove(t, id);
  }
}
