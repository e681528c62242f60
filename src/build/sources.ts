import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import * as posix from 'node:path/posix';
import { PassThrough, type Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { NotFoundError } from '../../volumes/shared/errors';
import { at, splitPath, type Dir, type RootedTree } from '../../volumes/archive/rooted';
import { packTree } from '../engine/archive';
import { lineError } from './dockerfile';

/**
 * COPY and ADD sources: found in a rooted tree (the context, or a stage's or image's root
 * filesystem), globbed as Go's filepath.Match does, checksummed on content for the cache,
 * and re-packed as the tar the destination gets.
 *
 * Paths are resolved inside the tree only: `..` stops at its root and symlinks on the
 * way are followed inside it, so nothing outside the tree is ever read. A symlink inside
 * a copied directory is copied as the link it is.
 */

export interface Source {
  /** The path inside the tree, cleaned ('' for the root). */
  path: string;
  parent: Dir;
  /** The last component in `parent` ('' when the source is a directory opened as parent). */
  name: string;
  isDir: boolean;
}

const META = /[*?[\\]/;

/** The sources `patterns` name; NOT_FOUND naming the line when one names nothing. */
export function findSources(tree: RootedTree, patterns: string[], line: number): Source[] {
  const out: Source[] = [];
  for (const pat of patterns) {
    const paths = META.test(pat) ? glob(tree, splitPath(pat)) : [splitPath(pat).join('/')];
    if (META.test(pat) && paths.length === 0) {
      throw lineError(line, `no source files were specified (no file matches ${pat})`, 'check the pattern against the files of the context (and .dockerignore)');
    }
    for (const p of paths) {
      let loc;
      try {
        loc = tree.resolve(p === '' ? '.' : p, { follow: true });
      } catch (e) {
        if (e instanceof NotFoundError) throw missing(line, pat);
        throw e;
      }
      const st = loc.st ?? (loc.name ? tree.lstat(loc.parent, loc.name) : undefined);
      if (!st) throw missing(line, pat);
      out.push({ path: loc.path.join('/'), parent: loc.parent, name: loc.name, isDir: st.isDirectory() });
    }
  }
  return out;
}

function missing(line: number, p: string) {
  return lineError(line, `file not found in build context or excluded by .dockerignore: stat ${p}: file does not exist`, 'check the path against the files of the context (and .dockerignore)');
}

/** Go's filepath.Match of one component, as a RegExp. */
function matcher(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = '!' + cls.slice(1);
      re += cls.startsWith('!') ? `[^${cls.slice(1).replace(/[\]\\]/g, '\\$&')}]` : `[${cls.replace(/[\]\\]/g, '\\$&')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`, 's');
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The paths (inside the tree) that match the components, in sorted order. */
function glob(tree: RootedTree, comps: string[]): string[] {
  let current = [''];
  for (const comp of comps) {
    const next: string[] = [];
    for (const base of current) {
      if (!META.test(comp)) {
        next.push(base ? `${base}/${comp}` : comp);
        continue;
      }
      let loc;
      try {
        loc = tree.resolve((base || '.') + '/', { follow: true });
      } catch {
        continue;
      }
      try {
        const re = matcher(comp);
        for (const n of fs.readdirSync(at(loc.parent.fd)).sort()) if (re.test(n)) next.push(base ? `${base}/${n}` : n);
      } finally {
        tree.close(loc.parent);
      }
    }
    current = next;
  }
  return current.filter((p) => {
    try {
      const loc = tree.resolve(p, { follow: true });
      const ok = !!(loc.st ?? (loc.name ? tree.lstat(loc.parent, loc.name) : undefined));
      tree.close(loc.parent);
      return ok;
    } catch {
      return false;
    }
  });
}

/** One entry of a source: its name relative to the source ('' is the source itself). */
export interface Entry {
  rel: string;
  header: tar.Header;
  body: Readable;
}

/** Walk a source's tar (packTree's, never following a link) entry by entry. */
export async function eachEntry(tree: RootedTree, src: Source, fn: (e: Entry) => Promise<void>): Promise<void> {
  const top = '_';
  const packed = packTree(tree, src.parent, src.name, top);
  const ex = tar.extract();
  packed.on('error', (e) => ex.destroy(e));
  packed.pipe(ex);
  for await (const entry of ex) {
    const h = entry.header;
    const name = h.name.replace(/\/$/, '');
    const rel = name === top ? '' : name.slice(top.length + 1);
    // tar-stream's entries are streamx streams: wait for their end event, armed up front.
    const body = entry as unknown as Readable;
    const ended = new Promise<void>((r) => {
      body.once('end', () => r());
      body.once('close', () => r());
    });
    await fn({ rel, header: h, body });
    body.resume();
    await ended;
  }
}

/**
 * The content checksum of the sources, as the cache keys COPY/ADD: each entry's path,
 * type, permission bits, link target and content, never mtimes or owners (the layer's
 * owners come from the instruction, which is in the key).
 */
export async function checksum(tree: RootedTree, sources: Source[]): Promise<string> {
  const h = createHash('sha256');
  for (const s of sources) {
    h.update(`source ${s.path}\n`);
    await eachEntry(tree, s, async (e) => {
      h.update(`${e.rel}\0${e.header.type}\0${(e.header.mode ?? 0) & 0o7777}\0${e.header.linkname ?? ''}\0${e.header.size ?? 0}\0`);
      if (e.header.type === 'file') for await (const c of e.body) h.update(c as Buffer);
    });
  }
  return h.digest('hex');
}

export interface Placement {
  /** Where entry `rel` of source `i` goes, relative to the put directory; undefined to skip it. */
  name(i: number, rel: string, header: tar.Header): string | undefined;
  /** Directories to make first (relative to the put directory), parents first. */
  dirs: string[];
  uid: number;
  gid: number;
}

/** The tar the destination gets: every source's entries renamed by `place`, owned by uid:gid. */
export function repack(tree: RootedTree, sources: Source[], place: Placement): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  pack.pipe(out);
  const add = (h: Partial<tar.Header> & { name: string }, body?: Readable) =>
    new Promise<void>((resolve, reject) => {
      const sink = pack.entry(h, (e) => (e ? reject(e) : resolve()));
      if (body) body.pipe(sink);
      else sink.end(undefined);
    });
  void (async () => {
    const now = new Date();
    for (const d of place.dirs) await add({ name: d + '/', type: 'directory', mode: 0o755, uid: place.uid, gid: place.gid, mtime: now });
    for (let i = 0; i < sources.length; i++) {
      await eachEntry(tree, sources[i], async (e) => {
        const name = place.name(i, e.rel, e.header);
        if (name === undefined) return;
        const h: Partial<tar.Header> & { name: string } = { ...e.header, name: e.header.type === 'directory' ? name + '/' : name, uid: place.uid, gid: place.gid, uname: '', gname: '' };
        delete h.pax;
        if (h.type === 'link' && h.linkname) {
          // A hardlink inside the source points at an earlier entry's renamed path.
          const target = place.name(i, h.linkname.replace(/^_\/?/, ''), e.header);
          if (target === undefined) return;
          h.linkname = target;
        }
        await add(h, h.type === 'file' ? e.body : undefined);
      });
    }
    pack.finalize();
  })().catch((e) => out.destroy(e));
  return out;
}

/** posix join that keeps the result relative ('' for the base). */
export function relJoin(...parts: string[]): string {
  return posix.join('.', ...parts).replace(/^\.\/?/, '').replace(/\/$/, '');
}
