import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { cleanAtomicLeftovers, fsyncDir, writeFileAtomic } from '../../volumes/shared/atomic';
import { repairRecord } from './record-repair';
import { containerPaths, type ContainerPaths, type ContainerRecord } from './container-record';

const ID_RE = /^[0-9a-f]{64}$/;
const NEW_PREFIX = 'new-';
const RM_PREFIX = 'rm-';

/**
 * The container records on disk, one directory per container under `root`, and the
 * in-memory indexes derived from them (by id, by name).
 *
 * Crash safety by construction: a container directory is built as `new-<id>/` and
 * renamed to `<id>/` (the commit point of create); removal renames `<id>/` to `rm-<id>/`
 * first (the commit point of remove), and only then undoes the rest. So `<id>/` always
 * holds a whole record, and `open` reports the `new-*` and `rm-*` directories a crash
 * left (`leftovers`) for the engine to clean: it owns what else they stand for (runc
 * state, mounts, snapshots).
 */
export class ContainerStore {
  private readonly byId = new Map<string, ContainerRecord>();
  /** name (no '/') -> id, for records and for creates in flight. */
  private readonly names = new Map<string, string>();
  private readonly saving = new Map<string, Promise<void>>();

  private constructor(
    readonly root: string,
    /** Directories a crash left: `new-<id>` (create) and `rm-<id>` (remove), as full paths with their ids. */
    readonly leftovers: { creating: Array<{ id: string; dir: string }>; removing: Array<{ id: string; dir: string }> },
    /** Container directories whose record could not be read (kept, not touched). */
    readonly unreadable: string[],
    /** Records whose values had the wrong types, and what was put right (record-repair.ts). */
    readonly repaired: Array<{ id: string; fixes: string[] }> = [],
  ) {}

  static async open(root: string): Promise<ContainerStore> {
    const dir = path.resolve(root);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const creating: Array<{ id: string; dir: string }> = [];
    const removing: Array<{ id: string; dir: string }> = [];
    const unreadable: string[] = [];
    const records: ContainerRecord[] = [];
    const repaired: Array<{ id: string; fixes: string[] }> = [];
    for (const name of await fs.promises.readdir(dir)) {
      const full = path.join(dir, name);
      if (name.startsWith(NEW_PREFIX)) creating.push({ id: name.slice(NEW_PREFIX.length), dir: full });
      else if (name.startsWith(RM_PREFIX)) removing.push({ id: name.slice(RM_PREFIX.length), dir: full });
      else if (ID_RE.test(name)) {
        await cleanAtomicLeftovers(full);
        try {
          const rec = JSON.parse(await fs.promises.readFile(path.join(full, 'container.json'), 'utf8')) as ContainerRecord;
          if (!rec || rec.Id !== name || typeof rec.Name !== 'string') throw new Error('id mismatch');
          const fixes = repairRecord(rec);
          if (fixes.length) repaired.push({ id: name, fixes });
          records.push(rec);
        } catch {
          unreadable.push(full);
        }
      }
    }
    const store = new ContainerStore(dir, { creating, removing }, unreadable, repaired);
    for (const r of records) {
      store.byId.set(r.Id, r);
      store.names.set(r.Name.slice(1), r.Id);
    }
    return store;
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  get(id: string): ContainerRecord | undefined {
    return this.byId.get(id);
  }

  paths(id: string): ContainerPaths {
    return containerPaths(path.join(this.root, id));
  }

  /**
   * The container `ref` names, as Docker looks it up: a full id, a name (with or without
   * its leading '/'), or a unique id prefix.
   */
  find(ref: string): ContainerRecord {
    const r = typeof ref === 'string' ? ref : '';
    const full = this.byId.get(r);
    if (full) return full;
    const byName = this.names.get(r.startsWith('/') ? r.slice(1) : r);
    const named = byName !== undefined ? this.byId.get(byName) : undefined;
    if (named) return named;
    if (/^[0-9a-f]+$/.test(r)) {
      const hits = [...this.byId.keys()].filter((id) => id.startsWith(r));
      if (hits.length === 1) return this.byId.get(hits[0]) as ContainerRecord;
      if (hits.length > 1) {
        throw new InvalidArgumentError(`multiple IDs found with provided prefix: ${r}`, { hint: 'give more characters of the id, or the name' });
      }
    }
    throw new NotFoundError(`No such container: ${r}`, { hint: 'list containers with `berth ps -a`' });
  }

  /** The id holding `name`, if any (names are unique across records and creates in flight). */
  holderOf(name: string): string | undefined {
    return this.names.get(name);
  }

  /** Take `name` for `id` (create, rename); ConflictError naming the holder if it is taken. */
  reserveName(name: string, id: string): void {
    const holder = this.names.get(name);
    if (holder !== undefined && holder !== id) {
      throw new ConflictError(`Conflict. The container name "/${name}" is already in use by container "${holder}"`, {
        hint: 'you have to remove (or rename) that container to be able to reuse that name',
      });
    }
    this.names.set(name, id);
  }

  releaseName(name: string, id: string): void {
    if (this.names.get(name) === id) this.names.delete(name);
  }

  /**
   * Make the container's directory: `new-<id>/` with the record and whatever `fill` puts
   * there, then renamed to `<id>/` (the commit point). On failure nothing is left.
   */
  async create(rec: ContainerRecord, fill: (p: ContainerPaths) => Promise<void>): Promise<void> {
    const tmp = path.join(this.root, NEW_PREFIX + rec.Id);
    const final = path.join(this.root, rec.Id);
    try {
      await fs.promises.mkdir(tmp, { mode: 0o700 });
      const p = containerPaths(tmp);
      await fill(p);
      await writeFileAtomic(p.record, JSON.stringify(rec, null, 1));
      await fs.promises.rename(tmp, final);
      await fsyncDir(this.root);
    } catch (e) {
      await fs.promises.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    this.byId.set(rec.Id, rec);
    this.names.set(rec.Name.slice(1), rec.Id);
  }

  /**
   * Write the record as it is when the write runs (writes of one record never overlap, so
   * the last change always wins). A record removed meanwhile is not written back.
   */
  save(rec: ContainerRecord): Promise<void> {
    const prev = this.saving.get(rec.Id) ?? Promise.resolve();
    const next = prev.then(async () => {
      if (this.byId.get(rec.Id) !== rec) return;
      try {
        await writeFileAtomic(this.paths(rec.Id).record, JSON.stringify(rec, null, 1));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && this.byId.get(rec.Id) !== rec) return; // removed meanwhile
        throw e;
      }
    });
    const tail = next.catch(() => undefined);
    this.saving.set(rec.Id, tail);
    void tail.then(() => {
      if (this.saving.get(rec.Id) === tail) this.saving.delete(rec.Id);
    });
    return next;
  }

  /** Change the name in the index and the record (saved). */
  async rename(rec: ContainerRecord, newName: string): Promise<void> {
    const old = rec.Name.slice(1);
    this.reserveName(newName, rec.Id);
    rec.Name = `/${newName}`;
    try {
      await this.save(rec);
    } catch (e) {
      rec.Name = `/${old}`;
      this.releaseName(newName, rec.Id);
      throw e;
    }
    this.releaseName(old, rec.Id);
  }

  /**
   * The commit point of remove: `<id>/` becomes `rm-<id>/` and the record leaves the
   * indexes. Returns the directory's new path, for the caller to finish with removeDir.
   */
  async beginRemove(rec: ContainerRecord): Promise<string> {
    await this.saving.get(rec.Id);
    const trash = path.join(this.root, RM_PREFIX + rec.Id);
    await fs.promises.rename(path.join(this.root, rec.Id), trash);
    await fsyncDir(this.root);
    this.byId.delete(rec.Id);
    this.releaseName(rec.Name.slice(1), rec.Id);
    return trash;
  }

  /** Delete a `rm-*` or `new-*` directory (after its mounts are gone). */
  async removeDir(dir: string): Promise<void> {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}
