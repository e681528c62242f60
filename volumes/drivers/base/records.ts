/**
 * Volume metadata: one JSON record per volume, `meta/<name>/volume.json`, always written
 * whole with writeFileAtomic (temp file, fsync, rename, fsync dir) and read fresh from
 * disk under the volume's lock, so two processes never work from stale copies.
 *
 * The record is the commit point of every change: a volume exists exactly when its record
 * does, a snapshot exists exactly when its volume's record lists it. Data directories are
 * built before the record names them and deleted after it stops naming them, so anything
 * on disk that no record names is debris from a crash, and is removed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InternalError } from '../../shared/errors';
import { cleanAtomicLeftovers, fsyncDir, writeFileAtomic } from '../../shared/atomic';
import type { SnapshotMetadata } from '../driver';
import { isValidName } from '../names';

export interface SnapshotRecord {
  created: string;
  /** Measured lazily (see SnapshotInfo.size). */
  size?: number;
  metadata: SnapshotMetadata;
}

export interface VolumeRecord {
  version: 1;
  name: string;
  created: string;
  labels: Record<string, string>;
  size?: number;
  origin?: { volume: string; snapshot?: string };
  snapshots: Record<string, SnapshotRecord>;
  /**
   * A restore that is committed but maybe not finished: `staged` (the snapshot's writable
   * copy) replaces `_data`, which moves to `aside`. Both are entry names in the volume's
   * directory. Whoever next holds the lock finishes the swap (volume-store.ts `repair`).
   */
  restoring?: { snapshot: string; staged: string; aside: string };
}

const FILE = 'volume.json';

export class Records {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /** The record of `name`, or null if there is no such volume. */
  async read(name: string): Promise<VolumeRecord | null> {
    let text: string;
    try {
      text = await fs.promises.readFile(path.join(this.dir, name, FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw e;
    }
    try {
      return JSON.parse(text) as VolumeRecord;
    } catch (e) {
      throw new InternalError(`volume record ${path.join(this.dir, name, FILE)} is not valid JSON`, {
        hint: 'it was changed by hand; restore it from a backup or remove the volume directory',
        cause: e,
      });
    }
  }

  /** Write `rec` atomically: a crash leaves the old record or the new one. */
  async write(rec: VolumeRecord): Promise<void> {
    const dir = path.join(this.dir, rec.name);
    const made = await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    if (made) await fsyncDir(this.dir); // the new directory entry must outlive a crash too
    await writeFileAtomic(path.join(dir, FILE), JSON.stringify(rec, null, 1) + '\n');
  }

  /** Delete the record: from this moment the volume does not exist. */
  async delete(name: string): Promise<void> {
    const dir = path.join(this.dir, name);
    await fs.promises.rm(path.join(dir, FILE), { force: true });
    await fsyncDir(dir);
    await this.tidy(name);
  }

  /** Drop temp files a crash left in the volume's record directory, and the directory if empty. */
  async tidy(name: string): Promise<void> {
    const dir = path.join(this.dir, name);
    await cleanAtomicLeftovers(dir);
    await fs.promises.rmdir(dir).catch(() => undefined); // not empty (a record) or gone: fine
  }

  /** Names of every volume that has a record. */
  async names(): Promise<string[]> {
    const out: string[] = [];
    for (const n of await fs.promises.readdir(this.dir)) {
      if (isValidName(n) && fs.existsSync(path.join(this.dir, n, FILE))) out.push(n);
    }
    return out.sort();
  }

  /** Every directory here, record or not (for cleaning up after a crash). */
  async entries(): Promise<string[]> {
    return (await fs.promises.readdir(this.dir)).filter(isValidName);
  }
}
