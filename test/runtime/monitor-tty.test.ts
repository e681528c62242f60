import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { waitExit } from '../../src/runtime/monitor';
import type { TtyIO } from '../../src/runtime/runtime';
import { buildSpec, type ContainerSpecInput } from '../../src/runtime/spec';
import { sandbox, type Sandbox, type Started } from './fixture';
import { sleep } from '../helpers/eventually';

/** berth-monitor's tty mode (the top comment of monitor.c): pty, log, attach socket. */

/** An input frame: 0x00 LEN_HI LEN_LO DATA. */
function inputFrame(text: string): Buffer {
  const data = Buffer.from(text);
  return Buffer.concat([Buffer.from([0, data.length >> 8, data.length & 255]), data]);
}

/** A resize frame: 0x01 R_HI R_LO C_HI C_LO. */
function resizeFrame(rows: number, cols: number): Buffer {
  return Buffer.from([1, rows >> 8, rows & 255, cols >> 8, cols & 255]);
}

interface Client {
  sock: net.Socket;
  /** Everything received so far. */
  text(): string;
  bytes(): number;
  /** Resolves once the output contains `s`. */
  waitFor(s: string, ms?: number): Promise<void>;
  /** Resolves when the monitor closed the connection. */
  closed: Promise<void>;
  /** Start reading (a client made with read = false). */
  resume(): void;
}

async function attach(socketPath: string, read = true): Promise<Client> {
  const sock = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.on('error', () => undefined);
  const chunks: Buffer[] = [];
  let n = 0;
  let wake = (): void => undefined;
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    sock.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  const onData = (d: Buffer): void => {
    chunks.push(d);
    n += d.length;
    wake();
  };
  if (read) sock.on('data', onData);
  else sock.pause();
  const text = (): string => Buffer.concat(chunks).toString('latin1');
  return {
    sock,
    text,
    bytes: () => n,
    closed,
    resume() {
      sock.on('data', onData);
      sock.resume();
    },
    async waitFor(s, ms = 10_000) {
      const end = Date.now() + ms;
      while (!text().includes(s)) {
        if (Date.now() > end || isClosed) throw new Error(`no ${JSON.stringify(s)} within ${ms} ms (closed: ${isClosed}); got ${JSON.stringify(text().slice(-2000))}`);
        await Promise.race([new Promise<void>((r) => (wake = r)), sleep(100), closed]); // woken by data; the sleep only paces the deadline check
      }
    },
  };
}

/** Create (not start) a tty container; the sockets go in `sockDir` (default: the bundle). */
async function createTty(sb: Sandbox, id: string, args: string[], extra: Partial<ContainerSpecInput> = {}, sockDir?: string, size?: { rows: number; cols: number }): Promise<Started & { tty: TtyIO }> {
  const { bundle, io } = sb.paths(id);
  const dir = sockDir ?? bundle;
  fs.mkdirSync(dir, { recursive: true });
  const tty: TtyIO = { consoleSocket: path.join(dir, 'console.sock'), attachSocket: path.join(dir, 'attach.sock'), ...size };
  await sb.rt.writeBundle(bundle, buildSpec(sb.input(id, args, { terminal: true, ...extra })));
  const allIo = { ...io, tty };
  const { pid, monitorPid } = await sb.rt.create(id, bundle, allIo);
  sb.track(monitorPid);
  return { id, bundle, io: allIo, pid, monitorPid, tty };
}

test('an interactive sh on a pty: input, resize, output to the client and the log, exit status', async (t) => {
  const sb = await sandbox(t);
  const c = await createTty(sb, 't-tty-sh', ['sh'], {}, undefined, { rows: 20, cols: 70 });
  t.false(fs.existsSync(c.tty.consoleSocket), 'the console socket is gone once the master arrived');
  t.true(fs.statSync(c.tty.attachSocket).isSocket());
  const cl = await attach(c.tty.attachSocket);
  await sb.rt.start(c.id);
  cl.sock.write(inputFrame('stty size\n'));
  await cl.waitFor('20 70', 10_000); // --tty-size applied before create resolved
  cl.sock.write(resizeFrame(33, 101));
  // one input split over two writes, and a frame header split too
  const frame = inputFrame('tty; stty size; echo marker-$((6*7))\n');
  cl.sock.write(frame.subarray(0, 2));
  await sleep(50); // only so the halves travel apart; the result does not hang on it (together they pass too)
  cl.sock.write(frame.subarray(2));
  await cl.waitFor('marker-42');
  t.true(cl.text().includes('/dev/pts/'), cl.text());
  t.true(cl.text().includes('33 101'), cl.text());
  cl.sock.write(inputFrame('exit 7\n'));
  await cl.closed; // the monitor closes the client when the container is gone
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 7);
  t.is(exit.signal, null);
  const entries = await sb.logEntries(c.io.log);
  t.true(entries.some((e) => e.log.includes('marker-42')), 'the output is in the json log');
  t.true(entries.every((e) => e.stream === 'stdout'));
  t.false(fs.existsSync(c.tty.attachSocket), 'the attach socket is removed at exit');
});

test('a client that never reads is dropped; the container does not stall', async (t) => {
  const sb = await sandbox(t);
  const script = "head -c 5000000 /dev/zero | tr '\\0' y; echo; echo tail-marker";
  const c = await createTty(sb, 't-tty-slow', ['sh', '-c', script]);
  const cl = await attach(c.tty.attachSocket, false);
  await sb.rt.start(c.id);
  // A stalled container never exits: the generous limit only catches that hang.
  const exit = await waitExit(c.io.exitFile, { signal: AbortSignal.timeout(120_000), pollMs: 50 });
  t.is(exit.exitCode, 0);
  const entries = await sb.logEntries(c.io.log);
  t.is(entries[entries.length - 1].log, 'tail-marker\r\n');
  const ys = entries.reduce((n, e) => n + (e.log.match(/y/g)?.length ?? 0), 0);
  t.is(ys, 5_000_000, 'every byte is in the log');
  // What the client still gets is what the kernel had buffered before the monitor dropped it.
  cl.resume();
  await cl.closed;
  t.log(`the slow client received ${cl.bytes()} bytes of ${5_000_000}`);
  t.true(cl.bytes() < 4_000_000, 'the client was dropped, not fed everything');
  t.false(cl.text().includes('tail-marker'));
});

test('a client can leave and another attach; a new connection replaces the old one', async (t) => {
  const sb = await sandbox(t);
  const c = await createTty(sb, 't-tty-reattach', ['sh']);
  await sb.rt.start(c.id);
  const a = await attach(c.tty.attachSocket);
  a.sock.write(inputFrame('echo one-$((1+0))\n'));
  await a.waitFor('one-1');
  a.sock.end(); // EOF: the monitor closes it, the container keeps running
  await a.closed;
  // The EOF must not end the shell: two-2 below proves it reads on (the monitor handles
  // a's EOF before b's input, so an EOF passed on to the shell would end it before two-2).

  const b = await attach(c.tty.attachSocket);
  b.sock.write(inputFrame('echo two-$((1+1))\n'));
  await b.waitFor('two-2');
  t.is((await sb.rt.state(c.id)).status, 'running');
  t.false(b.text().includes('one-1'), 'no replay: only output from now on');

  const d = await attach(c.tty.attachSocket); // replaces b
  await b.closed;
  d.sock.write(inputFrame('echo three-$((1+2))\n'));
  await d.waitFor('three-3');

  d.sock.write(Buffer.from([9, 9, 9])); // malformed: the client is closed, the container lives on
  await d.closed;
  const e = await attach(c.tty.attachSocket);
  e.sock.write(inputFrame('exit 0\n'));
  await e.closed;
  t.is((await sb.exit(c)).exitCode, 0);
});

test('socket paths longer than sun_path work; a client reaches the socket through /proc/PID/cwd', async (t) => {
  const sb = await sandbox(t);
  const { bundle } = sb.paths('t-tty-long');
  const long = path.join(bundle, 'd'.repeat(120));
  const c = await createTty(sb, 't-tty-long', ['sh'], {}, long);
  t.true(c.tty.attachSocket.length > 108);
  await sb.rt.start(c.id);
  const cl = await attach(`/proc/${c.monitorPid}/cwd/attach.sock`);
  cl.sock.write(inputFrame('exit 3\n'));
  await cl.closed;
  t.is((await sb.exit(c)).exitCode, 3);
});

test('create fails cleanly when runc cannot make the pty (terminal false in the spec)', async (t) => {
  const sb = await sandbox(t);
  const { bundle, io } = sb.paths('t-tty-noterm');
  await sb.rt.writeBundle(bundle, buildSpec(sb.input('t-tty-noterm', ['sh'])));
  const tty = { consoleSocket: path.join(bundle, 'console.sock'), attachSocket: path.join(bundle, 'attach.sock') };
  const err = await t.throwsAsync(sb.rt.create('t-tty-noterm', bundle, { ...io, tty }));
  t.regex(err.message, /console/i);
  t.deepEqual(await sb.rt.list(), []);
});

test('the pty outlives the process that created the container (a berthd restart)', async (t) => {
  const sb = await sandbox(t);
  const id = 't-tty-orphan';
  const { bundle, io } = sb.paths(id);
  await sb.rt.writeBundle(bundle, buildSpec(sb.input(id, ['sh'], { terminal: true })));
  const allIo = { ...io, tty: { consoleSocket: path.join(bundle, 'console.sock'), attachSocket: path.join(bundle, 'attach.sock') } };
  // A separate node process creates and starts the container, attaches, and exits.
  const script = `
    const net = require('node:net');
    const { OciRuntime } = require(${JSON.stringify(path.resolve(__dirname, '../../src/runtime/runtime.js'))});
    const rt = new OciRuntime(${JSON.stringify({ path: sb.rt.path, root: sb.rt.root })});
    rt.create(${JSON.stringify(id)}, ${JSON.stringify(bundle)}, ${JSON.stringify(allIo)})
      .then(async (r) => {
        await rt.start(${JSON.stringify(id)});
        const s = net.connect(${JSON.stringify(allIo.tty.attachSocket)}, () => {
          const d = Buffer.from('echo be""fore\\n'); // the echo of the input is not "before"
          s.write(Buffer.concat([Buffer.from([0, 0, d.length]), d]));
          // Leave once the first session's command has run (its output came back), not after a guess.
          let got = '';
          s.on('data', (c) => {
            got += c.toString('latin1');
            if (got.includes('\\r\\nbefore\\r\\n')) { process.stdout.write(JSON.stringify(r)); process.exit(0); }
          });
        });
      }, (e) => { console.error(e); process.exit(1); });`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['-e', script], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
  );
  const { pid, monitorPid } = JSON.parse(out) as { pid: number; monitorPid: number };
  sb.track(monitorPid);
  const cl = await attach(allIo.tty.attachSocket);
  cl.sock.write(inputFrame('echo after-$((2*2))\n'));
  await cl.waitFor('after-4');
  cl.sock.write(inputFrame('exit 5\n'));
  await cl.closed;
  t.is((await sb.exit({ id, bundle, io: allIo, pid, monitorPid })).exitCode, 5);
  const log = (await sb.logEntries(io.log)).map((e) => e.log).join('');
  t.true(log.includes('\r\nbefore\r\n'), 'the first session ran');
  t.true(log.includes('after-4'), 'the second too');
});
