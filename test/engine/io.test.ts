import test from 'ava';
import { PassThrough } from 'node:stream';
import { collectOutput, engineEnv } from './env';
import { eventually } from '../helpers/eventually';

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d));
  return { stream, text: () => text };
}

test('exec ls / returns its output and exit code; exec in a stopped container is a CONFLICT', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] });
  const ls = await env.engine.execCreate(id, { Cmd: ['ls', '/'], AttachStdout: true, AttachStderr: true });
  const out = sink();
  const err = sink();
  t.is(await env.engine.execStart(ls.Id, { stdout: out.stream, stderr: err.stream }), 0);
  t.true(out.text().split(/\s+/).includes('bin'));
  t.true(out.text().split(/\s+/).includes('etc'));
  const five = await env.engine.execCreate(id, { Cmd: ['sh', '-c', 'echo oops >&2; exit 5'], AttachStdout: true, AttachStderr: true });
  const err5 = sink();
  t.is(await env.engine.execStart(five.Id, { stderr: err5.stream }), 5);
  t.is(err5.text(), 'oops\n');
  const info = await env.engine.execInspect(five.Id);
  t.is(info.ExitCode, 5);
  t.false(info.Running);
  t.is(info.ContainerID, id);
  await t.throwsAsync(env.engine.execStart(five.Id, {}), { code: 'CONFLICT' }, 'an exec runs once');
  await t.throwsAsync(env.engine.execInspect('nosuch'), { code: 'NOT_FOUND' });
  t.deepEqual((await env.inspect(id)).ExecIDs?.sort(), [ls.Id, five.Id].sort());
  const die = env.seen.find((e) => e.Action === 'exec_die' && e.Actor.Attributes.execID === five.Id);
  t.is(die?.Actor.Attributes.exitCode, '5');
  t.true(env.seen.some((e) => e.Action === 'exec_create: ls /'));
  const missing = await env.engine.execCreate(id, { Cmd: ['nosuchcommand'] });
  const err404 = sink();
  t.is(await env.engine.execStart(missing.Id, { stderr: err404.stream }), 127, 'a missing command is 127, as with Docker');
  t.regex(err404.text(), /nosuchcommand/);
  await env.engine.kill(id);
  await t.throwsAsync(env.engine.execCreate(id, { Cmd: ['ls'] }), { code: 'CONFLICT' });
});

test('exec with stdin: what the client sends reaches the process', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] });
  const { Id } = await env.engine.execCreate(id, { Cmd: ['cat'], AttachStdin: true, AttachStdout: true });
  const input = new PassThrough();
  const out = sink();
  const done = env.engine.execStart(Id, { stdin: input, stdout: out.stream });
  input.end('piped\n');
  t.is(await done, 0);
  t.is(out.text(), 'piped\n');
});

test('top lists the process', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sleep', '1000'] });
  const r = await env.engine.top(id);
  t.deepEqual(r.Titles, ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
  t.is(r.Processes.length, 1);
  t.is(r.Processes[0][1], String((await env.inspect(id)).State.Pid));
  t.is(r.Processes[0][7], 'sleep 1000');
  const custom = await env.engine.top(id, '-o pid,comm');
  t.deepEqual(custom.Titles, ['PID', 'COMMAND']);
  t.deepEqual(custom.Processes.map((p) => p[1]), ['sleep']);
  await env.engine.kill(id);
  await t.throwsAsync(env.engine.top(id), { code: 'CONFLICT' });
});

test('logs follow ends when the container exits; tail and streams', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'echo a; echo e >&2; sleep 0.5; echo b'] });
  const out = await collectOutput(env.engine.logs(id, { follow: true, stdout: true, stderr: true })); // a follow that does not end hangs: ava's timeout
  t.is(out.stdout, 'a\nb\n');
  t.is(out.stderr, 'e\n');
  t.is((await collectOutput(env.engine.logs(id, { stdout: true, tail: 1 }))).stdout, 'b\n');
  t.is((await collectOutput(env.engine.logs(id, { stderr: true }))).stdout, '');
  // follow on a stopped container returns what is there, at once
  t.is((await collectOutput(env.engine.logs(id, { follow: true, stdout: true }))).stdout, 'a\nb\n');
});

test('attach with stdin pipes input to cat (OpenStdin, StdinOnce), then start, like docker run -i', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['cat'], OpenStdin: true, StdinOnce: true, AttachStdin: true });
  const input = new PassThrough();
  const output = collectOutput(await env.engine.attach(Id, { stdin: input, stdout: true, stderr: true, stream: true }));
  const waited = env.engine.wait(Id, 'next-exit');
  await env.engine.start(Id);
  input.write('hello\n');
  await eventually(async () => (await collectOutput(env.engine.logs(Id, { stdout: true }))).stdout === 'hello\n', { message: 'cat to echo the first line' });
  input.end('world\n');
  t.is((await waited).StatusCode, 0);
  t.is((await output).stdout, 'hello\nworld\n');
  t.true(env.seen.some((e) => e.id === Id && e.Action === 'attach'));
});

test('OpenStdin without an attached client: stdin stays open, the process keeps running', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['cat'], OpenStdin: true });
  const logged = async () => (await collectOutput(env.engine.logs(id, { stdout: true }))).stdout;
  // A later attach feeds it: stdin was open all the while no client was attached (cat
  // would have read EOF and exited).
  const input = new PassThrough();
  const output = collectOutput(await env.engine.attach(id, { stdin: input, stdout: true, stream: true }));
  input.end('late\n');
  await eventually(async () => (await logged()) === 'late\n', { message: 'cat to echo what the first client sent' });
  // Without StdinOnce, the end of that client keeps stdin open: a second client still reaches cat.
  const again = new PassThrough();
  const second = collectOutput(await env.engine.attach(id, { stdin: again, stdout: true, stream: true }));
  again.end('again\n');
  await eventually(async () => (await logged()) === 'late\nagain\n', { message: 'cat to echo what the second client sent' });
  t.is((await env.inspect(id)).State.Status, 'running');
  await env.engine.stop(id, { timeout: 1 });
  t.is((await output).stdout, 'late\nagain\n');
  t.is((await second).stdout, 'again\n');
});

test('attach without logs shows only new output; with logs the history too', async (t) => {
  const env = await engineEnv(t);
  // The signal, not an exec, says "go": an exec that made /go could still be running when the
  // container ended, and the kernel SIGKILLs what is left in the namespace when its init goes.
  const id = await env.run({ Cmd: ['sh', '-c', 'trap "echo new; exit 0" USR1; echo old; while :; do sleep 0.05; done'] });
  await eventually(async () => (await collectOutput(env.engine.logs(id, { stdout: true }))).stdout === 'old\n', { message: 'the first line in the log' });
  const live = collectOutput(await env.engine.attach(id, { stdout: true, stream: true }));
  const all = collectOutput(await env.engine.attach(id, { stdout: true, stream: true, logs: true }));
  await env.engine.kill(id, 'USR1');
  t.is((await live).stdout, 'new\n');
  t.is((await all).stdout, 'old\nnew\n');
});
