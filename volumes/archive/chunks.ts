/**
 * Partly changed files in a volume changeset: a large file that differs from its base only
 * in some blocks travels as those blocks, not whole ("file F = base F with these ranges
 * replaced, then cut or extended to this size").
 *
 * **Why fixed blocks, not content-defined chunks.** The files that matter are database
 * files, and databases change them in two ways: pages rewritten in place at fixed offsets
 * (PostgreSQL's 8 KiB heap and index pages, InnoDB's 16 KiB, SQLite's 4 KiB) and appends
 * (Redis' AOF, WAL segments, logs). Both keep every unchanged byte at its offset, which
 * fixed blocks find exactly: one rewritten 8 KiB page costs 8 KiB, an append costs what
 * was appended (plus at most one block before it). Content-defined chunking finds inserts
 * that shift the rest of a file, which databases do not do, and pays for it on pages: its
 * chunks average 8-64 KiB with boundaries that ignore page edges, so one rewritten page
 * costs one or two whole chunks. `benchmarks/volume-chunks.ts` measures both on the three
 * cases (pages, appends, an insert). The block is 4 KiB: the page size of the smallest of
 * these, the kernel's page, and btrfs' sector, so writing a changed block on a reflinked
 * copy unshares just that block's extent.
 *
 * **The entry.** A regular-file entry of the changeset whose pax records say it is a patch:
 *   - `BERTH.patch.ranges`: `offset+length,…` in the new file, ascending, not overlapping;
 *     the entry's data is the new bytes of these ranges, concatenated (its size is their sum);
 *   - `BERTH.patch.size`: the new file's size (the file is cut or extended to it after);
 *   - `BERTH.patch.basesize`: the base file's size;
 *   - `BERTH.patch.basesum`: `sha256:<hex>` of the base's bytes under the ranges (what the
 *     patch overwrites, up to the base's end).
 * The changeset's header already proves the base tree by its fingerprint (names, sizes,
 * whole-second mtimes); basesize and basesum check the file's own bytes where the patch
 * lands, reading only those, so a base with the same metadata but other data there is
 * refused (FAILED_PRECONDITION) instead of patched into nonsense.
 *
 * **Who gets one.** A file that is a regular file in both trees, at least `PATCH_MIN` bytes
 * in both, with one name each (a hardlinked file goes whole, with its links), and whose
 * metadata differs (the changeset's own rule for "changed"). Its blocks are compared with
 * the base's (both read; on btrfs they are mostly shared extents in the page cache); when
 * more than half of it changed, or the changes are scattered into too many ranges, it goes
 * whole instead: the patch would save little and cost a long range list.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type * as tar from 'tar-stream';

/** Compared and patched in blocks of this many bytes. */
export const BLOCK = 4096;
/** Files smaller than this (in either version) go whole: a patch would save too little. */
export const PATCH_MIN = 1024 * 1024;
/** More ranges than this and the file goes whole (the range list is a pax record, ~20 bytes a range). */
export const MAX_RANGES = 16384;

export const PATCH = {
  ranges: 'BERTH.patch.ranges',
  size: 'BERTH.patch.size',
  baseSize: 'BERTH.patch.basesize',
  baseSum: 'BERTH.patch.basesum',
} as const;

export interface Range {
  offset: number;
  length: number;
}

export interface FilePatch {
  /** Ranges of the new file whose bytes the patch carries. */
  ranges: Range[];
  /** The new file's size. */
  size: number;
  baseSize: number;
  /** `sha256:<hex>` of the base's bytes under `ranges` (clipped to baseSize). */
  baseSum: string;
  /** Bytes the patch carries: the sum of the ranges' lengths. */
  bytes: number;
}

/** Read window: both files are compared this much at a time. */
const WINDOW = 1024 * 1024;

/**
 * Compare `newPath` with `basePath` block by block. The patch that makes the new file from
 * the base, or null when the file should go whole (small, mostly changed, too scattered).
 */
export async function diffFile(basePath: string, newPath: string): Promise<FilePatch | null> {
  const [a, b] = await Promise.all([fs.promises.open(basePath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW), fs.promises.open(newPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)]);
  try {
    const [sa, sb] = await Promise.all([a.stat(), b.stat()]);
    const baseSize = sa.size;
    const size = sb.size;
    if (!sa.isFile() || !sb.isFile() || baseSize < PATCH_MIN || size < PATCH_MIN) return null;
    const ranges: Range[] = [];
    const sum = createHash('sha256');
    let bytes = 0;
    const limit = size / 2;
    const mark = (offset: number, length: number) => {
      const last = ranges[ranges.length - 1];
      if (last && last.offset + last.length === offset) last.length += length;
      else ranges.push({ offset, length });
      bytes += length;
    };
    const common = Math.min(baseSize, size);
    const bufA = Buffer.allocUnsafe(WINDOW);
    const bufB = Buffer.allocUnsafe(WINDOW);
    for (let pos = 0; pos < common; pos += WINDOW) {
      const want = Math.min(WINDOW, common - pos);
      const [ra, rb] = await Promise.all([readFull(a, bufA, want, pos), readFull(b, bufB, want, pos)]);
      if (ra !== want || rb !== want) return null; // changed while read: a snapshot does not, so go whole
      for (let i = 0; i < want; i += BLOCK) {
        const end = Math.min(i + BLOCK, want);
        const oldBlock = bufA.subarray(i, end);
        if (oldBlock.equals(bufB.subarray(i, end))) continue;
        mark(pos + i, end - i);
        sum.update(oldBlock);
      }
      if (bytes > limit || ranges.length > MAX_RANGES) return null;
    }
    // Past the common part: the new file's tail is all new (an append); a shorter file is cut.
    if (size > common) mark(common, size - common);
    if (bytes > limit || ranges.length > MAX_RANGES) return null;
    return { ranges, size, baseSize, baseSum: 'sha256:' + sum.digest('hex'), bytes };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

async function readFull(fh: fs.promises.FileHandle, buf: Buffer, want: number, pos: number): Promise<number> {
  let got = 0;
  while (got < want) {
    const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** The pax records that mark an entry as a patch. */
export function patchPax(p: FilePatch): Record<string, string> {
  return {
    [PATCH.ranges]: p.ranges.map((r) => `${r.offset}+${r.length}`).join(','),
    [PATCH.size]: String(p.size),
    [PATCH.baseSize]: String(p.baseSize),
    [PATCH.baseSum]: p.baseSum,
  };
}

/** The data of a patch entry: the new file's bytes under the ranges, in order. */
export async function* patchData(file: string, ranges: Range[]): AsyncGenerator<Buffer> {
  const fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    for (const r of ranges) {
      for (let pos = r.offset; pos < r.offset + r.length; ) {
        const n = Math.min(WINDOW, r.offset + r.length - pos);
        const buf = Buffer.allocUnsafe(n);
        const got = await readFull(fh, buf, n, pos);
        if (got !== n) throw new Error(`${file} changed while being packed`);
        yield buf;
        pos += n;
      }
    }
  } finally {
    await fh.close();
  }
}

/** A patch described by an entry's pax records, or null for an ordinary entry; throws `bad(why)` on a malformed one. */
export function readPatch(h: tar.Header, bad: (why: string) => Error): { ranges: Range[]; size: number; baseSize: number; baseSum: string } | null {
  const pax = (h.pax ?? {}) as Record<string, string>;
  const spec = pax[PATCH.ranges];
  if (spec === undefined) return null;
  const num = (v: string | undefined, what: string) => {
    const n = v !== undefined && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw bad(`bad ${what} ${JSON.stringify(v ?? null)} in the patch of ${JSON.stringify(h.name)}`);
    return n;
  };
  const size = num(pax[PATCH.size], 'size');
  const baseSize = num(pax[PATCH.baseSize], 'base size');
  const baseSum = pax[PATCH.baseSum] ?? '';
  if (!/^sha256:[0-9a-f]{64}$/.test(baseSum)) throw bad(`bad base checksum in the patch of ${JSON.stringify(h.name)}`);
  const ranges: Range[] = [];
  let end = 0;
  let total = 0;
  for (const part of spec === '' ? [] : spec.split(',')) {
    const [o, l] = part.split('+');
    const r = { offset: num(o, 'range offset'), length: num(l, 'range length') };
    if (r.length === 0 || r.offset < end || r.offset + r.length > size) throw bad(`ranges out of order or past the end in the patch of ${JSON.stringify(h.name)}`);
    end = r.offset + r.length;
    total += r.length;
    ranges.push(r);
  }
  if (total !== (h.size ?? 0)) throw bad(`the patch of ${JSON.stringify(h.name)} carries ${h.size ?? 0} bytes for ranges of ${total}`);
  return { ranges, size, baseSize, baseSum };
}

/**
 * Apply a patch to the file open as `fd` (read-write, the base's copy): check the base's
 * size and the bytes under the ranges, write the entry's data into the ranges, then cut or
 * extend to the new size. Writes in place, so on btrfs (a snapshot's copy, or a reflinked
 * one) only the written blocks stop being shared. `mismatch(why)` makes the refusal.
 */
export async function applyPatch(fd: number, patch: NonNullable<ReturnType<typeof readPatch>>, body: AsyncIterable<Buffer>, mismatch: (why: string) => Error): Promise<void> {
  const st = fs.fstatSync(fd);
  if (st.size !== patch.baseSize) throw mismatch(`is ${st.size} bytes where the changeset's base had ${patch.baseSize}`);
  const sum = createHash('sha256');
  const buf = Buffer.allocUnsafe(WINDOW);
  for (const r of patch.ranges) {
    const end = Math.min(r.offset + r.length, patch.baseSize);
    for (let pos = r.offset; pos < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(WINDOW, end - pos), pos);
      if (n === 0) break;
      sum.update(buf.subarray(0, n));
      pos += n;
    }
  }
  if ('sha256:' + sum.digest('hex') !== patch.baseSum) throw mismatch('holds other data than the changeset\'s base where the patch lands');
  let i = 0;
  let at = patch.ranges[0]?.offset ?? 0;
  let left = patch.ranges[0]?.length ?? 0;
  for await (const chunk of body) {
    for (let off = 0; off < chunk.length; ) {
      if (left === 0) throw mismatch('carries more data than its ranges'); // readPatch checked the sum; a lying tar
      const n = Math.min(left, chunk.length - off);
      for (let w = 0; w < n; ) w += fs.writeSync(fd, chunk, off + w, n - w, at + w);
      off += n;
      at += n;
      left -= n;
      if (left === 0 && ++i < patch.ranges.length) {
        at = patch.ranges[i].offset;
        left = patch.ranges[i].length;
      }
    }
  }
  fs.ftruncateSync(fd, patch.size);
}
