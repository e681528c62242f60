import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exitCodeOf } from '../../src/runtime/runtime';
import { sandbox } from './fixture';
import { stdoutOf } from '../helpers/proc';

/** Collect a child's stdout and exit code. */
function collect(child: import('node:child_process').ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('echo hi: the log has a json-file line and the exit record says 0', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['echo', 'hi']);
  t.true(c.pid > 0);
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 0);
  t.is(exit.signal, null);
  t.false(exit.oomKilled);
  t.regex(exit.finishedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  const entries = await sb.logEntries(c.io.log);
  t.is(entries.length, 1);
  t.is(entries[0].log, 'hi\n');
  t.is(entries[0].stream, 'stdout');
  t.regex(entries[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  t.deepEqual(await sb.rt.readExit(c.io.exitFile), exit);
});

test("sh -c 'exit 3' records exit code 3, stderr in the log as stream stderr", async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sh', '-c', 'echo oops >&2; exit 3']);
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 3);
  t.is(exit.signal, null);
  t.deepEqual((await sb.logEntries(c.io.log)).map((e) => [e.stream, e.log]), [['stderr', 'oops\n']]);
});

test('a container killed with SIGKILL records 137 and signal 9', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sleep', '1000']);
  t.is((await sb.rt.state(c.id)).status, 'running');
  await sb.rt.kill(c.id, 'SIGKILL');
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 137);
  t.is(exit.signal, 9);
  t.false(exit.oomKilled);
  t.is((await sb.rt.state(c.id)).status, 'stopped');
});

test('a missing executable fails create with FAILED_PRECONDITION and exit code 127, leaving nothing', async (t) => {
  const sb = await sandbox(t);
  const err = await t.throwsAsync(sb.create(['/no/such/binary']));
  t.is((err as { code?: string }).code, 'FAILED_PRECONDITION');
  t.is(exitCodeOf(err), 127);
  t.truthy((err as { hint?: string }).hint);
  const err2 = await t.throwsAsync(sb.create(['nosuchcommand']));
  t.is(exitCodeOf(err2), 127);
  t.deepEqual(await sb.rt.list(), []);
});

test('a file that is not executable fails create with exit code 126', async (t) => {
  const sb = await sandbox(t);
  fs.writeFileSync(path.join(sb.rootfs, 'notexec'), '#!/bin/sh\n', { mode: 0o644 });
  const err = await t.throwsAsync(sb.create(['/notexec']));
  t.is((err as { code?: string }).code, 'FAILED_PRECONDITION');
  t.is(exitCodeOf(err), 126);
});

test('state, list, pause, resume and delete follow the container through its life', async (t) => {
  const sb = await sandbox(t);
  // pid 1 ignores signals it has no handler for: trap TERM so `kill TERM` ends it.
  const c = await sb.create(['sh', '-c', 'trap "exit 7" TERM; while true; do sleep 0.05; done'], { labels: { 'com.example.k': 'v' } });
  let st = await sb.rt.state(c.id);
  t.is(st.status, 'created');
  t.is(st.pid, c.pid);
  t.is(st.annotations?.['com.example.k'], 'v');
  t.deepEqual((await sb.rt.list()).map((s) => s.id), [c.id]);

  await sb.rt.start(c.id);
  t.is((await sb.rt.state(c.id)).status, 'running');
  await t.throwsAsync(sb.rt.start(c.id), { code: 'CONFLICT' }, 'starting twice is a conflict');
  await sb.rt.pause(c.id);
  t.is((await sb.rt.state(c.id)).status, 'paused');
  await sb.rt.resume(c.id);
  st = await sb.rt.state(c.id);
  t.is(st.status, 'running');
  await t.throwsAsync(sb.rt.delete(c.id), { code: 'CONFLICT' }, 'a running container is not deleted without force');

  await sb.rt.kill(c.id, 'TERM');
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 7);
  t.is(exit.signal, null);
  await sb.rt.delete(c.id);
  await t.throwsAsync(sb.rt.state(c.id), { code: 'NOT_FOUND' });
  await t.throwsAsync(sb.rt.kill(c.id, 'KILL'), { code: 'NOT_FOUND' });
  await t.throwsAsync(sb.rt.delete(c.id), { code: 'NOT_FOUND' });
  t.deepEqual(await sb.rt.list(), []);
});

test('creating an id that exists fails with ALREADY_EXISTS and leaves the first container alone', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.create(['sleep', '1000']);
  const other = path.join(sb.dir, 'other');
  fs.mkdirSync(other);
  const io = { log: path.join(other, 'log'), exitFile: path.join(other, 'exit'), pidFile: path.join(other, 'pid'), runtimeLog: path.join(other, 'runtime.log') };
  await t.throwsAsync(sb.rt.create(c.id, c.bundle, io), { code: 'ALREADY_EXISTS' });
  t.is((await sb.rt.state(c.id)).status, 'created');
  await sb.rt.start(c.id);
  t.is((await sb.rt.state(c.id)).status, 'running');
});

test('delete --force of a created, never started container records its death', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.create(['sleep', '1000']);
  await sb.rt.delete(c.id, true);
  const exit = await sb.exit(c);
  t.is(exit.exitCode, 137);
  await t.throwsAsync(sb.rt.state(c.id), { code: 'NOT_FOUND' });
});

test('exec runs ls / in a running container and returns its output and exit code', async (t) => {
  const sb = await sandbox(t);
  const c = await sb.run(['sleep', '1000']);
  const user = { uid: 0, gid: 0 };
  const env = ['PATH=/bin'];
  const ls = await collect(sb.rt.exec(c.id, { args: ['ls', '/'], env, cwd: '/', user }));
  t.is(ls.code, 0);
  t.true(ls.stdout.split(/\s+/).includes('bin'));
  t.true(ls.stdout.split(/\s+/).includes('etc'));
  const five = await collect(sb.rt.exec(c.id, { args: ['sh', '-c', 'id -u; exit 5'], env, cwd: '/tmp', user: { uid: 65534, gid: 65534 } }));
  t.is(five.code, 5);
  t.is(five.stdout.trim(), '65534');
  const missing = await collect(sb.rt.exec(c.id, { args: ['nosuch'], env, cwd: '/', user }));
  t.not(missing.code, 0);
  t.throws(() => sb.rt.exec(c.id, { args: ['ls'], env, cwd: '/proc/self/fd/3', user }), { code: 'INVALID_ARGUMENT' });
  t.deepEqual(fs.readdirSync(sb.runtimeRoot).filter((f) => f.startsWith('exec-')), [], 'process files are removed');
});

test('stdin comes from the fifo: what berthd writes, the container reads, then EOF', async (t) => {
  const sb = await sandbox(t);
  const fifo = path.join(sb.dir, 'stdin.fifo');
  stdoutOf('mkfifo', [fifo]);
  const c = await sb.create(['sh', '-c', 'read a; echo "got $a"; cat >/dev/null; echo eof'], {}, { stdinFifo: fifo });
  const w = await fs.promises.open(fifo, 'w'); // the monitor holds the read end: no block
  await sb.rt.start(c.id);
  await w.write('hello\n');
  await w.close();
  t.is((await sb.exit(c)).exitCode, 0);
  t.deepEqual((await sb.logEntries(c.io.log)).map((e) => e.log), ['got hello\n', 'eof\n']);
});
