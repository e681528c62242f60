import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../shared/errors';
import { JsonStore, fsyncDir } from '../shared/atomic';
import { Lifecycle } from '../shared/lifecycle';
import type { CommitOptions, Mount, SnapshotInfo, SnapshotKind, SnapshotOptions, Snapshotter, Usage } from './snapshotter';

/** One snapshot's record in metadata.json. Its files live in `snapshots/<id>/`. */
interface SnapshotRecord {
  id: number;
  kind: SnapshotKind;
  parent: string;
  labels: Record<string, string>;
  created: string;
  updated: string;
}

interface Metadata {
  /** Ids are short numbers, not keys: keys are long ('sha256:…') and 128 of them must fit in one mount's options. */
  nextId: number;
  snapshots: Record<string, SnapshotRecord>;
}

const KEY_MAX = 512;

/**
 * The overlayfs snapshotter (containerd's `overlay` plugin, in small).
 *
 * Layout under `dir`:
 *   metadata.json            every snapshot, by key or name (JsonStore: atomic rewrites)
 *   snapshots/<id>/fs        the snapshot's own files: the overlay upperdir, a lowerdir later
 *   snapshots/<id>/work      overlay's workdir (active snapshots only)
 *
 * Crash safety comes from ordering, not from repair: a snapshot's directory is built as
 * `snapshots/new-<id>` and renamed into place before its metadata is written, and on remove
 * the metadata goes first and the directory is renamed to `rm-<id>` before it is deleted.
 * So metadata never names a missing directory, and any directory that metadata does not
 * name is debris that `open` deletes.
 */
export class OverlaySnapshotter implements Snapshotter {
  private readonly life = new Lifecycle('snapshotter', 'open the snapshotter again before using it');

  private constructor(
    private readonly root: string,
    private readonly db: JsonStore<Metadata>,
    private nextId: number,
    /** Extra overlay options this kernel wants on every mount (see `overlayExtraOptions`). */
    private readonly extraOptions: string[],
  ) {}

  /** Open (or create) the snapshotter in `dir`, deleting whatever a crash left behind. */
  static async open(dir: string): Promise<OverlaySnapshotter> {
    const root = path.resolve(dir);
    // Every layer path goes into one comma-separated, colon-joined overlay option string.
    if (/[,:]/.test(root)) {
      throw new InvalidArgumentError(`layer store directory ${root} contains ',' or ':'`, {
        hint: 'choose a data root whose path has no commas or colons (overlay mount options cannot carry them)',
      });
    }
    await fs.promises.mkdir(path.join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    const db = await JsonStore.open<Metadata>(path.join(root, 'metadata.json'), { nextId: 1, snapshots: {} });
    const doc = db.read();
    const live = new Set(Object.values(doc.snapshots).map((r) => String(r.id)));
    const snapshotsDir = path.join(root, 'snapshots');
    for (const entry of await fs.promises.readdir(snapshotsDir)) {
      if (!live.has(entry)) await fs.promises.rm(path.join(snapshotsDir, entry), { recursive: true, force: true });
    }
    const maxId = Math.max(0, ...Object.values(doc.snapshots).map((r) => r.id));
    return new OverlaySnapshotter(root, db, Math.max(doc.nextId, maxId + 1), await overlayExtraOptions());
  }

  async stat(key: string): Promise<SnapshotInfo> {
    this.life.check();
    return info(key, this.get(key));
  }

  async update(key: string, labels: Record<string, string>): Promise<SnapshotInfo> {
    this.life.check();
    return this.db.update((doc) => {
      const rec = this.get(key, doc);
      rec.labels = { ...labels };
      rec.updated = new Date().toISOString();
      return info(key, rec);
    });
  }

  async usage(key: string): Promise<Usage> {
    this.life.check();
    return diskUsage(this.fsDir(this.get(key).id));
  }

  async mounts(key: string): Promise<Mount[]> {
    this.life.check();
    const doc = this.db.read();
    const rec = this.get(key, doc);
    if (rec.kind === 'committed') {
      throw new FailedPreconditionError(`snapshot ${key} is committed and cannot be mounted`, {
        hint: 'prepare or view a new snapshot with it as parent, and mount that',
      });
    }
    return this.mountsOf(rec, doc);
  }

  prepare(key: string, parent = '', opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('active', key, parent, opts);
  }

  view(key: string, parent = '', opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('view', key, parent, opts);
  }

  /**
   * Labels: `opts.labels` when given replaces the active snapshot's labels, otherwise they
   * carry over. The key's directory becomes the committed layer as is: no copying.
   */
  async commit(name: string, key: string, opts: CommitOptions = {}): Promise<void> {
    this.life.check();
    validateKey(name);
    const reparent = opts.parent !== undefined && opts.parent !== this.get(key).parent;
    if (reparent) {
      const rec = this.get(key);
      if (rec.kind !== 'active' || rec.parent !== '') {
        throw new FailedPreconditionError(`snapshot ${key} cannot be committed on ${opts.parent}: it was prepared on ${rec.parent || 'nothing'}`, {
          hint: 'only an active snapshot prepared without a parent can be given one at commit',
        });
      }
      this.checkCreate(this.db.read(), name, opts.parent as string);
      if (!opts.ownRoot) await copyModeAndOwner(this.fsDir(this.get(opts.parent as string).id), this.fsDir(rec.id));
    }
    const id = await this.db.update((doc) => {
      const rec = this.get(key, doc);
      if (rec.kind !== 'active') {
        throw new FailedPreconditionError(`snapshot ${key} is ${rec.kind === 'view' ? 'a view' : 'already committed'}`, {
          hint: 'only an active snapshot (made by prepare) can be committed',
        });
      }
      if (doc.snapshots[name]) throw taken(name);
      const parent = reparent ? (opts.parent as string) : rec.parent;
      if (reparent) this.checkCreate(doc, name, parent);
      delete doc.snapshots[key];
      const now = new Date().toISOString();
      doc.snapshots[name] = { ...rec, parent, kind: 'committed', labels: { ...(opts.labels ?? rec.labels) }, updated: now };
      return rec.id;
    });
    // A committed layer is only ever a lowerdir: its workdir is dead weight. Best effort;
    // a left-over work dir costs a few inodes, nothing more.
    await fs.promises.rm(path.join(this.snapshotDir(id), 'work'), { recursive: true, force: true }).catch(() => undefined);
  }

  async remove(key: string): Promise<void> {
    this.life.check();
    const id = await this.db.update((doc) => {
      const rec = this.get(key, doc);
      const child = Object.keys(doc.snapshots).find((k) => doc.snapshots[k].parent === key);
      if (child !== undefined) {
        throw new ConflictError(`snapshot ${key} has children (${child})`, {
          hint: 'remove the snapshots built on it first',
        });
      }
      delete doc.snapshots[key];
      return rec.id;
    });
    // The metadata change above was the commit point: from here on a crash leaves only a
    // directory that `open` deletes, so a failure to delete now is not the caller's error.
    const dir = this.snapshotDir(id);
    const trash = path.join(this.root, 'snapshots', `rm-${id}`);
    try {
      await fs.promises.rename(dir, trash);
      await fs.promises.rm(trash, { recursive: true, force: true });
    } catch {
      /* cleaned on next open */
    }
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    this.life.check();
    for (const [key, rec] of Object.entries(this.db.read().snapshots)) await fn(info(key, rec));
  }

  async upperDir(key: string): Promise<string> {
    this.life.check();
    return this.fsDir(this.get(key).id);
  }

  /** Twice is harmless; calls after it fail with FAILED_PRECONDITION. */
  close(): Promise<void> {
    return this.life.close();
  }

  /** prepare and view: build the directory, rename it into place, then record it. */
  private async create(kind: 'active' | 'view', key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    this.life.check();
    validateKey(key);
    // Check before building, so a doomed call leaves nothing to clean; checked again below.
    this.checkCreate(this.db.read(), key, parent);

    const id = this.nextId++;
    const tmp = path.join(this.root, 'snapshots', `new-${id}`);
    const dir = this.snapshotDir(id);
    try {
      await fs.promises.mkdir(path.join(tmp, 'fs'), { recursive: true, mode: 0o755 });
      if (kind === 'active') await fs.promises.mkdir(path.join(tmp, 'work'), { mode: 0o700 });
      // Overlay takes the root directory's mode and owner from the upperdir, so the new
      // layer starts with its parent's: a chmod/chown of `/` in a layer survives commit.
      if (parent) await copyModeAndOwner(this.fsDir(this.get(parent).id), path.join(tmp, 'fs'));
      else await fs.promises.chmod(path.join(tmp, 'fs'), 0o755); // the umask must not decide what `/` is
      await fs.promises.rename(tmp, dir);
      await fsyncDir(path.dirname(dir));
    } catch (e) {
      await fs.promises.rm(tmp, { recursive: true, force: true });
      throw e;
    }

    try {
      return await this.db.update((doc) => {
        this.checkCreate(doc, key, parent);
        const now = new Date().toISOString();
        const rec: SnapshotRecord = { id, kind, parent, labels: { ...(opts.labels ?? {}) }, created: now, updated: now };
        doc.snapshots[key] = rec;
        doc.nextId = Math.max(doc.nextId, id + 1);
        return this.mountsOf(rec, doc);
      });
    } catch (e) {
      await fs.promises.rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private checkCreate(doc: Metadata, key: string, parent: string): void {
    if (doc.snapshots[key]) throw taken(key);
    if (!parent) return;
    const p = this.get(parent, doc);
    if (p.kind !== 'committed') {
      throw new InvalidArgumentError(`parent ${parent} is not committed`, {
        hint: 'commit the parent snapshot first; only committed snapshots can be parents',
      });
    }
  }

  /**
   * The mount plan, like containerd's overlay `mounts()`: a bind mount when there is one
   * directory to show, otherwise overlay with the parent chain as lowerdirs (nearest first).
   */
  private mountsOf(rec: SnapshotRecord, doc: Metadata): Mount[] {
    const lowers: string[] = [];
    for (let p = rec.parent; p; p = doc.snapshots[p].parent) lowers.push(this.fsDir(doc.snapshots[p].id));
    const own = this.fsDir(rec.id);
    if (rec.kind === 'active') {
      if (lowers.length === 0) return [{ type: 'bind', source: own, options: ['rw', 'rbind'] }];
      return [{
        type: 'overlay',
        source: 'overlay',
        options: [...this.extraOptions, `lowerdir=${lowers.join(':')}`, `upperdir=${own}`, `workdir=${path.join(this.snapshotDir(rec.id), 'work')}`],
      }];
    }
    // A view: overlay cannot mount a single lowerdir without an upper, and a bind is cheaper.
    if (lowers.length <= 1) return [{ type: 'bind', source: lowers[0] ?? own, options: ['ro', 'rbind'] }];
    return [{ type: 'overlay', source: 'overlay', options: [...this.extraOptions, `lowerdir=${lowers.join(':')}`] }];
  }

  private get(key: string, doc?: Metadata): SnapshotRecord {
    const rec = (doc ?? this.db.read()).snapshots[key];
    if (!rec) throw new NotFoundError(`snapshot ${key} not found`, { hint: 'list snapshots to see which exist' });
    return rec;
  }

  private snapshotDir(id: number): string {
    return path.join(this.root, 'snapshots', String(id));
  }

  private fsDir(id: number): string {
    return path.join(this.snapshotDir(id), 'fs');
  }
}

function info(name: string, rec: SnapshotRecord): SnapshotInfo {
  return { name, parent: rec.parent, kind: rec.kind, labels: { ...rec.labels }, created: rec.created, updated: rec.updated };
}

function taken(key: string): AlreadyExistsError {
  return new AlreadyExistsError(`snapshot ${key} already exists`, { hint: 'choose another key or name, or remove the existing snapshot' });
}

/**
 * Keys become no path (ids do), but they travel in URLs, labels and logs: refuse the ones
 * that would surprise there. 'sha256:abc', 'extract-1', 'ctr-<hex>' are all fine.
 */
function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > KEY_MAX || key.includes('\0') || key.includes('/')) {
    throw new InvalidArgumentError(`invalid snapshot key or name ${JSON.stringify(key)}`, {
      hint: `use 1 to ${KEY_MAX} characters without '/' or NUL, e.g. 'sha256:<hex>' or 'extract-1'`,
    });
  }
}

async function copyModeAndOwner(from: string, to: string): Promise<void> {
  const st = await fs.promises.stat(from);
  await fs.promises.chown(to, st.uid, st.gid);
  await fs.promises.chmod(to, st.mode & 0o7777);
}

/**
 * A layer's size as Docker counts it: the bytes of its regular files, each inode once (a
 * hard link is the same bytes), nothing for directories, links or devices. That is the sum
 * of the file sizes in the layer's tar, which moby reports for a layer in `docker history`
 * and `docker images` (a WORKDIR layer is 0 B, not a 4 kB directory block).
 */
async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await fs.promises.lstat(p, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      if (st.isFile()) size += Number(st.size);
    }
    if (st.isDirectory()) for (const name of await fs.promises.readdir(p)) await visit(path.join(p, name));
  };
  await visit(dir);
  return { size, inodes: seen.size };
}

/**
 * containerd adds `index=off` whenever the kernel knows the option: with the index feature
 * on (a kernel build or module default), the same lower layers cannot be reused under a
 * different upperdir, which is exactly what a layer store does all day.
 */
async function overlayExtraOptions(): Promise<string[]> {
  try {
    await fs.promises.access('/sys/module/overlay/parameters/index');
    return ['index=off'];
  } catch {
    return [];
  }
}
