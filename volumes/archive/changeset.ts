/**
 * Volume changesets: what changed between two trees (two snapshots of one volume) as an
 * OCI-layer-style tar, and the header that says which base it applies to. Portable: any
 * driver, any filesystem, because it compares the trees themselves, not the driver's
 * structures. The same tar serves `volume export --since` and a registry push's later
 * layers.
 *
 * Words:
 * - **plan** (`diffTrees`): the paths that differ, each `changed` (added, or its type,
 *   mode, owner, size, mtime or link target differs: Docker's own rule for layer changes,
 *   which reads no file data) or `deleted` (in the old tree only). A deleted directory is
 *   one path; what was under it is implied.
 * - **changeset** (`packChangeset`): the tar of a plan. Its first entry is always the root
 *   `./` (owner and mode, as a full export has), carrying the changeset's header in pax
 *   records (`BERTH.delta.*`): which volume, which base snapshot, which new snapshot, and the
 *   base tree's fingerprint. Then, sorted and depth first, every changed path with its
 *   data (and the directories above it, so their mtimes come out right), and `.wh.NAME` for
 *   every deleted NAME. Hardlinks stay hardlinks: when one name of a
 *   multiply-linked file is in the changeset, all its names are, the first as the file and
 *   the others as links to it.
 * - **fingerprint**: a sha256 over the base tree's names, types, modes, owners, sizes,
 *   whole-second mtimes and link targets: what survives a full export and import. The
 *   receiving side compares it with its own copy of the base, so a changeset is never
 *   applied on a different tree that merely has the same snapshot name.
 *
 * - **patch**: a large file changed only in parts goes as those parts (volumes/archive/
 *   chunks.ts: fixed 4 KiB blocks compared with the base's, a pax-marked entry).
 *
 * Kept as `volume export` keeps them: regular files, directories, symlinks, hardlinks,
 * fifos, with modes, owners and (whole-second) mtimes, and user.* and security.capability
 * xattrs (pax `SCHILY.xattr.*`, as GNU tar writes them; an xattr change alone makes an
 * entry changed). Sockets and device nodes are left out (export drops them too). A sparse
 * file's holes travel as zeros (compressed to almost nothing on the way) and become holes
 * again on apply, which writes no all-zero block.
 * A volume holding a name that starts with `.wh.` cannot be described by a changeset (it
 * would read as a deletion): that is refused with FAILED_PRECONDITION; a full export keeps
 * such names.
 */
import { createHash } from 'node:crypto';
import fs, { BigIntStats } from 'node:fs';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../shared/errors';
import { diffFile, patchData, patchPax, PATCH_MIN } from './chunks';
import { addEntry, header as entryHeader, streamPack } from './pack';
import { WHITEOUT_PREFIX } from './paths';
import { readXattrs } from './tools';

export interface ChangesetHeader {
  /** The volume the changeset was made from. */
  volume: string;
  /** The snapshot it applies on. */
  base: string;
  /** The snapshot it makes. */
  snapshot: string;
  /** ISO 8601: when the new snapshot was taken. */
  created: string;
  /** `sha256:<hex>` of the base tree (see "fingerprint" above). */
  baseFingerprint: string;
}

export type Change = 'changed' | 'deleted';

export interface ChangePlan {
  /** Relative path ('' is the root) → what happened to it. */
  changes: Map<string, Change>;
  /** The old tree's fingerprint. */
  oldFingerprint: string;
  /** The old tree (partly changed files are compared with their old versions there). */
  oldDir: string;
  /** Each tree's kept xattrs (tools.readXattrs); the changeset carries the new ones. */
  oldXattrs: Map<string, Map<string, Buffer>>;
  newXattrs: Map<string, Map<string, Buffer>>;
}

export interface PackStats {
  /** Files sent as patches, and the bytes of their data (whole, they would have been `wholeBytes`). */
  patched: number;
  patchBytes: number;
  wholeBytes: number;
}

const PAX = 'BERTH.delta.';
/** 2: entries may be patches and carry xattrs. Version 1 changesets (neither) still apply. */
const VERSION = '2';
const READS = new Set(['1', '2']);

/**
 * Compare `oldDir` with `newDir` (neither changes while it runs: snapshots). With
 * `ignoreDirTimes`, a directory whose mtime alone differs is not a change (a file made and
 * removed again loses nothing: the check that a volume still equals its base). Reads
 * metadata only, synchronously per entry (microseconds each against the page cache),
 * yielding to the event loop every few milliseconds.
 */
export async function diffTrees(oldDir: string, newDir: string, opts: { ignoreDirTimes?: boolean } = {}): Promise<ChangePlan> {
  const differs = (a: BigIntStats, b: BigIntStats, aPath: string, bPath: string) => entryDiffers(a, b, aPath, bPath, opts.ignoreDirTimes ?? false);
  for (const d of [oldDir, newDir]) {
    if (!fs.statSync(d, { throwIfNoEntry: false })?.isDirectory()) throw new NotFoundError(`directory ${d} not found`, { hint: 'compare two existing trees' });
  }
  const changes = new Map<string, Change>();
  const fp = createHash('sha256');
  let lastYield = Date.now();
  const breathe = async () => {
    if (Date.now() - lastYield > 5) {
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
  };
  const abs = (root: string, rel: string) => (rel === '' ? root : root + '/' + rel);

  /** Every entry of an old tree under `rel` (a deleted or replaced directory), for the fingerprint only. */
  const fingerprintOnly = async (rel: string): Promise<void> => {
    for (const n of sortedNames(abs(oldDir, rel))) {
      const r = rel + '/' + n;
      const st = kept(abs(oldDir, r));
      if (!st) continue;
      fp.update(describe(r, st, oldDir));
      if (st.isDirectory()) await fingerprintOnly(r);
      await breathe();
    }
  };

  const visit = async (rel: string): Promise<void> => {
    const oldNames = sortedNames(abs(oldDir, rel));
    const newNames = new Set(sortedNames(abs(newDir, rel)));
    const all = [...new Set([...oldNames, ...newNames])].sort(byBytes);
    for (const n of all) {
      const r = rel ? rel + '/' + n : n;
      const o = oldNames.includes(n) ? kept(abs(oldDir, r)) : null;
      const nw = newNames.has(n) ? kept(abs(newDir, r)) : null;
      if (nw && n.startsWith(WHITEOUT_PREFIX)) throw whiteoutName(r);
      if (o) fp.update(describe(r, o, oldDir));
      if (!nw) {
        if (o) {
          changes.set(r, 'deleted');
          if (o.isDirectory()) await fingerprintOnly(r);
        }
        continue;
      }
      const sameType = o !== null && typeOf(o) === typeOf(nw);
      if (!sameType || differs(o!, nw, abs(oldDir, r), abs(newDir, r))) changes.set(r, 'changed');
      if (nw.isDirectory()) {
        if (sameType) await visit(r);
        else {
          if (o?.isDirectory()) await fingerprintOnly(r);
          await addAll(r);
        }
      } else if (o?.isDirectory()) await fingerprintOnly(r);
      await breathe();
    }
  };

  /** A directory new in `newDir` (or replacing a non-directory): all of it is changed. */
  const addAll = async (rel: string): Promise<void> => {
    for (const n of sortedNames(abs(newDir, rel))) {
      const r = rel + '/' + n;
      const st = kept(abs(newDir, r));
      if (!st) continue;
      if (n.startsWith(WHITEOUT_PREFIX)) throw whiteoutName(r);
      changes.set(r, 'changed');
      if (st.isDirectory()) await addAll(r);
      await breathe();
    }
  };

  const oldRoot = fs.lstatSync(oldDir, { bigint: true });
  const newRoot = fs.lstatSync(newDir, { bigint: true });
  fp.update(describe('', oldRoot, oldDir));
  if (differs(oldRoot, newRoot, oldDir, newDir)) changes.set('', 'changed');
  await visit('');
  // xattrs change no mtime (only ctime): compared on their own, one getfattr walk a tree.
  const [oldX, newX] = await Promise.all([readXattrs(oldDir), oldDir === newDir ? null : readXattrs(newDir)]);
  if (newX) {
    for (const r of new Set([...oldX.keys(), ...newX.keys()])) {
      if (changes.has(r) || sameXattrs(oldX.get(r), newX.get(r))) continue;
      if (kept(abs(oldDir, r)) && kept(abs(newDir, r))) changes.set(r, 'changed');
    }
  }
  return { changes, oldFingerprint: 'sha256:' + fp.digest('hex'), oldDir, oldXattrs: oldX, newXattrs: newX ?? oldX };
}

function sameXattrs(a: Map<string, Buffer> | undefined, b: Map<string, Buffer> | undefined): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const [k, v] of a ?? []) if (!b?.get(k)?.equals(v)) return false;
  return true;
}

/** pax records for an entry's kept xattrs. tar-stream writes pax values as UTF-8, so a value that is not valid UTF-8 (a binary capability) cannot go this way and is left out. */
function xattrPax(x: Map<string, Buffer> | undefined): Record<string, string> | null {
  if (!x?.size) return null;
  let out: Record<string, string> | null = null;
  for (const [k, v] of x) {
    const s = v.toString('utf8');
    if (Buffer.from(s).equals(v)) (out ??= {})['SCHILY.xattr.' + k] = s;
  }
  return out;
}

/** The fingerprint of one tree alone (the receiving side's check of its base). */
export async function treeFingerprint(dir: string): Promise<string> {
  return (await diffTrees(dir, dir)).oldFingerprint;
}

/**
 * The changeset tar of `plan`, reading the changed files from `newDir`. The root entry
 * always comes first, carrying `header`. Streamed like packDir: flat memory for any size.
 */
export function packChangeset(newDir: string, plan: ChangePlan, header: ChangesetHeader, stats?: PackStats): Readable {
  return streamPack(async (pack, room) => {
    const add = (h: Partial<tar.Header> & { name: string }, file?: string) => {
      const x = xattrPax(plan.newXattrs.get(h.name === './' ? '' : h.name));
      return addEntry(pack, room, x ? { ...h, pax: { ...(h.pax ?? {}), ...x } } : h, file);
    };
    const abs = (rel: string) => (rel === '' ? newDir : newDir + '/' + rel);
    const rootSt = fs.lstatSync(newDir, { bigint: true });
    const pax: Record<string, string> = { [PAX + 'version']: VERSION };
    for (const [k, v] of Object.entries(header)) pax[PAX + k] = String(v);
    const root = entryHeader('./', rootSt);
    await add({ ...root, type: 'directory', pax: { ...(root.pax ?? {}), ...pax } });

    /**
     * A large file changed in place or appended to, with one name and the same xattrs in
     * both trees (a patch keeps the base's inode and its xattrs): its changed blocks only.
     */
    const addFile = async (r: string, h: Partial<tar.Header> & { name: string }, st: BigIntStats) => {
      const candidate = plan.changes.get(r) === 'changed' && st.nlink === 1n && st.size >= BigInt(PATCH_MIN) && sameXattrs(plan.oldXattrs.get(r), plan.newXattrs.get(r));
      const old = candidate ? kept(plan.oldDir + '/' + r) : null;
      const patch = old?.isFile() && old.nlink === 1n ? await diffFile(plan.oldDir + '/' + r, abs(r)) : null;
      if (!patch) {
        if (stats && st.size >= BigInt(PATCH_MIN)) stats.wholeBytes += Number(st.size);
        return add({ ...h, type: 'file', size: Number(st.size) }, abs(r));
      }
      if (stats) {
        stats.patched++;
        stats.patchBytes += patch.bytes;
        stats.wholeBytes += patch.size;
      }
      await room();
      const x = xattrPax(plan.newXattrs.get(r));
      const entry = { ...h, type: 'file' as const, size: patch.bytes, pax: { ...(h.pax ?? {}), ...(x ?? {}), ...patchPax(patch) } };
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(entry, (err) => (err ? reject(err) : resolve()));
        const data = Readable.from(patchData(abs(r), patch.ranges), { objectMode: false });
        data.on('error', (e) => sink.destroy(e));
        data.pipe(sink as unknown as NodeJS.WritableStream);
      });
    };

    // Every name of a multiply-linked file goes in once one of them does, so the links survive.
    const emit = new Set([...plan.changes].filter(([r, c]) => c === 'changed' && r !== '').map(([r]) => r));
    const groups = new Map<string, string[]>();
    const want = new Set<string>();
    for (const r of emit) {
      const st = fs.lstatSync(abs(r), { bigint: true });
      if (!st.isDirectory() && st.nlink > 1n) want.add(`${st.dev}:${st.ino}`);
    }
    if (want.size) {
      await walkLinks(newDir, '', (r, key) => {
        if (!want.has(key)) return;
        const g = groups.get(key) ?? [];
        g.push(r);
        groups.set(key, g);
        emit.add(r);
      });
    }
    const linkedTo = new Map<string, string>();
    for (const g of groups.values()) {
      g.sort(byPath);
      for (const r of g.slice(1)) linkedTo.set(r, g[0]);
    }

    // Every ancestor directory of an entry goes in too: applying the entry (a file made anew,
    // a name removed) changes its directory's mtime, which the directory's own entry puts back.
    const deleted = [...plan.changes].filter(([, c]) => c === 'deleted').map(([r]) => r);
    for (const r of [...emit, ...deleted]) {
      for (let i = r.indexOf('/'); i > 0; i = r.indexOf('/', i + 1)) emit.add(r.slice(0, i));
    }
    const paths = [...emit, ...deleted].sort(byPath);
    for (const r of paths) {
      if (plan.changes.get(r) === 'deleted' && !emit.has(r)) {
        const slash = r.lastIndexOf('/');
        const name = slash < 0 ? WHITEOUT_PREFIX + r : r.slice(0, slash + 1) + WHITEOUT_PREFIX + r.slice(slash + 1);
        await add({ name, type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: new Date(0) });
        continue;
      }
      const st = fs.lstatSync(abs(r), { bigint: true });
      const h = entryHeader(r, st);
      const first = linkedTo.get(r);
      if (first !== undefined) await add({ ...h, type: 'link', linkname: first });
      else if (st.isFile()) await addFile(r, h, st);
      else if (st.isSymbolicLink()) await add({ ...h, type: 'symlink', linkname: fs.readlinkSync(abs(r)) });
      else if (st.isFIFO()) await add({ ...h, type: 'fifo' });
      else if (st.isDirectory()) await add({ ...h, type: 'directory' });
    }
  });
}

/**
 * Read a changeset's header from the front of `input` without losing any bytes: the
 * header (or null when the stream is not an uncompressed changeset, e.g. a full export),
 * and a stream that yields everything `input` does, from its first byte.
 */
export async function readChangesetHeader(input: Readable): Promise<{ header: ChangesetHeader | null; stream: Readable }> {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let have = 0;
  let ended = false;
  const need = async (n: number) => {
    while (have < n && !ended) {
      const r = await it.next();
      if (r.done) ended = true;
      else {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        chunks.push(b);
        have += b.length;
      }
    }
    return Buffer.concat(chunks);
  };
  let header: ChangesetHeader | null = null;
  let head = await need(512);
  if (head.length >= 512 && head[156] === 0x78 /* 'x': a pax header for the next entry */) {
    const size = parseInt(head.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    if (Number.isSafeInteger(size) && size > 0 && size <= 64 * 1024) {
      head = await need(512 + size);
      if (head.length >= 512 + size) header = parseHeader(parsePax(head.subarray(512, 512 + size)));
    }
  }
  const rest = chunks.slice();
  async function* all(): AsyncGenerator<Buffer> {
    yield* rest;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  const stream = Readable.from(all(), { objectMode: false });
  stream.on('close', () => void (input.destroyed || input.destroy()));
  return { header, stream };
}

/** pax records: "<len> <key>=<value>\n", repeated. */
function parsePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < buf.length) {
    const sp = buf.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(buf.subarray(i, sp).toString('latin1'), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || i + len > buf.length) break;
    const rec = buf.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

function parseHeader(pax: Record<string, string>): ChangesetHeader | null {
  if (pax[PAX + 'version'] === undefined) return null;
  if (!READS.has(pax[PAX + 'version'])) {
    throw new InvalidArgumentError(`volume changeset version ${pax[PAX + 'version']} is not supported`, {
      hint: `this berth reads changeset version ${VERSION}; make the changeset with the same berth version, or use a full export`,
    });
  }
  const get = (k: keyof ChangesetHeader) => {
    const v = pax[PAX + k];
    if (!v) throw new InvalidArgumentError(`volume changeset header lacks ${k}`, { hint: 'the changeset is damaged; make it again with `berth volume export VOL@SNAP --since BASE`' });
    return v;
  };
  return { volume: get('volume'), base: get('base'), snapshot: get('snapshot'), created: get('created'), baseFingerprint: get('baseFingerprint') };
}

// ---- Walk helpers.

function sortedNames(dir: string): string[] {
  return fs.readdirSync(dir).sort(byBytes);
}

/** The entry at `p` if a changeset carries its kind (not sockets or device nodes). */
function kept(p: string): BigIntStats | null {
  const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
  if (!st) return null;
  return st.isFile() || st.isDirectory() || st.isSymbolicLink() || st.isFIFO() ? st : null;
}

function typeOf(st: BigIntStats): string {
  return st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'p';
}

function entryDiffers(a: BigIntStats, b: BigIntStats, aPath: string, bPath: string, ignoreDirTimes: boolean): boolean {
  if (typeOf(a) !== typeOf(b) || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return true;
  if (a.mtimeNs !== b.mtimeNs && !(ignoreDirTimes && a.isDirectory())) return true;
  if (!a.isDirectory() && a.size !== b.size) return true;
  return a.isSymbolicLink() && fs.readlinkSync(aPath) !== fs.readlinkSync(bPath);
}

/** One fingerprint line: what a full export and import keep. */
function describe(rel: string, st: BigIntStats, root: string): string {
  const t = typeOf(st);
  const size = t === 'f' ? String(st.size) : '';
  const link = t === 'l' ? fs.readlinkSync(rel === '' ? root : root + '/' + rel) : '';
  return `${rel}\0${t}\0${(st.mode & 0o7777n).toString(8)}\0${st.uid}:${st.gid}\0${size}\0${st.mtimeNs / 1_000_000_000n}\0${link}\n`;
}

async function walkLinks(root: string, rel: string, found: (rel: string, key: string) => void): Promise<void> {
  for (const n of sortedNames(rel === '' ? root : root + '/' + rel)) {
    const r = rel ? rel + '/' + n : n;
    const st = fs.lstatSync(root + '/' + r, { bigint: true });
    if (st.isDirectory()) await walkLinks(root, r, found);
    else if (st.nlink > 1n && (st.isFile() || st.isSymbolicLink() || st.isFIFO())) found(r, `${st.dev}:${st.ino}`);
  }
}

/** Byte order of names (what packDir and GNU tar's --sort=name use). */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Depth-first tar order: a directory right before its contents. */
function byPath(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return byBytes(pa[i], pb[i]);
  }
  return pa.length - pb.length;
}

function whiteoutName(rel: string): FailedPreconditionError {
  return new FailedPreconditionError(`the volume holds ${JSON.stringify(rel)}, a name a changeset would read as a deletion`, {
    hint: 'rename that file, or move the volume with a full export (`berth volume export VOL@SNAP`) instead of a changeset',
  });
}
