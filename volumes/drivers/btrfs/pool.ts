/**
 * A loop-backed btrfs pool: when the data root is not on btrfs, the btrfs driver keeps its
 * volumes in a file formatted as btrfs (`root/pool.btrfs`), mounted at `root/pool`
 * while a driver is open.
 *
 * Loop devices are the part that leaks, so every path ends with none of ours attached:
 * - open attaches with `losetup --find --show`, mounts, and at once runs `losetup -d` on
 *   the mounted device. The kernel cannot detach a busy device, so it marks it autoclear:
 *   it goes away by itself when the filesystem is finally unmounted, even if we crash.
 * - open after a crash: a pool still mounted at `root/pool` is adopted; loop devices that
 *   `losetup -j FILE` shows for our file are reused if a live btrfs sits on them (the
 *   filesystem is still mounted somewhere, e.g. bind-mounted into a running container) and
 *   detached otherwise.
 * - close unmounts (never lazily: a busy pool is reported) and detaches whatever
 *   `losetup -j FILE` still shows.
 * Several processes may open one root: each registers in `root/pool-users/` (a file named
 * `PID-RANDOM` holding its pid, start time and boot id), and only the last live one
 * unmounts; a user whose process is gone, even if it is a zombie not yet reaped or its pid
 * now belongs to another process, no longer counts. Open, close and grow run under
 * `root/pool.lock`.
 *
 * The file is allocated, not sparse: made and grown with `fallocate` (util-linux), so the
 * host's blocks are reserved for it and a host that fills up later (another program, a
 * log) cannot fail the loop device's writes with EIO under btrfs. When the pool fills, its
 * writers get ENOSPC from btrfs, as on a full disk. The pool is mounted `nodiscard`, so the
 * blocks its deleted files free stay with the pool; holes punched anyway (an `fstrim` of the
 * pool, a pool made by an older, sparse berth) are filled again by `keepAllocated`.
 * A filesystem without fallocate (it answers EOPNOTSUPP) gets a sparse file, as before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import lockfile from 'proper-lockfile';
import { ConflictError, FailedPreconditionError, InvalidArgumentError, UnavailableError } from '../../shared/errors';
import { isNoSpace, tool, ToolError } from '../../shared/host-tool';
import { alive, formatRecord, parseRecord, self } from '../../shared/process';
import { writeFileAtomic } from '../../shared/atomic';
import { Lifecycle } from '../../shared/lifecycle';
import { reserveFor, spaceOf as hostSpace } from '../../shared/unpack-guard';
import type { PoolStatus } from '../driver';
import { growRoom, growthPlan, type GrowthPlan, type PoolSpace } from './pool-growth';

export const POOL_FILE = 'pool.btrfs';
export const POOL_MOUNT = 'pool';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Below this mkfs.btrfs cannot make a useful filesystem. */
export const MIN_POOL_SIZE = 64 * MiB;
/** Below 1 GiB, data and metadata share block groups (mkfs --mixed): btrfs's advice for small filesystems. */
const MIXED_BELOW = GiB;

/** The pool's numbers (bytes; see PoolStatus in driver.ts), less what only the driver knows. */
export type PoolInfo = Omit<PoolStatus, 'autoGrow' | 'growError'>;

export class LoopPool {
  private readonly life = new Lifecycle('volume pool', 'open the driver again');

  private constructor(
    readonly file: string,
    readonly mountpoint: string,
    private readonly root: string,
    private readonly userFile: string,
  ) {}

  /**
   * Mount the pool of `root` (making it first, `size` bytes, if there is none). The pool's
   * size is only used when it is made: a larger pool later is `grow`.
   */
  static async open(root: string, size?: number): Promise<LoopPool> {
    const file = path.join(root, POOL_FILE);
    const mountpoint = path.join(root, POOL_MOUNT);
    const users = path.join(root, 'pool-users');
    await fs.promises.mkdir(mountpoint, { recursive: true, mode: 0o700 });
    await fs.promises.mkdir(users, { recursive: true, mode: 0o700 });
    const userFile = path.join(users, `${process.pid}-${randomBytes(4).toString('hex')}`);
    return withPoolLock(root, async () => {
      if (!fs.existsSync(file)) await makePool(file, size ?? (await defaultPoolSize(root)));
      if (!(await mountedAt(mountpoint))) await attachAndMount(file, mountpoint);
      await writeFileAtomic(userFile, formatRecord(self()));
      const pool = new LoopPool(file, mountpoint, root, userFile);
      // A pool with holes (made sparse by an older berth, or trimmed): reserve them now if
      // the host has the room; if not, the pool still opens, and the next check says why.
      await pool.fillHoles().catch(() => undefined);
      return pool;
    });
  }

  /** Set when the host filesystem has no fallocate: the file then stays sparse. */
  private sparseOnly = false;

  /** Unmount and detach, unless another live process still has the pool open. Twice is harmless. */
  close(): Promise<void> {
    // A close that fails (a busy pool) is thrown, and the next close() tries again.
    return this.life.close(() =>
      withPoolLock(this.root, async () => {
        await fs.promises.rm(this.userFile, { force: true });
        if (!(await othersUsing(path.dirname(this.userFile)))) {
          await unmount(this.mountpoint);
          await detachAll(this.file);
        }
      }),
    );
  }

  /**
   * Grow the pool to `size` bytes (its new total size): the file, the loop device, then
   * btrfs. Refused (FAILED_PRECONDITION) past what the host can hold (growRoom).
   */
  async grow(size: number): Promise<PoolInfo> {
    this.life.check();
    return withPoolLock(this.root, async () => {
      const current = (await fs.promises.stat(this.file)).size;
      if (!Number.isSafeInteger(size) || size <= current) {
        throw new InvalidArgumentError(`the pool is ${current} bytes; cannot grow it to ${size}`, {
          hint: `give a new total size larger than ${current} bytes (a pool cannot shrink)`,
        });
      }
      const room = growRoom(await this.space(), hostSpace(this.root));
      if (size - current > room) {
        throw new FailedPreconditionError(`the volume pool ${this.file} cannot grow to ${size} bytes: the host has room for ${Math.max(room, 0)} more`, {
          hint: `grow it by at most ${Math.max(room, 0)} bytes, or free space on the filesystem of ${this.root}`,
        });
      }
      await this.resize(size);
      return this.info();
    });
  }

  /**
   * Grow the pool if it is nearly full and the host has room (pool-growth.ts decides).
   * Resolves with the plan it followed.
   */
  async autoGrow(): Promise<GrowthPlan> {
    this.life.check();
    await this.keepAllocated();
    const plan = growthPlan(await this.space(), hostSpace(this.root));
    if (!('grow' in plan)) return plan;
    return withPoolLock(this.root, async () => {
      // Under the lock, with fresh numbers: another process may have grown it meanwhile.
      const now = growthPlan(await this.space(), hostSpace(this.root));
      if ('grow' in now) await this.resize(now.grow);
      return now;
    });
  }

  /**
   * Reserve host blocks for the pool file's holes, if it has any (an `fstrim` of the pool
   * punches them through the loop device; a pool made by an older berth was sparse).
   * FAILED_PRECONDITION, naming the pool and the host, when the host lacks the room.
   */
  async keepAllocated(): Promise<void> {
    this.life.check();
    if (this.sparseOnly || !(await hasHoles(this.file))) return;
    await withPoolLock(this.root, () => this.fillHoles());
  }

  /** keepAllocated's work (the caller holds the lock, or is open, which holds it). */
  async fillHoles(): Promise<void> {
    if (this.sparseOnly || !(await hasHoles(this.file))) return;
    const size = (await fs.promises.stat(this.file)).size;
    try {
      if (!(await allocate(this.file, 0, size))) this.sparseOnly = true;
    } catch (e) {
      if (!isNoSpace(e)) throw e;
      throw hostFull(this.file, this.root, `cannot reserve host blocks for the holes of its ${size}-byte file`, e);
    }
  }

  /**
   * The file (its new range allocated on the host), the loop device, then btrfs, to `size`
   * bytes (lock held). A host that cannot give the range leaves the pool as it was.
   */
  private async resize(size: number): Promise<void> {
    const current = (await fs.promises.stat(this.file)).size;
    try {
      if (this.sparseOnly || !(await allocate(this.file, current, size - current))) {
        this.sparseOnly = true;
        await fs.promises.truncate(this.file, size); // no fallocate on this host: sparse
      }
    } catch (e) {
      await fs.promises.truncate(this.file, current).catch(() => undefined); // give back a partial allocation
      if (!isNoSpace(e)) throw e;
      throw hostFull(this.file, this.root, `cannot grow from ${current} to ${size} bytes`, e);
    }
    const dev = (await mountedAt(this.mountpoint))?.source;
    if (!dev) throw new FailedPreconditionError(`the volume pool is not mounted at ${this.mountpoint}`, { hint: 'open the driver again' });
    await tool('losetup', ['-c', dev]);
    await tool('btrfs', ['filesystem', 'resize', 'max', this.mountpoint]);
  }

  async info(): Promise<PoolInfo> {
    const sp = await this.space();
    const host = hostSpace(this.root);
    const st = await fs.promises.statfs(this.mountpoint);
    return {
      file: this.file,
      mountpoint: this.mountpoint,
      size: sp.size,
      free: sp.free,
      used: (st.blocks - st.bfree) * st.bsize,
      fileSize: sp.fileSize,
      allocated: sp.allocated,
      hostSize: host.size,
      hostFree: host.free,
      growRoom: Math.max(growRoom(sp, host), 0),
    };
  }

  /** The pool's filesystem and its file, as the growth plan reads them. */
  private async space(): Promise<PoolSpace> {
    const st = await fs.promises.statfs(this.mountpoint);
    const f = await fs.promises.stat(this.file);
    return { size: st.blocks * st.bsize, free: st.bavail * st.bsize, fileSize: f.size, allocated: f.blocks * 512 };
  }
}

/**
 * 10% of the free space under `root`, at least 1 GiB and at most 2 GiB, and never past the
 * host's reserve (a host without room for the smallest pool gets that, which makePool then
 * refuses naming the host). The pool is allocated, so this much is taken from the host when
 * the first volume is made (every test daemon makes one too); it grows by itself from there,
 * by half its size each time.
 */
export async function defaultPoolSize(root: string): Promise<number> {
  const host = hostSpace(root);
  const size = Math.min(Math.max(host.free * 0.1, GiB), MAX_DEFAULT_POOL, host.free - reserveFor(host.size));
  return Math.max(Math.floor(size / MiB) * MiB, MIN_POOL_SIZE);
}
const MAX_DEFAULT_POOL = 2 * GiB;

/** Build the pool as `<file>.new` and rename it into place: a half-made pool is never used. */
async function makePool(file: string, size: number): Promise<void> {
  const dir = path.dirname(file);
  if (!Number.isSafeInteger(size) || size < MIN_POOL_SIZE) {
    throw new InvalidArgumentError(`a volume pool of ${size} bytes is too small`, {
      hint: `give a pool size of at least ${MIN_POOL_SIZE / MiB} MiB`,
    });
  }
  const host = hostSpace(dir);
  if (size > host.free - reserveFor(host.size)) throw hostFull(file, dir, `cannot be made ${size} bytes large`);
  const tmp = `${file}.new`;
  await fs.promises.rm(tmp, { force: true });
  await fs.promises.writeFile(tmp, '', { flag: 'wx', mode: 0o600 });
  try {
    try {
      if (!(await allocate(tmp, 0, size))) await fs.promises.truncate(tmp, size); // no fallocate here: sparse
    } catch (e) {
      if (isNoSpace(e)) throw hostFull(file, dir, `cannot be made ${size} bytes large`, e);
      throw e;
    }
    // -K: no discard of the new file's blocks (it would punch them out of it again).
    await tool('mkfs.btrfs', ['-q', '-K', ...(size < MIXED_BELOW ? ['--mixed'] : []), '-L', 'berth-volumes', tmp]);
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Reserve host blocks for `length` bytes of `file` from `offset` (util-linux fallocate,
 * mode 0: it fills holes, leaves written data alone, and extends the file if the range ends
 * past it). False when the host filesystem has no fallocate.
 */
async function allocate(file: string, offset: number, length: number): Promise<boolean> {
  try {
    await tool('fallocate', ['-o', String(offset), '-l', String(length), file]);
    return true;
  } catch (e) {
    if (e instanceof ToolError && /Operation not supported/i.test(e.stderr)) return false;
    throw e;
  }
}

/** Whether the pool file has holes: fewer host blocks than its size. */
async function hasHoles(file: string): Promise<boolean> {
  const st = await fs.promises.stat(file);
  return st.blocks * 512 < st.size;
}

/**
 * The host filesystem under the pool is (nearly) full: the error names the pool file, the
 * host directory and its numbers, and says what to do.
 */
export function hostFull(file: string, hostDir: string, what: string, cause?: unknown): FailedPreconditionError {
  const host = hostSpace(hostDir);
  const reserve = reserveFor(host.size);
  return new FailedPreconditionError(
    `the volume pool ${file} ${what}: the host filesystem of ${hostDir} has ${host.free} bytes free and keeps ${reserve} in reserve`,
    {
      hint: `free space on the filesystem of ${hostDir} (the pool then grows by itself), or remove volumes and snapshots you no longer need; berth volume pool shows the numbers`,
      cause,
    },
  );
}

async function attachAndMount(file: string, mountpoint: string): Promise<void> {
  let dev: string | undefined;
  for (const d of await loopDevicesOf(file)) {
    if (!dev && btrfsAlive(d)) dev = d; // the filesystem lives on (mounted elsewhere): mount it again
    else await tool('losetup', ['-d', d]).catch(() => undefined); // a crash's leftover
  }
  const attached = !dev;
  dev ??= (await tool('losetup', ['--find', '--show', file])).trim();
  try {
    // nodiscard: blocks freed in the pool stay reserved for it (btrfs would turn on async
    // discard for a loop device, and the loop device punches discarded ranges out of the file).
    await tool('mount', ['-t', 'btrfs', '-o', 'nodiscard', dev, mountpoint]);
  } catch (e) {
    if (attached) await tool('losetup', ['-d', dev]).catch(() => undefined);
    throw e;
  }
  // Busy now, so this only marks it autoclear: it detaches itself when the pool is unmounted.
  await tool('losetup', ['-d', dev]).catch(() => undefined);
}

async function unmount(mountpoint: string): Promise<void> {
  for (let i = 0; (await mountedAt(mountpoint)) && i < 20; i++) {
    try {
      await tool('umount', [mountpoint]);
    } catch (e) {
      if (!(e instanceof ToolError) || !/busy/i.test(e.stderr) || i === 19) {
        throw new ConflictError(`cannot unmount the volume pool at ${mountpoint}: ${(e as Error).message}`, {
          hint: 'stop whatever has files open under it (a shell, a process using a volume), then close again',
          cause: e,
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Detach every loop device backed by `file` (a busy one is only marked autoclear by the kernel). */
export async function detachAll(file: string): Promise<void> {
  for (const d of await loopDevicesOf(file)) await tool('losetup', ['-d', d]).catch(() => undefined);
}

/** Loop devices backed by `file`, from `losetup -j`. */
export async function loopDevicesOf(file: string): Promise<string[]> {
  const out = await tool('losetup', ['-j', file]);
  return out
    .split('\n')
    .map((l) => l.split(':')[0])
    .filter((d) => d.startsWith('/dev/loop'));
}

/** Whether a mounted btrfs uses `dev` (btrfs lists its devices in sysfs while mounted anywhere). */
function btrfsAlive(dev: string): boolean {
  const name = path.basename(dev);
  try {
    return fs.readdirSync('/sys/fs/btrfs').some((fsid) => fs.existsSync(path.join('/sys/fs/btrfs', fsid, 'devices', name)));
  } catch {
    return false;
  }
}

/** The btrfs mounted at exactly `dir`, from /proc/self/mountinfo. */
export async function mountedAt(dir: string): Promise<{ source: string } | null> {
  const want = await fs.promises.realpath(dir).catch(() => path.resolve(dir));
  const info = await fs.promises.readFile('/proc/self/mountinfo', 'utf8');
  let found: { source: string } | null = null;
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const mnt = unescapeMount(pre.split(' ')[4] ?? '');
    const [fstype, source] = post.split(' ');
    if (mnt === want) found = fstype === 'btrfs' ? { source } : null; // the last mount there is the one seen
  }
  return found;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

async function othersUsing(usersDir: string): Promise<boolean> {
  for (const u of await fs.promises.readdir(usersDir)) {
    // Older berths left the file empty: then only the pid in its name is known.
    const text = await fs.promises.readFile(path.join(usersDir, u), 'utf8').catch(() => '');
    if (alive(parseRecord(text) ?? { pid: Number(u.split('-')[0]) })) return true;
    await fs.promises.rm(path.join(usersDir, u), { force: true }); // a process that died with the pool open
  }
  return false;
}


async function withPoolLock<T>(root: string, fn: () => Promise<T>): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(root, {
      realpath: false,
      lockfilePath: path.join(root, 'pool.lock'),
      stale: 10_000,
      retries: { retries: 100, factor: 1.3, minTimeout: 10, maxTimeout: 500 },
      onCompromised: (e) => process.emitWarning(`berth: volume pool lock lost: ${e.message}`),
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    throw new UnavailableError(`the volume pool under ${root} is being opened or closed by another process`, {
      hint: 'retry in a moment',
    });
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}
