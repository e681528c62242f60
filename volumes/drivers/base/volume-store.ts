/**
 * VolumeStore: everything the volume drivers share, so that each driver is only the few
 * primitives that differ (make, copy, delete a data directory; enforce a size; say how full
 * it is). Lifecycle, names, locking, metadata, crash repair, export and import live here,
 * once, and every driver passes the same conformance suite (test/volumes/).
 *
 * Layout. `root` is the driver's directory on the host filesystem; `data` is where volume
 * data lives: `root` itself for dir (and for btrfs when `root` is on btrfs), the mounted
 * pool for a loop-backed btrfs pool.
 *
 *   root/meta/<name>/volume.json    the volume's record (records.ts): the commit point
 *   root/locks/<hash>.lock          the volume's lock (locks.ts)
 *   data/volumes/<name>/_data       the volume's files: its mountpoint
 *   data/volumes/<name>/snapshots/<snap>   read-only snapshots
 *   data/volumes/<name>/snapshots/.new-*, .rm-*   a snapshot being built / deleted (a
 *                                   read-only subvolume cannot move to another directory;
 *                                   the dot keeps these apart from every valid snapshot name)
 *   data/volumes/<name>/new-*, rm-*        a restore's new copy / the old data
 *   data/staging/new-<hash>-*       a volume being built (create, clone, import)
 *   data/staging/rm-<hash>-*        a volume being deleted
 *   data/staging/export-<pid.start.boot>-*  a private snapshot an export is reading (btrfs)
 *
 * Crash safety, by ordering. A volume or snapshot is built under a `new-*` name, renamed
 * into place, synced, and only then named by its record. Removal deletes it from the record
 * first, renames it to `rm-*`, then deletes it. So a record never names a missing
 * directory, and any directory no record names is debris. Debris is removed by whoever
 * next holds the volume's lock (every operation runs `repair` first) and by `open` for all
 * volumes not busy in another process. A restore is the one change with two renames; its
 * record carries a journal (`restoring`) from the moment the new copy is complete, and
 * `repair` finishes the swap, so a crash at any point leaves a whole volume.
 *
 * Removal never needs to write into the data filesystem: the record is on `root`, and
 * deleting only takes rmdir, unlink and `btrfs subvolume delete`, which btrfs allows on a
 * full filesystem (a rename does not: then the data is deleted in place). So a full pool
 * can always be emptied through the driver.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type {
  CloneOptions,
  CreateOptions,
  ExportOptions,
  ImportOptions,
  RemoveOptions,
  SnapshotInfo,
  SnapshotMetadata,
  SnapshotOptions,
  VolumeDriver,
  VolumeInfo,
  VolumeUsage,
} from '../driver';
import { checkName, isValidName } from '../names';
import {
  AlreadyExistsError,
  BerthError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  toBerthError,
} from '../../shared/errors';
import { fsyncDir } from '../../shared/atomic';
import { Lifecycle } from '../../shared/lifecycle';
import { exportTree, importTree } from './tree-archive';
import { applyLayer } from '../../archive/apply';
import { diffTrees, packChangeset, readChangesetHeader } from '../../archive/changeset';
import { isNoSpace, isOverQuota, tool } from '../../shared/host-tool';
import { lockKey, VolumeLocks } from './locks';
import { Records, SnapshotRecord, VolumeRecord } from './records';
import { treeUsage } from './usage';
import { alive, parseToken } from '../../shared/process';
import { faultPoint } from '../../shared/fault';

const DATA = '_data';
const SNAPSHOTS = 'snapshots';
const MAX_METADATA_BYTES = 64 * 1024;

export abstract class VolumeStore implements VolumeDriver {
  abstract readonly name: string;
  protected readonly records: Records;
  protected readonly locks: VolumeLocks;
  private readonly life = new Lifecycle('volume driver', 'open the driver again');
  private readonly running = new Set<Promise<unknown>>();
  private readonly exports = new Map<Readable, Promise<void>>();

  protected constructor(
    /** The driver's directory on the host filesystem (records, locks). */
    readonly root: string,
    /** Where `volumes/` and `staging/` live. */
    protected readonly data: string,
  ) {
    this.records = new Records(path.join(root, 'meta'));
    this.locks = new VolumeLocks(path.join(root, 'locks'));
  }

  // ---- What a driver provides. Paths given are always inside `data`.

  /** Make an empty, writable data directory at `dest` (which does not exist yet). */
  protected abstract makeData(dest: string): Promise<void>;
  /**
   * Make `dest` (which does not exist yet) a copy of the data directory `src`: read-only
   * for a snapshot, writable for a clone or a restore. Owners, modes, times, hardlinks,
   * symlinks and xattrs are kept.
   */
  protected abstract copyData(src: string, dest: string, kind: 'snapshot' | 'writable'): Promise<void>;
  /** Delete the tree at `p`, whatever of ours it holds (data, snapshots, a whole volume directory, half-made debris). Absent is fine. */
  protected abstract removeData(p: string): Promise<void>;
  /**
   * Whether `copyData` makes its copy appear whole or not at all, durable when it returns
   * (a btrfs snapshot is one transaction commit). Then a snapshot is made right at its
   * final path, with no staging rename and no extra sync: on btrfs, taking a snapshot is
   * one ioctl and one record write.
   */
  protected readonly copiesAreAtomic: boolean = false;
  /** Whether `size` in CreateOptions can be enforced. */
  protected abstract readonly enforcesSize: boolean;
  /** Limit the writable data directory `dir` to `size` bytes. Only called when enforcesSize. */
  protected async limit(_dir: string, _size: number): Promise<void> {}
  /** FAILED_PRECONDITION (via `noSpace`) if there is too little room to start taking a snapshot, clone or import. */
  protected async checkSpace(): Promise<void> {}
  /** The error for "the filesystem is full", in this driver's words: the hint says how to make room. */
  protected noSpace(cause: unknown): BerthError {
    return new FailedPreconditionError(`no space left on the filesystem holding ${this.data}`, {
      hint: 'make room: remove snapshots or volumes you no longer need, or free space on that filesystem',
      cause,
    });
  }
  /** A directory holding the live volume's files for export, and what to do when the export ends. */
  protected async liveExportSource(name: string): Promise<{ dir: string; done?: () => Promise<void> }> {
    return { dir: this.dataDir(name) };
  }
  /** Release what the driver holds; runs once, after every operation has ended. */
  protected async release(): Promise<void> {}

  // ---- Opening.

  /** Create the layout and clean up whatever crashes left (what another process is busy with is left alone). */
  protected async init(): Promise<void> {
    for (const d of [this.volumesDir, this.stagingDir]) await fs.promises.mkdir(d, { recursive: true, mode: 0o700 });
    await this.records.init();
    await fs.promises.mkdir(path.join(this.root, 'locks'), { recursive: true, mode: 0o700 });
    await this.cleanStaging();
    const names = new Set([...(await this.records.entries()), ...(await readdirOrEmpty(this.volumesDir)).filter(isValidName)]);
    for (const name of names) {
      const release = await this.locks.tryLock(name);
      if (!release) continue; // busy in another process: it, or the next operation on it, repairs it
      try {
        await this.repair(name);
      } catch (e) {
        // One broken volume must not keep the others from opening: operations on it report it.
        process.emitWarning(`berth: volume ${name} could not be repaired: ${(e as Error).message}`);
      } finally {
        await release();
      }
    }
  }

  private async cleanStaging(): Promise<void> {
    for (const e of await readdirOrEmpty(this.stagingDir)) {
      const p = path.join(this.stagingDir, e);
      if (e.startsWith('new-') || e.startsWith('rm-')) {
        // new-<key>-*, rm-<key>-*: the key names the volume lock its builder or deleter holds.
        const release = await this.locks.tryLockKey(e.split('-')[1] ?? '');
        if (release === 'busy') continue; // being built or deleted by another process right now
        try {
          await this.removeData(p).catch(leftFor(e));
        } finally {
          await release?.();
        }
      } else if (e.startsWith('export-')) {
        // export-<pid.start.boot>-*, or export-<pid>-* from an older berth: the exporter's claim.
        if (!alive(parseToken(e.split('-')[1] ?? '') ?? { pid: 0 })) await this.removeData(p).catch(leftFor(e));
      }
    }
  }

  /**
   * Make volume `name` consistent with its record. The caller holds its lock. Cheap (two
   * readdirs) when there is nothing to do, so every operation runs it first: a crash in
   * another process is repaired by whoever touches the volume next.
   */
  private async repair(name: string): Promise<void> {
    // Staging debris carrying this volume's lock key: we hold that lock, so no one is
    // building or deleting it now. (At open, a crashed holder's lock can still look fresh
    // for a few seconds, so `cleanStaging` leaves it; the next operation on the name removes it.)
    const key = lockKey(name);
    for (const e of await readdirOrEmpty(this.stagingDir)) {
      if (e.startsWith(`new-${key}-`) || e.startsWith(`rm-${key}-`)) await this.removeData(path.join(this.stagingDir, e)).catch(leftFor(e));
    }
    const rec = await this.records.read(name);
    await this.records.tidy(name);
    const vol = this.volDir(name);
    if (!rec) {
      if (fs.existsSync(vol)) await this.discard(vol, this.asideOf(name));
      return;
    }
    if (rec.restoring) await this.finishRestore(rec);
    for (const e of await readdirOrEmpty(vol)) {
      if (e.startsWith('new-') || e.startsWith('rm-')) await this.removeData(path.join(vol, e));
    }
    for (const s of await readdirOrEmpty(path.join(vol, SNAPSHOTS))) {
      if (!Object.hasOwn(rec.snapshots, s)) await this.removeData(path.join(vol, SNAPSHOTS, s));
    }
  }

  // ---- Volumes.

  async create(name: string, opts: CreateOptions = {}): Promise<VolumeInfo> {
    checkName(name, 'volume');
    const labels = checkLabels(opts.labels);
    this.checkSize(opts.size);
    return this.op([name], async () => {
      if (await this.records.read(name)) throw taken('volume', name);
      const rec = await this.build(name, { labels, size: opts.size }, (dir) => this.makeData(dir));
      return this.info(rec);
    });
  }

  async inspect(name: string): Promise<VolumeInfo> {
    this.life.check();
    checkName(name, 'volume');
    return this.info(await this.need(name));
  }

  async list(): Promise<VolumeInfo[]> {
    this.life.check();
    const out: VolumeInfo[] = [];
    for (const n of await this.records.names()) {
      const rec = await this.records.read(n);
      if (rec) out.push(this.info(rec)); // null: removed since we listed
    }
    return out;
  }

  async remove(name: string, opts: RemoveOptions = {}): Promise<void> {
    checkName(name, 'volume');
    return this.op([name], async () => {
      const rec = await this.need(name);
      const n = Object.keys(rec.snapshots).length;
      if (n > 0 && !opts.force) {
        throw new ConflictError(`volume ${name} has ${n} snapshot${n === 1 ? '' : 's'}`, {
          hint: 'remove its snapshots first, or remove the volume with force to delete them too',
        });
      }
      await this.records.delete(name); // the volume is gone from here on; the rest is cleanup
      await this.discard(this.volDir(name), this.asideOf(name)).catch(leftFor(name));
    });
  }

  async mountpoint(name: string): Promise<string> {
    this.life.check();
    checkName(name, 'volume');
    await this.need(name);
    return this.dataDir(name);
  }

  async usage(name: string): Promise<VolumeUsage> {
    this.life.check();
    checkName(name, 'volume');
    await this.need(name);
    return treeUsage(this.dataDir(name));
  }

  // ---- Snapshots.

  async snapshot(name: string, snap: string, opts: SnapshotOptions = {}): Promise<SnapshotInfo> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    const metadata = checkMetadata(opts.metadata);
    return this.op([name], async () => {
      const rec = await this.need(name);
      if (Object.hasOwn(rec.snapshots, snap)) throw taken('snapshot', snap, name);
      await this.checkSpace();
      const dest = this.snapDir(name, snap);
      const stage = this.copiesAreAtomic ? dest : this.snapDir(name, `.new-${rand()}`);
      try {
        await this.copyData(this.dataDir(name), stage, 'snapshot');
        faultPoint('volume.snapshot.copied');
        if (stage !== dest) {
          await fs.promises.rename(stage, dest);
          await this.sync(dest); // the files and the rename are on disk before the record names them
        }
      } catch (e) {
        await this.removeData(stage).catch(() => undefined);
        await this.removeData(dest).catch(() => undefined);
        throw this.fsError(e);
      }
      const s: SnapshotRecord = { created: new Date().toISOString(), metadata };
      rec.snapshots[snap] = s;
      await this.records.write(rec);
      return snapInfo(name, snap, s);
    });
  }

  async snapshots(name: string): Promise<SnapshotInfo[]> {
    this.life.check();
    checkName(name, 'volume');
    const rec = await this.need(name);
    // Measure each snapshot once (outside the lock: a snapshot never changes), then record it.
    const measured = new Map<string, number>();
    for (const [snap, s] of Object.entries(rec.snapshots)) {
      if (s.size !== undefined) continue;
      const u = await treeUsage(this.snapDir(name, snap)).catch(() => undefined); // removed meanwhile
      if (u) measured.set(snap, (s.size = u.size));
    }
    if (measured.size > 0) {
      await this.op([name], async () => {
        const now = await this.records.read(name);
        if (!now) return;
        for (const [snap, size] of measured) if (Object.hasOwn(now.snapshots, snap)) now.snapshots[snap].size = size;
        await this.records.write(now);
      }).catch(() => undefined); // only a cache: the next listing measures again
    }
    return Object.entries(rec.snapshots)
      .map(([snap, s]) => snapInfo(name, snap, s))
      .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.name < b.name ? -1 : 1));
  }

  async updateSnapshot(name: string, snap: string, metadata: SnapshotMetadata): Promise<SnapshotInfo> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    const md = checkMetadata(metadata);
    return this.op([name], async () => {
      const rec = await this.need(name);
      const s = this.needSnapshot(rec, snap);
      s.metadata = md;
      await this.records.write(rec);
      return snapInfo(name, snap, s);
    });
  }

  async removeSnapshot(name: string, snap: string): Promise<void> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    return this.op([name], async () => {
      const rec = await this.need(name);
      this.needSnapshot(rec, snap);
      delete rec.snapshots[snap];
      await this.records.write(rec); // gone from here on
      await this.discard(this.snapDir(name, snap), this.snapDir(name, `.rm-${rand()}`)).catch(leftFor(name));
    });
  }

  async restore(name: string, snap: string): Promise<void> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    return this.op([name], async () => {
      const rec = await this.need(name);
      this.needSnapshot(rec, snap);
      await this.checkSpace();
      const vol = this.volDir(name);
      const staged = `new-${rand()}`;
      try {
        await this.copyData(this.snapDir(name, snap), path.join(vol, staged), 'writable');
        if (rec.size !== undefined && this.enforcesSize) await this.limit(path.join(vol, staged), rec.size);
        if (!this.copiesAreAtomic || rec.size !== undefined) await this.sync(vol); // whole on disk before the journal
        faultPoint('volume.restore.staged');
      } catch (e) {
        await this.removeData(path.join(vol, staged)).catch(() => undefined);
        throw this.fsError(e);
      }
      await this.swapIn(rec, snap, staged);
    });
  }

  /**
   * Journal the swap of the complete copy `staged` (in the volume's directory) for `_data`
   * in the record (with whatever else `rec` now says, in the same write), then do it. A
   * crash from the write on is finished by the next repair (roll forward).
   */
  protected async swapIn(rec: VolumeRecord, snap: string, staged: string): Promise<void> {
    rec.restoring = { snapshot: snap, staged, aside: `rm-${rand()}` };
    await this.records.write(rec);
    try {
      await this.finishRestore(rec);
    } catch (e) {
      // An error, not a crash (a full btrfs refusing a rename): the caller is told it
      // failed, so undo it, unless the old data cannot be put back.
      await this.undoRestore(rec).catch(() => undefined);
      throw this.fsError(e);
    }
  }

  /**
   * Swap the staged copy in for `_data` and clear the journal. Every step can be re-run,
   * and `_data` is missing only between two renames of one directory.
   */
  private async finishRestore(rec: VolumeRecord): Promise<void> {
    const j = rec.restoring!;
    const vol = this.volDir(rec.name);
    const data = this.dataDir(rec.name);
    const staged = path.join(vol, j.staged);
    const aside = path.join(vol, j.aside);
    if (fs.existsSync(staged)) {
      if (fs.existsSync(data)) await fs.promises.rename(data, aside);
      faultPoint('volume.restore.after-rename');
      await fs.promises.rename(staged, data);
    } else if (!fs.existsSync(data) && fs.existsSync(aside)) {
      await fs.promises.rename(aside, data); // nothing to swap in: keep the old files rather than none
    }
    await fsyncDir(vol);
    delete rec.restoring;
    await this.records.write(rec);
    await this.removeData(aside).catch(leftFor(rec.name)); // the restore is done; this is cleanup
  }

  /** Put the old `_data` back, drop the staged copy and the journal (a failed restore). */
  private async undoRestore(rec: VolumeRecord): Promise<void> {
    const j = rec.restoring;
    if (!j) return; // finished after all
    const data = this.dataDir(rec.name);
    const aside = path.join(this.volDir(rec.name), j.aside);
    if (!fs.existsSync(data)) await fs.promises.rename(aside, data); // if this fails, the journal stays: repair rolls forward
    await fsyncDir(this.volDir(rec.name));
    delete rec.restoring;
    await this.records.write(rec);
    await this.removeData(path.join(this.volDir(rec.name), j.staged));
  }

  async clone(source: string, snap: string | undefined, newName: string, opts: CloneOptions = {}): Promise<VolumeInfo> {
    checkName(source, 'volume');
    if (snap !== undefined) checkName(snap, 'snapshot');
    checkName(newName, 'volume');
    const labels = opts.labels === undefined ? undefined : checkLabels(opts.labels);
    return this.op([source, newName], async () => {
      const src = await this.need(source);
      if (snap !== undefined) this.needSnapshot(src, snap);
      if (await this.records.read(newName)) throw taken('volume', newName);
      await this.checkSpace();
      const from = snap === undefined ? this.dataDir(source) : this.snapDir(source, snap);
      const origin = snap === undefined ? { volume: source } : { volume: source, snapshot: snap };
      const rec = await this.build(newName, { labels: labels ?? src.labels, size: src.size, origin }, (dir) =>
        this.copyData(from, dir, 'writable'),
      );
      return this.info(rec);
    });
  }

  // ---- Export and import.

  async export(name: string, snap?: string, opts: ExportOptions = {}): Promise<Readable> {
    checkName(name, 'volume');
    if (snap !== undefined) checkName(snap, 'snapshot');
    return this.op([name], async () => {
      const rec = await this.need(name);
      let src: { dir: string; done?: () => Promise<void> };
      if (snap !== undefined) {
        this.needSnapshot(rec, snap);
        src = { dir: this.snapDir(name, snap) };
      } else {
        src = await this.liveExportSource(name);
      }
      return this.track(exportTree(src.dir, undefined, opts.fd), src.done);
    });
  }

  /** Keep `stream` until it closes (close() ends it), then run `done`. */
  protected track(stream: Readable, done?: () => Promise<void>): Readable {
    // 'close' comes however the stream ends: read to the end, failed, or destroyed.
    const ended = new Promise<void>((resolve) =>
      stream.once('close', () => {
        this.exports.delete(stream);
        void (done?.() ?? Promise.resolve()).catch(() => undefined).then(resolve);
      }),
    );
    this.exports.set(stream, ended);
    return stream;
  }

  async exportChanges(name: string, snap: string, since: string): Promise<Readable> {
    checkName(name, 'volume');
    checkName(snap, 'snapshot');
    checkName(since, 'snapshot');
    if (snap === since) {
      throw new InvalidArgumentError(`a changeset from ${since} to itself is empty`, { hint: 'name an older snapshot with --since' });
    }
    return this.op([name], async () => {
      const rec = await this.need(name);
      const s = this.needSnapshot(rec, snap);
      this.needSnapshot(rec, since);
      // The walk runs under the lock (a few seconds for a million files): the snapshots
      // cannot be removed while they are compared.
      const plan = await diffTrees(this.snapDir(name, since), this.snapDir(name, snap));
      const header = { volume: name, base: since, snapshot: snap, created: s.created, baseFingerprint: plan.oldFingerprint };
      return this.track(packChangeset(this.snapDir(name, snap), plan, header));
    });
  }

  async applyChanges(name: string, input: Readable): Promise<SnapshotInfo> {
    checkName(name, 'volume');
    return this.op([name], async () => {
      const rec = await this.need(name);
      const { header, stream } = await readChangesetHeader(input);
      if (!header) {
        throw new InvalidArgumentError('not a volume changeset', {
          hint: 'make one with `berth volume export VOL@SNAP --since BASE` (uncompressed); a full export imports into a new volume',
        });
      }
      checkName(header.base, 'snapshot');
      checkName(header.snapshot, 'snapshot');
      if (!Object.hasOwn(rec.snapshots, header.base)) {
        throw new FailedPreconditionError(`volume ${name} has no snapshot ${header.base}, the base this changeset applies on`, {
          hint: `import the changesets in order, starting from a full export of ${header.volume}@${header.base}`,
        });
      }
      if (Object.hasOwn(rec.snapshots, header.snapshot)) throw taken('snapshot', header.snapshot, name);
      const base = this.snapDir(name, header.base);
      await this.checkUnchangedSince(name, header.base, header.baseFingerprint, `${header.volume}@${header.base}`);
      await this.checkSpace();
      const vol = this.volDir(name);
      const staged = `new-${rand()}`;
      const dest = this.snapDir(name, header.snapshot);
      const snapStage = this.copiesAreAtomic ? dest : this.snapDir(name, `.new-${rand()}`);
      try {
        await this.copyData(base, path.join(vol, staged), 'writable');
        if (rec.size !== undefined && this.enforcesSize) await this.limit(path.join(vol, staged), rec.size);
        await applyLayer(stream, path.join(vol, staged), { whiteouts: 'delete', what: 'the volume changeset', spaceDir: this.root, sparse: true });
        await this.copyData(path.join(vol, staged), snapStage, 'snapshot');
        if (snapStage !== dest) await fs.promises.rename(snapStage, dest);
        await this.sync(vol); // whole on disk before the record names it
      } catch (e) {
        for (const p of [path.join(vol, staged), snapStage, dest]) await this.removeData(p).catch(() => undefined);
        if (e instanceof InvalidArgumentError) {
          throw new InvalidArgumentError(`volume changeset rejected: ${e.message}`, { hint: 'the changeset is damaged or hostile; make it again from a source you trust', cause: e });
        }
        throw this.fsError(e);
      }
      const s: SnapshotRecord = {
        created: new Date().toISOString(),
        metadata: { changeset: { volume: header.volume, snapshot: header.snapshot, base: header.base, created: header.created } },
      };
      rec.snapshots[header.snapshot] = s;
      // One record write names the new snapshot and journals the swap: a crash after it is
      // rolled forward by repair, one before it leaves debris that repair removes.
      await this.swapIn(rec, header.snapshot, staged);
      return snapInfo(name, header.snapshot, s);
    });
  }

  /**
   * FAILED_PRECONDITION unless snapshot `base` of volume `name` is the tree of fingerprint
   * `fingerprint` (made from `from`) and the volume's files have not changed since it:
   * what a delta applied on `base` and swapped in for the files needs. The caller holds the lock.
   */
  protected async checkUnchangedSince(name: string, base: string, fingerprint: string, from: string): Promise<void> {
    const live = await diffTrees(this.snapDir(name, base), this.dataDir(name), { ignoreDirTimes: true });
    if (live.oldFingerprint !== fingerprint) {
      throw new FailedPreconditionError(`snapshot ${base} of volume ${name} is not the tree this changeset was made on`, {
        hint: `the changeset comes from ${from}; import it into a copy of that snapshot`,
      });
    }
    if (live.changes.size > 0) {
      const some = [...live.changes.keys()].slice(0, 3).map((p) => p || '/').join(', ');
      throw new FailedPreconditionError(`volume ${name} has changed since its snapshot ${base} (${live.changes.size} paths, e.g. ${some})`, {
        hint: `restore it first (berth volume restore ${name}@${base}), or snapshot the changes and clone the volume`,
      });
    }
  }

  async import(name: string, input: Readable, opts: ImportOptions = {}): Promise<VolumeInfo> {
    checkName(name, 'volume');
    const labels = checkLabels(opts.labels);
    this.checkSize(opts.size);
    return this.op([name], async () => {
      if (await this.records.read(name)) throw taken('volume', name);
      await this.checkSpace();
      const rec = await this.build(name, { labels, size: opts.size }, async (dir) => {
        await this.makeData(dir);
        await importTree(input, dir, this.root); // room is checked on the host's filesystem (a pool file grows on it)
      });
      return this.info(rec);
    });
  }

  // ---- Closing.

  /**
   * Refuse new calls, wait for running operations, end unfinished export streams (their
   * readers see an error), then release the driver's resources. If releasing fails (a
   * busy pool), the error is thrown and a later close() tries again.
   */
  close(): Promise<void> {
    return this.life.close(async () => {
      await Promise.allSettled([...this.running]);
      for (const s of this.exports.keys()) s.destroy(this.life.error());
      await Promise.allSettled([...this.exports.values()]);
      await this.release();
    });
  }

  // ---- Helpers.

  protected get volumesDir(): string {
    return path.join(this.data, 'volumes');
  }
  protected get stagingDir(): string {
    return path.join(this.data, 'staging');
  }
  protected volDir(name: string): string {
    return path.join(this.volumesDir, name);
  }
  protected dataDir(name: string): string {
    return path.join(this.volumesDir, name, DATA);
  }
  protected snapDir(name: string, snap: string): string {
    return path.join(this.volumesDir, name, SNAPSHOTS, snap);
  }

  /** Make what was written under `dir` durable (syncfs of its filesystem). */
  protected async sync(dir: string): Promise<void> {
    await tool('sync', ['-f', dir]);
  }

  /** Run `fn` holding the locks of `names`, after repairing them; close() waits for it. */
  protected op<T>(names: string[], fn: () => Promise<T>): Promise<T> {
    if (this.life.closed) return Promise.reject(this.life.error());
    const p = this.locks.with(names, async () => {
      for (const n of new Set(names)) await this.repair(n);
      return fn();
    });
    this.running.add(p);
    const done = () => void this.running.delete(p);
    p.then(done, done);
    return p;
  }

  protected async need(name: string): Promise<VolumeRecord> {
    const rec = await this.records.read(name);
    if (!rec) throw new NotFoundError(`no such volume: ${name}`, { hint: 'list volumes to see their names, or create it first' });
    return rec;
  }

  protected needSnapshot(rec: VolumeRecord, snap: string): SnapshotRecord {
    if (!Object.hasOwn(rec.snapshots, snap)) {
      throw new NotFoundError(`volume ${rec.name} has no snapshot ${snap}`, {
        hint: `list the snapshots of ${rec.name} to see their names (snapshots belong to one volume)`,
      });
    }
    return rec.snapshots[snap];
  }

  private checkSize(size: number | undefined): void {
    if (size === undefined) return;
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new InvalidArgumentError(`invalid volume size ${size}`, { hint: 'give the size as a positive whole number of bytes' });
    }
    if (!this.enforcesSize) {
      throw new FailedPreconditionError(`the ${this.name} volume driver cannot limit a volume's size`, {
        hint: 'create the volume without a size, or use the btrfs driver',
      });
    }
  }

  /**
   * Build volume `name` in staging (`fill` makes its `_data`), rename it into place, sync,
   * and write its record: the volume exists from that write on. On any error before it,
   * the staging copy is deleted and nothing was ever visible.
   */
  protected async build(
    name: string,
    fields: Pick<VolumeRecord, 'labels' | 'size' | 'origin'>,
    fill: (dataDir: string) => Promise<void>,
  ): Promise<VolumeRecord> {
    const stage = path.join(this.stagingDir, `new-${lockKey(name)}-${rand()}`);
    const vol = this.volDir(name);
    try {
      await fs.promises.mkdir(stage, { mode: 0o700 });
      await fill(path.join(stage, DATA));
      if (fields.size !== undefined) await this.limit(path.join(stage, DATA), fields.size);
      await fs.promises.mkdir(path.join(stage, SNAPSHOTS), { mode: 0o700 });
      faultPoint('volume.build.filled');
      await fs.promises.rename(stage, vol);
      await this.sync(vol);
      faultPoint('volume.build.renamed');
    } catch (e) {
      await this.removeData(stage).catch(() => undefined);
      throw this.fsError(e);
    }
    const rec: VolumeRecord = { version: 1, name, created: new Date().toISOString(), labels: fields.labels, snapshots: {} };
    if (fields.size !== undefined) rec.size = fields.size;
    if (fields.origin) rec.origin = fields.origin;
    try {
      await this.records.write(rec);
    } catch (e) {
      await this.discard(vol, this.asideOf(name)).catch(() => undefined);
      throw this.fsError(e);
    }
    return rec;
  }

  /** Where a whole volume directory goes to be deleted: the key tells other processes whose lock covers it. */
  private asideOf(name: string): string {
    return path.join(this.stagingDir, `rm-${lockKey(name)}-${rand()}`);
  }

  /**
   * Delete `p`, which no record names any more: rename it to `aside` first (the name is
   * free at once, and a crash leaves obvious debris), then delete it, still holding the
   * volume's lock. If the rename fails (a full btrfs cannot rename), delete it in place.
   */
  private async discard(p: string, aside: string): Promise<void> {
    try {
      await fs.promises.rename(p, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      return this.removeData(p);
    }
    await this.removeData(aside);
  }

  /** An error from building data, in the user's terms: a full filesystem or a quota says what to do. */
  protected fsError(e: unknown): BerthError {
    if (isNoSpace(e)) return this.noSpace(e);
    if (isOverQuota(e)) {
      return new FailedPreconditionError('the volume is over its size limit', {
        hint: 'remove files from it, or clone it into a volume created with a larger size',
        cause: e,
      });
    }
    return toBerthError(e);
  }

  protected info(rec: VolumeRecord): VolumeInfo {
    const v: VolumeInfo = {
      name: rec.name,
      driver: this.name,
      mountpoint: this.dataDir(rec.name),
      created: rec.created,
      labels: { ...rec.labels },
      snapshots: Object.keys(rec.snapshots).length,
    };
    if (rec.size !== undefined) v.size = rec.size;
    if (rec.origin) v.origin = { ...rec.origin };
    return v;
  }
}

export function snapInfo(volume: string, name: string, s: SnapshotRecord): SnapshotInfo {
  const info: SnapshotInfo = { volume, name, created: s.created, metadata: structuredClone(s.metadata) };
  if (s.size !== undefined) info.size = s.size;
  return info;
}

export function taken(what: 'volume' | 'snapshot', name: string, volume?: string): AlreadyExistsError {
  return new AlreadyExistsError(volume ? `volume ${volume} already has a snapshot ${name}` : `volume ${name} already exists`, {
    hint: what === 'volume' ? 'choose another name, or remove the existing volume first' : 'choose another snapshot name, or remove the old snapshot first',
  });
}

function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    throw new InvalidArgumentError('labels must be an object of strings', { hint: 'pass labels as { key: "value" }' });
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k === '' || typeof v !== 'string') {
      throw new InvalidArgumentError(`invalid label ${JSON.stringify(k)}`, { hint: 'label keys are non-empty, values are strings' });
    }
    out[k] = v;
  }
  return out;
}

function checkMetadata(md: unknown): SnapshotMetadata {
  if (md === undefined) return {};
  let text: string | undefined;
  try {
    text = typeof md === 'object' && md !== null && !Array.isArray(md) ? JSON.stringify(md) : undefined;
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    throw new InvalidArgumentError('snapshot metadata must be a JSON object', { hint: 'pass plain data: objects, arrays, strings, numbers' });
  }
  if (Buffer.byteLength(text) > MAX_METADATA_BYTES) {
    throw new InvalidArgumentError(`snapshot metadata is over ${MAX_METADATA_BYTES} bytes`, { hint: 'record less, or keep large data elsewhere and record a reference' });
  }
  return JSON.parse(text) as SnapshotMetadata;
}

/**
 * Once the record no longer names it, a failure to delete the data is not the caller's
 * failure: the removal happened. What is left is debris, deleted by the next repair.
 */
function leftFor(what: string): (e: unknown) => void {
  return (e) => process.emitWarning(`berth: could not delete the data of ${what} (left for the next cleanup): ${(e as Error).message}`);
}

function rand(): string {
  return randomBytes(6).toString('hex');
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.promises.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}
