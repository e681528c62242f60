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
import type { Readable } from 'node:stream';
import { BerthError, FailedPreconditionError, InvalidArgumentError } from '../../shared/errors';
import { isNoSpace, tool } from '../../shared/host-tool';
import { snapInfo, taken, VolumeStore } from '../base/volume-store';
import type { CreateOptions, PoolStatus, RemoveOptions, SnapshotInfo, SnapshotMetadata, VolumeInfo } from '../driver';
import { checkName } from '../names';
import { treeFingerprint } from '../../archive/changeset';
import { identity, receiveStream, sendStream, subvolumeIds } from './send-receive';
import { hostFull, LoopPool, PoolInfo } from './pool';
import { SMALLEST_GROW } from './pool-growth';
import { reserveFor, spaceOf as hostSpace } from '../../shared/unpack-guard';
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
   * space is back when remove returns, unless the caller said not to wait
   * (RemoveOptions.waitForSpace).
   */
  override async remove(name: string, opts: RemoveOptions = {}): Promise<void> {
    await super.remove(name, opts);
    if (opts.waitForSpace === false) return;
    await this.reclaim();
  }

  /**
   * Wait until deleted subvolumes are cleaned. The cleaner runs after a transaction commit;
   * left alone, the next one comes with the 30 s commit interval, so `subvolume sync` alone
   * waited ~30 s per removal (a volume rm, a snapshot rm, a bench looping over clones).
   * Committing first (`filesystem sync`) wakes the cleaner now: the same wait measured
   * 10 ms for a 20 MiB subvolume, against 32 s.
   */
  private async reclaim(): Promise<void> {
    await tool('btrfs', ['filesystem', 'sync', this.data]).catch(() => undefined);
    await tool('btrfs', ['subvolume', 'sync', this.data]).catch(() => undefined);
  }

  override async removeSnapshot(name: string, snap: string): Promise<void> {
    await super.removeSnapshot(name, snap);
    await this.op([name], async () => {
      const rec = await this.records.read(name);
      if (rec) await this.tidyAnchors(name, Object.keys(rec.snapshots));
    }).catch(() => undefined); // left for the next receive into the volume
    await this.reclaim();
  }

  /**
   * A pool that is nearly full and cannot grow because the host is nearly full: refuse new
   * writes (a new volume, snapshot, clone, restore, import), naming the pool and the host.
   */
  private async refuseWhenHostFull(): Promise<void> {
    if (!this.pool || !this.opts.autoGrowMs) return;
    await this.autoGrow();
    const info = await this.pool.info();
    const headroom = Math.min(Math.max(info.size * 0.01, 4 * MiB), 256 * MiB);
    if (info.free < headroom && info.growRoom < SMALLEST_GROW) {
      throw hostFull(this.pool.file, path.dirname(this.pool.file), `is full (${info.free} of ${info.size} bytes free) and cannot grow`);
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
    const hostDir = path.dirname(this.pool.file);
    const host = hostSpace(hostDir);
    if (host.free - reserveFor(host.size) < SMALLEST_GROW) return hostFull(this.pool.file, hostDir, 'is full and cannot grow', cause);
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

  // ---- btrfs send / receive (send-receive.ts; used by src/volumes/btrfs-send-layer.ts).
  //
  // A snapshot made by `btrfs receive` keeps its received subvolume as an anchor at
  // volumes/<name>/received/<snap>/<sub>: only that subvolume carries the received UUID a
  // later incremental stream's parent is found by, and a read-only subvolume cannot move to
  // another directory. The snapshot and the volume's files are O(1) snapshots of it; the
  // anchor goes with its snapshot (removeSnapshot) or its volume.

  /**
   * A `btrfs send` stream of snapshot `snap` of volume `name` (incremental from its snapshot
   * `parent`), with the identities a receiver knows them by and the fingerprint of `snap`'s
   * tree. The stream is ended by close() like an export; `done` settles when send exits.
   */
  async sendSnapshot(
    name: string,
    snap: string,
    parent?: string,
  ): Promise<{ stream: Readable; done: Promise<void>; identity: string; fingerprint: string; parentIdentity?: string; parentFingerprint?: string }> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    if (parent !== undefined) checkName(parent, 'snapshot');
    return this.op([name], async () => {
      const rec = await this.need(name);
      this.needSnapshot(rec, snap);
      if (parent !== undefined) this.needSnapshot(rec, parent);
      const ids = identity(await subvolumeIds(this.snapDir(name, snap)));
      const parentIds = parent === undefined ? undefined : identity(await subvolumeIds(this.snapDir(name, parent)));
      const fingerprint = await treeFingerprint(this.snapDir(name, snap));
      const parentFingerprint = parent === undefined ? undefined : await treeFingerprint(this.snapDir(name, parent));
      const p = sendStream(this.snapDir(name, snap), parent === undefined ? undefined : this.snapDir(name, parent));
      const stream = this.track(p.stdout, async () => p.kill());
      return { stream, done: p.done, identity: ids, fingerprint, ...(parent !== undefined ? { parentIdentity: parentIds, parentFingerprint } : {}) };
    });
  }

  /** The received UUID of the anchor behind snapshot `snap` (see above), or undefined: it did not come by btrfs receive. */
  async receivedIdentity(name: string, snap: string): Promise<string | undefined> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    const anchor = await this.anchorOf(name, snap);
    return anchor ? (await subvolumeIds(anchor).catch(() => undefined))?.receivedUuid : undefined;
  }

  /**
   * Make snapshot `opts.snapshot` of volume `name` from a `btrfs send` stream: with `base`,
   * an incremental stream whose parent is the anchor of snapshot `base` (received UUID
   * `parentIdentity`), swapped in for the volume's files as applyChanges does (the volume
   * must be unchanged since `base`); without, a full stream making the new volume `name`.
   * The result must carry received UUID `identity` and tree fingerprint `fingerprint`, or
   * it is INVALID_ARGUMENT and nothing is changed.
   */
  async receiveSnapshot(
    name: string,
    input: Readable,
    opts: { snapshot: string; base?: string; parentIdentity?: string; baseFingerprint?: string; identity: string; fingerprint: string; labels?: Record<string, string>; metadata?: SnapshotMetadata },
  ): Promise<SnapshotInfo> {
    checkName(name, 'volume');
    checkName(opts.snapshot, 'snapshot');
    if (opts.base !== undefined) checkName(opts.base, 'snapshot');
    const metadata = opts.metadata ?? {};
    const receive = async (into: string): Promise<string> => {
      await fs.promises.mkdir(into, { recursive: true, mode: 0o700 });
      const { dir, ids } = await receiveStream(input, into);
      const fp = await treeFingerprint(dir);
      if (ids.receivedUuid !== opts.identity || fp !== opts.fingerprint) {
        throw new InvalidArgumentError(`btrfs receive made a different snapshot than the layer names (${ids.receivedUuid === opts.identity ? 'tree fingerprint' : 'received UUID'} differs)`, {
          hint: 'the btrfs send layer is damaged or hostile; pull it into a dir volume (portable changeset) or push again',
        });
      }
      return dir;
    };
    if (opts.base === undefined) {
      return this.op([name], async () => {
        if (await this.records.read(name)) throw taken('volume', name);
        await this.checkSpace();
        let anchor = '';
        const rec = await this.build(name, { labels: opts.labels ?? {} }, async (dataDir) => {
          const recv = path.join(path.dirname(dataDir), 'received');
          const got = await receive(path.join(recv, opts.snapshot));
          anchor = path.join(this.volDir(name), 'received', opts.snapshot, path.basename(got));
          await this.copyData(got, dataDir, 'writable');
        });
        try {
          await this.copyData(anchor, this.snapDir(name, opts.snapshot), 'snapshot');
          rec.snapshots[opts.snapshot] = { created: new Date().toISOString(), metadata };
          await this.records.write(rec);
        } catch (e) {
          await this.records.delete(name).catch(() => undefined);
          await this.removeData(this.volDir(name)).catch(() => undefined);
          throw this.fsError(e);
        }
        return snapInfo(name, opts.snapshot, rec.snapshots[opts.snapshot]);
      });
    }
    const base = opts.base;
    return this.op([name], async () => {
      const rec = await this.need(name);
      this.needSnapshot(rec, base);
      if (Object.hasOwn(rec.snapshots, opts.snapshot)) throw taken('snapshot', opts.snapshot, name);
      await this.tidyAnchors(name, Object.keys(rec.snapshots));
      const held = await this.anchorOf(name, base);
      if (!held || (await subvolumeIds(held)).receivedUuid !== opts.parentIdentity) {
        throw new FailedPreconditionError(`snapshot ${base} of volume ${name} is not the btrfs parent this stream was sent from`, {
          hint: 'pull the portable changeset instead (it applies on any copy of the base)',
        });
      }
      await this.checkUnchangedSince(name, base, opts.baseFingerprint ?? '', `the btrfs send layer of ${opts.snapshot}`);
      await this.checkSpace();
      const vol = this.volDir(name);
      const tmp = path.join(vol, 'received', `.new-${randomBytes(6).toString('hex')}`);
      const staged = `new-${randomBytes(6).toString('hex')}`;
      const dest = this.snapDir(name, opts.snapshot);
      try {
        const got = await receive(tmp);
        await this.copyData(got, path.join(vol, staged), 'writable');
        if (rec.size !== undefined) await this.limit(path.join(vol, staged), rec.size);
        await this.copyData(got, dest, 'snapshot');
        await fs.promises.rename(tmp, path.join(vol, 'received', opts.snapshot));
        await this.sync(vol);
      } catch (e) {
        for (const p of [path.join(vol, staged), dest, tmp]) await this.removeData(p).catch(() => undefined);
        throw e instanceof BerthError ? e : this.fsError(e);
      }
      rec.snapshots[opts.snapshot] = { created: new Date().toISOString(), metadata };
      await this.swapIn(rec, opts.snapshot, staged);
      return snapInfo(name, opts.snapshot, rec.snapshots[opts.snapshot]);
    });
  }

  /** The received subvolume behind snapshot `snap`, if there is one. */
  private async anchorOf(name: string, snap: string): Promise<string | undefined> {
    const dir = path.join(this.volDir(name), 'received', snap);
    const e = await fs.promises.readdir(dir).catch(() => []);
    return e.length === 1 ? path.join(dir, e[0]) : undefined;
  }

  /** Delete half-received streams and anchors whose snapshot is gone (the caller holds the lock). */
  private async tidyAnchors(name: string, snaps: string[]): Promise<void> {
    const dir = path.join(this.volDir(name), 'received');
    for (const e of await fs.promises.readdir(dir).catch(() => [] as string[])) {
      if (!snaps.includes(e)) await this.removeData(path.join(dir, e));
    }
  }

  protected override async release(): Promise<void> {
    clearInterval(this.growTimer);
    await this.growing?.catch(() => undefined);
    await this.pool?.close();
  }
}
