/**
 * Choosing the volume driver: the one place that knows every driver. The default is the
 * best this host supports: btrfs (O(1) snapshots and clones) when the kernel has btrfs and
 * the tools are installed, else dir. The choice is written to `<root>/driver` the first
 * time, and later opens keep it: volumes made by one driver are invisible to the other,
 * so a host that loses btrfs-progs must fail loudly, not show an empty volume list.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../shared/errors';
import { writeFileAtomic } from '../shared/atomic';
import { BTRFS_MAGIC, BtrfsDriver } from './btrfs/btrfs';
import { DirDriver } from './dir/dir';
import type { VolumeDriver } from './driver';

export type DriverName = 'btrfs' | 'dir';

export interface OpenDriverOptions {
  /** Which driver; default: the one `root` was made with, else the best this host supports. */
  driver?: DriverName;
  /** btrfs only: size of the pool file, if one has to be made. */
  poolSize?: number;
  /** btrfs only: grow the pool automatically, checking every this many ms (BtrfsOptions). */
  autoGrowMs?: number;
  /** btrfs only: the size limit of a volume created without one. */
  defaultSize?: number;
}

export interface DriverChoice {
  driver: DriverName;
  /** Why, in words for a log line: "btrfs: kernel and btrfs-progs present". */
  reason: string;
}

/** The best driver this host supports for a data root at `root`, and why. */
export async function bestDriver(root: string): Promise<DriverChoice> {
  const onBtrfs = await statfsType(root).then((t) => t === BTRFS_MAGIC);
  const btrfsTool = which('btrfs');
  if (onBtrfs && btrfsTool) return { driver: 'btrfs', reason: 'btrfs: the data root is on btrfs' };
  const missing = [
    !kernelHasBtrfs() && 'the kernel has no btrfs',
    !btrfsTool && 'btrfs is not installed',
    !which('mkfs.btrfs') && 'mkfs.btrfs is not installed',
    !which('losetup') && 'losetup is not installed',
  ].filter((x): x is string => typeof x === 'string');
  if (missing.length === 0) return { driver: 'btrfs', reason: 'btrfs: kernel and btrfs-progs present (a pool file under the data root)' };
  return { driver: 'dir', reason: `dir: ${missing.join(', ')} (apt-get install btrfs-progs for O(1) snapshots)` };
}

/**
 * Open the volume driver for `root`. An explicit `driver` that differs from the one the
 * root was made with is refused (FAILED_PRECONDITION): its volumes would seem to vanish.
 */
export async function openDriver(root: string, opts: OpenDriverOptions = {}): Promise<VolumeDriver> {
  const dir = path.resolve(root);
  if (opts.driver !== undefined && opts.driver !== 'btrfs' && opts.driver !== 'dir') {
    throw new InvalidArgumentError(`unknown volume driver ${JSON.stringify(opts.driver)}`, { hint: "choose 'btrfs' or 'dir'" });
  }
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  const marker = path.join(dir, 'driver');
  const recorded = (await fs.promises.readFile(marker, 'utf8').catch(() => '')).trim() as DriverName | '';
  if (recorded && opts.driver && recorded !== opts.driver) {
    throw new FailedPreconditionError(`${dir} holds ${recorded} volumes; it cannot be opened with the ${opts.driver} driver`, {
      hint: `open it with the ${recorded} driver, or give the ${opts.driver} driver its own data root`,
    });
  }
  const name = recorded || opts.driver || (await bestDriver(dir)).driver;
  if (name === 'btrfs') await requireBtrfs(dir);
  const driver = name === 'btrfs' ? await BtrfsDriver.open(dir, { poolSize: opts.poolSize, autoGrowMs: opts.autoGrowMs, defaultSize: opts.defaultSize }) : await DirDriver.open(dir);
  if (!recorded) {
    // Only once the driver has opened: a root whose first open failed is not tied to it.
    await writeFileAtomic(marker, name + '\n', 0o644).catch(async (e) => {
      await driver.close().catch(() => undefined);
      throw e;
    });
  }
  return driver;
}

async function requireBtrfs(dir: string): Promise<void> {
  const choice = await bestDriver(dir);
  if (choice.driver !== 'btrfs') {
    throw new FailedPreconditionError(`the btrfs volume driver cannot run here: ${choice.reason.replace(/^dir: /, '')}`, {
      hint: 'apt-get install btrfs-progs (and a kernel with btrfs), or use the dir driver',
    });
  }
}

function kernelHasBtrfs(): boolean {
  try {
    if (/\tbtrfs$/m.test(fs.readFileSync('/proc/filesystems', 'utf8'))) return true;
  } catch {
    // no /proc: fall through to the module check
  }
  // Not loaded yet, but mount(8) loads it on demand.
  const release = os.release();
  return ['kernel/fs/btrfs/btrfs.ko', 'kernel/fs/btrfs/btrfs.ko.xz', 'kernel/fs/btrfs/btrfs.ko.zst'].some((m) =>
    fs.existsSync(path.join('/lib/modules', release, m)),
  );
}

function which(cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.some((d) => {
    try {
      fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function statfsType(p: string): Promise<number> {
  try {
    return (await fs.promises.statfs(p)).type;
  } catch {
    return 0;
  }
}
