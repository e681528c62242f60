import test from 'ava';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bestDriver, openDriver } from '../../volumes/drivers/select';
import { MiB } from './helpers';
import { releaseRoot } from '../helpers/leaks';

async function tmpdir(t: import('ava').ExecutionContext): Promise<string> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-volumes-'));
  t.teardown(() => releaseRoot(`the select test's ${tmp}`, { root: tmp }));
  return tmp;
}

const hostHasBtrfs =
  /\tbtrfs$/m.test(fs.readFileSync('/proc/filesystems', 'utf8')) &&
  ['/usr/sbin/mkfs.btrfs', '/sbin/mkfs.btrfs', '/usr/bin/mkfs.btrfs'].some((p) => fs.existsSync(p));

test('select: the default is the best driver the host supports, and says why', async (t) => {
  const tmp = await tmpdir(t);
  const choice = await bestDriver(tmp);
  t.is(choice.driver, hostHasBtrfs ? 'btrfs' : 'dir');
  t.regex(choice.reason, new RegExp(`^${choice.driver}: `));
  t.log(choice.reason);
  const d = await openDriver(path.join(tmp, 'root'), { poolSize: 256 * MiB });
  t.teardown(() => d.close());
  t.is(d.name, choice.driver);
  t.is((await fsp.readFile(path.join(tmp, 'root', 'driver'), 'utf8')).trim(), choice.driver, 'the choice is recorded');
  await d.create('v1');
  await d.close();
});

test('select: a root keeps the driver it was made with; a different explicit driver is refused', async (t) => {
  const tmp = await tmpdir(t);
  const root = path.join(tmp, 'root');
  const d = await openDriver(root, { driver: 'dir' });
  await d.create('kept');
  await d.close();
  const again = await openDriver(root); // the host's best may be btrfs: the root still says dir
  t.teardown(() => again.close());
  t.is(again.name, 'dir');
  t.deepEqual((await again.list()).map((v) => v.name), ['kept']);
  await again.close();
  const err = await t.throwsAsync(openDriver(root, { driver: 'btrfs' }), { code: 'FAILED_PRECONDITION' });
  t.truthy((err as { hint?: string }).hint);
  await t.throwsAsync(openDriver(path.join(tmp, 'other'), { driver: 'zfs' as never }), { code: 'INVALID_ARGUMENT' });
});

// A host without btrfs cannot run this: the skip is visible in the summary and says why.
if (!hostHasBtrfs) console.warn('select.test: skipping the explicit-btrfs test: this host has no btrfs (kernel module and mkfs.btrfs)');
(hostHasBtrfs ? test : test.skip)('select: an explicit btrfs driver opens a pool on this (non-btrfs) root', async (t) => {
  const tmp = await tmpdir(t);
  const d = await openDriver(path.join(tmp, 'root'), { driver: 'btrfs', poolSize: 128 * MiB });
  t.teardown(() => d.close());
  t.is(d.name, 'btrfs');
  t.true(fs.existsSync(path.join(tmp, 'root', 'pool.btrfs')));
  t.is(fs.statSync(path.join(tmp, 'root', 'pool.btrfs')).size, 128 * MiB);
});
