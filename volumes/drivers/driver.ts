/**
 * The data volume contract: what every volume driver (btrfs, dir, and any fake) promises.
 * The contract only; the shared machinery is volumes/drivers/base/volume-store.ts, the drivers are
 * volumes/drivers/<driver>/, and choosing one happens in volumes/drivers/select.ts.
 *
 * Words, defined once:
 * - **volume**: a named, writable directory tree that outlives every container using it.
 *   Containers bind-mount its `mountpoint` (never copy-on-write over it), so a database
 *   in a volume writes at the speed of the disk underneath.
 * - **snapshot**: a read-only, point-in-time copy of one volume, named per volume (two
 *   volumes may each have a snapshot called `nightly`). It never changes after it is
 *   taken, and lives until removed or until its volume is removed. On btrfs it is a
 *   read-only subvolume snapshot: O(1), sharing every block with the volume; on dir it is
 *   a full copy (reflinked where the filesystem can).
 * - **clone**: a new, independent, writable volume that starts as a copy of a volume or of
 *   one of its snapshots. Writes to either side are never seen by the other.
 * - **restore**: roll a volume back, in place, to one of its own snapshots. The mountpoint
 *   stays the same path and afterwards holds exactly the snapshot's files. Every snapshot,
 *   older AND newer than the one restored, survives. The swap is atomic: a crash at any
 *   point leaves either the old contents or the snapshot's, never a mix.
 * - **export** / **import**: a volume or snapshot as a plain tar stream (not an image
 *   layer: `.wh.` names are ordinary files), and a new volume made from such a stream.
 *
 * Names (volumes and snapshots): Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, at most 255
 * bytes. So `x`, `.v`, `..`, `/v`, `./v` are refused with INVALID_ARGUMENT.
 *
 * Lifecycle: a driver is opened on a data root (volumes/drivers/select.ts `openDriver`),
 * used, and closed. Every operation on one volume takes that volume's lock, so create,
 * snapshot, restore, clone, import and remove never interleave, in one process or across
 * processes. Every change is crash-safe: after a crash at any point, the next open (or
 * the next operation on that volume) finishes or removes what was half done, so `list`
 * and `snapshots` only ever show whole volumes and whole snapshots. `close` waits for
 * running operations, ends export streams still being read, and releases what the driver
 * holds (the btrfs pool mount and its loop device); calling it twice is harmless, any
 * other call after it fails with FAILED_PRECONDITION.
 *
 * Errors (classes from volumes/shared/errors.ts; callers test `.code`): a bad name, size or tar
 * is INVALID_ARGUMENT; a missing volume or snapshot is NOT_FOUND (a snapshot of another
 * volume is simply not found); a taken name is ALREADY_EXISTS; removing a volume that
 * still has snapshots is CONFLICT unless forced; a full pool or disk is
 * FAILED_PRECONDITION with a hint saying how to make room.
 *
 * Worked example (a database volume, a nightly snapshot, a bad migration, a test copy):
 *
 *   const d = await openDriver('/var/lib/berth/volumes');
 *   await d.create('pgdata', { labels: { app: 'db' } });
 *   const dir = await d.mountpoint('pgdata');          // bind-mount this into the container
 *   await d.snapshot('pgdata', 'nightly', { metadata: { consistency: 'crash' } });
 *   // ... a migration goes wrong; the engine stops the container, then:
 *   await d.restore('pgdata', 'nightly');              // same path, yesterday's files
 *   await d.clone('pgdata', 'nightly', 'pgdata-test'); // writable copy for a test run
 *   const tar = await d.export('pgdata', 'nightly');   // stream it off the host
 *   await d.close();
 */
import type { Readable } from 'node:stream';

/** A JSON value: what snapshot metadata may hold. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Free-form facts recorded with a snapshot, filled in by the engine (consistency level,
 * which containers were frozen, what hooks ran). The driver stores it and gives it back;
 * it never interprets it. At most 64 KiB once serialised.
 */
export type SnapshotMetadata = { [key: string]: JsonValue };

export interface CreateOptions {
  /**
   * Upper bound on the bytes the volume may hold; writers past it get EDQUOT. Only
   * drivers that can enforce it accept it (btrfs, via a qgroup limit); the others refuse
   * with FAILED_PRECONDITION rather than promise what they cannot keep.
   */
  size?: number;
  labels?: Record<string, string>;
}

export interface VolumeInfo {
  name: string;
  /** The driver's name ('btrfs', 'dir'). */
  driver: string;
  /** The directory containers bind-mount; the same path for the volume's whole life. */
  mountpoint: string;
  /** ISO 8601. */
  created: string;
  labels: Record<string, string>;
  /** The size limit, if the volume has one. */
  size?: number;
  /** How many snapshots it has. */
  snapshots: number;
  /** What it was cloned from, for a clone. */
  origin?: { volume: string; snapshot?: string };
}

export interface SnapshotInfo {
  /** The volume it belongs to. */
  volume: string;
  name: string;
  /** ISO 8601: when it was taken. */
  created: string;
  /**
   * Bytes its files take, counted like `usage` (blocks, each inode once). Measured the
   * first time `snapshots` lists it (a snapshot never changes, so once is enough) and
   * absent from `snapshot`'s own answer, so taking a snapshot stays O(1).
   */
  size?: number;
  metadata: SnapshotMetadata;
}

export interface VolumeUsage {
  /** Bytes allocated to the volume's current files (st_blocks; each inode counted once). */
  size: number;
  inodes: number;
}

export interface RemoveOptions {
  /** Remove the volume's snapshots with it. Without it, a volume with snapshots is CONFLICT. */
  force?: boolean;
  /**
   * Return only once the filesystem has the space back (default true). btrfs frees a
   * deleted subvolume's blocks in its cleaner, some 20-30 s later: `volume rm` waits for
   * that; removing a container's anonymous volumes (`rm -v`, `run --rm`, a build step)
   * does not, as Docker's `rm -v` returns at once. The volume is gone either way.
   */
  waitForSpace?: boolean;
}

export interface SnapshotOptions {
  metadata?: SnapshotMetadata;
}

export interface CloneOptions {
  /** Labels of the clone; the source's labels by default. (The size limit is the source's.) */
  labels?: Record<string, string>;
}

export interface ExportOptions {
  /**
   * Write the tar into this open file descriptor (an empty regular file) instead of the
   * stream: the stream then carries no bytes and ends once the file is written. The
   * caller keeps and closes the descriptor.
   */
  fd?: number;
}

export interface ImportOptions {
  labels?: Record<string, string>;
  size?: number;
}

export interface VolumeDriver {
  /** 'btrfs' or 'dir' (or a fake's name). */
  readonly name: string;

  /** Make an empty volume. ALREADY_EXISTS if the name is taken. */
  create(name: string, opts?: CreateOptions): Promise<VolumeInfo>;
  /** One volume. NOT_FOUND if there is none. */
  inspect(name: string): Promise<VolumeInfo>;
  /** Every volume, sorted by name. */
  list(): Promise<VolumeInfo[]>;
  /**
   * Delete a volume and its data. CONFLICT if it has snapshots, unless `force` (then
   * they go too): snapshots are backups, and losing them should take a second word.
   * Whether containers still use it is the engine's business, not the driver's.
   */
  remove(name: string, opts?: RemoveOptions): Promise<void>;
  /** The directory to bind-mount. NOT_FOUND if there is no such volume. */
  mountpoint(name: string): Promise<string>;
  /** What the volume's current files take on disk (a walk: cost grows with the files). */
  usage(name: string): Promise<VolumeUsage>;

  /**
   * Optional, for drivers that keep volumes in a pool of fixed size (btrfs on a loop file):
   * its numbers, and growing it to a new total size.
   */
  poolInfo?(): Promise<PoolStatus | null>;
  grow?(size: number): Promise<unknown>;

  /**
   * Take a read-only, point-in-time snapshot of the volume as it is now. Later writes to
   * the volume are not seen in it. O(1) on btrfs; a copy on dir. NOT_FOUND for a missing
   * volume, ALREADY_EXISTS if the volume already has a snapshot of that name,
   * FAILED_PRECONDITION when the pool is (nearly) full.
   */
  snapshot(name: string, snap: string, opts?: SnapshotOptions): Promise<SnapshotInfo>;
  /** The volume's snapshots, oldest first. */
  snapshots(name: string): Promise<SnapshotInfo[]>;
  /** Replace a snapshot's metadata (its files never change). */
  updateSnapshot(name: string, snap: string, metadata: SnapshotMetadata): Promise<SnapshotInfo>;
  /** Delete one snapshot. NOT_FOUND if the volume has no such snapshot. */
  removeSnapshot(name: string, snap: string): Promise<void>;
  /**
   * Roll the volume back in place to its snapshot `snap` (see "restore" above). NOT_FOUND
   * if `snap` is not a snapshot of this volume. A container that has the volume mounted
   * keeps seeing the old files (a bind mount pins the directory it was made from): the
   * engine stops users of the volume first and starts them again after.
   */
  restore(name: string, snap: string): Promise<void>;
  /**
   * Make `newName` a writable copy of `source` (its current files) or of its snapshot
   * `snap`. Instant on btrfs. The clone has no snapshots. NOT_FOUND for a missing source
   * or snapshot, ALREADY_EXISTS if `newName` is taken.
   */
  clone(source: string, snap: string | undefined, newName: string, opts?: CloneOptions): Promise<VolumeInfo>;

  /**
   * A tar of the volume's files (or of snapshot `snap`'s): regular files, directories,
   * symlinks, hardlinks, fifos, with modes, owners and mtimes; the volume root as `./`.
   * Device nodes, sockets and xattrs are not exported. From a snapshot the tar is a
   * point-in-time copy; from the live volume it is too where snapshots are cheap (btrfs
   * exports a private snapshot), while dir reads the live files (take a snapshot first for
   * a consistent export). The stream fails (never silently truncates) if what it reads
   * changes under it or is removed.
   */
  export(name: string, snap?: string, opts?: ExportOptions): Promise<Readable>;
  /**
   * Make a new volume `name` from a tar (plain or gzip) such as `export` writes. The tar
   * is untrusted: nothing is ever written outside the new volume (no absolute names
   * escape, no `..` above its root, no writing through symlinks, hardlinks only to files
   * inside). `.wh.` names are kept as ordinary files: a volume is not an image layer, and
   * a volume holding such names must survive export and import. Device nodes are dropped.
   * A hostile or broken tar is INVALID_ARGUMENT and leaves no volume behind. The volume's
   * lock is held while the stream is read. An error found before reading (a bad or taken
   * name, a full pool) leaves `input` unread: disposing of it is the caller's business.
   */
  import(name: string, input: Readable, opts?: ImportOptions): Promise<VolumeInfo>;
  /**
   * What changed from snapshot `since` to snapshot `snap` of the volume, as a changeset tar
   * (volumes/archive/changeset.ts: changed entries, `.wh.` whiteouts for deletions, a header
   * naming the base). NOT_FOUND for a missing volume or snapshot.
   */
  exportChanges(name: string, snap: string, since: string): Promise<Readable>;
  /**
   * Apply a changeset from `exportChanges` to volume `name`, which must hold the base
   * snapshot the changeset names, unchanged since (its files equal the snapshot's, and the
   * snapshot's tree is the one the changeset was made on): otherwise FAILED_PRECONDITION,
   * with nothing changed. The result becomes the volume's files and a new snapshot of the
   * changeset's snapshot name (ALREADY_EXISTS if taken), in one crash-safe swap as restore
   * does. A damaged or hostile changeset is INVALID_ARGUMENT and changes nothing.
   */
  applyChanges(name: string, input: Readable): Promise<SnapshotInfo>;

  /**
   * Refuse new calls, wait for running operations, end unfinished exports, release the
   * driver's resources. Twice is harmless. If releasing fails (a busy pool: CONFLICT),
   * calling it again retries.
   */
  close(): Promise<void>;
}

/** A volume pool's numbers, in bytes (see btrfs/pool.ts). */
export interface PoolStatus {
  /** The pool file, and where it is mounted (the driver's data directory). */
  file: string;
  mountpoint: string;
  /** The pool's filesystem: its size, what is still free for data, and its bytes in use (metadata included). */
  size: number;
  free: number;
  used: number;
  /** The pool file's apparent size, and the host bytes it takes (all of it, unless the host has no fallocate or it was trimmed). */
  fileSize: number;
  allocated: number;
  /** The host filesystem under the pool file: its size and free bytes. */
  hostSize: number;
  hostFree: number;
  /** Bytes the pool may still grow by on this host (its reserve kept): 0 when the host is near full. */
  growRoom: number;
  /** Whether the driver grows the pool by itself before it fills. */
  autoGrow: boolean;
  /** Why the last automatic grow failed, until one works. */
  growError?: string;
}
