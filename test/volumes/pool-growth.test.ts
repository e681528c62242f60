/**
 * The btrfs volume pool grows with the disk (issue 18): a volume that fills its room never
 * stops writes to another while the host has space, the pool grows by itself before it
 * fills, `volume pool` shows and grows it, `system df` shows it, and `volume rm` gives
 * the space back before it returns. The "host" is a small tmpfs the test mounts, so
 * nothing here can fill the real disk.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon, exec } from '../helpers/daemon';
import { growthPlan, growRoom } from '../../volumes/drivers/btrfs/pool-growth';
import type { VolumePool } from '../../src/volumes/service';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('growthPlan grows a nearly full pool by half, holds a roomy one, and stops at the host reserve', (t) => {
  const host = { size: 100 * GiB, free: 50 * GiB };
  t.deepEqual(growthPlan({ size: GiB, free: 500 * MiB, fileSize: GiB, allocated: 500 * MiB }, host), { hold: 'enough', room: growRoom({ size: GiB, free: 500 * MiB, fileSize: GiB, allocated: 500 * MiB }, host) });
  t.deepEqual(growthPlan({ size: GiB, free: 100 * MiB, fileSize: GiB, allocated: 950 * MiB }, host), { grow: 1.5 * GiB });
  // The host's room above its reserve (1 GiB here) bounds it, less what the sparse file already promises.
  const tight = { size: 100 * GiB, free: GiB + 200 * MiB };
  t.deepEqual(growthPlan({ size: GiB, free: 10 * MiB, fileSize: GiB, allocated: GiB - 100 * MiB }, tight), { grow: GiB + 100 * MiB });
  const full = { size: 100 * GiB, free: GiB + 10 * MiB };
  t.like(growthPlan({ size: GiB, free: 10 * MiB, fileSize: GiB, allocated: GiB }, full), { hold: 'hostFull' });
});

let d: TestDaemon;
let host: string;
test.before(async () => {
  host = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-pool-host-'));
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=1g,mode=0700', 'berth-test-host', host]);
  d = await TestDaemon.start({ root: host, args: ['--volume-driver', 'btrfs', '--volume-pool-size', '128m', '--volume-default-size', '160m'] });
});
test.after.always(async () => {
  await d?.stop(); // unmounts the tmpfs too (it is the root) and removes it
  await exec('umount', [host]).catch(() => undefined);
  await fs.promises.rm(host, { recursive: true, force: true });
});

async function pool(): Promise<VolumePool> {
  return (await d.volumes.pool()) as VolumePool;
}

/** Write `count` files of 8 MiB into /v of a container using `vol`, paced; how many were written before the first failure. */
async function fill(vol: string, count: number): Promise<number> {
  const r = await d.docker([
    'run', '--rm', '-v', `${vol}:/v`, 'busybox', 'sh', '-c',
    `i=0; while [ $i -lt ${count} ]; do dd if=/dev/urandom of=/v/f$i bs=1M count=8 conv=fsync 2>/dev/null || break; i=$((i+1)); sleep 0.4; done; echo $i`,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

test.serial('filling one volume never stops writes to another while the host has space, and the pool grows by itself', async (t) => {
  t.is((await d.docker(['volume', 'create', 'big'])).code, 0);
  t.is((await d.docker(['volume', 'create', 'other'])).code, 0);
  const before = await pool();
  t.true(before.AutoGrow);
  t.true(before.Size <= 130 * MiB, `a 128 MiB pool: ${before.Size}`);

  // 40 × 8 MiB into `big` is more than its default limit (160 MiB) and more than the pool had.
  const written = await fill('big', 40);
  t.true(written >= 15 && written < 40, `big took ${written} files of 8 MiB before its limit`);
  const after = await pool();
  t.true(after.Size > before.Size, `the pool grew from ${before.Size} to ${after.Size}`);
  t.true(after.FileSize <= after.Allocated + after.HostFree, 'the pool never promises more than the host has');

  t.is(await fill('other', 4), 4, 'the other volume still takes writes');

  // Shown by `volume pool` and `system df`, and grown by hand within the host's room only.
  const shown = await d.berth(['volume', 'pool']);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /Pool file:.*pool\.btrfs/);
  t.regex(shown.stdout, /Host free:/);
  t.regex((await d.berth(['system', 'df'])).stdout, /Volume pool:/);
  const grown = await d.volumes.growPool(after.FileSize + 32 * MiB);
  t.true(grown.FileSize >= after.FileSize + 32 * MiB);
  await t.throwsAsync(d.volumes.growPool(grown.FileSize + 64 * GiB), { code: 'FAILED_PRECONDITION' });
});

test.serial('volume rm gives the space back before it returns', async (t) => {
  t.is((await d.docker(['volume', 'create', 'temp'])).code, 0);
  t.is(await fill('temp', 8), 8);
  const full = await pool();
  t.is((await d.docker(['volume', 'rm', 'temp'])).code, 0);
  const freed = await pool();
  // Used, not Free: the pool may grow meanwhile, which changes Free but not Used.
  t.true(full.Used - freed.Used >= 32 * MiB, `used went from ${full.Used} to ${freed.Used} at once`);
});
