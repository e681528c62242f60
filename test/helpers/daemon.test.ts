/**
 * The fixture's leak policy fails loudly: a daemon's stop throws a LeakError naming what
 * of its root is left (and removes it), and stays quiet when nothing is; a test's share of
 * a shared daemon removes that test's containers and fails naming what one of them left.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { TestDaemon, exec, useDaemon } from './daemon';
import { LeakError, leftoversOf } from './leaks';
import { mountsUnder } from './mounts';

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
  const t = { title: 'probe', teardown: (fn: () => unknown) => fns.push(fn) } as unknown as ExecutionContext;
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
