import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { TestDaemon, CLI, useDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

// One daemon for the tests that neither restart nor kill it; each names its containers with
// its own tag (useDaemon), so they run side by side and each is leak-checked on its own.
let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(() => d?.stop());

test('berth run exits with the container exit code and streams stdout and stderr apart', async (t) => {
  const share = useDaemon(t, d);
  const r = await d.berth(['run', '--rm', '--name', share.name('run'), 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  t.is(r.code, 3);
  t.is(r.stdout, 'out\n');
  t.is(r.stderr, 'err\n');
});

test('berth run -i pipes stdin to the container and closes it at EOF', async (t) => {
  const share = useDaemon(t, d);
  const r = await d.berth(['run', '-i', '--rm', '--name', share.name('wc'), 'busybox', 'wc', '-c'], { input: 'hello' });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), '5');
});

test('run refuses bad input with docker exit codes and hints, and leaves nothing half-made', async (t) => {
  const share = useDaemon(t, d);
  // Every case names its container with the test's tag, so "nothing left" is a filter on it.
  const named = (i: number) => ['--name', share.name(`bad${i}`)];
  const cases: Array<[string[], number, RegExp]> = [
    [['run', '--rm', ...named(0), 'busybox', 'no-such-binary'], 127, /no-such-binary/],
    [['run', '--rm', ...named(1), '-w', '/proc/self/cwd', 'busybox', 'true'], 125, /proc/],
    [['run', '--rm', ...named(2), '-m', '12x', 'busybox', 'true'], 125, /memory/],
    [['run', '--rm', ...named(3), '-m', '1m', 'busybox', 'true'], 125, /memory/i],
    [['run', '--rm', ...named(4), '--cpus', 'lots', 'busybox', 'true'], 125, /cpus/],
    [['run', '--rm', ...named(5), '--env-file', '/nonexistent.env', 'busybox', 'true'], 125, /env file/],
    [['run', '--rm', ...named(6), '--restart', 'sometimes', 'busybox', 'true'], 125, /restart/],
    [['run', '--rm', ...named(7), 'nosuchimage', 'true'], 125, /nosuchimage/],
    [['run', '--rm', '--name', `bad/name-${share.tag}`, 'busybox', 'true'], 125, /name/],
  ];
  for (const [args, code, re] of cases) {
    const r = await d.berth(args);
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re, args.join(' '));
    t.regex(r.stderr, /^hint: /m, args.join(' '));
  }
  t.deepEqual(await d.containers.list({ all: true, filters: { name: [share.tag] } }), [], 'no container left behind');
});

test('a duplicate name is a CONFLICT that names the holder', async (t) => {
  const share = useDaemon(t, d);
  const dup = share.name('dup');
  const first = await d.containers.create({ Image: 'busybox', Cmd: ['true'] }, dup);
  const second = await d.berth(['run', '--name', dup, 'busybox', 'true']);
  t.is(second.code, 125);
  t.true(second.stderr.includes(first.Id.slice(0, 12)), second.stderr);
});

test('Ctrl-C on a foreground berth run stops the container', async (t) => {
  const share = useDaemon(t, d);
  const fg = share.name('fg');
  const child = spawn(process.execPath, [CLI, 'run', '--name', fg, 'busybox', 'sleep', '1000'], { env: d.env, stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await eventually(async () => (await d.containers.inspect(fg)).State.Running, { timeout: 60_000, message: `${fg} to run` });
  child.kill('SIGINT');
  const code = await exited;
  t.true(code === 143 || code === 137, `exit ${code}`);
  t.is((await d.containers.inspect(fg)).State.Status, 'exited');
});

test('logs survive a daemon restart and honour --tail and -t; ps filters and formats', async (t) => {
  // Its own daemon: it restarts it (and its ps lists every exited container of the daemon).
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const { Id } = await d.containers.create({ Image: 'busybox', Cmd: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; done'] }, 'counter');
  const wait = await d.containers.waitRegistered(Id, 'next-exit');
  await d.containers.start(Id);
  t.is((await wait.result).StatusCode, 0);
  await d.terminate();
  await d.restart();
  t.is((await d.berth(['logs', 'counter'])).stdout, 'line1\nline2\nline3\nline4\nline5\n');
  t.is((await d.berth(['logs', '--tail', '2', 'counter'])).stdout, 'line4\nline5\n');
  t.regex((await d.berth(['logs', '-t', '--tail', '1', 'counter'])).stdout, /^\d{4}-\d\d-\d\dT\S+Z line5\n$/);
  const ps = await d.berth(['ps', '-a', '--filter', 'status=exited', '--format', 'json']);
  const rows = ps.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(rows.map((r) => r.Names), ['counter']);
  t.regex(rows[0].Status, /^Exited \(0\)/);
  const env = path.join(d.root, 'env');
  fs.writeFileSync(env, '# comment\nA=1\nB=two words\n');
  const e = await d.berth(['run', '--rm', '--env-file', env, '-e', 'C=3', 'busybox', 'sh', '-c', 'echo "$A|$B|$C"']);
  t.is(e.stdout, '1|two words|3\n', e.stderr);
});
