import fs, { constants as C } from 'node:fs';
import * as posix from 'node:path/posix';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { BerthError, FailedPreconditionError, InvalidArgumentError, NotFoundError, toBerthError } from '../../volumes/shared/errors';
import { checkRawName, cleanPath } from '../../volumes/archive/paths';
import { streamPack } from '../../volumes/archive/pack';
import { at, atFromChild, errno, removeAt, RootedTree, type Dir } from '../../volumes/archive/rooted';
import { tool } from '../../volumes/shared/host-tool';
import { UnpackGuard } from '../../volumes/shared/unpack-guard';
import { lookupUser } from '../runtime/rootfs';
import type { ContainerAccess, RootfsView } from './container-access';
import type { ContainerRecord } from './container-record';

/**
 * GET/PUT/HEAD /containers/{id}/archive: `docker cp`, docker-py's get/put_archive and
 * testcontainers' copy, on running and stopped containers.
 *
 * Safety: every path is resolved inside the container's root through file descriptors
 * (volumes/archive/rooted.ts), never as a host path, so a symlink in the container —
 * even one swapped in while the copy runs — cannot lead a read or a write out to the
 * host. A running container is reached through /proc/PID/root, so its volumes, binds and
 * tmpfs are where the container sees them; a stopped one through its mounted snapshot with
 * its volumes and binds grafted at their destinations. A PUT tar gets a layer tar's
 * checks (paths.ts): names are cleaned, `..` above the destination rejects it, an entry
 * never goes through a symlink, the final component is never followed, hardlinks stay
 * inside, device nodes are dropped.
 */

/** Docker's X-Docker-Container-Path-Stat, before base64. */
export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode: permission bits plus Go's type and setuid/setgid/sticky bits. */
  mode: number;
  mtime: string;
  linkTarget: string;
}

export interface PutOptions {
  /** Docker's copyUIDGID: with a Config.User, everything is owned by that user. */
  copyUIDGID?: boolean;
  /** Refuse to replace a directory with a non-directory or the other way round. */
  noOverwriteDirNonDir?: boolean;
  /**
   * For the size checks (unpack-guard.ts), which every PUT gets: what is unpacked (default
   * 'the archive'), and its compressed bytes read so far when it was decompressed on the
   * way (then the daemon's decompression ratio is checked too).
   */
  unpack?: { what: string; compressedBytes?: () => number };
}

export class ContainerArchive {
  constructor(private readonly access: ContainerAccess) {}

  /** HEAD: what `path` is, without following its last component (Docker's lstat). */
  async stat(ref: string, path: string): Promise<PathStat> {
    checkPath(path);
    return this.access.withRootfs(ref, async (v) => {
      const tree = openTree(v);
      try {
        return statOf(tree, path, ref);
      } finally {
        tree.dispose();
      }
    });
  }

  /**
   * GET: `path` as a tar, entries named after its last component as asked (Docker's
   * rebase), a trailing `/.` giving the directory's contents. `begin` gets the stat once
   * the path is found and returns where the tar goes; an error before that is thrown
   * as is (a 404 for a missing path).
   */
  async get(ref: string, path: string, begin: (stat: PathStat) => Writable): Promise<void> {
    checkPath(path);
    await this.access.withRootfs(ref, async (v) => {
      const tree = openTree(v);
      try {
        const stat = statOf(tree, path, ref);
        const loc = tree.resolve(path, { follow: false });
        const out = begin(stat);
        const rebase = baseOf(path);
        await pipeline(packTree(tree, loc.parent, loc.name, rebase === '/' ? '.' : rebase), out);
      } finally {
        tree.dispose();
      }
    });
    this.access.emit(this.access.record(ref), 'archive-path');
  }

  /** PUT: extract `input` (a plain tar) into the directory `path` of the container. */
  async put(ref: string, path: string, input: Readable, opts: PutOptions = {}): Promise<void> {
    checkPath(path);
    await this.access.withRootfs(ref, async (v) => {
      const tree = openTree(v);
      try {
        const loc = tree.resolve(path, { follow: true });
        const st = loc.st ?? (loc.name ? tree.lstat(loc.parent, loc.name) : undefined);
        if (!st) throw new NotFoundError(`Could not find the file ${path} in container ${ref}`, { hint: 'create the directory first, or copy into an existing one' });
        if (!st.isDirectory()) throw new InvalidArgumentError(`extraction point is not a directory: ${path}`, { hint: 'copy into a directory of the container' });
        const dest = loc.name ? tree.openChildDir(loc.parent, loc.name) : loc.parent;
        if (!dest) throw new FailedPreconditionError(`${path} changed while it was resolved`, { hint: 'try again' });
        const owner = opts.copyUIDGID && v.rec.Config.User ? await lookupUser(v.root, v.rec.Config.User) : undefined;
        // Stops a tar that would fill the host (or a bomb past the ratio) early: the container's root filesystem's free space.
        const guard = new UnpackGuard({ dir: v.root, what: opts.unpack?.what ?? 'the archive', compressedBytes: opts.unpack?.compressedBytes });
        const w = new TreeWriter(tree, dest, { rec: v.rec, noOverwriteDirNonDir: !!opts.noOverwriteDirNonDir, owner: owner && { uid: owner.uid, gid: owner.gid }, guard });
        await w.extract(input);
      } finally {
        tree.dispose();
      }
    });
    this.access.emit(this.access.record(ref), 'extract-to-dir');
  }
}

function checkPath(p: string): void {
  if (!p) throw new InvalidArgumentError('the path parameter is required', { hint: 'pass ?path=/dir/in/the/container' });
  if (p.includes('\0')) throw new InvalidArgumentError('path contains a NUL byte', { hint: 'pass a valid path' });
}

/** Go's filepath.Base of the absolute path, as Docker names the stat and the tar's top entry. */
function baseOf(p: string): string {
  const abs = '/' + p;
  if (/\/\.$/.test(abs)) return '.';
  const b = posix.basename(posix.normalize(abs));
  return b === '' ? '/' : b;
}

function openTree(v: RootfsView): RootedTree {
  if (v.live) return RootedTree.open(v.root);
  // Stopped: its volumes and binds grafted where it mounts them (tmpfs holds nothing now).
  const mounts = (v.rec.Mounts ?? [])
    .filter((m) => m.Type !== 'tmpfs' && m.Source && isDir(m.Source))
    .map((m) => ({ destination: m.Destination, source: m.Subpath ? posix.join(m.Source, m.Subpath) : m.Source }));
  return RootedTree.open(v.root, mounts);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function statOf(tree: RootedTree, path: string, ref: string): PathStat {
  let loc;
  try {
    loc = tree.resolve(path, { follow: false });
  } catch (e) {
    if (e instanceof NotFoundError) throw notFound(path, ref);
    throw e;
  }
  const st = loc.st ?? tree.lstat(loc.parent, loc.name);
  if (!st) throw notFound(path, ref);
  let linkTarget = '';
  if (st.isSymbolicLink()) {
    try {
      linkTarget = '/' + tree.resolve(path, { follow: true }).path.join('/');
    } catch {
      linkTarget = fs.readlinkSync(at(loc.parent.fd, loc.name));
    }
  }
  return { name: baseOf(path), size: Number(st.size), mode: goMode(st), mtime: new Date(st.mtimeMs).toISOString(), linkTarget };
}

function notFound(path: string, ref: string): NotFoundError {
  return new NotFoundError(`Could not find the file ${path} in container ${ref}`, { hint: 'check the path with `berth exec CONTAINER ls`' });
}

/** st_mode as Go's os.FileMode (what the docker CLI decodes). */
export function goMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.mode & 0o4000) m |= 1 << 23;
  if (st.mode & 0o2000) m |= 1 << 22;
  if (st.mode & 0o1000) m |= 1 << 20;
  if (st.isDirectory()) m |= 1 << 31;
  else if (st.isSymbolicLink()) m |= 1 << 27;
  else if (st.isBlockDevice()) m |= 1 << 26;
  else if (st.isCharacterDevice()) m |= (1 << 26) | (1 << 21);
  else if (st.isFIFO()) m |= 1 << 25;
  else if (st.isSocket()) m |= 1 << 24;
  return m >>> 0;
}

// ---- GET: pack through fds -------------------------------------------------------------

/** Files up to this size are read whole; larger ones are streamed. */
const SMALL_FILE = 256 * 1024;
const CHUNK = 1024 * 1024;
const MAX_USTAR_ID = 0o777777;
type Hdr = Partial<tar.Header> & { name: string };

/**
 * `name` in `parent` (and, for a directory, everything under it, grafted mounts
 * included) as a tar whose top entry is `rebase`. Each child is opened from its parent's
 * fd with O_NOFOLLOW; a symlink is packed as the link it is, never followed.
 */
export function packTree(tree: RootedTree, parent: Dir, name: string, rebase: string): Readable {
  let pack!: tar.Pack;
  let room!: () => Promise<void>;
  const seen = new Map<string, string>();

  const entry = (header: Hdr, data?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = (e?: Error | null) => (e ? reject(e) : resolve());
      if (data) pack.entry(header, data, done);
      else pack.entry(header, done).end(undefined);
    });

  const file = async (header: Hdr, dirFd: number, n: string): Promise<void> => {
    let fd: number;
    try {
      fd = fs.openSync(at(dirFd, n), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch (e) {
      if (errno(e) === 'ELOOP' || errno(e) === 'ENOENT') return; // changed since the readdir: skipped, never followed
      throw e;
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return;
      const size = st.size;
      const h = { ...header, size };
      if (size <= SMALL_FILE) {
        const buf = Buffer.alloc(size);
        let off = 0;
        while (off < size) {
          const n2 = fs.readSync(fd, buf, off, size - off, off);
          if (n2 === 0) break; // shrank: the rest stays zeros, the header's size holds
          off += n2;
        }
        return entry(h, buf);
      }
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(h, (e) => (e ? reject(e) : resolve()));
        void (async () => {
          let off = 0;
          while (off < size) {
            const want = Math.min(CHUNK, size - off);
            const buf = Buffer.allocUnsafe(want);
            let got = await readAt(fd, buf, off);
            if (got === 0) {
              buf.fill(0);
              got = want;
            }
            off += got;
            if (!sink.write(got === want ? buf : buf.subarray(0, got))) await new Promise<void>((r) => sink.once('drain', () => r()));
          }
          sink.end(undefined);
        })().catch((e) => sink.destroy(e));
      });
    } finally {
      fs.closeSync(fd);
    }
  };

  const visit = async (dir: Dir, tarName: string): Promise<void> => {
    const names = fs.readdirSync(at(dir.fd)).sort();
    for (const n of names) {
      await room();
      const st = tree.lstat(dir, n);
      if (!st) continue;
      await one(dir, n, tarName + '/' + n, st);
    }
  };

  const one = async (parentDir: Dir, n: string, tarName: string, st: fs.Stats): Promise<void> => {
    const h = header(tarName, st);
    if (st.isDirectory()) {
      const d = tree.openChildDir(parentDir, n);
      if (!d) return; // swapped for something else meanwhile: skipped
      try {
        await entry({ ...h, type: 'directory', name: tarName + '/' });
        await visit(d, tarName);
      } finally {
        tree.close(d);
      }
      return;
    }
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = seen.get(key);
      if (first !== undefined) return entry({ ...h, type: 'link', linkname: first });
      seen.set(key, tarName);
    }
    if (st.isSymbolicLink()) return entry({ ...h, type: 'symlink', linkname: fs.readlinkSync(at(parentDir.fd, n)) });
    if (st.isFile()) return file(h, parentDir.fd, n);
    if (st.isFIFO()) return entry({ ...h, type: 'fifo' });
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      return entry({ ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: Math.floor(st.rdev / 256) & 0xfff, devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) });
    }
    // sockets: nothing to copy
  };

  const top = async () => {
    if (name === '') {
      // The path named a directory (trailing '/', '/.', or the root): it and its contents.
      const st = fs.fstatSync(parent.fd);
      await entry({ ...header(rebase, st), type: 'directory', name: rebase + '/' });
      await visit(parent, rebase);
      return;
    }
    const st = tree.lstat(parent, name);
    if (!st) throw new NotFoundError(`${name} disappeared during the copy`, { hint: 'try again' });
    await one(parent, name, rebase, st);
  };
  return streamPack(async (p, r) => {
    pack = p;
    room = r;
    await top();
  });
}

function readAt(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

function header(name: string, st: fs.Stats): Hdr {
  const big = st.uid > MAX_USTAR_ID || st.gid > MAX_USTAR_ID;
  return {
    name,
    mode: st.mode, // tar-stream keeps the low 12 bits; a bare 0 would become its default
    uid: big ? 0 : st.uid,
    gid: big ? 0 : st.gid,
    mtime: new Date(st.mtimeMs),
    ...(big ? { pax: { uid: String(st.uid), gid: String(st.gid) } } : {}),
  };
}

// ---- PUT: extract through fds ----------------------------------------------------------

const CREATE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

function badTar(message: string): InvalidArgumentError {
  return new InvalidArgumentError(message, { hint: 'the tar is malformed or hostile: entries must stay inside the destination and never go through a symlink' });
}

export interface TreeWriterOptions {
  /** The container written to: its read-only root and mounts refuse writes. */
  rec?: ContainerRecord;
  noOverwriteDirNonDir?: boolean;
  /** Everything owned by this uid/gid instead of the tar's. */
  owner?: { uid: number; gid: number };
  /** false: leave ownership to whoever writes (the docker CLI's NoLchown on the host). */
  chown?: boolean;
  /** Rename the tar's top entry (`from` and what is under it) to `to` (the docker CLI's rebase). */
  rebase?: { from: string; to: string };
  /** Size checks on the tar as it streams in, and on each file's declared size before it is written. */
  guard?: UnpackGuard;
}

/**
 * Writes tar entries under `dest`, each through its parent's fd: the parents of an entry
 * must be real directories (made 0755 when missing; a symlink on the way rejects the
 * tar, as for a layer), the last component is never followed (whatever is there is
 * removed first, fd-anchored), files are opened O_EXCL|O_NOFOLLOW. The open directories
 * of the current entry's path are kept, so a tree is extracted with one open per file.
 */
export class TreeWriter {
  /** The open directories of the last entry's parent path: chain[i] is dest + parts[0..i). */
  private chain: Dir[] = [];
  private chainParts: string[] = [];
  private dirTimes = new Map<string, Date>();

  private readonly noOverwriteDirNonDir: boolean;

  constructor(
    private readonly tree: RootedTree,
    private readonly dest: Dir,
    private readonly opts: TreeWriterOptions,
  ) {
    this.noOverwriteDirNonDir = !!opts.noOverwriteDirNonDir;
  }

  async extract(input: Readable): Promise<void> {
    const extract = tar.extract();
    let parseError: unknown;
    extract.on('error', (e) => (parseError ??= e));
    const guard = this.opts.guard;
    // The guard's (or the input's) own error beats what it made of the entry being written.
    let streamError: unknown;
    let source: Readable = input;
    if (guard) {
      guard.on('error', (e) => (streamError ??= e));
      input.on('error', (e) => guard.destroy(e));
      source = input.pipe(guard);
    }
    source.on('error', (e) => extract.destroy(e));
    source.pipe(extract as unknown as NodeJS.WritableStream);
    try {
      for await (const e of extract) {
        const entry = e as unknown as AsyncIterable<Buffer> & { header: Hdr };
        if (guard && entry.header.size && (entry.header.type === 'file' || entry.header.type === 'contiguous-file')) guard.declare(entry.header.size);
        await this.write(entry.header, entry).catch((err) => Promise.reject(err instanceof BerthError ? err : toBerthError(err)));
      }
      await this.finish();
    } catch (e) {
      if (streamError instanceof BerthError) throw streamError;
      if (e instanceof BerthError) throw e;
      throw badTar(`not a valid (or a truncated) tar: ${(parseError as Error)?.message ?? (e as Error)?.message ?? e}`);
    } finally {
      this.closeChain(0);
      if (guard) {
        input.unpipe(guard);
        guard.destroy();
      }
    }
  }

  private async write(h: Hdr, body: AsyncIterable<Buffer>): Promise<void> {
    const parts = cleanPath(this.rebased(h.name));
    if (h.linkname) checkRawName(h.linkname, 'link name');
    const uid = this.opts.owner?.uid ?? h.uid ?? 0;
    const gid = this.opts.owner?.gid ?? h.gid ?? 0;
    const chown = this.opts.chown === false ? () => undefined : (f: () => void) => f();
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = h.mtime ?? new Date();
    if (parts.length === 0) {
      // The destination itself ('./'): its metadata, as tar does.
      for await (const _ of body);
      if (h.type === 'directory') this.checkWritable([]);
      return;
    }
    const name = parts[parts.length - 1];
    this.checkWritable(parts);
    if (h.type !== 'file' && h.type !== 'contiguous-file') for await (const _ of body);
    const dir = this.parent(parts);
    switch (h.type) {
      case 'file':
      case 'contiguous-file': {
        const fd = this.create(dir, name, () => fs.openSync(at(dir.fd, name), CREATE, 0o600));
        try {
          for await (const chunk of body) for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off);
          chown(() => fs.fchownSync(fd, uid, gid)); // before chmod: chown clears setuid/setgid
          fs.fchmodSync(fd, mode);
          fs.futimesSync(fd, mtime, mtime);
        } finally {
          fs.closeSync(fd);
        }
        return;
      }
      case 'directory': {
        const st = this.tree.lstat(dir, name);
        if (st && !st.isDirectory()) {
          if (this.noOverwriteDirNonDir) throw new InvalidArgumentError(`cannot overwrite non-directory ${this.show(parts)} with a directory`, { hint: 'remove it first, or copy without noOverwriteDirNonDir' });
          removeAt(dir.fd, name);
        }
        if (!st || !st.isDirectory()) fs.mkdirSync(at(dir.fd, name), 0o700);
        const d = this.tree.openChildDir(dir, name);
        if (!d) throw new FailedPreconditionError(`${this.show(parts)} changed during the copy`, { hint: 'try again' });
        try {
          chown(() => fs.fchownSync(d.fd, uid, gid));
          fs.fchmodSync(d.fd, mode);
        } finally {
          this.tree.close(d);
        }
        this.dirTimes.set(parts.join('/'), mtime);
        return;
      }
      case 'symlink':
        this.create(dir, name, () => fs.symlinkSync(h.linkname ?? '', at(dir.fd, name)));
        chown(() => fs.lchownSync(at(dir.fd, name), uid, gid));
        fs.lutimesSync(at(dir.fd, name), mtime, mtime);
        return;
      case 'link': {
        const target = cleanPath(this.rebased(h.linkname ?? ''), 'hardlink target');
        if (target.length === 0) throw badTar(`hardlink ${JSON.stringify(h.name)} points at the destination itself`);
        const tdir = this.walk(target.slice(0, -1), false);
        try {
          const tname = target[target.length - 1];
          const tst = this.tree.lstat(tdir, tname);
          if (!tst || tst.isDirectory()) throw badTar(`hardlink target ${JSON.stringify(h.linkname)} is not a file inside the destination`);
          // The entry's own parent again: walking to the target may have moved the chain.
          const d2 = this.parent(parts);
          // link(2) never follows: linking to a symlink links the symlink.
          this.create(d2, name, () => fs.linkSync(at(tdir.fd, tname), at(d2.fd, name)));
        } finally {
          this.release(tdir);
        }
        return;
      }
      case 'fifo':
        this.clearWay(dir, name);
        await tool('mkfifo', ['-m', (mode & 0o777).toString(8), '--', atFromChild(dir.fd, name)]);
        chown(() => fs.lchownSync(at(dir.fd, name), uid, gid));
        return;
      default:
        // Device nodes are dropped, as in a layer without allowDevices.
        return;
    }
  }

  /** Run `make`; if something is in the way, check it may go, remove it (fd-anchored) and run it again. */
  private create<T>(dir: Dir, name: string, make: () => T): T {
    if (!this.tree.isMount([...dir.path, name])) {
      try {
        return make();
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
    }
    this.clearWay(dir, name);
    return make();
  }

  /** Whatever is at `name` goes, if it may: not a directory under noOverwriteDirNonDir, never a mount point. */
  private clearWay(dir: Dir, name: string): void {
    const st = this.tree.lstat(dir, name);
    if (st) {
      if (st.isDirectory() && this.noOverwriteDirNonDir) {
        throw new InvalidArgumentError(`cannot overwrite directory ${this.show([...dir.path, name])} with a non-directory`, { hint: 'remove it first, or copy without noOverwriteDirNonDir' });
      }
      if (this.tree.isMount([...dir.path, name])) throw new FailedPreconditionError(`cannot replace the mount point ${this.show([...dir.path, name])}`, { hint: 'copy into the mount, not over it' });
      removeAt(dir.fd, name);
    }
  }

  /** The open parent directory of `parts`, reusing the chain of the last entry. */
  private parent(parts: string[]): Dir {
    const want = parts.slice(0, -1);
    let same = 0;
    while (same < want.length && same < this.chainParts.length && want[same] === this.chainParts[same]) same++;
    this.closeChain(same);
    for (let i = same; i < want.length; i++) {
      const dir = i === 0 ? this.dest : this.chain[i - 1];
      this.chain.push(this.openDir(dir, want[i], want.slice(0, i + 1), true));
      this.chainParts.push(want[i]);
    }
    return want.length === 0 ? this.dest : this.chain[want.length - 1];
  }

  /** A directory path from the destination, outside the chain (hardlink targets); release it with `release`. */
  private walk(parts: string[], create: boolean): Dir {
    let cur: Dir = this.dest;
    for (let i = 0; i < parts.length; i++) {
      const next = this.openDir(cur, parts[i], parts.slice(0, i + 1), create);
      this.release(cur);
      cur = next;
    }
    return cur;
  }

  private release(d: Dir): void {
    if (d !== this.dest) this.tree.close(d);
  }

  private openDir(dir: Dir, name: string, rel: string[], create: boolean): Dir {
    const st = this.tree.lstat(dir, name);
    if (!st && create) fs.mkdirSync(at(dir.fd, name), 0o755);
    else if (!st) throw badTar(`${this.show(rel)} is not in the destination`);
    else if (st.isSymbolicLink() && !this.tree.isMount([...dir.path, name])) throw badTar(`entry goes through symlink ${this.show(rel)}`);
    else if (!st.isDirectory()) throw badTar(`${this.show(rel)} is not a directory`);
    const d = this.tree.openChildDir(dir, name);
    if (!d) throw badTar(`entry goes through ${this.show(rel)}, which is not a directory (any more)`);
    return d;
  }

  private closeChain(from: number): void {
    while (this.chain.length > from) this.tree.close(this.chain.pop()!);
    this.chainParts.length = from;
  }

  private rebased(name: string): string {
    const r = this.opts.rebase;
    if (!r) return name;
    const n = name.replace(/^\/+/, '').replace(/^(\.\/)+/, '');
    if (n === r.from || n === r.from + '/') return r.to + (n.endsWith('/') ? '/' : '');
    if (n.startsWith(r.from + '/')) return r.to + n.slice(r.from.length);
    return name;
  }

  /** A read-only mount, or a read-only root outside every mount, refuses the write. */
  private checkWritable(parts: string[]): void {
    const rec = this.opts.rec;
    if (!rec) return;
    const p = '/' + [...this.dest.path, ...parts].join('/');
    let best: { dest: string; rw: boolean } | undefined;
    for (const m of rec.Mounts ?? []) {
      const d = m.Destination.replace(/\/+$/, '') || '/';
      if ((p === d || p.startsWith(d === '/' ? '/' : d + '/')) && (!best || d.length > best.dest.length)) best = { dest: d, rw: m.RW };
    }
    const rw = best ? best.rw : !rec.HostConfig.ReadonlyRootfs;
    if (!rw) {
      throw new FailedPreconditionError(best ? `mounted volume is marked read-only: ${best.dest}` : 'container rootfs is marked read-only', {
        hint: best ? 'copy into a writable mount' : 'copy into a writable volume of the container, or recreate it without --read-only',
      });
    }
  }

  private show(parts: string[]): string {
    return JSON.stringify('/' + parts.join('/'));
  }

  /** Directory mtimes last (their contents changed them), each reached again through fds. */
  private async finish(): Promise<void> {
    this.closeChain(0);
    const dirs = [...this.dirTimes].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
    for (const [rel, t] of dirs) {
      let d: Dir | undefined;
      try {
        d = this.walk(rel.split('/'), false);
        fs.futimesSync(d.fd, t, t);
      } catch {
        // removed or replaced by a later entry: its time no longer applies
      } finally {
        if (d) this.release(d);
      }
    }
  }
}
