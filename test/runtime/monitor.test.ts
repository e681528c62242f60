import test from 'ava';
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { monitorArgs, monitorPath } from '../../src/runtime/monitor';
import { OciRuntime } from '../../src/runtime/runtime';
import { buildSpec } from '../../src/runtime/spec';
import { ensureMonitor, sandbox } from './fixture';

function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]. */
function procStat(pid: number): string[] {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

test('log lines are escaped as Docker does, long lines split at 16 KiB on a character boundary', async (t) => {
  const sb = await sandbox(t);
  const data = Buffer.concat([
    Buffer.from('a\u0001"\\<>&'),
    Buffer.from([0xff]), // invalid UTF-8
    Buffer.from('\u2028é\n'),
    Buffer.from(`${'x'.repeat(40000)}\n`),
    Buffer.from(`${'y'.repeat(16383)}é\n`), // é straddles the 16 KiB cut
    Buffer.from('tail without newline'),
  ]);
  fs.writeFileSync(path.join(sb.rootfs, 'data.bin'), data);
  const c = await sb.run(['cat', '/data.bin']);
  t.is((await sb.exit(c)).exitCode, 0);
  const raw = fs.readFileSync(c.io.log, 'utf8');
  t.true(raw.startsWith('{"log":"a\\u0001\\"\\\\\\u003c\\u003e\\u0026\\ufffd\\u2028é\\n","stream":"stdout","time":"'));
  const logs = (await sb.logEntries(c.io.log)).map((e) => e.log);
  t.deepEqual(logs, [
    'a\u0001"\\<>&\ufffd\u2028é\n',
    'x'.repeat(16384),
    'x'.repeat(16384),
    `${'x'.repeat(40000 - 2 * 16384)}\n`,
    'y'.repeat(16383),
    'é\n',
    'tail without newline',
  ]);
});

test('the log rotates at max size and keeps max-files files', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); done'], {}, { logMaxSize: 300, logMaxFiles: 3 });
  t.is((await sb.exit(c)).exitCode, 0);
  const files = fs.readdirSync(path.dirname(c.io.log)).filter((f) => f.startsWith('container.log')).sort();
  t.deepEqual(files, ['container.log', 'container.log.1', 'container.log.2']);
  for (const f of files) t.true(fs.statSync(path.join(path.dirname(c.io.log), f)).size < 300 + 100);
  const lines: string[] = [];
  for (const f of [`${c.io.log}.2`, `${c.io.log}.1`, c.io.log]) lines.push(...(await sb.logEntries(f)).map((e) => e.log.trim()));
  const first = Number(lines[0].slice(4));
  t.true(first > 0, 'older lines were rotated away');
  t.deepEqual(lines, Array.from({ length: 40 - first }, (_, i) => `line${first + i}`), 'what is kept is contiguous and ends with the last line');
});

test('with max-files 1 the log is truncated instead of rotated', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); done'], {}, { logMaxSize: 300, logMaxFiles: 1 });
  t.is((await sb.exit(c)).exitCode, 0);
  t.deepEqual(fs.readdirSync(path.dirname(c.io.log)).filter((f) => f.startsWith('container.log')), ['container.log']);
  const lines = (await sb.logEntries(c.io.log)).map((e) => e.log);
  t.is(lines[lines.length - 1], 'line39\n');
  t.true(lines.length < 40);
});

test('the monitor outlives the process that started it and still records the exit', async (t) => {
  const sb = await sandbox(t);
  const id = 't-orphaned';
  const { bundle, io } = sb.paths(id);
  await sb.rt.writeBundle(bundle, buildSpec(sb.input(id, ['sleep', '1000'])));
  // A separate node process creates the container and exits, as a crashing berthd would.
  const script = `
    const { OciRuntime } = require(${JSON.stringify(path.resolve(__dirname, '../../src/runtime/runtime.js'))});
    const rt = new OciRuntime(${JSON.stringify({ path: sb.rt.path, root: sb.rt.root })});
    rt.create(${JSON.stringify(id)}, ${JSON.stringify(bundle)}, ${JSON.stringify(io)})
      .then((r) => { process.stdout.write(JSON.stringify(r)); process.exit(0); },
            (e) => { console.error(e); process.exit(1); });`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['-e', script], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
  );
  const { pid, monitorPid } = JSON.parse(out) as { pid: number; monitorPid: number };
  sb.track(monitorPid);
  const [, ppid, , session] = procStat(monitorPid);
  t.not(Number(ppid), process.pid);
  t.is(Number(session), monitorPid, 'the monitor leads its own session');

  await sb.rt.start(id);
  t.is((await sb.rt.state(id)).status, 'running');
  t.is(Number(procStat(pid)[1]), monitorPid, "the container's init is the monitor's child");
  // VmRSS counts every libc page the monitor has mapped, though those are shared with
  // every other process; Pss (shared pages divided among their users) is what one more
  // monitor costs the host.
  const status = procStatus(monitorPid);
  const pssKb = Number(/^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${monitorPid}/smaps_rollup`, 'utf8'))?.[1]);
  t.log(`berth-monitor VmRSS ${status.VmRSS} (RssAnon ${status.RssAnon}, RssFile ${status.RssFile}), Pss ${pssKb} kB`);
  t.true(pssKb < 512, `monitor Pss ${pssKb} kB should stay well under 1 MB`);
  t.true(Number(status.RssAnon.split(/\s+/)[0]) < 512, 'its private memory is small');

  await sb.rt.kill(id, 'KILL');
  const exit = await sb.exit({ id, bundle, io, pid, monitorPid });
  t.is(exit.exitCode, 137);
  t.is(exit.signal, 9);
});

test('with start, create runs the process too (runc run --detach): no start call, the same child, exit and log', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.create(['sh', '-c', 'echo hi; exec sleep 1000'], {}, { start: true });
  t.is((await sb.rt.state(c.id)).status, 'running', 'running without a start call');
  t.is(Number(procStat(c.pid)[1]), c.monitorPid, "the container's init is the monitor's child");
  await t.throwsAsync(sb.rt.start(c.id), { code: 'CONFLICT' }, 'a start after it is a conflict');
  await sb.rt.kill(c.id, 'KILL');
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 137);
  t.deepEqual((await sb.logEntries(c.io.log)).map((e) => e.log), ['hi\n']);
});

test('with start, a process that exits at once is still reported and recorded', async (t) => {
  const sb = await sandbox(t);
  // It may be gone before the monitor reads the pid file: it stays the monitor's
  // unreaped child until then, so create still answers with its pid.
  const c = await sb.create(['sh', '-c', 'exit 7'], {}, { start: true });
  t.true(c.pid > 0);
  t.is((await sb.exit(c)).exitCode, 7);
});

test('with start, a command that does not exist fails create with exit code 127 and leaves nothing', async (t) => {
  const sb = await sandbox(t);
  const err = await t.throwsAsync(sb.create(['/no/such/command'], {}, { start: true }), { code: 'FAILED_PRECONDITION' });
  t.is((err as unknown as { exitCode: number }).exitCode, 127);
  t.deepEqual(await sb.rt.list(), []);
});

test('the monitor refuses bad usage: exit 2 without fd 3, an error line on fd 3 for bad arguments', (t) => {
  ensureMonitor();
  t.is(spawnSync(monitorPath(), ['--id', 'x'], { stdio: 'ignore' }).status, 2);
  const r = spawnSync(monitorPath(), ['--id', 'x', '--log', 'relative.log'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  t.is(r.status, 1);
  t.truthy((JSON.parse(String(r.output[3])) as { error: string }).error);
});

test('a runtime that cannot be run fails create with FAILED_PRECONDITION', async (t) => {
  const sb = await sandbox(t);
  const rt = new OciRuntime({ path: path.join(sb.dir, 'no-such-runc'), root: path.join(sb.dir, 'other-root') });
  const { bundle, io } = sb.paths('t-noruntime');
  await rt.writeBundle(bundle, buildSpec(sb.input('t-noruntime', ['true'])));
  await t.throwsAsync(rt.create('t-noruntime', bundle, io), { code: 'FAILED_PRECONDITION' });
  await t.throwsAsync(rt.list(), { code: 'FAILED_PRECONDITION' });
});

test("a log path whose directory is missing fails create as the monitor's problem (INTERNAL), not the command's", async (t) => {
  const sb = await sandbox(t);
  const { bundle, io } = sb.paths('t-nolog');
  await sb.rt.writeBundle(bundle, buildSpec(sb.input('t-nolog', ['true'])));
  const err = await t.throwsAsync(sb.rt.create('t-nolog', bundle, { ...io, log: path.join(sb.dir, 'missing', 'c.log') }), { code: 'INTERNAL' });
  t.truthy((err as { hint?: string }).hint);
  t.deepEqual(await sb.rt.list(), []);
});

test("a runtime's long error message reaches create intact and as valid JSON", async (t) => {
  const sb = await sandbox(t);
  // A stand-in runtime that logs one long error, with escapes, the way runc does, and fails.
  const fake = path.join(sb.dir, 'fake-runtime');
  const msg = `${'\\"quoted\\" \\u00e9 '.repeat(400)}end`;
  fs.writeFileSync(fake, `#!/bin/sh\nwhile [ "$1" != --log ]; do shift; done\nprintf '%s\\n' '{"level":"error","msg":"${msg}","time":"x"}' >> "$2"\nexit 1\n`, { mode: 0o755 });
  const rt = new OciRuntime({ path: fake, root: path.join(sb.dir, 'fake-root') });
  const { bundle, io } = sb.paths('t-fake');
  const err = await t.throwsAsync(rt.create('t-fake', bundle, io), { code: 'FAILED_PRECONDITION' });
  t.regex(err.message, /"quoted" é "quoted"/);
  t.true(err.message.length > 2000 && err.message.length < 4200, `cut near 4 KiB of JSON, at an escape boundary (${err.message.length})`);
  t.false(err.message.includes('end'), 'the tail was cut');
});

/** Every process but this one holding `file` open, as "PID: command line". */
function holders(file: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone meanwhile
    }
    const holds = fds.some((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
      } catch {
        return false;
      }
    });
    if (holds) found.push(`${pid}: ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')}`);
  }
  return found;
}

test('the monitor passes no descriptor its caller left open to the container, and its watch connections end when it is killed', async (t) => {
  const sb = await sandbox(t);
  const id = `t-${Date.now().toString(36)}`;
  const { bundle, io } = sb.paths(id);
  await sb.rt.writeBundle(bundle, buildSpec(sb.input(id, ['sleep', '1000'])));
  const marker = path.join(sb.dir, 'inherited');
  const markerFd = fs.openSync(marker, 'w');
  t.teardown(() => fs.closeSync(markerFd));
  const watchSocket = path.join(bundle, 'monitor.sock');
  const args = monitorArgs({ id, bundle, runtime: sb.rt.path, runtimeRoot: sb.rt.root, logMaxSize: -1, logMaxFiles: 1, ...io, start: true, watchSocket });
  // fd 3 the start pipe; the marker at fd 9, not close-on-exec, as a careless caller leaves one.
  const child = spawn(monitorPath(), args, { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', markerFd] });
  sb.track(child.pid!);
  child.unref();
  let line = '';
  for await (const chunk of child.stdio[3] as NodeJS.ReadableStream) {
    line += chunk.toString();
    if (line.includes('\n')) break;
  }
  const { pid } = JSON.parse(line) as { pid: number };
  t.true(pid > 0, line);
  t.deepEqual(holders(marker), [], 'neither the monitor nor the container holds it');

  // The watch socket's directory is the monitor's working directory (long paths go through it).
  const conn = net.connect(`/proc/${child.pid}/cwd/monitor.sock`);
  await new Promise<void>((resolve, reject) => conn.once('connect', resolve).once('error', reject));
  const ended = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  conn.on('error', () => undefined);
  process.kill(child.pid!, 'SIGKILL');
  await ended; // the test's own timeout is the hang guard
  t.false(fs.existsSync(io.exitFile), 'a killed monitor records no exit');
  await sb.rt.delete(id, true);
});
