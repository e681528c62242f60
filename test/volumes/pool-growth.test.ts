/**
 * The btrfs volume pool grows with the disk (issue 18): a volume that fills its room never
 * stops writes to another while the host has space, the pool grows by itself before it
 * fills, `volume pool` shows and grows it, `system df` shows it, `volume rm` gives the
 * space back before it returns, the pool file is allocated (never sparse), and a host
 * that fills up gives writers ENOSPC inside the pool, never an I/O error, while berth
 * refuses new volumes with an error naming the pool.
 *
 * The "host" is a small ext4 filesystem on a loop device the test makes (an image file in
 * the temp dir), so nothing here can fill the real disk; the daemon's data root is a
 * directory on it, and the test fills the rest of it with a file of its own.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon, exec, unmountUnder } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { growthPlan, growRoom } from '../../volumes/drivers/btrfs/pool-growth';
import type { VolumePool } from '../../src/volumes/service';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('growthPlan grows a nearly full pool by half, holds a roomy one, and stops at the host reserve', (t) => {
  const host = { size: 100 * GiB, free: 50 * GiB };
  t.deepEqual(growthPlan({ size: GiB, free: 500 * MiB, fileSize: GiB, allocated: 500 * MiB }, host), { hold: 'enough', room: growRoom({ size: GiB, free: 500 * MiB, fileSize: GiB, allocated: 500 * MiB }, host) });
  t.deepEqual(growthPlan({ size: GiB, free: 100 * MiB, fileSize: GiB, allocated: 950 * MiB }, host), { grow: 1.5 * GiB });
  // The host's room above its reserve (1 GiB here) bounds it, less what holes in the file already promise.
  const tight = { size: 100 * GiB, free: GiB + 200 * MiB };
  t.deepEqual(growthPlan({ size: GiB, free: 10 * MiB, fileSize: GiB, allocated: GiB - 100 * MiB }, tight), { grow: GiB + 100 * MiB });
  const full = { size: 100 * GiB, free: GiB + 10 * MiB };
  t.like(growthPlan({ size: GiB, free: 10 * MiB, fileSize: GiB, allocated: GiB }, full), { hold: 'hostFull' });
});

let d: TestDaemon | undefined;
let tmp: string;
let host: string;
let dev: string | undefined;

/** Stop the daemon, unmount the host filesystem and detach its loop device (twice is harmless). */
async function teardown(): Promise<void> {
  await d?.stop();
  d = undefined;
  if (!tmp) return;
  await unmountUnder(tmp);
  if (dev) await exec('losetup', ['-d', dev]).catch(() => undefined);
  dev = undefined;
  await fs.promises.rm(tmp, { recursive: true, force: true });
}

test.before(async () => {
  tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-pool-host-'));
  const img = path.join(tmp, 'host.img');
  host = path.join(tmp, 'host');
  await fs.promises.mkdir(host);
  await fs.promises.writeFile(img, '');
  await fs.promises.truncate(img, 1536 * MiB);
  // -m 0: no blocks kept for root, so the free space statfs shows is all there is.
  await exec('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'nodiscard', img]);
  dev = (await exec('losetup', ['--find', '--show', img])).stdout.trim();
  await exec('mount', ['-t', 'ext4', dev, host]);
  await fs.promises.mkdir(path.join(host, 'root'), { mode: 0o700 });
  d = await TestDaemon.start({ root: path.join(host, 'root'), args: ['--volume-driver', 'btrfs', '--volume-pool-size', '128m', '--volume-default-size', '160m'] });
});
test.after.always(teardown);

function daemon(): TestDaemon {
  if (!d) throw new Error('the test daemon is not running');
  return d;
}

async function pool(): Promise<VolumePool> {
  return (await daemon().volumes.pool()) as VolumePool;
}

/** Host bytes the pool file really holds, from stat (st_blocks), against its size. */
function onDisk(p: VolumePool): { blocks: number; size: number } {
  const st = fs.statSync(p.File);
  return { blocks: st.blocks * 512, size: st.size };
}

/**
 * Write up to `count` files of 8 MiB into /v of a container using `vol`, pausing `pause`
 * seconds between them; how many were written before the first failure, and its message.
 */
async function fill(vol: string, count: number, pause = 0.4): Promise<{ files: number; error: string }> {
  const r = await daemon().docker([
    'run', '--rm', '-v', `${vol}:/v`, 'busybox', 'sh', '-c',
    `i=0; while [ $i -lt ${count} ]; do dd if=/dev/urandom of=/v/f$i bs=1M count=8 conv=fsync 2>/tmp/err || break; i=$((i+1)); sleep ${pause}; done; echo $i; cat /tmp/err`,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
  const [files, ...error] = r.stdout.trim().split('\n');
  return { files: Number(files), error: error.join('\n') };
}

async function checksums(vol: string): Promise<string> {
  const r = await daemon().docker(['run', '--rm', '-v', `${vol}:/v`, 'busybox', 'sh', '-c', 'cd /v && sha256sum f*']);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

test.serial('filling one volume never stops writes to another while the host has space, and the pool grows by itself, allocated', async (t) => {
  const dd = daemon();
  t.is((await dd.docker(['volume', 'create', 'big'])).code, 0);
  t.is((await dd.docker(['volume', 'create', 'other'])).code, 0);
  const before = await pool();
  t.true(before.AutoGrow);
  t.true(before.Size <= 130 * MiB, `a 128 MiB pool: ${before.Size}`);
  const made = onDisk(before);
  t.true(made.blocks >= made.size, `the new pool file is allocated, not sparse: ${made.blocks} of ${made.size} bytes`);
  t.true(before.Allocated >= before.FileSize);

  // 40 × 8 MiB into `big` is more than its default limit (160 MiB) and more than the pool had.
  const { files: written } = await fill('big', 40);
  t.true(written >= 15 && written < 40, `big took ${written} files of 8 MiB before its limit`);
  const after = await pool();
  t.true(after.Size > before.Size, `the pool grew from ${before.Size} to ${after.Size}`);
  const grownOnDisk = onDisk(after);
  t.true(grownOnDisk.blocks >= grownOnDisk.size, `the grown pool file is allocated, not sparse: ${grownOnDisk.blocks} of ${grownOnDisk.size} bytes`);
  t.true(after.FileSize <= after.Allocated + after.HostFree, 'the pool never promises more than the host has');

  t.is((await fill('other', 4)).files, 4, 'the other volume still takes writes');

  // Shown by `volume pool` and `system df`, and grown by hand within the host's room only.
  const shown = await dd.berth(['volume', 'pool']);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /Pool file:.*pool\.btrfs/);
  t.regex(shown.stdout, /Host free:/);
  t.regex((await dd.berth(['system', 'df'])).stdout, /Volume pool:/);
  const grown = await dd.volumes.growPool(after.FileSize + 32 * MiB);
  t.true(grown.FileSize >= after.FileSize + 32 * MiB);
  t.true(grown.Allocated >= grown.FileSize, 'a grow by hand is allocated too');
  await t.throwsAsync(dd.volumes.growPool(grown.FileSize + 64 * GiB), { code: 'FAILED_PRECONDITION' });
});

test.serial('volume rm gives the space back before it returns', async (t) => {
  const dd = daemon();
  t.is((await dd.docker(['volume', 'create', 'temp'])).code, 0);
  t.is((await fill('temp', 8)).files, 8);
  const full = await pool();
  t.is((await dd.docker(['volume', 'rm', 'temp'])).code, 0);
  const freed = await pool();
  // Used, not Free: the pool may grow meanwhile, which changes Free but not Used.
  t.true(full.Used - freed.Used >= 32 * MiB, `used went from ${full.Used} to ${freed.Used} at once`);
});

test.serial('holes punched into the pool file (an fstrim of the pool) are reserved on the host again', async (t) => {
  const p = await pool();
  const trim = await exec('fstrim', ['-v', p.Mountpoint]);
  const trimmed = Number(/\((\d+) bytes\) trimmed/.exec(trim.stdout)?.[1] ?? 0);
  t.true(trimmed >= 16 * MiB, `fstrim punched ${trimmed} bytes out of the pool file through its loop device`);
  const again = await eventually(async () => {
    const q = await pool();
    const st = onDisk(q);
    return st.blocks >= st.size && q.Allocated >= q.FileSize && st;
  }, { message: 'the pool file to be allocated again' });
  t.log(`${again.blocks} of ${again.size} bytes allocated`);
});

test.serial('a host that fills up: the pool keeps what it reserved, writers get ENOSPC not EIO, and berth refuses new volumes naming the pool', async (t) => {
  const dd = daemon();
  t.is((await dd.docker(['volume', 'create', 'keep'])).code, 0);
  t.is((await fill('keep', 2, 0)).files, 2);
  const kept = await checksums('keep');
  // Room in the pool first, then fill the host (outside the data root) to below its reserve
  // (64 MiB on this 1.5 GiB filesystem), as another program on the host would.
  const roomy = await dd.volumes.growPool((await pool()).FileSize + 192 * MiB);
  t.true(roomy.Free >= 150 * MiB, `the pool has ${roomy.Free} bytes free`);
  const filler = path.join(host, 'filler');
  const hostFree = fs.statfsSync(host).bavail * fs.statfsSync(host).bsize;
  await exec('fallocate', ['-l', String(hostFree - 32 * MiB), filler]);
  const tight = await pool();
  t.true(tight.HostFree <= 40 * MiB, `the host has ${tight.HostFree} bytes free`);
  t.is(tight.GrowRoom, 0, 'the pool cannot grow');

  // The space the pool reserved is still there: far more than the host has left goes in,
  // then btrfs answers ENOSPC (a sparse pool would have failed in the loop device with EIO).
  t.is((await dd.docker(['volume', 'create', '-o', 'size=4g', 'hog'])).code, 0);
  const hog = await fill('hog', 60, 0);
  t.true(hog.files * 8 * MiB >= tight.Free - 64 * MiB, `hog took ${hog.files} files of 8 MiB of the pool's ${tight.Free} free bytes`);
  t.true(hog.files < 60, 'the pool filled');
  t.regex(hog.error, /No space left on device/);
  t.notRegex(hog.error, /Input\/output error/);
  await exec('btrfs', ['device', 'stats', '--check', tight.Mountpoint]); // fails on any I/O error counted
  const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === tight.Mountpoint);
  t.regex(mountinfo ?? '', / rw[, ]/, 'the pool is still mounted read-write');

  // New volumes are refused up front, with an error naming the pool and the host.
  const err = await t.throwsAsync(dd.volumes.create({ Name: 'late' }), { code: 'FAILED_PRECONDITION' });
  t.true(err?.message.includes(tight.File), err?.message);
  t.true(err?.message.includes(path.dirname(tight.File)), err?.message);
  t.truthy((err as { hint?: string } | undefined)?.hint);
  t.false((await dd.volumes.list()).Volumes.some((v) => v.Name === 'late'), 'no half-made volume');
  t.is(await checksums('keep'), kept, 'other volumes keep their data');

  // Removing the hog gives its space back: new volumes and writes work again.
  t.is((await dd.docker(['volume', 'rm', 'hog'])).code, 0);
  t.is((await dd.docker(['volume', 'create', 'late'])).code, 0);
  t.is((await fill('late', 2, 0)).files, 2);
  await fs.promises.rm(filler);
});

test.serial('the test leaves no mount and no loop device behind', async (t) => {
  const img = path.join(tmp, 'host.img');
  t.not((await exec('losetup', ['-j', img])).stdout.trim(), '', 'the host filesystem is on a loop device until now');
  await teardown();
  t.false(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(tmp), 'nothing mounted under the test dir');
  // The pool's loop device is autoclear: the kernel detaches it once its last user is gone.
  await eventually(async () => !(await exec('losetup', ['-a'])).stdout.includes(tmp), { message: 'no loop device backed by a file of the test' });
});
