import type { Readable } from 'node:stream';
import type { SnapshotMetadata } from '../../volumes/drivers/driver';
import type { CallerFile } from '../../volumes/shared/caller-file';

/**
 * The volume service contract: data volumes as the Docker Engine API shows them (GET
 * /volumes, POST /volumes/create, …) plus berth's snapshots, restore, clone, export and
 * import. Two implementations keep it: the in-process service (volumes.ts, over one
 * VolumeDriver) and the socket client (src/client/volumes.ts); one conformance suite
 * (test/volumes/volume-service-suite.ts) runs against both.
 */

/** GET /volumes/{name}: Docker's Volume object. */
export interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: 'local';
  Options: Record<string, string>;
  Status?: Record<string, unknown>;
  UsageData?: { Size: number; RefCount: number };
}

export interface VolumeCreateBody {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string>;
  Labels?: Record<string, string>;
}

/** A snapshot as berth's API shows it. */
export interface VolumeSnapshot {
  Volume: string;
  Name: string;
  CreatedAt: string;
  Size?: number;
  Metadata: SnapshotMetadata;
}

/**
 * GET /berth/v1/volume-pool: the loop-backed btrfs pool the volumes live in (bytes). Null
 * when there is none (the dir driver, or a data root on btrfs itself).
 */
export interface VolumePool {
  File: string;
  Mountpoint: string;
  /** The pool's filesystem: its size, its bytes in use, and what is still free for data. */
  Size: number;
  Used: number;
  Free: number;
  /** The pool file's apparent size and the host bytes reserved for it (equal, unless it has holes). */
  FileSize: number;
  Allocated: number;
  /** The host's filesystem under the pool file. */
  HostSize: number;
  HostFree: number;
  /** How much more the pool may grow on this host (its reserve kept). */
  GrowRoom: number;
  /** Whether the daemon grows it by itself before it fills. */
  AutoGrow: boolean;
  /** Why the last automatic grow failed, until one works. */
  GrowError?: string;
}

export interface VolumeService {
  /**
   * The real driver's name ('btrfs', 'dir'); Docker clients see `local`. It is known before
   * the driver opens (GET /info shows it as Berth.VolumeDriver).
   */
  driver(): Promise<string>;
  list(filters?: Record<string, string[]>): Promise<{ Volumes: Volume[]; Warnings: string[] }>;
  create(body: VolumeCreateBody): Promise<Volume>;
  inspect(name: string): Promise<Volume>;
  /**
   * CONFLICT while any container (running or not) uses it; CONFLICT while clones made on
   * mount of it exist unless `force`; `force` also drops its snapshots. `VOL@SNAP` is refused.
   */
  remove(name: string, opts?: { force?: boolean; waitForSpace?: boolean }): Promise<void>;
  prune(filters?: Record<string, string[]>): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }>;
  rename(name: string, newName: string): Promise<Volume>;
  snapshot(name: string, snap?: string, opts?: SnapshotHooks): Promise<VolumeSnapshot>;
  snapshots(name: string): Promise<VolumeSnapshot[]>;
  /** CONFLICT while clones made on mount of it exist (mount-clones.ts), unless `force`. */
  removeSnapshot(name: string, snap: string, opts?: { force?: boolean }): Promise<void>;
  /** CONFLICT while a running container uses it. */
  restore(name: string, snap: string): Promise<void>;
  clone(name: string, snap: string | undefined, newName: string): Promise<Volume>;
  /**
   * A tar of the volume or its snapshot; with `since` (which needs `snap`), only what
   * changed from snapshot `since` to `snap`: a changeset (volumes/archive/changeset.ts).
   * With `to` (a file the caller opened on this host: volumes/shared/caller-file.ts),
   * berthd writes the tar into that file itself and the stream returned is empty.
   */
  export(name: string, snap?: string, opts?: { since?: string; to?: CallerFile }): Promise<Readable>;
  /**
   * A new volume `name` from a tar (a volume export, or any plain tar), with `labels`. A
   * changeset (`export --since`) is applied instead to the existing volume `name`, on top
   * of its base snapshot (FAILED_PRECONDITION if the volume's files are not that snapshot's;
   * CONFLICT while a running container uses it), and adds the changeset's snapshot.
   */
  import(name: string, input: Readable, opts?: { labels?: Record<string, string> }): Promise<Volume>;
  /** The volume pool, or null when volumes are not in a pool file. */
  pool(): Promise<VolumePool | null>;
  /** Grow the pool file to `size` bytes (its new total); FAILED_PRECONDITION without a pool or past the host's room. */
  growPool(size: number): Promise<VolumePool>;
  close(): Promise<void>;
}

/**
 * Commands run (`sh -c`) inside each running container that uses the volume: `pre` before
 * the freeze (e.g. `redis-cli save`, a database's checkpoint), `post` after the thaw. A
 * `pre` that succeeds in every container makes the snapshot application-consistent; one
 * that fails aborts the snapshot (HookFailedError) and none is taken.
 */
export interface SnapshotHooks {
  pre?: string;
  post?: string;
}
