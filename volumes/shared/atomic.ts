import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Crash-safe file writes. berth's one rule for metadata: write a temp file in the same
 * directory, fsync it, rename it over the target, fsync the directory. A crash at any
 * point leaves either the old file or the new one, never a half file.
 */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = await writeTemp(file, data, mode);
  try {
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

/**
 * Replace `file` whole (temp file + rename: a reader sees the old file or the new one),
 * WITHOUT syncing: after a crash it may hold the old content, the new, or nothing. Only for
 * files made again from the real state before every use (an OCI bundle is written at each
 * start and read once by the runtime), where two fsyncs (~12 ms on a loaded disk) buy nothing.
 */
export async function replaceFile(file: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = await writeTemp(file, data, mode, false);
  try {
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Create `file` with `data`, whole, only if it does not exist yet: the temp file is
 * hard-linked into place, and link(2) fails when the name is taken. So a reader never sees
 * it empty or half written, and of two processes racing, exactly one gets `true`.
 */
export async function createFileExclusive(file: string, data: string | Buffer, mode = 0o600): Promise<boolean> {
  const dir = path.dirname(file);
  const tmp = await writeTemp(file, data, mode);
  try {
    await fs.promises.link(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
  await fsyncDir(dir);
  return true;
}

/** `data` in a synced temp file beside `file` (named so cleanAtomicLeftovers finds it); its path. */
async function writeTemp(file: string, data: string | Buffer, mode: number, sync = true): Promise<string> {
  const tmp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${randomBytes(6).toString('hex')}`);
  const fh = await fs.promises.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Remove temp files a crash left behind by writeFileAtomic in `dir`. */
export async function cleanAtomicLeftovers(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith('.tmp-')).map((n) => fs.promises.rm(path.join(dir, n), { force: true })));
}

/**
 * A JSON document on disk changed only through `update`, one transaction at a time.
 * The whole document is rewritten atomically on each change: metadata here is small
 * (hundreds of records), and one format everywhere beats a database we do not need.
 *
 *   const db = await JsonStore.open(file, { images: {} });
 *   await db.update((d) => { d.images[id] = rec; });   // atomic: all or nothing
 */
export class JsonStore<T extends object> {
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(readonly file: string, private doc: T) {}

  static async open<T extends object>(file: string, empty: T): Promise<JsonStore<T>> {
    await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await cleanAtomicLeftovers(path.dirname(file));
    let doc: T;
    try {
      doc = JSON.parse(await fs.promises.readFile(file, 'utf8')) as T;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      doc = structuredClone(empty);
    }
    return new JsonStore(file, doc);
  }

  /** A deep copy of the current document: callers can never mutate the store by accident. */
  read(): T {
    return structuredClone(this.doc);
  }

  /**
   * Run `fn` on a copy of the document and, if it returns without throwing, write the copy
   * atomically and make it current. Transactions run one after another, in call order.
   */
  update<R>(fn: (doc: T) => R | Promise<R>): Promise<R> {
    const run = async (): Promise<R> => {
      const next = structuredClone(this.doc);
      const result = await fn(next);
      await writeFileAtomic(this.file, JSON.stringify(next, null, 1));
      this.doc = next;
      return result;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }
}
