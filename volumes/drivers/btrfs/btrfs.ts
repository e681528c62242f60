/**
 * The `btrfs` volume driver: each volume is a btrfs subvolume.
 *
 * - snapshot = a read-only subvolume snapshot: O(1), whatever the volume holds;
 * - clone = a writable snapshot (of the volume or of one of its snapshots): O(1);
 * - restore = a writable snapshot of the chosen snapshot, swapped in for the volume's
 *   subvolume by renames under a journal (VolumeStore), then the old one is deleted;
 * - export of the live volume reads a private read-only snapshot, so the tar is a
 *   point-in-time copy even while containers write; export of a snapshot reads it directly;
 * - a size is a qgroup limit on the volume's subvolume (quotas are turned on for the
 *   filesystem the first time a volume asks for one).
 *
 * Where the data root is on btrfs, volumes live right there. Elsewhere (ext4, xfs) the
 * driver keeps them in a loop-backed btrfs pool file under the root (pool.ts): mounted at
 * open, unmounted and its loop device detached at close, growable with `grow`.
 *
 * A full pool: writers in a volume get ENOSPC (or EDQUOT at their own limit) from the
 * kernel; snapshot, clone, restore and import refuse up front with FAILED_PRECONDITION
 * while less than a small headroom is free, and map any ENOSPC underneath to the same
 * error; the hint says how to make room. Other volumes' files are untouched, and remove
 * and removeSnapshot still work (they only delete).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError, FailedPreconditionError } from '../../shared/errors';
import { isNoSpace, tool } from '../../shared/host-tool';
import { VolumeStore } from '../base/volume-store';
import type { CreateOptions, PoolStatus, RemoveOptions, VolumeInfo } from '../driver';
import { LoopPool, PoolInfo } from './pool';
import { recordToken, self } from '../../shared/process';
import { createSubvolume, deleteSubvolume, enableQuota, isSubvolume, limitSubvolume, snapshotSubvolume } from './subvolumes';

/** statfs f_type of btrfs (BTRFS_SUPER_MAGIC). */
export const BTRFS_MAGIC = 0x9123683e;
const MiB = 1024 * 1024;

export interface BtrfsOptions {
  /** Size in bytes of the pool file, if one has to be made (default: pool.ts defaultPoolSize). */
  poolSize?: number;
  /**
   * Check the pool every this many ms and grow it before it fills while the host has room
   * (pool-growth.ts); also checked before each snapshot, clone, restore and import.
   * Undefined or 0: the pool keeps its size unless grown by hand.
   */
  autoGrowMs?: number;
  /** The size limit (qgroup) of a volume created without one; undefined: none. */
  defaultSize?: number;
}

export class BtrfsDriver extends VolumeStore {
  readonly name = 'btrfs';
  protected readonly enforcesSize = true;
  protected override readonly copiesAreAtomic = true;
  private quotaOn = false;
  private growTimer?: NodeJS.Timeout;
  private growing?: Promise<unknown>;
  /** The last automatic grow's failure, shown by poolInfo until one works. */
  private growError?: string;

  private constructor(
    root: string,
    data: string,
    /** The loop-backed pool, or null when the data root is itself on btrfs. */
    private readonly pool: LoopPool | null,
    private readonly opts: BtrfsOptions,
  ) {
    super(root, data);
    if (pool && opts.autoGrowMs) {
      this.growTimer = setInterval(() => void this.autoGrow().catch(() => undefined), opts.autoGrowMs);
      this.growTimer.unref();
    }
  }

  /**
   * Open (or create) a btrfs driver in `root`: on btrfs directly, otherwise in a pool file
   * under it (made on first open, `poolSize` bytes). Cleans up what a crash left.
   */
  static async open(root: string, opts: BtrfsOptions = {}): Promise<BtrfsDriver> {
    const dir = path.resolve(root);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const onBtrfs = (await fs.promises.statfs(dir)).type === BTRFS_MAGIC;
    const pool = onBtrfs ? null : await LoopPool.open(dir, opts.poolSize);
    const d = new BtrfsDriver(dir, pool ? pool.mountpoint : dir, pool, opts);
    try {
      await d.init();
    } catch (e) {
      await pool?.close().catch(() => undefined);
      throw e;
    }
    return d;
  }

  /** The pool file and its size and free space; null when volumes live directly on a btrfs root. */
  async poolInfo(): Promise<PoolStatus | null> {
    if (!this.pool) return null;
    return { ...(await this.pool.info()), autoGrow: !!this.opts.autoGrowMs, ...(this.growError ? { growError: this.growError } : {}) };
  }

  /** One automatic check (one at a time): grow the pool if it is nearly full and the host has room. */
  private autoGrow(): Promise<unknown> {
    if (!this.pool || !this.opts.autoGrowMs) return Promise.resolve();
    const pool = this.pool;
    this.growing ??= pool
      .autoGrow()
      .then(
        () => (this.growError = undefined),
        (e: Error) => (this.growError = e.message),
      )
      .finally(() => (this.growing = undefined));
    return this.growing;
  }

  override create(name: string, opts: CreateOptions = {}): Promise<VolumeInfo> {
    return super.create(name, { ...opts, size: opts.size ?? this.opts.defaultSize });
  }

  /**
   * Remove, then wait for btrfs's cleaner to free the deleted subvolumes' blocks, so the
   * space is back when remove returns (it would come back some 20 s later by itself).
   */
  override async remove(name: string, opts: RemoveOptions = {}): Promise<void> {
    await super.remove(name, opts);
    await tool('btrfs', ['subvolume', 'sync', this.data]).catch(() => undefined);
  }

  override async removeSnapshot(name: string, snap: string): Promise<void> {
    await super.removeSnapshot(name, snap);
    await tool('btrfs', ['subvolume', 'sync', this.data]).catch(() => undefined);
  }

  /** A pool that is nearly full and cannot grow because the host is nearly full: refuse new writes, naming both. */
  private async refuseWhenHostFull(): Promise<void> {
    if (!this.pool || !this.opts.autoGrowMs) return;
    await this.autoGrow();
    const info = await this.pool.info();
    const headroom = Math.min(Math.max(info.size * 0.01, 4 * MiB), 256 * MiB);
    if (info.free < headroom && info.growRoom < 16 * MiB) {
      throw new FailedPreconditionError(`the volume pool ${this.pool.file} is full and the host's filesystem under it is nearly full (${info.hostFree} bytes free)`, {
        hint: 'free space on the host or remove volumes and snapshots you no longer need; berth volume pool shows the numbers',
      });
    }
  }

  /** Grow the pool file to `size` bytes (its new total). Not possible without a pool file. */
  async grow(size: number): Promise<PoolInfo> {
    if (!this.pool) {
      throw new FailedPreconditionError(`volumes live directly on the btrfs filesystem of ${this.root}: there is no pool file to grow`, {
        hint: 'grow that filesystem itself (btrfs device add / filesystem resize)',
      });
    }
    return this.pool.grow(size);
  }

  protected async makeData(dest: string): Promise<void> {
    await this.refuseWhenHostFull(); // a new volume is new writes
    await createSubvolume(dest);
  }

  protected async copyData(src: string, dest: string, kind: 'snapshot' | 'writable'): Promise<void> {
    if (isSubvolume(await fs.promises.lstat(src))) return snapshotSubvolume(src, dest, kind === 'snapshot');
    // A plain directory (data that came from elsewhere): copy it into a new subvolume, and
    // sync, since the caller relies on copies being durable when they return.
    await createSubvolume(dest);
    await tool('cp', ['-a', '--reflink=auto', '-T', '--', src, dest]);
    if (kind === 'snapshot') await tool('btrfs', ['property', 'set', '-t', 'subvol', dest, 'ro', 'true']);
    await this.sync(dest);
  }

  protected async removeData(p: string): Promise<void> {
    const st = await fs.promises.lstat(p).catch(() => null);
    if (!st) return;
    try {
      if (!st.isDirectory()) return await fs.promises.rm(p, { force: true });
      if (isSubvolume(st)) return await deleteSubvolume(p);
      // One of our plain directories (a volume's, `snapshots/`, debris): its subvolumes first.
      for (const e of await fs.promises.readdir(p)) await this.removeData(path.join(p, e));
      await fs.promises.rmdir(p);
    } catch (e) {
      if (fs.existsSync(p)) throw e; // else someone else deleted it meanwhile: done all the same
    }
  }

  protected override async limit(dir: string, size: number): Promise<void> {
    if (!this.quotaOn) {
      await enableQuota(this.data);
      this.quotaOn = true;
    }
    await limitSubvolume(dir, size);
  }

  /**
   * Refuse to start a snapshot, clone, restore or import with less than 1% of the
   * filesystem (4 MiB to 256 MiB) free. Near full, btrfs cannot be trusted to finish one
   * cleanly, and a snapshot taken then pins every block the volume rewrites next.
   */
  protected override async checkSpace(): Promise<void> {
    await this.refuseWhenHostFull();
    const st = await fs.promises.statfs(this.data);
    const headroom = Math.min(Math.max(st.blocks * st.bsize * 0.01, 4 * MiB), 256 * MiB);
    if (st.bavail * st.bsize < headroom) throw this.noSpace(undefined);
  }

  protected override noSpace(cause: unknown): BerthError {
    if (!this.pool) return super.noSpace(cause);
    return new FailedPreconditionError(`the volume pool ${this.pool.file} is full`, {
      hint: 'make room: remove snapshots or volumes you no longer need, or grow the pool',
      cause,
    });
  }

  /**
   * A private read-only snapshot, so the tar is point-in-time. On a full pool (no room even
   * for that) the live files are exported instead: getting data off a full pool must work.
   */
  protected override async liveExportSource(name: string): Promise<{ dir: string; done?: () => Promise<void> }> {
    const dir = path.join(this.stagingDir, `export-${recordToken(self())}-${randomBytes(6).toString('hex')}`);
    try {
      await this.copyData(this.dataDir(name), dir, 'snapshot');
    } catch (e) {
      await this.removeData(dir).catch(() => undefined);
      if (isNoSpace(e)) return { dir: this.dataDir(name) };
      throw e;
    }
    return { dir, done: () => this.removeData(dir) };
  }

  protected override async release(): Promise<void> {
    clearInterval(this.growTimer);
    await this.growing?.catch(() => undefined);
    await this.pool?.close();
  }
}
