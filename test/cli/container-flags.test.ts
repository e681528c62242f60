import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

/**
 * Container flags the rest of the suite never drives, through the berth CLI on one shared
 * daemon (no test here kills or restarts it; each uses names of its own): bind mounts,
 * stop signals from every source, `ps -n/-l/-s`, `import -` with --change.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function hostDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bind-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('-v /host:/path binds a host directory both ways; :ro makes it read-only in the container', async (t) => {
  const dir = hostDir(t);
  fs.writeFileSync(path.join(dir, 'from-host'), 'host\n');
  t.is(await ok(d.berth(['run', '--rm', '-v', `${dir}:/data`, 'busybox', 'sh', '-c', 'cat /data/from-host; echo box > /data/from-box'])), 'host\n');
  t.is(fs.readFileSync(path.join(dir, 'from-box'), 'utf8'), 'box\n', "the container's write is on the host");
  const ro = await d.berth(['run', '--rm', '-v', `${dir}:/data:ro`, 'busybox', 'sh', '-c', 'cat /data/from-host; echo x > /data/no || echo refused']);
  t.is(ro.code, 0, ro.stderr);
  t.is(ro.stdout.split('\n').filter(Boolean).join(' '), 'host refused');
  t.false(fs.existsSync(path.join(dir, 'no')), 'a read-only bind takes no write');
});

test('--mount type=bind,source=,target=[,readonly] binds as -v does; a missing source is refused', async (t) => {
  const dir = hostDir(t);
  fs.writeFileSync(path.join(dir, 'f'), 'one\n');
  t.is(await ok(d.berth(['run', '--rm', '--mount', `type=bind,source=${dir},target=/m`, 'busybox', 'sh', '-c', 'cat /m/f; echo two > /m/g'])), 'one\n');
  t.is(fs.readFileSync(path.join(dir, 'g'), 'utf8'), 'two\n');
  const ro = await d.berth(['run', '--rm', '--mount', `type=bind,src=${dir},dst=/m,readonly`, 'busybox', 'sh', '-c', 'echo x > /m/h || echo refused']);
  t.is(ro.stdout.trim(), 'refused', ro.stderr);
  t.false(fs.existsSync(path.join(dir, 'h')));
  const missing = await d.berth(['run', '--rm', '--mount', `type=bind,source=${dir}/nope,target=/m`, 'busybox', 'true']);
  t.not(missing.code, 0, 'docker refuses a --mount bind whose source does not exist');
  t.regex(missing.stderr, /hint:/);
});

/** A container that prints the signal it got and exits 0 on it (sh traps TERM, USR1, USR2). */
const TRAPPER = ['sh', '-c', 'for s in TERM USR1 USR2; do trap "echo got-$s; exit 0" $s; done; echo ready; while true; do sleep 0.1; done'];

async function started(name: string): Promise<void> {
  await eventually(async () => (await d.berth(['logs', name])).stdout.includes('ready'), { message: `${name} to have set its traps` });
}

async function exitLine(name: string): Promise<string> {
  await eventually(async () => (await ok(d.berth(['inspect', '--format', '{{.State.Status}}', name]))).trim() === 'exited', { message: `${name} to exit` });
  return (await ok(d.berth(['logs', name]))).split('\n').filter((l) => l.startsWith('got-')).join(' ');
}

test('stop sends --stop-signal, stop -s overrides it, and kill -s sends the signal named', async (t) => {
  await ok(d.berth(['run', '-d', '--name', 'sig-flag', '--stop-signal', 'SIGUSR1', 'busybox', ...TRAPPER]));
  await started('sig-flag');
  t.is((await ok(d.berth(['inspect', '--format', '{{.Config.StopSignal}}', 'sig-flag']))).trim(), 'SIGUSR1');
  await ok(d.berth(['stop', 'sig-flag']));
  t.is(await exitLine('sig-flag'), 'got-USR1', '--stop-signal is what stop sends');

  await ok(d.berth(['run', '-d', '--name', 'sig-s', '--stop-signal', 'SIGUSR1', 'busybox', ...TRAPPER]));
  await started('sig-s');
  await ok(d.berth(['stop', '-s', 'USR2', 'sig-s']));
  t.is(await exitLine('sig-s'), 'got-USR2', 'stop -s overrides the configured stop signal');

  await ok(d.berth(['run', '-d', '--name', 'sig-kill', 'busybox', ...TRAPPER]));
  await started('sig-kill');
  await ok(d.berth(['kill', '-s', 'SIGUSR2', 'sig-kill']));
  t.is(await exitLine('sig-kill'), 'got-USR2');
  t.is((await ok(d.berth(['inspect', '--format', '{{.State.ExitCode}}', 'sig-kill']))).trim(), '0', 'the trap handled it');
  await ok(d.berth(['rm', 'sig-flag', 'sig-s', 'sig-kill']));
});

test("import - reads a rootfs from stdin, --change sets STOPSIGNAL, and stop uses the image's STOPSIGNAL", async (t) => {
  await ok(d.berth(['create', '--name', 'sig-src', 'busybox', 'true']));
  const file = path.join(d.root, 'sig-src.tar');
  t.teardown(() => fs.rmSync(file, { force: true }));
  await ok(d.berth(['export', '-o', file, 'sig-src']));
  await ok(d.berth(['rm', 'sig-src']));
  const id = (await ok(d.berth(['import', '-', 'stopsig:1', '--change', 'STOPSIGNAL SIGUSR1'], { input: fs.readFileSync(file) }))).trim();
  t.regex(id, /^sha256:[0-9a-f]{64}$/);
  t.is((await ok(d.berth(['image', 'inspect', '--format', '{{.Config.StopSignal}}', 'stopsig:1']))).trim(), 'SIGUSR1');
  await ok(d.berth(['run', '-d', '--name', 'sig-img', 'stopsig:1', ...TRAPPER]));
  await started('sig-img');
  await ok(d.berth(['stop', 'sig-img']));
  t.is(await exitLine('sig-img'), 'got-USR1', "the image's STOPSIGNAL is what stop sends");
  await ok(d.berth(['rm', 'sig-img']));
  await ok(d.berth(['rmi', 'stopsig:1']));
});

// Serial (ava runs serial tests first, alone): "the last created" must not see the other tests' containers.
test.serial('ps -n N and -l list the last created (stopped ones included), -s adds a SIZE column', async (t) => {
  const ids: string[] = [];
  for (const n of ['ps-a', 'ps-b', 'ps-c']) ids.push((await ok(d.berth(['create', '--name', n, 'busybox', 'sh', '-c', 'echo hi > /f']))).trim());
  const short = ids.map((i) => i.slice(0, 12));
  const lastTwo = (await ok(d.berth(['ps', '-q', '-n', '2']))).split('\n').filter(Boolean);
  t.deepEqual(lastTwo, [short[2], short[1]], 'the two newest, newest first, though none runs');
  t.deepEqual((await ok(d.berth(['ps', '-q', '-l']))).split('\n').filter(Boolean), [short[2]]);
  await ok(d.berth(['start', '-a', 'ps-c']));
  const sized = await ok(d.berth(['ps', '-a', '-s', '--filter', 'name=ps-c']));
  const [header, row] = sized.split('\n');
  t.regex(header, /\bSIZE$/);
  t.regex(row, /\d+(\.\d+)?[kMG]?B \(virtual \d+(\.\d+)?[kMG]?B\)$|\d+(\.\d+)?[kMG]?B$/, 'the row ends with its size');
  const bad = await d.berth(['ps', '-n', 'many']);
  t.not(bad.code, 0, 'a -n that is not a number is refused');
  t.regex(bad.stderr, /hint:/);
  await ok(d.berth(['rm', 'ps-a', 'ps-b', 'ps-c']));
});
