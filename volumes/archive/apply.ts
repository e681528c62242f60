/**
 * applyLayer: unpack one image layer tarball (plain, gzip or zstd) into an overlayfs upper
 * directory, converting OCI whiteouts to overlayfs ones, in one streaming pass that also
 * yields the layer's diffID. With `whiteouts: 'plain'` (volume import) the same safe
 * writer unpacks a plain tar: `.wh.` names are ordinary files and nothing is converted.
 *
 * We write entries ourselves instead of running `tar -x` because the tar comes from the
 * network: every name is checked before anything touches the disk, and nothing is ever
 * written outside `dir`:
 *   - names are cleaned lexically (leading '/' dropped, `..` above the root rejected);
 *   - every ancestor of an entry must be a real directory: a symlink on the way rejects
 *     the layer (we never follow one, even one pointing inside);
 *   - the final component is never followed: whatever is there is removed first and files
 *     are opened O_EXCL|O_NOFOLLOW;
 *   - hardlink targets are checked the same way and must already exist as non-directories.
 * On any error the promise rejects and the caller discards `dir` whole: no rollback here.
 */
import fs, { constants as C, promises as fsp } from 'node:fs';
import { pipeline, Readable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import * as tar from 'tar-stream';
import { BerthError, FailedPreconditionError, InvalidArgumentError, toBerthError } from '../shared/errors';
import { UnpackGuard } from '../shared/unpack-guard';
import { digestStream } from './digest';
import { badLayer, checkRawName, classifyWhiteout, cleanPath, WHITEOUT_PREFIX, WhiteoutKind } from './paths';
import { applyPatch, BLOCK, readPatch } from './chunks';
import { mknodBatch, NodeSpec, setXattrs } from './tools';

export interface ApplyOptions {
  /** Called with each count of COMPRESSED input bytes consumed (progress bars). */
  onBytes?: (n: number) => void;
  /** Create char/block device nodes; by default they are dropped (a 0:0 char device,
   *  an overlay whiteout, is always kept when whiteouts are 'overlay'). */
  allowDevices?: boolean;
  /**
   * What `.wh.` names mean. 'overlay' (the default, image layers): OCI whiteouts become
   * overlayfs ones. 'plain' (a volume archive is not a layer): they are ordinary names,
   * kept as the files or directories the tar says, and a 0:0 char device is just a
   * device (dropped unless allowDevices). 'reject': any `.wh.` name rejects the tar.
   * 'delete' (a volume changeset applied on a copy of its base): `.wh.NAME` deletes NAME
   * (a directory with all under it) there and then; an opaque marker is refused.
   */
  whiteouts?: WhiteoutMode;
  /** What is unpacked, for the size checks' messages (default 'the layer'). */
  what?: string;
  /** Whose filesystem the size checks watch (default `dir`'s). */
  spaceDir?: string;
  /**
   * Compressed bytes read so far, when the caller decompressed the input itself (a build
   * context is gunzipped before it is padded): the ratio check counts these instead of
   * the (already plain) input's.
   */
  compressedBytes?: () => number;
  /**
   * Write no all-zero 64 KiB block of a file: leave a hole (the file ends at its size all the
   * same). A volume's sparse files come back sparse; its contents are the same bytes.
   */
  sparse?: boolean;
}

export type WhiteoutMode = 'overlay' | 'plain' | 'reject' | 'delete';

export interface ApplyResult {
  /** `sha256:<hex>` of the uncompressed tar stream: the layer's diffID. */
  diffID: string;
  /** Bytes of the uncompressed tar stream. */
  size: number;
  /** Tar entries seen (pax/long-name headers not counted). */
  entries: number;
  /** Device nodes dropped because allowDevices was off. */
  devicesDropped: number;
  /** The tar had an entry for `/` itself (its mode and owner are the layer's own). */
  rootSet: boolean;
}

export async function applyLayer(input: Readable, dir: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const root = await layerRoot(dir);
  let compressed = 0;
  const { head, body } = await sniff(input, (n) => {
    compressed += n;
    opts.onBytes?.(n);
  });
  const format = compression(head);
  if (format !== 'tar' && format !== 'gzip' && format !== 'zstd') {
    input.destroy();
    throw new InvalidArgumentError(`layer is ${format}-compressed, which berth does not support`, {
      hint: 'push the image with gzip, zstd or uncompressed layers (e.g. `docker buildx build --output type=image,compression=gzip`)',
    });
  }
  const digest = digestStream();
  const extract = tar.extract();
  // Stops a stream that would fill the host (or expands past the daemon's ratio) early.
  const guard = new UnpackGuard({ dir: opts.spaceDir ?? root, what: opts.what ?? 'the layer', compressedBytes: opts.compressedBytes ?? (() => compressed) });
  const stages: NodeJS.ReadWriteStream[] =
    format === 'gzip' ? [createGunzip(), guard, digest.stream] : format === 'zstd' ? [createZstdDecompress(), guard, digest.stream] : [guard, digest.stream];
  pipeline([Readable.from(body, { objectMode: false }), ...stages], (err) => {
    if (err) extract.destroy(err);
  });
  digest.stream.pipe(extract as unknown as NodeJS.WritableStream);
  let parseError: unknown; // the parser's own words beat "Stream was destroyed" from an entry
  extract.on('error', (e) => (parseError ??= e));

  const w = new LayerWriter(root, opts.allowDevices ?? false, opts.whiteouts ?? 'overlay', opts.sparse ?? false);
  try {
    for await (const entry of extract) {
      // A size the header declares is checked before a byte of it is written.
      if (entry.header.size) guard.declare(entry.header.size);
      // Our own failures become BerthErrors here; anything else below came from the
      // tar parser or zlib, i.e. the input is not a (complete) tar.
      await w.write(entry.header, readFailures(entry as unknown as AsyncIterable<Buffer>)).catch((e) => {
        throw e instanceof ReadFailure ? e.cause : toBerthError(e);
      });
    }
    if (digest.size() === 0) throw badLayer('layer tarball is empty');
    await w.finish().catch((e) => Promise.reject(toBerthError(e)));
  } catch (e) {
    digest.stream.destroy();
    if (e instanceof BerthError) throw e;
    const cause = (parseError ?? e) as Error;
    throw badLayer(`not a valid (or a truncated) layer tarball: ${cause?.message ?? cause}`);
  }
  return { diffID: digest.digest(), size: digest.size(), entries: w.entries, devicesDropped: w.devicesDropped, rootSet: w.rootSet() };
}

/** Marks an error from reading an entry's data (truncated tar, bad gzip, input failure)
 *  apart from an error of ours in writing it. */
class ReadFailure {
  constructor(readonly cause: unknown) {}
}

async function* readFailures(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* body;
  } catch (e) {
    throw new ReadFailure(e);
  }
}

async function layerRoot(dir: string): Promise<string> {
  try {
    const root = await fsp.realpath(dir);
    if ((await fsp.stat(root)).isDirectory()) return root;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw toBerthError(e);
  }
  throw new FailedPreconditionError(`layer directory ${dir} does not exist`, { hint: 'create it before applying' });
}

/** Read the first bytes (for the magic number) without losing them; count input bytes. */
async function sniff(input: Readable, onBytes?: (n: number) => void) {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let have = 0;
  let done = false;
  try {
    while (have < 10) {
      const r = await it.next();
      if (r.done) {
        done = true;
        break;
      }
      chunks.push(r.value);
      have += r.value.length;
      onBytes?.(r.value.length);
    }
  } catch (e) {
    throw toBerthError(e);
  }
  const head = Buffer.concat(chunks);
  async function* body(): AsyncGenerator<Buffer> {
    try {
      if (head.length) yield head;
      while (!done) {
        const r = await it.next();
        if (r.done) break;
        onBytes?.(r.value.length);
        yield r.value;
      }
    } catch (e) {
      throw toBerthError(e); // the input failed (network, disk), not the tar
    } finally {
      await it.return?.();
    }
  }
  return { head, body: body() };
}

function compression(b: Buffer): 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'tar' {
  const is = (...m: number[]) => m.every((x, i) => b[i] === x);
  if (is(0x1f, 0x8b)) return 'gzip';
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (is(0x42, 0x5a, 0x68) && b[3] >= 0x31 && b[3] <= 0x39 && b.subarray(4, 10).toString('hex') === '314159265359') return 'bzip2';
  return 'tar';
}

interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

type Pending = NodeSpec & Meta;

/** Files are created fresh, never through whatever was at the path. */
const CREATE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/**
 * Applies entries one at a time, in tar order. Nodes (whiteouts, fifos, devices), xattrs
 * and directory mtimes are deferred and done in batches at the end (one process for all
 * mknods, one for all xattrs; dir mtimes after their contents). Whatever a later entry
 * replaces is dropped from those queues, so "last entry wins" holds as with docker.
 *
 * File system calls are synchronous on purpose: each is microseconds against the page
 * cache, while a thread-pool round trip per call made applying a 15k-file layer 2-3x
 * slower. The event loop still turns between chunks of the tar stream.
 */
class LayerWriter {
  entries = 0;
  devicesDropped = 0;
  /** Relative paths known to be real directories (not symlinks) on disk. */
  private dirs = new Set<string>(['']);
  private nodes = new Map<string, Pending>();
  private xattrs = new Map<string, Map<string, Buffer>>();
  private dirTimes = new Map<string, Date>();

  constructor(
    private readonly root: string,
    private readonly allowDevices: boolean,
    private readonly whiteouts: WhiteoutMode,
    private readonly sparse: boolean,
  ) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : this.root + '/' + rel;
  }

  rootSet(): boolean {
    return this.dirTimes.has('');
  }

  async write(h: tar.Header, body: AsyncIterable<Buffer>): Promise<void> {
    this.entries++;
    const parts = cleanPath(h.name);
    if (h.linkname) checkRawName(h.linkname, 'link name');
    const overlay = this.whiteouts === 'overlay';
    const layered = overlay || this.whiteouts === 'delete';
    if (this.whiteouts !== 'plain') {
      parts.forEach((p, i) => {
        if (!p.startsWith(WHITEOUT_PREFIX)) return;
        if (!layered) throw badLayer(`whiteout names are not allowed here: ${JSON.stringify(h.name)}`);
        if (i < parts.length - 1) throw badLayer(`whiteout used as a directory: ${JSON.stringify(h.name)}`);
      });
    }
    const meta = metaOf(h);
    const wo: WhiteoutKind = layered ? classifyWhiteout(parts[parts.length - 1] ?? '') : { kind: 'none' };
    if (h.type === 'file' || h.type === 'contiguous-file') {
      // A patch (chunks.ts) only means something on a copy of its base: a changeset's.
      const patch = readPatch(h, badLayer);
      if (patch && this.whiteouts !== 'delete') throw badLayer(`a file patch outside a volume changeset: ${JSON.stringify(h.name)}`);
      if (patch && wo.kind === 'none') return this.patch(parts, meta, paxXattrs(h), patch, body);
      if (wo.kind === 'none') return this.file(parts, meta, paxXattrs(h), body);
    }
    for await (const _ of body); // other entries' data (if any) is not ours to keep
    if (wo.kind === 'opaque' && !overlay) throw badLayer(`opaque directory markers are not allowed in a volume changeset: ${JSON.stringify(h.name)}`);
    if (wo.kind === 'whiteout' && !overlay) {
      // The ancestors are checked like any entry's (never through a symlink), then the
      // name is removed; a name that is not there is already deleted.
      const rel = await this.prepare([...parts.slice(0, -1), wo.name]);
      await this.clear(rel, false);
      return;
    }
    if (wo.kind === 'opaque') {
      const dir = parts.slice(0, -1);
      await this.parents([...dir, '_']); // the directory itself must be real too
      return this.addXattr(dir.join('/'), 'trusted.overlay.opaque', Buffer.from('y'));
    }
    if (wo.kind === 'whiteout') {
      // Docker's overlay2 driver: a 0:0 char device, mode 0, the entry's owner.
      return this.node([...parts.slice(0, -1), wo.name], { type: 'c', major: 0, minor: 0 }, { ...meta, mode: 0 });
    }
    switch (h.type) {
      case 'directory':
        return this.directory(parts, meta, paxXattrs(h));
      case 'symlink':
        return this.symlink(parts, h.linkname ?? '', meta);
      case 'link':
        return this.hardlink(parts, h.linkname ?? '');
      case 'fifo':
        return this.node(parts, { type: 'p', major: 0, minor: 0 }, meta);
      case 'character-device':
      case 'block-device': {
        const whiteout = overlay && h.type === 'character-device' && !h.devmajor && !h.devminor;
        if (!whiteout && !this.allowDevices) {
          this.devicesDropped++;
          return;
        }
        const type = h.type === 'character-device' ? 'c' : 'b';
        return this.node(parts, { type, major: h.devmajor ?? 0, minor: h.devminor ?? 0 }, meta);
      }
      default:
        throw badLayer(`unsupported tar entry type ${String(h.type)} for ${JSON.stringify(h.name)}`);
    }
  }

  /** Deferred work, in the order that keeps it correct: nodes, then xattrs (after every
   *  chown, which would clear security.capability), then dir mtimes deepest first. */
  async finish(): Promise<void> {
    await this.flushNodes();
    for (const rel of this.xattrs.keys()) this.assertParentKnown(rel);
    await setXattrs(this.root, this.xattrs);
    const dirs = [...this.dirTimes].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [rel, t] of dirs) fs.lutimesSync(this.abs(rel), t, t);
  }

  private async file(parts: string[], m: Meta, xattrs: Map<string, Buffer> | null, body: AsyncIterable<Buffer>) {
    const rel = await this.prepare(parts);
    const abs = this.abs(rel);
    let fd: number;
    try {
      fd = fs.openSync(abs, CREATE, 0o600);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      await this.clear(rel, false);
      fd = fs.openSync(abs, CREATE, 0o600);
    }
    try {
      if (this.sparse) await writeSparse(fd, body);
      else {
        for await (const chunk of body) {
          for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off);
        }
      }
      fs.fchownSync(fd, m.uid, m.gid); // before chmod: chown clears setuid/setgid
      fs.fchmodSync(fd, m.mode);
      fs.futimesSync(fd, m.mtime, m.mtime);
    } finally {
      fs.closeSync(fd);
    }
    if (xattrs) for (const [k, v] of xattrs) this.addXattr(rel, k, v);
  }

  /**
   * A file patch: the base's copy is changed in place (the staged copy is the volume's
   * own: a btrfs snapshot or a cp), so unchanged blocks stay shared with the base. The
   * ancestors are checked like any entry's and the file itself is never followed.
   */
  private async patch(parts: string[], m: Meta, xattrs: Map<string, Buffer> | null, patch: NonNullable<ReturnType<typeof readPatch>>, body: AsyncIterable<Buffer>) {
    const rel = await this.prepare(parts);
    const mismatch = (why: string) =>
      new FailedPreconditionError(`${JSON.stringify(rel)} ${why}`, { hint: 'the changeset was made on another base; apply it on a copy of the snapshot it names' });
    const st = lstatOrNull(this.abs(rel));
    if (!st?.isFile()) throw mismatch('is not a regular file in the base');
    const fd = fs.openSync(this.abs(rel), C.O_RDWR | C.O_NOFOLLOW);
    try {
      if (fs.fstatSync(fd).nlink !== 1) throw mismatch('has other names in the base, which a patch would change too');
      await applyPatch(fd, patch, body, mismatch);
      fs.fchownSync(fd, m.uid, m.gid);
      fs.fchmodSync(fd, m.mode);
      fs.futimesSync(fd, m.mtime, m.mtime);
    } finally {
      fs.closeSync(fd);
    }
    if (xattrs) for (const [k, v] of xattrs) this.addXattr(rel, k, v);
  }

  private async directory(parts: string[], m: Meta, xattrs: Map<string, Buffer> | null) {
    const rel = await this.prepare(parts);
    const abs = this.abs(rel);
    try {
      fs.mkdirSync(abs, 0o700);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      if (!(await this.clear(rel, true))) fs.mkdirSync(abs, 0o700);
    }
    this.dirs.add(rel);
    fs.lchownSync(abs, m.uid, m.gid);
    fs.chmodSync(abs, m.mode); // a real directory (checked above), so following is moot
    this.dirTimes.set(rel, m.mtime);
    if (xattrs) for (const [k, v] of xattrs) this.addXattr(rel, k, v);
  }

  private async symlink(parts: string[], target: string, m: Meta) {
    const rel = await this.prepare(parts);
    const abs = this.abs(rel);
    // The target is data, not followed by us: it may point anywhere.
    try {
      fs.symlinkSync(target, abs);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      await this.clear(rel, false);
      fs.symlinkSync(target, abs);
    }
    fs.lchownSync(abs, m.uid, m.gid);
    fs.lutimesSync(abs, m.mtime, m.mtime);
  }

  private async hardlink(parts: string[], linkname: string) {
    const target = cleanPath(linkname, 'hardlink target');
    const tRel = target.join('/');
    let dir = '';
    for (const p of target.slice(0, -1)) {
      dir = dir ? dir + '/' + p : p;
      if (!this.dirs.has(dir)) {
        const st = lstatOrNull(this.abs(dir));
        if (!st?.isDirectory()) throw badLayer(`hardlink target ${JSON.stringify(linkname)} is not inside this layer`);
        this.dirs.add(dir);
      }
    }
    if (this.nodes.has(tRel)) await this.flushNodes(); // a link to a fifo made earlier in this tar
    const st = tRel === '' ? null : lstatOrNull(this.abs(tRel));
    if (!st || st.isDirectory()) throw badLayer(`hardlink target ${JSON.stringify(linkname)} is not a file in this layer`);
    const rel = await this.prepare(parts);
    if (rel === tRel || tRel.startsWith(rel + '/')) throw badLayer(`hardlink ${JSON.stringify(linkname)} would replace its own target`);
    const abs = this.abs(rel);
    // link(2) does not follow a symlink target: linking to a symlink links the symlink.
    try {
      fs.linkSync(this.abs(tRel), abs);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      await this.clear(rel, false);
      fs.linkSync(this.abs(tRel), abs);
    }
  }

  private async node(parts: string[], spec: Omit<NodeSpec, 'path'>, m: Meta) {
    const rel = await this.prepare(parts);
    await this.clear(rel, false);
    this.nodes.set(rel, { path: rel, ...spec, ...m });
  }

  /**
   * Checks (and creates, as 0755 dirs) the ancestors of `parts`; a node still queued for
   * the path itself is replaced by this entry. Returns the relative path.
   */
  private async prepare(parts: string[]): Promise<string> {
    await this.parents(parts);
    const rel = parts.join('/');
    this.nodes.delete(rel);
    return rel;
  }

  /** Every ancestor of `parts` must be a real directory; missing ones are created. */
  private async parents(parts: string[]): Promise<void> {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel ? rel + '/' + parts[i] : parts[i];
      if (this.dirs.has(rel)) continue;
      if (this.nodes.has(rel)) throw badLayer(`${JSON.stringify(rel)} is not a directory`);
      const abs = this.abs(rel);
      const st = lstatOrNull(abs);
      if (!st) fs.mkdirSync(abs, 0o755);
      else if (st.isSymbolicLink()) throw badLayer(`entry ${JSON.stringify(parts.join('/'))} goes through symlink ${JSON.stringify(rel)}`);
      else if (!st.isDirectory()) throw badLayer(`${JSON.stringify(rel)} is not a directory`);
      this.dirs.add(rel);
    }
  }

  /** Remove what is at `rel`, or keep a directory when a directory merges into it.
   *  Returns true when kept. rm never follows symlinks, so nothing outside is touched. */
  private async clear(rel: string, mergeDir: boolean): Promise<boolean> {
    const abs = this.abs(rel);
    const st = lstatOrNull(abs);
    if (!st) return false;
    const isDir = st.isDirectory();
    if (isDir && mergeDir) return true;
    if (rel === '') throw badLayer('a non-directory entry replaces the layer root');
    this.forget(rel, isDir);
    if (isDir) await fsp.rm(abs, { recursive: true, force: true });
    else fs.unlinkSync(abs);
    return false;
  }

  /** Drop deferred work for a path being removed (and, for a directory, its contents). */
  private forget(rel: string, tree: boolean) {
    const hit = (k: string) => k === rel || (tree && k.startsWith(rel + '/'));
    for (const k of this.dirs) if (hit(k)) this.dirs.delete(k);
    for (const k of this.nodes.keys()) if (hit(k)) this.nodes.delete(k);
    for (const k of this.xattrs.keys()) if (hit(k)) this.xattrs.delete(k);
    for (const k of this.dirTimes.keys()) if (hit(k)) this.dirTimes.delete(k);
  }

  private addXattr(rel: string, name: string, value: Buffer) {
    let m = this.xattrs.get(rel);
    if (!m) this.xattrs.set(rel, (m = new Map()));
    m.set(name, value);
  }

  /** Belt and braces before a batch tool touches paths: each parent is a checked dir. */
  private assertParentKnown(rel: string) {
    const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    if (!this.dirs.has(parent)) throw badLayer(`internal: parent of ${JSON.stringify(rel)} unchecked`);
  }

  private async flushNodes() {
    const nodes = [...this.nodes.values()];
    this.nodes.clear();
    if (nodes.length === 0) return;
    nodes.forEach((n) => this.assertParentKnown(n.path));
    await mknodBatch(this.root, nodes);
    for (const n of nodes) {
      const abs = this.abs(n.path);
      fs.lchownSync(abs, n.uid, n.gid);
      fs.chmodSync(abs, n.mode); // the node we just made: not a symlink
      fs.lutimesSync(abs, n.mtime, n.mtime);
    }
  }
}

type Pax = Record<string, string>;

/**
 * The smallest hole writeSparse leaves: an aligned all-zero run this long. Not the 4 KiB
 * block: data with short zero runs (half-empty pages) would become a file of a hundred
 * thousand extents, slow to read and to delete; a real sparse file's holes are far larger.
 */
const HOLE = 16 * BLOCK;
const ZERO_BLOCK = Buffer.alloc(HOLE);

/**
 * Write a file's data into `fd` (a new, empty file) leaving holes where whole aligned
 * 64 KiB blocks are zero, then set its size (a trailing hole writes nothing either).
 */
async function writeSparse(fd: number, body: AsyncIterable<Buffer>): Promise<void> {
  let pos = 0;
  let carry: Buffer | null = null; // a partial block from the last chunk
  const put = (buf: Buffer, at: number) => {
    for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off, at + off);
  };
  for await (const raw of body) {
    const chunk: Buffer = carry ? Buffer.concat([carry, raw]) : raw;
    carry = null;
    const whole = chunk.length - (chunk.length % HOLE);
    let runStart = -1; // start of a run of non-zero blocks, written in one call
    for (let i = 0; i < whole; i += HOLE) {
      const zero = chunk.subarray(i, i + HOLE).equals(ZERO_BLOCK);
      if (!zero && runStart < 0) runStart = i;
      if (zero && runStart >= 0) {
        put(chunk.subarray(runStart, i), pos + runStart);
        runStart = -1;
      }
    }
    if (runStart >= 0) put(chunk.subarray(runStart, whole), pos + runStart);
    if (whole < chunk.length) carry = Buffer.from(chunk.subarray(whole));
    pos += whole;
  }
  if (carry) {
    put(carry, pos); // the last partial block: written as is
    pos += carry.length;
  }
  fs.ftruncateSync(fd, pos);
}

function metaOf(h: tar.Header): Meta {
  const pax = (h.pax ?? {}) as Pax;
  const id = (v: string | undefined, fallback: number, what: string) => {
    const n = v !== undefined ? Number(v) : fallback;
    if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) throw badLayer(`bad ${what} ${v ?? fallback} for ${JSON.stringify(h.name)}`);
    return n;
  };
  const paxTime = pax.mtime !== undefined ? Number(pax.mtime) : NaN;
  const mtime = Number.isFinite(paxTime) ? new Date(paxTime * 1000) : h.mtime instanceof Date && !isNaN(+h.mtime) ? h.mtime : new Date(0);
  return { mode: (h.mode ?? 0o644) & 0o7777, uid: id(pax.uid, h.uid ?? 0, 'uid'), gid: id(pax.gid, h.gid ?? 0, 'gid'), mtime };
}

/**
 * pax xattrs we apply (batched into the one setfattr run): `security.capability` (ping and
 * friends need it) and `user.*`. Others (trusted.*, security.selinux, ...) are skipped:
 * they are host policy, not image content. tar-stream decodes pax values as UTF-8, so a
 * binary value that was not valid UTF-8 arrives with U+FFFD in it; such a value cannot be
 * recovered and is skipped rather than written corrupted.
 */
function paxXattrs(h: tar.Header): Map<string, Buffer> | null {
  let out: Map<string, Buffer> | null = null;
  for (const [k, v] of Object.entries((h.pax ?? {}) as Pax)) {
    if (!k.startsWith('SCHILY.xattr.')) continue;
    const name = k.slice('SCHILY.xattr.'.length);
    if (name !== 'security.capability' && !name.startsWith('user.')) continue;
    if (v.includes('\uFFFD')) continue;
    (out ??= new Map()).set(name, Buffer.from(v));
  }
  return out;
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function lstatOrNull(p: string): fs.Stats | null {
  return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
}
