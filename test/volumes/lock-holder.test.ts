import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lockKey, VolumeLocks } from '../../volumes/drivers/base/locks';
import { openDriver } from '../../volumes/drivers/select';
import { atFault, faultEnv } from '../helpers/fault';

const STEP = 'volume.build.filled';

/** A child creating `name` in `root`, stopped at STEP with the volume's lock held. */
async function holderAtFault(root: string, name: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(__dirname, 'lock-child.js'), root, name], {
    env: { ...process.env, ...faultEnv(STEP) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the child exited (${code}) before the fault point: ${err}`))));
  await Promise.race([atFault(() => err, STEP, 60_000), exited]);
  exited.catch(() => undefined);
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

const debrisOf = (root: string, name: string): string[] =>
  fs.readdirSync(path.join(root, 'staging')).filter((e) => e.startsWith(`new-${lockKey(name)}-`));

test('a volume lock whose holder was killed is taken at once: the next open cleans its debris without waiting for the lock to go stale', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-t-lock-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const child = await holderAtFault(root, 'vol');
  t.is(debrisOf(root, 'vol').length, 1, 'the killed create leaves its volume in staging');
  await killed(child);

  // Opened straight after the SIGKILL, well inside the 10 s a lock takes to look stale.
  const d = await openDriver(root, { driver: 'dir' });
  t.teardown(() => d.close());
  t.deepEqual(debrisOf(root, 'vol'), [], 'the dead holder\'s half-made volume is removed at open');
  t.false((await d.list()).some((v) => v.name === 'vol'), 'nothing half-made is listed');
  await d.create('vol');
  t.true((await d.list()).some((v) => v.name === 'vol'));
});

test('a volume lock whose holder is alive is left alone: its debris stays until it finishes or dies', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-t-lock-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const child = await holderAtFault(root, 'vol');
  t.teardown(() => (child.exitCode === null && child.signalCode === null ? killed(child) : undefined));

  const d = await openDriver(root, { driver: 'dir' });
  t.teardown(() => d.close());
  t.is(debrisOf(root, 'vol').length, 1, 'a live holder\'s work in staging is not touched');
  t.is(await new VolumeLocks(path.join(root, 'locks')).tryLock('vol'), null, 'its lock is still held');
});
