import * as posix from 'node:path/posix';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { UnpackGuard } from '../../volumes/shared/unpack-guard';
import { ContentStore, digestOf } from './content';
import { compressionOf, drain, formatError, peek } from './streams';
import type { Progress } from './service';

/**
 * Reading an image archive (`docker save` output or an OCI image layout tarball) in one
 * pass: every file entry goes into the content store as it streams by, hashed while it
 * is written, so a multi-gigabyte archive is never held in memory or written twice.
 * Small files (JSON documents, tiny layers) are kept in memory instead and only written
 * to the content store if an image turns out to use them.
 */

/** Files at most this big stay in memory, up to MEMORY_BUDGET bytes in all. */
const SMALL = 1 << 20;
const MEMORY_BUDGET = 128 << 20;
const ARCHIVE_HINT = 'give the output of `docker save`, `podman save` or an OCI image layout tarball (plain or gzip)';

export interface ArchiveFile {
  path: string;
  size: number;
  digest: string;
  /** The bytes, for small files; otherwise they are in the content store under `digest`. */
  data?: Buffer;
}

export class ArchiveIndex {
  readonly files = new Map<string, ArchiveFile>();
  /** Symlinks and hard links: path → target path (both archive-relative). */
  readonly links = new Map<string, string>();

  constructor(private readonly content: ContentStore) {}

  /** The file at `p`, following links; undefined if there is none. */
  get(p: string): ArchiveFile | undefined {
    let cur = cleanPath(p);
    for (let i = 0; i < 16; i++) {
      const f = this.files.get(cur);
      if (f) return f;
      const t = this.links.get(cur);
      if (t === undefined) return undefined;
      cur = t;
    }
    return undefined;
  }

  has(p: string): boolean {
    return this.get(p) !== undefined;
  }

  /** The bytes of the file at `p`; InvalidArgumentError if the archive has no such file. */
  async read(p: string): Promise<Buffer> {
    const f = this.get(p);
    if (!f) throw missingFile(p);
    return f.data ?? this.content.readBuffer(f.digest);
  }

  /** The first `n` bytes of a file (to sniff compression). */
  async head(f: ArchiveFile, n = 16): Promise<Buffer> {
    if (f.data) return f.data.subarray(0, n);
    const r = await this.content.reader(f.digest);
    const { head } = await peek(r, n);
    r.destroy();
    return head;
  }

  /** Parse a JSON file of the archive. */
  async json<T>(p: string): Promise<T> {
    const buf = await this.read(p);
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch (e) {
      throw new InvalidArgumentError(`${p} in the archive is not valid JSON: ${(e as Error).message}`, { hint: ARCHIVE_HINT });
    }
  }
}

/**
 * Read the whole archive. Large files go to the content store as they stream by (the
 * caller keeps garbage collection away meanwhile and collects the unused ones after).
 */
export async function readArchive(input: Readable, content: ContentStore, opts: { progress?: Progress } = {}): Promise<ArchiveIndex> {
  const index = new ArchiveIndex(content);
  let inMemory = 0;
  try {
    const { head, stream } = await peek(input, 8);
    if (head.length === 0) throw new InvalidArgumentError('the input is empty, not an image archive', { hint: ARCHIVE_HINT });
    const kind = compressionOf(head);
    if (kind !== 'none' && kind !== 'gzip') {
      stream.destroy();
      throw new InvalidArgumentError(`the archive is ${kind}-compressed, which berth does not read`, {
        hint: `decompress it first (e.g. ${kind === 'xz' ? 'xz -d' : kind === 'zstd' ? 'zstd -d' : 'bunzip2'}) or use gzip`,
      });
    }
    const extract = tar.extract();
    let compressed = 0;
    stream.on('data', (c: Buffer) => (compressed += c.length));
    const unpacked = kind === 'gzip' ? stream.pipe(createGunzip()) : stream;
    if (kind === 'gzip') stream.on('error', (e) => unpacked.destroy(e));
    // Stops an archive that would fill the host (or expands past the daemon's ratio) early.
    const guard = new UnpackGuard({ dir: content.dir, what: 'the image archive', compressedBytes: () => compressed });
    unpacked.on('error', (e) => guard.destroy(e));
    const source = unpacked.pipe(guard);
    source.on('error', (e) => extract.destroy(e));
    source.pipe(extract);
    try {
      for await (const entry of extract) {
        const h = entry.header;
        const p = cleanPath(h.name);
        if (h.type === 'file' || h.type === 'contiguous-file') {
          const expected = blobPathDigest(p);
          const size = h.size ?? 0;
          guard.declare(size);
          if (size <= SMALL && inMemory + size <= MEMORY_BUDGET) {
            inMemory += size;
            const chunks: Buffer[] = [];
            for await (const c of entry) chunks.push(c as Buffer);
            const data = Buffer.concat(chunks);
            const digest = digestOf(data);
            if (expected && expected !== digest) throw mismatch(p, expected, digest);
            index.files.set(p, { path: p, size: data.length, digest, data });
          } else {
            let done = 0;
            const info = await content.write(entry as unknown as AsyncIterable<Buffer>, {
              expected,
              onBytes: (n) => {
                done += n;
                opts.progress?.({ status: 'Loading layer', id: p, current: done, total: size });
              },
            });
            index.files.set(p, { path: p, size: info.size, digest: info.digest });
          }
        } else {
          if ((h.type === 'symlink' || h.type === 'link') && h.linkname) {
            const target = h.type === 'symlink' ? posix.join(posix.dirname(p), h.linkname) : h.linkname;
            index.links.set(p, cleanPath(target));
          }
          entry.resume();
        }
      }
    } finally {
      extract.destroy();
      source.destroy();
      unpacked.destroy();
      stream.destroy(); // (gunzip does not pass it on) lets go of the input, see peek
    }
  } catch (e) {
    drain(input);
    throw formatError(e, 'cannot read the image archive', ARCHIVE_HINT);
  }
  return index;
}

/** Archive paths: no leading './' or '/', no '..' escapes. */
export function cleanPath(p: string): string {
  let s = posix.normalize(p.replace(/^\/+/, ''));
  s = s.replace(/\/+$/, '');
  if (s === '.') return '';
  if (s === '..' || s.startsWith('../')) {
    throw new InvalidArgumentError(`the archive names a path outside itself: ${JSON.stringify(p)}`, { hint: ARCHIVE_HINT });
  }
  return s;
}

/** 'blobs/sha256/<hex>' → 'sha256:<hex>' (such a file must hash to its name). */
export function blobPathDigest(p: string): string | undefined {
  const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(p);
  return m ? `sha256:${m[1]}` : undefined;
}

export function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

function mismatch(p: string, expected: string, got: string): InvalidArgumentError {
  return new InvalidArgumentError(`digest mismatch for ${p}: the file hashes to ${got}, not ${expected}`, {
    hint: 'the archive is corrupt or was changed after it was written; export it again',
  });
}

export function missingFile(p: string): InvalidArgumentError {
  return new InvalidArgumentError(`the archive has no file ${p}`, {
    hint: 'the archive is incomplete or was truncated; export it again',
  });
}

export { ARCHIVE_HINT };
