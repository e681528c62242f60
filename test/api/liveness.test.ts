/**
 * A dead daemon or pool user must never look alive (issue 19): a killed process its parent
 * has not reaped (a zombie), or a live unrelated process that now has the recorded pid,
 * must not keep the data root or the volume pool. Real processes throughout: a zombie is
 * made by a parent that never waits (`sh` that execs `sleep` after forking the child).
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, TestDaemon, testNetwork } from '../helpers/daemon';
import { Transport } from '../../src/client/transport';
import { lockRoot } from '../../src/daemon/lock';
import { UnavailableError } from '../../volumes/shared/errors';
import { BtrfsDriver } from '../../volumes/drivers/btrfs/btrfs';
import { POOL_FILE } from '../../volumes/drivers/btrfs/pool';
import { alive, bootId, formatRecord } from '../../volumes/shared/process';
import { btrfsMountsUnder, loopsOf, MiB, setup } from '../volumes/helpers';
import { eventually } from '../helpers/eventually';

/** State letter and start time (field 22) of a process, read straight from /proc. */
function proc(pid: number): { state: string; start: number } | undefined {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { state: f[0], start: Number(f[19]) };
  } catch {
    return undefined;
  }
}

/**
 * Run `argv` as the child of a parent that never reaps it: `sh` forks it, prints its pid,
 * and execs `sleep`, which never calls wait(). Killing the child leaves a zombie for as
 * long as the parent lives; teardown kills the parent, and init reaps the zombie.
 */
async function unreaped(t: ExecutionContext, argv: string[], log: string): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', '"$@" >"$0" 2>&1 & echo $!; exec sleep 100000', log, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void parent.kill('SIGKILL'));
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout!.once('data', (b: Buffer) => resolve(Number.parseInt(b.toString(), 10)));
    parent.once('exit', (code) => reject(new Error(`sh exited ${code}`)));
  });
  t.teardown(() => {
    if (proc(pid) && proc(pid)?.state !== 'Z') process.kill(pid, 'SIGKILL');
  });
  // Until sh has become `sleep` it may still reap the child itself.
  await eventually(() => fs.readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() === 'sleep', { message: 'the parent to be sleep' });
  return { pid, parent };
}

/** SIGKILL `pid` and wait until it is a zombie: dead, and not reaped. */
async function killToZombie(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await eventually(() => proc(pid)?.state === 'Z', { message: `pid ${pid} to be a zombie` });
}

/** A live process unrelated to berth (a plain `sleep`), ended in teardown. */
function bystander(t: ExecutionContext): ChildProcess {
  const p = spawn('sleep', ['100000'], { stdio: 'ignore' });
  t.teardown(() => void p.kill('SIGKILL'));
  return p;
}

/** A liveness record naming `pid` with a start time that is not its own. */
function wrongStart(pid: number): string {
  return formatRecord({ pid, start: proc(pid)!.start + 12345, boot: bootId() });
}

async function tempRoot(t: ExecutionContext): Promise<string> {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-live-'));
  t.teardown(() => fs.promises.rm(root, { recursive: true, force: true }));
  return root;
}

test('alive: a zombie, a recycled pid and a pid of another boot are dead; a running process with its own record is alive', async (t) => {
  const { pid: zombie } = await unreaped(t, ['sleep', '100000'], '/dev/null');
  await killToZombie(zombie);
  t.false(alive({ pid: zombie, start: proc(zombie)!.start, boot: bootId() }), 'a zombie with its exact record');
  t.false(alive({ pid: zombie }), 'a zombie named by a pid-only (older) record');

  const live = bystander(t);
  const start = proc(live.pid!)!.start;
  t.true(alive({ pid: live.pid!, start, boot: bootId() }));
  t.true(alive({ pid: live.pid! }), 'a pid-only record of a live process still counts');
  t.false(alive({ pid: live.pid!, start: start + 1, boot: bootId() }), 'same pid, another start time');
  t.false(alive({ pid: live.pid!, start, boot: '00000000-0000-0000-0000-000000000000' }), 'same pid and start, another boot');
});

test('a killed daemon left unreaped (a zombie) does not block a new daemon on the same root', async (t) => {
  const root = await tempRoot(t);
  const socket = path.join(root, 'run', 'berth.sock');
  const args = ['daemon', '--root', root, '--host', `unix://${socket}`, ...testNetwork(root)];
  const log = path.join(root, 'first.log');
  const { pid } = await unreaped(t, [process.execPath, CLI, ...args], log);
  const first = new Transport(socket);
  await eventually(
    async () => {
      const st = proc(pid)?.state;
      if (st === undefined || st === 'Z') throw new Error(`the first daemon exited:\n${fs.readFileSync(log, 'utf8')}`);
      return first.ping();
    },
    { timeout: 60_000, message: 'the first daemon to answer' },
  );
  await killToZombie(pid);

  const d = await TestDaemon.start({ root, args: testNetwork(root) });
  t.teardown(() => d.stop());
  t.true(await d.transport.ping());
  t.is(Number.parseInt(fs.readFileSync(path.join(root, 'berthd.pid'), 'utf8'), 10), d.child?.pid ?? -1, 'the root is the new daemon\'s');
  t.is(proc(pid)?.state, 'Z', 'the old one was still an unreaped zombie throughout');
});

test('a pid file naming a live unrelated process (same pid, another start time) is stale: the daemon starts and the process is left alone', async (t) => {
  const root = await tempRoot(t);
  const other = bystander(t);
  fs.writeFileSync(path.join(root, 'berthd.pid'), wrongStart(other.pid!));
  const d = await TestDaemon.start({ root });
  t.teardown(() => d.stop());
  t.true(await d.transport.ping());
  t.is(Number.parseInt(fs.readFileSync(path.join(root, 'berthd.pid'), 'utf8'), 10), d.child?.pid ?? -1);
  t.is(other.exitCode, null);
  t.true(alive({ pid: other.pid! }), 'the unrelated process still runs');
});

test('the root lock: a live holder is waited for, then refused with UNAVAILABLE naming it; one that exits while waited for is taken over', async (t) => {
  const root = await tempRoot(t);
  const holder = bystander(t);
  const record = formatRecord({ pid: holder.pid!, start: proc(holder.pid!)!.start, boot: bootId() });
  fs.writeFileSync(path.join(root, 'berthd.pid'), record);
  const began = Date.now();
  const err = await t.throwsAsync(lockRoot(root, () => undefined, 1500));
  t.true(err instanceof UnavailableError, String(err));
  t.is((err as UnavailableError).code, 'UNAVAILABLE');
  t.true(Date.now() - began >= 1500, 'it waited before refusing');
  t.true(err!.message.includes(String(holder.pid)), err!.message);
  t.truthy((err as UnavailableError).hint);
  t.is(fs.readFileSync(path.join(root, 'berthd.pid'), 'utf8'), record, 'a refused daemon leaves the lock alone');

  // The holder is finishing its shutdown: it exits (and is reaped) while the new one waits.
  // Killed only once the new one has read the lock and seen the holder alive (it is alive
  // until the kill), so the lock is taken over after a wait, never straight away.
  const lockFile = path.join(root, 'berthd.pid');
  let reads = 0;
  const readFile = fs.promises.readFile;
  fs.promises.readFile = (async (...a: Parameters<typeof readFile>) => {
    const got = await readFile(...a);
    if (a[0] === lockFile) reads++;
    return got;
  }) as typeof readFile;
  t.teardown(() => void (fs.promises.readFile = readFile));
  const waiting = lockRoot(root, () => undefined, 10_000);
  let settled = false;
  void waiting.then(() => (settled = true), () => (settled = true));
  await eventually(() => reads >= 2, { message: 'the new holder to read the lock twice (it found the holder alive and waits)' });
  fs.promises.readFile = readFile;
  t.false(settled, 'it waits while the holder lives');
  holder.kill('SIGTERM');
  const release = await waiting;
  t.is(Number.parseInt(fs.readFileSync(path.join(root, 'berthd.pid'), 'utf8'), 10), process.pid);
  await release();
  t.false(fs.existsSync(path.join(root, 'berthd.pid')), 'release removes the lock');
});

test('an older berth\'s pid-only lock is read sensibly: a zombie holder is stale, a live one is waited for', async (t) => {
  const root = await tempRoot(t);
  const { pid: zombie } = await unreaped(t, ['sleep', '100000'], '/dev/null');
  await killToZombie(zombie);
  fs.mkdirSync(path.join(root, 'berthd.lock')); // proper-lockfile's directory, as an older berthd left it
  fs.writeFileSync(path.join(root, 'berthd.pid'), `${zombie}\n`);
  const release = await lockRoot(root, () => undefined, 10_000);
  t.false(fs.existsSync(path.join(root, 'berthd.lock')), 'the older lock directory is gone');
  await release();

  const live = bystander(t);
  fs.writeFileSync(path.join(root, 'berthd.pid'), `${live.pid}\n`);
  const err = await t.throwsAsync(lockRoot(root, () => undefined, 300));
  t.is((err as UnavailableError).code, 'UNAVAILABLE');
});

// The volume pool: a loop-backed btrfs under the root, unmounted by the last live user.
const POOL = 256 * MiB;
const openDriver = (root: string) => BtrfsDriver.open(root, { poolSize: POOL });

test('a pool user killed and left unreaped (a zombie) does not keep the pool mounted', async (t) => {
  const env = await setup(t, openDriver);
  const log = path.join(env.tmp, 'child.log');
  const { pid } = await unreaped(t, [process.execPath, path.join(__dirname, '..', 'volumes', 'pool-child.js'), env.root, String(POOL)], log);
  await eventually(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('ready'), { message: 'the pool child to be ready' });
  t.is(fs.readdirSync(path.join(env.root, 'pool-users')).length, 2, 'two users: this process and the child');
  await killToZombie(pid);

  await env.d.close();
  t.deepEqual(btrfsMountsUnder(env.tmp), [], 'the last live user unmounted the pool');
  t.deepEqual(loopsOf(path.join(env.root, POOL_FILE)), []);
  t.deepEqual(fs.readdirSync(path.join(env.root, 'pool-users')), [], 'the dead user\'s record is gone');
});

test('a pool user record naming a live unrelated process (same pid, another start time) is stale', async (t) => {
  const env = await setup(t, openDriver);
  const users = path.join(env.root, 'pool-users');
  const other = bystander(t);
  const record = path.join(users, `${other.pid}-0badf00d`);

  // With its true start time the record is a live user: closing keeps the pool mounted.
  fs.writeFileSync(record, formatRecord({ pid: other.pid!, start: proc(other.pid!)!.start, boot: bootId() }));
  await env.d.close();
  t.is(btrfsMountsUnder(env.tmp).length, 1, 'a live user keeps the pool');

  fs.writeFileSync(record, wrongStart(other.pid!));
  const d2 = await env.open();
  await d2.close();
  t.deepEqual(btrfsMountsUnder(env.tmp), [], 'a recycled pid does not keep the pool');
  t.deepEqual(loopsOf(path.join(env.root, POOL_FILE)), []);
  t.false(fs.existsSync(record), 'the stale record is removed');
  t.true(alive({ pid: other.pid! }), 'the unrelated process is left alone');
});

test('SIGKILL then an immediate restart, 20 times in a row, always comes back with the detached containers adopted', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const names = ['keep1', 'keep2'];
  const pids: Record<string, number> = {};
  for (const n of names) {
    const r = await d.docker(['run', '-d', '--name', n, 'busybox', 'sleep', '100000']);
    t.is(r.code, 0, r.stderr);
    pids[n] = (await d.containers.inspect(n)).State.Pid;
  }
  for (let i = 1; i <= 20; i++) {
    // No wait for the old daemon to be gone or reaped: the restart races its death.
    d.child!.kill('SIGKILL');
    await d.restart();
    for (const n of names) {
      const s = (await d.containers.inspect(n)).State;
      t.deepEqual({ round: i, name: n, running: s.Running, pid: s.Pid }, { round: i, name: n, running: true, pid: pids[n] });
    }
  }
  const r = await d.docker(['exec', 'keep1', 'echo', 'adopted']);
  t.is(r.stdout, 'adopted\n', r.stderr);
  t.is((await d.docker(['stop', '-t', '1', ...names])).code, 0);
  for (const n of names) t.false((await d.containers.inspect(n)).State.Running);
});
