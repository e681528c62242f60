/**
 * The layer store contract: containerd's snapshotter model, in TypeScript.
 *
 * Words, defined once:
 * - **key**: the caller's name for an *active* snapshot (one being written to).
 * - **name**: the name a snapshot gets when it is *committed* (made read-only for ever).
 *   Keys and names share one namespace: no key may equal an existing key or name.
 * - **parent**: the committed snapshot a new one starts from ('' or undefined: empty).
 * - **active** snapshot: writable, made by `prepare`; **view**: read-only, made by `view`;
 *   **committed**: read-only, made by `commit` from an active one, can be a parent.
 *
 * Lifecycle, worked example (one image layer, then a container root on top):
 *
 *   const mounts = await s.prepare('extract-1', '');        // active, empty
 *   // ... the caller mounts `mounts` (or applies a layer tar into the upper dir) ...
 *   await s.commit('sha256:<chainID>', 'extract-1');        // committed; key gone
 *   const root = await s.prepare('ctr-abc', 'sha256:<chainID>');
 *   // ... run a container on `root`; later:
 *   await s.remove('ctr-abc');
 *
 * The snapshotter never mounts anything itself: it returns mount descriptions and the
 * caller mounts them (volumes/layers/mount.ts does it in one place). All metadata changes
 * are atomic: after a crash at any point, `walk` lists only whole snapshots, and directories
 * a crash left behind are removed when the snapshotter is opened again.
 */

/** A mount the caller should perform: like containerd's mount.Mount. */
export interface Mount {
  /** 'overlay' or 'bind'. */
  type: string;
  /** What to mount ('overlay' for overlayfs, a directory for bind). */
  source: string;
  /** mount(8) options, e.g. ['ro', 'rbind'] or ['lowerdir=a:b', 'upperdir=u', 'workdir=w']. */
  options: string[];
}

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotInfo {
  /** The key (active, view) or name (committed). */
  name: string;
  /** Name of the committed parent, or '' for none. */
  parent: string;
  kind: SnapshotKind;
  /** Free-form labels; the image store uses them to tie layers to digests. */
  labels: Record<string, string>;
  created: string;
  updated: string;
}

export interface Usage {
  /** Bytes of this snapshot's own regular files, each inode once (not its parents'; Docker's layer size). */
  size: number;
  /** Number of inodes in this snapshot's own directory. */
  inodes: number;
}

export interface SnapshotOptions {
  labels?: Record<string, string>;
}

export interface CommitOptions extends SnapshotOptions {
  /**
   * Commit on this committed parent instead of the one it was prepared on. Only for an
   * active snapshot prepared on '' and never mounted (a layer unpacked into its own
   * directory before its parent was in, as a pull does, layers in parallel). The root
   * directory then takes the parent's mode and owner, as prepare on it would have given,
   * unless `ownRoot` (the layer set `/` itself).
   */
  parent?: string;
  ownRoot?: boolean;
}

export interface Snapshotter {
  /** Info about one snapshot. NotFoundError if there is none. */
  stat(key: string): Promise<SnapshotInfo>;
  /** Replace the labels of a snapshot (not its kind or parent). */
  update(key: string, labels: Record<string, string>): Promise<SnapshotInfo>;
  /** Disk usage of a snapshot's own layer. */
  usage(key: string): Promise<Usage>;
  /** The mounts of an existing active snapshot or view. */
  mounts(key: string): Promise<Mount[]>;
  /**
   * Make an active snapshot `key` on top of committed `parent` and return its mounts.
   * AlreadyExistsError if `key` is taken; NotFoundError if `parent` is not there;
   * InvalidArgumentError if `parent` is not committed.
   */
  prepare(key: string, parent?: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /** Like prepare, but read-only; a view cannot be committed. */
  view(key: string, parent?: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /**
   * Commit active snapshot `key` as `name`. The key stops existing; `name` is committed.
   * The caller must have unmounted it. AlreadyExistsError if `name` is taken.
   */
  commit(name: string, key: string, opts?: CommitOptions): Promise<void>;
  /** Remove a snapshot. ConflictError if a committed snapshot still has children. */
  remove(key: string): Promise<void>;
  /** Every snapshot, in no particular order. */
  walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void>;
  /** The directory that holds the snapshot's own files (the overlay upperdir). */
  upperDir(key: string): Promise<string>;
  /** Release resources. Calling it twice is harmless; other calls after it fail. */
  close(): Promise<void>;
}
