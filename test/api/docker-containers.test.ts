import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, exec, useDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

/**
 * The real docker CLI running containers on berthd. The tests that leave berthd up share
 * one daemon and name their containers and images with their own tag.
 */

let shared: TestDaemon;
test.before(async () => {
  shared = await TestDaemon.start();
});
test.after.always(() => shared?.stop());

test('docker run --rm busybox echo hi prints hi and leaves no container', async (t) => {
  const { d, name } = useDaemon(t, shared);
  const hi = name('hi');
  const r = await d.docker(['run', '--rm', '--name', hi, 'busybox', 'echo', 'hi']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hi\n');
  t.is((await d.docker(['ps', '-aq', '--filter', `name=${hi}`])).stdout, '');
  const code = await d.docker(['run', '--rm', '--name', name('code'), 'busybox', 'sh', '-c', 'echo err >&2; exit 3']);
  t.is(code.code, 3);
  t.is(code.stderr, 'err\n');
});

test('docker run -d, ps, exec, logs, stop, wait, commit, export, rm behave as with Docker', async (t) => {
  const { d, name, tag } = useDaemon(t, shared);
  const w = name('w');
  const run = await d.docker(['run', '-d', '--name', w, 'busybox', 'sh', '-c', 'echo started; echo data > /made-here; rm /bin/vi; exec sleep 1000']);
  t.is(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  t.regex(id, /^[0-9a-f]{64}$/);

  const ps = await d.docker(['ps', '--filter', `name=${w}`, '--format', '{{.Names}} {{.Status}} {{.Image}}']);
  t.regex(ps.stdout, new RegExp(`^${w} Up .* busybox$`, 'm'));

  const ls = await d.docker(['exec', w, 'ls', '/']);
  t.is(ls.code, 0, ls.stderr);
  t.true(ls.stdout.split('\n').includes('made-here'), ls.stdout);
  const failing = await d.docker(['exec', w, 'sh', '-c', 'exit 7']);
  t.is(failing.code, 7);

  await eventually(async () => (await d.docker(['logs', w])).stdout.includes('started'), { timeout: 60_000, message: 'the container to log started' });
  t.is((await d.docker(['logs', w])).stdout, 'started\n');

  const snap = `snap-${tag}:1`;
  const commit = await d.docker(['commit', '-c', 'CMD ["cat", "/made-here"]', w, snap]);
  t.is(commit.code, 0, commit.stderr);
  const fromCommit = await d.docker(['run', '--rm', '--name', name('fromcommit'), snap]);
  t.is(fromCommit.stdout, 'data\n', fromCommit.stderr);
  const gone = await d.docker(['run', '--rm', '--name', name('gone'), snap, 'ls', '/bin/vi']);
  t.not(gone.code, 0, 'the deleted file stays deleted in the committed image');

  const tar = path.join(d.root, `${w}.tar`);
  t.teardown(() => fs.promises.rm(tar, { force: true }));
  const ex = await d.docker(['export', '-o', tar, w]);
  t.is(ex.code, 0, ex.stderr);
  const { stdout: listing } = await exec('tar', ['-tf', tar], { maxBuffer: 1 << 24 });
  t.true(listing.split('\n').some((l) => l.replace(/^\.\//, '') === 'made-here'), 'export holds the container files');

  // How long stop -t takes is a benchmark row (npm run bench -- stop), not a test's claim.
  const stop = await d.docker(['stop', '-t', '2', w]);
  t.is(stop.code, 0, stop.stderr);
  const wait = await d.docker(['wait', w]);
  t.regex(wait.stdout.trim(), /^(137|143)$/);
  t.is((await d.docker(['ps', '-q', '--filter', `name=${w}`])).stdout, '');
  t.is((await d.docker(['ps', '-aq', '--filter', `name=${w}`])).stdout.trim(), id.slice(0, 12), 'a stopped container is still listed with -a');
  const rm = await d.docker(['rm', w]);
  t.is(rm.code, 0, rm.stderr);
  t.is((await d.docker(['ps', '-aq', '--filter', `name=${w}`])).stdout, '');
  t.is((await d.docker(['rmi', snap])).code, 0);
});

// Own daemon: this test SIGKILLs and restarts berthd.
test('a detached container keeps its pid across a SIGKILL and restart of berthd, and docker stop then stops it', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  t.is((await d.docker(['run', '-d', '--name', 'keep', 'busybox', 'sh', '-c', 'echo before; exec sleep 1000'])).code, 0);
  const pid = (await d.docker(['inspect', '-f', '{{.State.Pid}}', 'keep'])).stdout.trim();
  t.regex(pid, /^[1-9]\d*$/);
  await d.kill();
  t.notThrows(() => process.kill(Number(pid), 0), 'the container lives while berthd is down');
  await d.restart();
  t.is((await d.docker(['inspect', '-f', '{{.State.Pid}} {{.State.Status}}', 'keep'])).stdout.trim(), `${pid} running`);
  t.is((await d.docker(['logs', 'keep'])).stdout, 'before\n');
  t.is((await d.docker(['exec', 'keep', 'echo', 'adopted'])).stdout, 'adopted\n');
  t.is((await d.docker(['stop', '-t', '1', 'keep'])).code, 0);
  t.is((await d.docker(['inspect', '-f', '{{.State.Status}}', 'keep'])).stdout.trim(), 'exited');
  t.throws(() => process.kill(Number(pid), 0));
});

// Own daemon: this test SIGKILLs berthd and starts it again, as after a reboot.
test('a --restart always container killed behind berthd\'s back is running again after berthd starts', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  t.is((await d.berth(['run', '-d', '--name', 'redisish', '--restart', 'always', 'busybox', 'sleep', '1000'])).code, 0);
  const created = (await d.berth(['create', '--name', 'never', 'busybox', 'sleep', '1000'])).code;
  t.is(created, 0);
  const pid = Number((await d.berth(['inspect', '-f', '{{.State.Pid}}', 'redisish'])).stdout.trim());
  const id = await idOf(d, 'redisish');
  await d.kill();
  // A host reboot, as far as the container is concerned: everything of it is gone.
  await exec('pkill', ['-KILL', '-f', `berth-monitor.*${id}`]).catch(() => undefined);
  await eventually(() => exec('pgrep', ['-f', `berth-monitor.*${id}`]).then(() => false, () => true), { timeout: 60_000, message: 'its monitor to be gone' });
  process.kill(pid, 'SIGKILL');
  // Gone for good (reaped, or a zombie of nobody), as after a reboot, before berthd looks.
  await eventually(() => !/^\d+ \(.*\) [^Z]/.test(readStat(pid)), { timeout: 60_000, message: `the container's process ${pid} to be gone` });
  await d.restart();
  let status = '';
  await eventually(
    async () => {
      status = (await d.berth(['inspect', '-f', '{{.State.Status}} {{.State.Pid}}', 'redisish'])).stdout.trim();
      return status.startsWith('running') && !status.endsWith(` ${pid}`);
    },
    { timeout: 60_000, message: 'redisish to run again with a new process' },
  );
  t.regex(status, /^running [1-9]\d*$/);
  t.not(status, `running ${pid}`);
  t.is((await d.berth(['inspect', '-f', '{{.State.Status}}', 'never'])).stdout.trim(), 'created', 'a created container is not started');
  await d.berth(['rm', '-f', 'redisish', 'never']);
});

function readStat(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
}

async function idOf(d: TestDaemon, name: string): Promise<string> {
  return (await d.berth(['inspect', '-f', '{{.Id}}', name])).stdout.trim();
}
