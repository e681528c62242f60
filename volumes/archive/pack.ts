/**
 * packDir: a directory (a committed overlay upper dir, or any tree) as a layer tar.
 *
 * The tar is deterministic: same tree, same bytes, same digest. Names are sorted per
 * directory and walked depth first (a directory before its contents), relative, without
 * './'; no uname/gname, no atime/ctime; mtimes in whole seconds (ustar). So committing
 * the same container twice gives the same diffID, and a layer can be re-packed to verify it.
 *
 * Streamed: one entry at a time, file data read as the consumer reads, and the walk itself
 * waits while the tar's buffer is full, so memory stays flat for any tree size.
 *
 * Kept: regular files, directories, symlinks, hardlinks (same (dev, ino) → a tar link to
 * the first name), fifos, uid/gid/mode (setuid, sticky)/mtime. Skipped: sockets and
 * device nodes, xattrs. With `overlayWhiteouts` (packing an upper dir), overlay whiteouts
 * (0:0 char devices) become `.wh.NAME` files and opaque directories get a `.wh..wh..opq`
 * entry, as docker's overlay2 driver writes them. Names that are not valid UTF-8 fail the
 * stream (Node's readdir decodes them lossily), rather than being packed under a wrong name.
 */
import fs, { BigIntStats, createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { ConflictError, NotFoundError, toBerthError } from '../shared/errors';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './paths';
import { findXattr } from './tools';

export { digestStream } from './digest';

export interface PackOptions {
  /** Convert overlayfs whiteouts and opaque dirs to OCI `.wh.` entries. */
  overlayWhiteouts?: boolean;
  /** Leave out the entry at `rel` (a directory with everything under it): a build context's .dockerignore, a commit's mount points. */
  skip?: (rel: string, isDir: boolean) => boolean;
}

export type Entry = Partial<tar.Header> & { name: string };

/** tar-stream's ustar header holds 6 octal digits of uid/gid; larger ids go in pax. */
const MAX_USTAR_ID = 0o777777;

export function packDir(dir: string, opts: PackOptions = {}): Readable {
  return streamPack((pack, room) => walk(dir, opts, pack, room));
}

/**
 * A tar stream written by `work`, which calls `room()` before each entry: tar-stream
 * applies backpressure to file data but not to headers, and a tree of a million empty
 * files would pile headers up in memory, so the walk waits while `pack` is full. The
 * stream fails with `work`'s error; a reader that stops reading ends the walk.
 */
export function streamPack(work: (pack: tar.Pack, room: () => Promise<void>) => Promise<void>): Readable {
  const pack = tar.pack();
  // isBackpressured is streamx's public static (Pack extends streamx.Readable).
  const streamx = pack.constructor as unknown as { isBackpressured(rs: unknown): boolean };
  let closed = false;
  let wake: (() => void) | null = null;
  let lastYield = Date.now();
  const room = async () => {
    while (!closed && streamx.isBackpressured(pack)) await new Promise<void>((r) => (wake = r));
    if (closed) throw new Error('tar stream closed by its reader');
    // Entry callbacks can resolve as microtasks only; let I/O in now and then.
    if (Date.now() - lastYield > 5) {
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
  };
  async function* bytes(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of pack as AsyncIterable<Buffer>) {
        wake?.();
        yield chunk;
      }
    } finally {
      closed = true;
      wake?.();
      pack.destroy();
    }
  }
  work(pack, room).then(
    () => pack.finalize(),
    (e) => pack.destroy(toBerthError(e)),
  );
  return Readable.from(bytes(), { objectMode: false });
}

/** Files up to this size are read whole (one syscall batch) instead of streamed. */
const SMALL_FILE = 64 * 1024;

interface Kid {
  out: string; // the base name in the tar: sorting is by this, so `.wh.` names sort as such
  st: BigIntStats;
  kind: 'plain' | 'whiteout' | 'opaque';
}

/**
 * The walk uses synchronous lstat/readdir/readlink and reads small files synchronously:
 * each is microseconds against the page cache, while a thread-pool hop per call made
 * packing 5-8x slower on a busy 2-core host. Large files are streamed asynchronously, and
 * `room()` yields to the event loop every few ms, so the daemon stays responsive.
 */
async function walk(dir: string, opts: PackOptions, pack: tar.Pack, room: () => Promise<void>): Promise<void> {
  const abs = (rel: string) => (rel === '' ? dir : dir + '/' + rel);
  const top = fs.statSync(dir, { throwIfNoEntry: false });
  if (!top?.isDirectory()) throw new NotFoundError(`directory ${dir} not found`, { hint: 'pack an existing directory' });
  // One getfattr walk for the whole tree, not one process per directory.
  const opaque = opts.overlayWhiteouts ? await findXattr(dir, 'trusted.overlay.opaque', 'y') : new Set<string>();
  const seen = new Map<string, string>(); // "dev:ino" → first name, for hardlinks

  const add = (header: Entry, file?: string) => addEntry(pack, room, header, file);

  const visit = async (rel: string, dirSt: BigIntStats): Promise<void> => {
    const kids: Kid[] = opaque.has(rel) ? [{ out: OPAQUE_MARKER, st: dirSt, kind: 'opaque' }] : [];
    for (const n of fs.readdirSync(abs(rel))) {
      const st = fs.lstatSync(abs(rel ? rel + '/' + n : n), { bigint: true });
      if (st.isCharacterDevice() && st.rdev === 0n) {
        if (opts.overlayWhiteouts) kids.push({ out: WHITEOUT_PREFIX + n, st, kind: 'whiteout' });
      } else if (st.isFile() || st.isDirectory() || st.isSymbolicLink() || st.isFIFO()) {
        kids.push({ out: n, st, kind: 'plain' });
      } // sockets and device nodes: skipped
    }
    kids.sort((a, b) => (a.out < b.out ? -1 : a.out > b.out ? 1 : 0));
    for (const { out, st, kind } of kids) {
      const name = rel ? rel + '/' + out : out;
      if (kind === 'plain' && opts.skip?.(name, st.isDirectory())) continue;
      if (kind === 'opaque') {
        await add({ ...header(name, st), type: 'file', mode: 0o100000 | (Number(st.mode) & 0o777), size: 0 });
        continue;
      }
      if (kind === 'whiteout') {
        // Whiteouts are often hardlinks of one shared inode (overlayfs >= 5.8): never links.
        await add({ ...header(name, st), type: 'file', mode: 0o100600, size: 0 });
        continue;
      }
      if (!st.isDirectory() && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = seen.get(key);
        if (first !== undefined) {
          await add({ ...header(name, st), type: 'link', linkname: first });
          continue;
        }
        seen.set(key, name);
      }
      if (st.isFile()) await add({ ...header(name, st), type: 'file', size: Number(st.size) }, abs(name));
      else if (st.isSymbolicLink()) await add({ ...header(name, st), type: 'symlink', linkname: fs.readlinkSync(abs(name)) });
      else if (st.isFIFO()) await add({ ...header(name, st), type: 'fifo' });
      else {
        await add({ ...header(name, st), type: 'directory' });
        await visit(name, st);
      }
    }
  };

  // The root itself gets no entry (its metadata belongs to whoever mounts the layer); an
  // opaque root still gets its marker.
  await visit('', fs.lstatSync(dir, { bigint: true }));
}

/** One tar entry once `room()` allows; file data read whole (small files) or streamed from `file`. */
export async function addEntry(pack: tar.Pack, room: () => Promise<void>, header: Entry, file?: string): Promise<void> {
  await room();
  const size = header.size ?? 0;
  const data = file && size > 0 && size <= SMALL_FILE ? fs.readFileSync(file) : null;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (data) {
      if (data.length !== size) return reject(new ConflictError(`${file} changed while being packed`));
      return void pack.entry(header, data, done);
    }
    const sink = pack.entry(header, done);
    if (!file || !size) return void sink.end(undefined);
    // A file that changes size while packed fails the entry ("Size mismatch"), never
    // yields a corrupt tar: the range is fixed to the size in the header.
    const rs = createReadStream(file, { start: 0, end: size - 1 });
    rs.on('error', (e) => sink.destroy(e));
    rs.pipe(sink as unknown as NodeJS.WritableStream);
  });
}

/** A tar header for `name` from its lstat: full mode, numeric owner (pax past ustar's range), whole-second mtime. */
export function header(name: string, st: BigIntStats): Entry {
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const big = uid > MAX_USTAR_ID || gid > MAX_USTAR_ID;
  return {
    name,
    // The full st_mode: tar-stream would replace a bare 0 (mode 000) by its default;
    // the header keeps only the low 12 bits anyway.
    mode: Number(st.mode),
    uid: big ? 0 : uid,
    gid: big ? 0 : gid,
    mtime: new Date(Number(st.mtimeMs)),
    ...(big ? { pax: { uid: String(uid), gid: String(gid) } } : {}),
  };
}
