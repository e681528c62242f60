import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { fsyncDir } from '../../volumes/shared/atomic';
import { faultPoint } from '../../volumes/shared/fault';

/**
 * The content store (containerd's content.Store, in small): immutable blobs named by
 * their sha256 digest. Layer tars are kept exactly as they came (gzip or not), next to
 * image configs and manifests, so `save` writes the same bytes that were loaded.
 *
 * Layout under `dir`:
 *   blobs/sha256/<hex>   one file per blob, read-only once in place
 *   ingest/<random>      a blob being written; renamed into blobs/ once its digest is known
 *   partial/<hex>        a registry download cut short, kept so the next pull resumes it
 *                        (registry/blobs.ts); never read as a blob until adopted
 *
 * Crash safety: a blob appears under blobs/ only by rename, after its bytes were fsynced
 * and its digest checked, so blobs/ never holds a half blob. A crash leaves only ingest
 * files, and `open` deletes them.
 */

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface WriteOptions {
  /** Refuse the blob (InvalidArgumentError) unless its digest is this one. */
  expected?: string;
  /** Refuse the blob unless it has exactly this many bytes. */
  expectedSize?: number;
  /** Called with each chunk's length as it is written. */
  onBytes?(n: number): void;
}

const DIGEST = /^sha256:([0-9a-f]{64})$/;

export class ContentStore {
  private constructor(readonly dir: string) {}

  /** Open (or create) the store in `dir`, deleting ingest files a crash left. */
  static async open(dir: string): Promise<ContentStore> {
    const root = path.resolve(dir);
    await fs.promises.mkdir(path.join(root, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    await fs.promises.rm(path.join(root, 'ingest'), { recursive: true, force: true });
    await fs.promises.mkdir(path.join(root, 'ingest'), { recursive: true, mode: 0o700 });
    await fs.promises.mkdir(path.join(root, 'partial'), { recursive: true, mode: 0o700 });
    await dropStalePartials(path.join(root, 'partial'));
    return new ContentStore(root);
  }

  /** Where a resumable download of `digest` keeps its bytes (same filesystem as blobs/). */
  partialPath(digest: string): string {
    return path.join(this.dir, 'partial', hexOf(digest));
  }

  /**
   * Move a finished file from partial/ into place as blob `digest`. The caller has checked
   * the bytes against the digest while they streamed and fsynced them; the rename is the
   * commit, so blobs/ still never holds a half blob.
   */
  async adopt(file: string, digest: string): Promise<BlobInfo> {
    const dest = this.path(digest);
    if (await this.has(digest)) {
      await fs.promises.rm(file, { force: true });
    } else {
      await fs.promises.chmod(file, 0o444);
      await fs.promises.rename(file, dest);
      await fsyncDir(path.dirname(dest));
    }
    return this.info(digest);
  }

  /** Where the blob lives (whether or not it exists). */
  path(digest: string): string {
    return path.join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await fs.promises.access(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  async info(digest: string): Promise<BlobInfo> {
    try {
      const st = await fs.promises.stat(this.path(digest));
      return { digest, size: st.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missing(digest);
      throw e;
    }
  }

  /** A stream of the blob's bytes. NotFoundError (on the stream, or here) if absent. */
  async reader(digest: string): Promise<Readable> {
    const p = this.path(digest);
    try {
      const fh = await fs.promises.open(p, 'r');
      return fh.createReadStream();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missing(digest);
      throw e;
    }
  }

  async readBuffer(digest: string): Promise<Buffer> {
    try {
      return await fs.promises.readFile(this.path(digest));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missing(digest);
      throw e;
    }
  }

  /** Every blob's digest. */
  async list(): Promise<string[]> {
    const names = await fs.promises.readdir(path.join(this.dir, 'blobs', 'sha256'));
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /**
   * Write a stream as a blob: hashed while it is written to an ingest file, fsynced,
   * checked against `expected`, then renamed into place. If the blob is already there the
   * ingest file is dropped. On any failure (including the input's) the ingest file is
   * removed and nothing appears under blobs/.
   */
  async write(input: AsyncIterable<Buffer | string> | Iterable<Buffer>, opts: WriteOptions = {}): Promise<BlobInfo> {
    if (opts.expected !== undefined) hexOf(opts.expected);
    const tmp = path.join(this.dir, 'ingest', randomBytes(12).toString('hex'));
    // An input stream that fails while the file opens (a client gone) must not emit an
    // unhandled 'error' (that kills the process): hold it until the loop below reads it.
    const emitter = typeof (input as Partial<NodeJS.EventEmitter>).on === 'function' ? (input as unknown as NodeJS.EventEmitter) : undefined;
    const hold = (): void => undefined;
    emitter?.on('error', hold);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(tmp, 'wx', 0o600);
    } catch (e) {
      emitter?.off('error', hold);
      throw e;
    }
    const hash = createHash('sha256');
    let size = 0;
    let renamed = false;
    try {
      try {
        for await (const chunk of input) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          if (buf.length === 0) continue;
          hash.update(buf);
          size += buf.length;
          let off = 0;
          while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
          opts.onBytes?.(buf.length);
        }
        await fh.sync();
      } finally {
        emitter?.off('error', hold);
        await fh.close();
      }
      const digest = `sha256:${hash.digest('hex')}`;
      if (opts.expected !== undefined && digest !== opts.expected) {
        throw new InvalidArgumentError(`digest mismatch: expected ${opts.expected}, got ${digest}`, {
          hint: 'the data is corrupt or was changed; fetch or export it again',
        });
      }
      if (opts.expectedSize !== undefined && size !== opts.expectedSize) {
        throw new InvalidArgumentError(`size mismatch for ${digest}: expected ${opts.expectedSize} bytes, got ${size}`, {
          hint: 'the data is corrupt or truncated; fetch or export it again',
        });
      }
      const dest = this.path(digest);
      faultPoint('content.blob.synced');
      if (!(await this.has(digest))) {
        await fs.promises.chmod(tmp, 0o444);
        await fs.promises.rename(tmp, dest);
        renamed = true;
        await fsyncDir(path.dirname(dest));
      }
      return { digest, size };
    } finally {
      if (!renamed) await fs.promises.rm(tmp, { force: true });
    }
  }

  /** Write a small blob held in memory. */
  writeBuffer(data: Buffer | string, opts: WriteOptions = {}): Promise<BlobInfo> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    return this.write([buf], opts);
  }

  /** Remove a blob; absent is fine (removal is idempotent). */
  async delete(digest: string): Promise<void> {
    await fs.promises.rm(this.path(digest), { force: true });
  }

  /** Names of files in ingest/ (for tests and diagnostics). */
  async ingests(): Promise<string[]> {
    return fs.promises.readdir(path.join(this.dir, 'ingest'));
  }
}

/** Partial downloads a week old will not be resumed: drop them. */
async function dropStalePartials(dir: string): Promise<void> {
  const week = Date.now() - 7 * 24 * 3600_000;
  for (const n of await fs.promises.readdir(dir)) {
    const p = path.join(dir, n);
    const st = await fs.promises.stat(p).catch(() => undefined);
    if (st && st.mtimeMs < week) await fs.promises.rm(p, { force: true });
  }
}

/** sha256 digest of a buffer, as 'sha256:<hex>'. */
export function digestOf(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function hexOf(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) {
    throw new InvalidArgumentError(`invalid digest ${JSON.stringify(digest)}`, {
      hint: 'a digest is sha256: followed by 64 lower-case hex digits',
    });
  }
  return m[1];
}

function missing(digest: string): NotFoundError {
  return new NotFoundError(`blob ${digest} not found in the content store`, {
    hint: 'load or import the image again',
  });
}
