/**
 * What the README promises through berth's own CLI and nothing else tested: restart
 * policies across a daemon restart, `container prune --filter until`, `rmi -f`, `volume ls
 * --filter`, `volume import -`, `volume create --driver`, and `logs --since/--until/-f`.
 * One shared daemon serves the tests that neither kill nor restart it.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { TestDaemon, BERTH } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

let shared: TestDaemon;
test.before(async () => {
  shared = await TestDaemon.start({ args: ['--volume-driver', 'dir'] });
});
test.after.always(() => shared?.stop());

async function ok(d: TestDaemon, args: string[], input?: string): Promise<string> {
  const r = await d.berth(args, { input });
  if (r.code !== 0) throw new Error(`berth ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function inspect(d: TestDaemon, name: string): Promise<{ State: { Status: string; Running: boolean; ExitCode: number; Pid: number }; RestartCount: number; Created: string }> {
  return JSON.parse(await ok(d, ['inspect', name]))[0];
}

test('restart policies across a daemon restart: always comes back after a manual stop, unless-stopped does not; on-failure keeps its count and its maximum', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  await ok(d, ['run', '-d', '--name', 'alw', '--restart', 'always', 'busybox', 'sleep', '1000']);
  await ok(d, ['run', '-d', '--name', 'unl', '--restart', 'unless-stopped', 'busybox', 'sleep', '1000']);
  await ok(d, ['run', '-d', '--name', 'unl-up', '--restart', 'unless-stopped', 'busybox', 'sleep', '1000']);
  await ok(d, ['run', '-d', '--name', 'onf', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'exit 3']);
  await ok(d, ['stop', '-t', '1', 'alw', 'unl']);
  const onf = await eventually(
    async () => {
      const i = await inspect(d, 'onf');
      return i.RestartCount === 2 && !i.State.Running && i.State.Status === 'exited' && i;
    },
    { timeout: 60_000, message: 'the on-failure:2 container to give up after 2 restarts' },
  );
  t.is(onf.State.ExitCode, 3);
  const upPid = (await inspect(d, 'unl-up')).State.Pid;

  await d.terminate();
  await d.restart();

  // Docker: "always" is restarted when the daemon starts even after a manual stop;
  // "unless-stopped" is not; a running one stays the same process (live-restore).
  const alw = await eventually(async () => {
    const i = await inspect(d, 'alw');
    return i.State.Running && i;
  }, { message: 'the stopped "always" container to be started by the daemon start' });
  t.true(alw.State.Running);
  const unl = await inspect(d, 'unl');
  t.false(unl.State.Running, 'a manually stopped unless-stopped container stays stopped');
  const up = await inspect(d, 'unl-up');
  t.true(up.State.Running);
  t.is(up.State.Pid, upPid, 'adopted, not restarted');
  const onfAfter = await inspect(d, 'onf');
  t.false(onfAfter.State.Running, 'on-failure at its maximum is not restarted by a daemon start');
  t.is(onfAfter.RestartCount, 2, 'the restart count survives the daemon restart');
});

test('container prune --filter until removes only containers created before that time', async (t) => {
  await ok(shared, ['create', '--name', 'pr-old', '--label', 'prune-until=1', 'busybox', 'true']);
  const oldCreated = Date.parse((await inspect(shared, 'pr-old')).Created);
  await eventually(() => Date.now() > oldCreated + 1500, { message: 'a second boundary between the two creates' });
  const cut = Math.floor((oldCreated + 1000) / 1000);
  await ok(shared, ['create', '--name', 'pr-new', '--label', 'prune-until=1', 'busybox', 'true']);
  t.true(Date.parse((await inspect(shared, 'pr-new')).Created) > cut * 1000);

  const out = await ok(shared, ['container', 'prune', '-f', '--filter', `until=${cut}`, '--filter', 'label=prune-until=1']);
  t.regex(out, /Deleted Containers:/);
  const left = (await ok(shared, ['ps', '-a', '--filter', 'label=prune-until=1', '--format', '{{.Names}}'])).trim().split('\n');
  t.deepEqual(left, ['pr-new']);
  const bad = await shared.berth(['container', 'prune', '-f', '--filter', 'until=yesterday-ish']);
  t.is(bad.code, 1, bad.stderr);
  t.regex(bad.stderr, /until/);
  t.regex(bad.stderr, /^hint: /m);
  await ok(shared, ['rm', 'pr-new']);
});

test('rmi of an image with two tags refuses by id and untags; rmi -f removes it under both names', async (t) => {
  await ok(shared, ['tag', 'busybox', 'rmif:one']);
  await ok(shared, ['tag', 'busybox', 'rmif:two']);
  const made = (await ok(shared, ['create', 'rmif:one', 'true'])).trim();
  await ok(shared, ['commit', made, 'rmif:img']);
  await ok(shared, ['tag', 'rmif:img', 'rmif:img2']);
  const id = (await ok(shared, ['image', 'inspect', '--format', '{{.Id}}', 'rmif:img'])).trim();
  const refused = await shared.berth(['rmi', id]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /rmif:img/, 'the refusal names the tags');
  t.regex(refused.stderr, /^hint: .*-f/m);
  const out = await ok(shared, ['rmi', '-f', id]);
  t.regex(out, /Untagged: rmif:img\b/);
  t.regex(out, /Untagged: rmif:img2\b/);
  t.regex(out, new RegExp(`Deleted: ${id}`));
  const gone = await shared.berth(['image', 'inspect', id]);
  t.not(gone.code, 0);
  await ok(shared, ['rmi', 'rmif:one', 'rmif:two']);
  t.is((await shared.berth(['image', 'inspect', 'busybox'])).code, 0, 'untagging the extra names leaves busybox');
  // Only this test's container: the daemon is shared, and a prune would take the stopped
  // containers other tests are still reading (it did: prune --filter until's and logs').
  await ok(shared, ['rm', made]);
});

test('volume ls --filter selects by name, label and dangling, and refuses an unknown filter', async (t) => {
  await ok(shared, ['volume', 'create', '--label', 'team=a', 'vf-a']);
  await ok(shared, ['volume', 'create', '--label', 'team=b', 'vf-b']);
  await ok(shared, ['volume', 'create', 'vf-used']);
  await ok(shared, ['create', '--name', 'vf-user', '-v', 'vf-used:/data', 'busybox', 'true']);
  t.teardown(async () => {
    await shared.berth(['rm', 'vf-user']);
    await shared.berth(['volume', 'rm', 'vf-a', 'vf-b', 'vf-used']);
  });
  const names = async (...f: string[]) =>
    (await ok(shared, ['volume', 'ls', '-q', ...f.flatMap((x) => ['--filter', x])]))
      .split('\n')
      .filter((n) => n.startsWith('vf-'))
      .sort();
  t.deepEqual(await names('name=vf-'), ['vf-a', 'vf-b', 'vf-used']);
  t.deepEqual(await names('label=team'), ['vf-a', 'vf-b']);
  t.deepEqual(await names('label=team=b'), ['vf-b']);
  t.deepEqual(await names('dangling=true', 'name=vf-'), ['vf-a', 'vf-b']);
  t.deepEqual(await names('dangling=false', 'name=vf-'), ['vf-used']);
  const bad = await shared.berth(['volume', 'ls', '--filter', 'colour=red']);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /colour/);
  t.regex(bad.stderr, /^hint: /m);
});

test('volume import - reads the tar from standard input; volume create --driver takes this daemon\'s driver or local and refuses another', async (t) => {
  await ok(shared, ['volume', 'create', '--driver', 'local', 'vi-src']);
  await ok(shared, ['run', '--rm', '-v', 'vi-src:/data', 'busybox', 'sh', '-c', 'echo hello > /data/a; mkdir /data/d; echo x > /data/d/b']);
  const tar = path.join(shared.root, 'vi-src.tar');
  await ok(shared, ['volume', 'export', 'vi-src', '-o', tar]);
  const child = spawn(BERTH, ['volume', 'import', 'vi-copy', '-'], { env: shared.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  fs.createReadStream(tar).pipe(child.stdin);
  const code = await new Promise((r) => child.on('close', r));
  t.is(code, 0, err);
  t.is(await ok(shared, ['run', '--rm', '-v', 'vi-copy:/data', 'busybox', 'cat', '/data/a', '/data/d/b']), 'hello\nx\n');

  await ok(shared, ['volume', 'create', '--driver', 'dir', 'vi-dir']);
  t.is((await ok(shared, ['volume', 'inspect', '--format', '{{.Driver}}', 'vi-dir'])).trim(), 'local');
  const other = await shared.berth(['volume', 'create', '--driver', 'nfs', 'vi-nfs']);
  t.not(other.code, 0);
  t.regex(other.stderr, /nfs/);
  t.regex(other.stderr, /^hint: /m);
  const sized = await shared.berth(['volume', 'create', '-o', 'size=1G', 'vi-sized']);
  t.not(sized.code, 0, 'the dir driver cannot enforce a size: refused, not ignored');
  t.regex(sized.stderr, /size/);
  const all = (await ok(shared, ['volume', 'ls', '-q'])).split('\n');
  t.false(all.includes('vi-nfs') || all.includes('vi-sized'), 'nothing half-made');
  await ok(shared, ['volume', 'rm', 'vi-src', 'vi-copy', 'vi-dir']);
});

test('logs --since and --until pick lines by time, and -f --since follows only the later lines until the container stops', async (t) => {
  const script = 'echo one; until [ -e /tmp/go ]; do sleep 0.1; done; echo two; until [ -e /tmp/go2 ]; do sleep 0.1; done; echo three';
  const id = (await ok(shared, ['run', '-d', 'busybox', 'sh', '-c', script])).trim();
  t.teardown(() => shared.berth(['rm', '-f', id]));
  const first = await eventually(async () => {
    const out = await ok(shared, ['logs', '-t', id]);
    return out.includes('one') && out;
  }, { message: 'the first line' });
  const t1 = Date.parse(first.split(' ')[0]);
  await eventually(() => Date.now() > t1 + 1100, { message: 'a second after the first line' });
  const mid = Math.floor(Date.now() / 1000); // after "one", before "two" (printed only once we say so)

  const follow = spawn(BERTH, ['logs', '-f', '--since', String(mid), id], { env: shared.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let followed = '';
  let followErr = '';
  follow.stdout.on('data', (b: Buffer) => (followed += b.toString()));
  follow.stderr.on('data', (b: Buffer) => (followErr += b.toString()));
  const followEnd = new Promise<number | null>((r) => follow.on('close', r));
  await ok(shared, ['exec', id, 'touch', '/tmp/go']);
  await eventually(() => followed.includes('two'), { message: 'the follower to print the line written after it started' });
  await ok(shared, ['exec', id, 'touch', '/tmp/go2']);
  t.is(await followEnd, 0, followErr);
  t.is(followed, 'two\nthree\n', 'only lines since the mark, then the end of the container ends the follow');

  t.is(await ok(shared, ['logs', '--until', String(mid), id]), 'one\n');
  t.is(await ok(shared, ['logs', '--since', String(mid), id]), 'two\nthree\n');
  const bad = await shared.berth(['logs', '--since', 'last tuesday', id]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /since/);
});
