import * as fs from 'node:fs';
import * as posix from 'node:path/posix';
import { spawn } from 'node:child_process';
import { PassThrough, pipeline, Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { NotFoundError } from '../../volumes/shared/errors';
import { RootedTree } from '../../volumes/archive/rooted';
import { lookupUser } from '../runtime/rootfs';
import type { BuildContext } from './context';
import { lineError, type Step } from './dockerfile';
import { execForm, stepEnv, type StageState } from './instructions';
import type { StepDeps } from './ports';
import { checksum, findSources, relJoin, repack, type Source } from './sources';
import { advance, idleContainer, short, stepBase, useCache } from './step-cache';
import { word, words } from './words';

/**
 * COPY and ADD: the sources (from the context, or --from a stage or an image's root
 * filesystem) are found inside their tree, checksummed on content for the cache key, and
 * written into a container of the stage's image through the archive room's safe PUT,
 * which is then committed as the step's layer. ADD unpacks a local tar (plain, gzip,
 * bzip2, xz) into the destination; ADD of a URL is refused.
 */

export type CopySource = { image: string | null } | { context: BuildContext };

export async function copyStep(d: StepDeps, st: StageState, step: Step, source: CopySource): Promise<void> {
  const env = stepEnv(st);
  const list = execForm(step.args) ?? words(step.args, env, st.escape, step.line);
  if (list.length < 2) throw lineError(step.line, `${step.keyword} requires at least two arguments`, `${step.keyword} SOURCE... DEST`);
  const srcs = list.slice(0, -1);
  const dest = list[list.length - 1];
  if (step.keyword === 'ADD') {
    const url = srcs.find((s) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^git@/.test(s));
    if (url) throw lineError(step.line, `ADD of a URL (${url}) is not supported by berth yet`, 'download it with RUN (curl/wget) in the Dockerfile, or put the file into the context and ADD/COPY it');
  }
  const chownFlag = step.flags.get('chown');
  const chown = chownFlag === undefined ? undefined : word(chownFlag, env, st.escape, step.line);
  if (step.flags.has('chmod')) throw lineError(step.line, `${step.keyword} --chmod is a BuildKit feature`, 'berth runs the classic builder: set modes with RUN chmod, or in the context');

  await withSourceTree(d, source, async (tree) => {
    const sources = findSources(tree, srcs.map((s) => s.replace(/^\/+/, '')), step.line);
    const sum = await checksum(tree, sources);
    const text = `${step.keyword} ${chown ? `--chown=${chown} ` : ''}${srcs.join(' ')} ${dest}`;
    const key = `copy\n${text}\n${sum}\n${'image' in source ? `image ${source.image}` : 'context'}\n${JSON.stringify(st.config)}`;
    const kind = sources.length > 1 ? 'multi' : sources[0].isDir ? 'dir' : 'file';
    const createdBy = `/bin/sh -c #(nop) ${step.keyword} ${kind}:${sum} in ${dest} `;
    if (await useCache(d, st, key, createdBy)) return;
    const parent = await stepBase(d, st);
    const cid = await idleContainer(d, parent);
    try {
      await writeSources(d, cid, st, step, tree, sources, dest, chown);
      const { Id } = await d.containers.commit(cid, { replaceConfig: true, config: st.config, createdBy, pause: false });
      await advance(d, st, key, Id);
    } finally {
      await d.containers.remove(cid, { force: true, volumes: true });
    }
    d.say(` ---> ${short(st.image as string)}\n`);
  });
}

/** The tree the sources come from: the context, or an image's root filesystem mounted through a container that never runs. */
async function withSourceTree<T>(d: StepDeps, source: CopySource, fn: (tree: RootedTree) => Promise<T>): Promise<T> {
  if ('context' in source) {
    const tree = source.context.tree();
    try {
      return await fn(tree);
    } finally {
      tree.dispose();
    }
  }
  // A scratch stage with nothing in it yet: an image without layers, so an empty tree.
  const image = source.image ?? (await d.images.commitImageConfig(null, { names: [], config: {} })).id;
  const cid = await idleContainer(d, image);
  try {
    return await d.files.withRootfs(cid, async (v) => {
      const tree = RootedTree.open(v.root);
      try {
        return await fn(tree);
      } finally {
        tree.dispose();
      }
    });
  } finally {
    await d.containers.remove(cid, { force: true, volumes: true });
  }
}

const GO_DIR = 0x80000000;

/** What `p` is in the container: 'dir', 'other', or undefined when missing (a symlink followed inside the container). */
async function kindOf(d: StepDeps, cid: string, p: string, depth = 0): Promise<'dir' | 'other' | undefined> {
  try {
    const s = await d.files.stat(cid, p);
    if (s.linkTarget && depth < 16) return kindOf(d, cid, s.linkTarget, depth + 1);
    return (s.mode & GO_DIR) !== 0 ? 'dir' : 'other';
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

/** The deepest directory of `dir` that exists in the container (a put goes there), and the names below it that do not. */
export async function deepestDir(d: StepDeps, cid: string, dir: string, line: number): Promise<{ putDir: string; missing: string[] }> {
  const missing: string[] = [];
  let putDir = dir;
  for (;;) {
    const k = await kindOf(d, cid, putDir);
    if (k === 'dir') break;
    if (k === 'other') throw lineError(line, `cannot make ${dir}: ${putDir} is not a directory`, 'choose another directory');
    missing.unshift(posix.basename(putDir));
    putDir = posix.dirname(putDir);
  }
  return { putDir, missing };
}

async function writeSources(d: StepDeps, cid: string, st: StageState, step: Step, tree: RootedTree, sources: Source[], dest: string, chown: string | undefined): Promise<void> {
  const abs = posix.resolve('/', st.config.WorkingDir || '/', dest);
  const trailing = /\/\.?$/.test(dest) || dest === '.';
  const archives = step.keyword === 'ADD' ? sources.filter((s) => !s.isDir && isArchive(tree, s)) : [];
  const plain = sources.filter((s) => !archives.includes(s));
  let destIsDir = trailing || sources.some((s) => s.isDir) || archives.length > 0;
  if (sources.length > 1 && !trailing) {
    if ((await kindOf(d, cid, abs)) !== 'dir') {
      throw lineError(step.line, `When using ${step.keyword} with more than one source file, the destination must be a directory and end with a /`, `write ${dest}/`);
    }
    destIsDir = true;
  }
  if (!destIsDir && (await kindOf(d, cid, abs)) === 'dir') destIsDir = true;
  const destDir = destIsDir ? abs : posix.dirname(abs);
  const { putDir, missing } = await deepestDir(d, cid, destDir, step.line);
  const prefix = relJoin(...missing);
  const dirs = missing.map((_, i) => relJoin(...missing.slice(0, i + 1)));
  const { uid, gid } = chown ? await owner(d, cid, chown) : { uid: 0, gid: 0 };
  const place = {
    dirs,
    uid,
    gid,
    name: (i: number, rel: string) => {
      const s = plain[i];
      if (s.isDir) return rel === '' ? undefined : relJoin(prefix, rel);
      return destIsDir ? relJoin(prefix, posix.basename(s.path || '/')) : relJoin(prefix, posix.basename(abs));
    },
  };
  await d.files.put(cid, putDir, repack(tree, plain, place));
  for (const a of archives) {
    // The archive room's size checks: the host's free space and the daemon's ratio on the archive's bytes.
    const { tar, read } = decompress(tree, a, step.line);
    try {
      await d.files.put(cid, destDir, tar, { unpack: { what: `the archive ${a.path} of ${step.keyword} (Dockerfile line ${step.line})`, compressedBytes: read } });
    } finally {
      tar.destroy(); // a refused archive: closes the file and stops the decompressor
    }
  }
}

/** --chown: numbers as they are, names from the image's /etc/passwd and /etc/group; a user alone gives its group of the same name (or number). */
async function owner(d: StepDeps, cid: string, spec: string): Promise<{ uid: number; gid: number }> {
  const [u, g] = spec.split(':');
  const group = g ?? u;
  return d.files.withRootfs(cid, async (v) => {
    const user = await lookupUser(v.root, `${u}:${/^\d+$/.test(group) ? group : ''}`);
    if (/^\d+$/.test(group)) return { uid: user.uid, gid: Number(group) };
    try {
      const withGroup = await lookupUser(v.root, `${u}:${group}`);
      return { uid: withGroup.uid, gid: withGroup.gid };
    } catch (e) {
      if (g === undefined && e instanceof NotFoundError) return { uid: user.uid, gid: user.gid };
      throw e;
    }
  });
}

function openSource(tree: RootedTree, s: Source): number {
  return fs.openSync(`/proc/self/fd/${s.parent.fd}/${s.name}`, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
}

/** A tar, plain or compressed, by its first bytes (Docker's ADD unpacks those). */
function isArchive(tree: RootedTree, s: Source): boolean {
  if (!s.name) return false;
  const fd = openSource(tree, s);
  try {
    const head = Buffer.alloc(512);
    const n = fs.readSync(fd, head, 0, 512, 0);
    if (n >= 3 && head[0] === 0x1f && head[1] === 0x8b) return true;
    if (n >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return true;
    if (n >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true;
    return n >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The archive as a plain tar stream, and the bytes of the archive read so far (the ratio).
 * Destroying `tar` before its end closes the file and kills the decompressor (bzip2, xz).
 */
function decompress(tree: RootedTree, s: Source, line: number): { tar: Readable; read: () => number } {
  const fd = openSource(tree, s);
  const head = Buffer.alloc(6);
  fs.readSync(fd, head, 0, 6, 0);
  const file = fs.createReadStream('', { fd, autoClose: true });
  let n = 0;
  const counter = new Transform({
    transform(c: Buffer, _e, cb) {
      n += c.length;
      cb(null, c);
    },
  });
  const read = () => n;
  if (head[0] === 0x1f && head[1] === 0x8b) return { tar: pipeline(file, counter, createGunzip(), () => undefined), read };
  const tool = head.subarray(0, 3).toString('latin1') === 'BZh' ? 'bzip2' : head[0] === 0xfd ? 'xz' : undefined;
  if (!tool) return { tar: pipeline(file, counter, () => undefined), read };
  const p = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const out = new PassThrough();
  pipeline(file, counter, p.stdin, () => undefined); // EPIPE once the tool is stopped
  p.stdout.pipe(out);
  p.on('close', (code) => {
    if (code !== 0 && !out.destroyed) out.destroy(lineError(line, `${tool} could not unpack ${s.path}`, 'check the archive in the context'));
  });
  out.on('close', () => {
    if (out.readableEnded) return;
    p.kill('SIGKILL');
    file.destroy();
  });
  return { tar: out, read };
}
