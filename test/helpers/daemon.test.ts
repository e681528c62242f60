/**
 * The fixture's leak policy fails loudly: a daemon's stop throws a LeakError naming what
 * of its root is left (and removes it), and stays quiet when nothing is; a test's share of
 * a shared daemon removes that test's containers and fails naming what one of them left.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { TestDaemon, exec, useDaemon } from './daemon';
import { LeakError, leftoversOf } from './leaks';
import { mountsUnder } from './mounts';
import { sandbox } from '../runtime/fixture';
import { engineEnv } from '../engine/env';

test('stop of a daemon that left nothing resolves and removes its root', async (t) => {
  const d = await TestDaemon.start();
  t.is((await d.docker(['run', '--rm', 'busybox', 'true'])).code, 0);
  await d.stop();
  t.false(fs.existsSync(d.root));
});

test('stop fails naming a mount and a process left under the root, and removes both', async (t) => {
  const d = await TestDaemon.start();
  const mnt = path.join(d.root, 'stray-mount');
  fs.mkdirSync(mnt);
  await exec('mount', ['-t', 'tmpfs', 'berth-test-stray', mnt]);
  const real = fs.realpathSync(mnt);
  const stray = spawn(process.execPath, ['-e', 'setTimeout(() => undefined, 600_000)', path.join(d.root, 'stray')], { stdio: 'ignore' });
  t.teardown(() => stray.kill('SIGKILL'));
  const err = await t.throwsAsync(() => d.stop(), { instanceOf: LeakError });
  t.deepEqual(err?.leftovers.map((l) => `${l.kind} ${l.what}`).sort(), [`mount ${real}`, `process ${stray.pid}`].sort());
  t.deepEqual(mountsUnder(d.root), []);
  t.deepEqual(leftoversOf({ root: d.root }), []);
  t.false(fs.existsSync(d.root));
});

let shared: TestDaemon;
test.before(async () => {
  shared = await TestDaemon.start();
});
test.after.always(() => shared?.stop());

/** A test context whose teardowns the test runs itself, to see them fail. */
function probe(): { t: ExecutionContext; teardown: () => Promise<void> } {
  const fns: Array<() => unknown> = [];
  const t = { title: 'probe', teardown: (fn: () => unknown) => fns.push(fn), log: () => undefined } as unknown as ExecutionContext;
  return { t, teardown: async () => void (await Promise.all(fns.map((f) => f()))) };
}

test("useDaemon's teardown removes the containers the test named, running or not", async (t) => {
  const p = probe();
  const share = useDaemon(p.t, shared);
  t.is((await shared.docker(['run', '-d', '--name', share.name('sleeper'), 'busybox', 'sleep', '600'])).code, 0);
  t.is((await shared.docker(['create', '--name', share.name('idle'), 'busybox', 'true'])).code, 0);
  await p.teardown();
  t.deepEqual(await shared.containers.list({ all: true, filters: { name: [share.tag] } }), []);
});

test("useDaemon's teardown fails naming a process one of the test's containers left", async (t) => {
  const p = probe();
  const share = useDaemon(p.t, shared);
  t.is((await shared.docker(['run', '-d', '--name', share.name('web'), 'busybox', 'sleep', '600'])).code, 0);
  const id = (await shared.containers.inspect(share.name('web'))).Id;
  const stray = spawn(process.execPath, ['-e', 'setTimeout(() => undefined, 600_000)', path.join(shared.root, 'containers', id, 'stray')], { stdio: 'ignore' });
  t.teardown(() => stray.kill('SIGKILL'));
  const err = await t.throwsAsync(p.teardown(), { instanceOf: LeakError });
  t.deepEqual(err?.leftovers.map((l) => l.kind), ['process']);
  t.true(err!.message.includes(String(stray.pid)), err!.message);
  stray.kill('SIGKILL');
});

test('a start that fails removes the root it made, and says what it was', async (t) => {
  const err = await t.throwsAsync(TestDaemon.start({ args: ['--no-such-flag'] }));
  const root = /test daemon on (\S+) /.exec(err!.message)?.[1];
  t.truthy(root, err!.message);
  t.false(fs.existsSync(root!), `${root} is left`);
  t.deepEqual(leftoversOf({ root: root! }), []);
});

test('a start that fails keeps a root the test passed in', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-t-given-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  await t.throwsAsync(TestDaemon.start({ root, args: ['--no-such-flag'] }));
  t.true(fs.existsSync(root));
  t.deepEqual(leftoversOf({ root }), []);
});

test("the runc sandbox's teardown passes after a container ran, and fails naming a process left under its dir", async (t) => {
  const clean = probe();
  const sb = await sandbox(clean.t);
  t.is((await sb.exit(await sb.run(['true']))).exitCode, 0);
  await clean.teardown();
  t.false(fs.existsSync(sb.dir));

  const leaky = probe();
  const sb2 = await sandbox(leaky.t);
  const stray = spawn(process.execPath, ['-e', 'setTimeout(() => undefined, 600_000)', path.join(sb2.dir, 'stray')], { stdio: 'ignore' });
  t.teardown(() => stray.kill('SIGKILL'));
  const err = await t.throwsAsync(leaky.teardown(), { instanceOf: LeakError });
  t.deepEqual(err?.leftovers.map((l) => `${l.kind} ${l.what}`), [`process ${stray.pid}`]);
  t.false(fs.existsSync(sb2.dir));
});

test("the engine fixture's teardown fails naming a mount left under its root, and removes it", async (t) => {
  const p = probe();
  const env = await engineEnv(p.t);
  const mnt = path.join(env.containersDir, 'stray-mount');
  fs.mkdirSync(mnt, { recursive: true });
  await exec('mount', ['-t', 'tmpfs', 'berth-test-stray', mnt]);
  const real = fs.realpathSync(mnt);
  const err = await t.throwsAsync(p.teardown(), { instanceOf: LeakError });
  t.deepEqual(err?.leftovers.map((l) => `${l.kind} ${l.what}`), [`mount ${real}`]);
  t.deepEqual(mountsUnder(env.dataRoot), []);
  t.false(fs.existsSync(env.dataRoot));
});
