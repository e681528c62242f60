import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { connect } from '../context';
import { RemoteArchive } from '../../client/archive';
import type { PathStat } from '../../engine/archive';
import { InvalidArgumentError, NotFoundError } from '../../../volumes/shared/errors';

const GO_DIR = 2 ** 31;
const GO_SYMLINK = 2 ** 27;
const isDirMode = (m: number) => m >= GO_DIR;
const isLinkMode = (m: number) => Math.floor(m / GO_SYMLINK) % 2 === 1 && !isDirMode(m);

/** `CONTAINER:PATH` or a local path (absolute, or without a colon before the first '/'), as docker splits it. */
export function splitCpArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  if (i <= 0) return { path: arg };
  const slash = arg.indexOf('/');
  if (slash >= 0 && slash < i) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) };
}

/** `berth cp`: docker's syntax and rules, through the archive endpoints. */
export function cpCommand(program: Command, container: Command): void {
  for (const c of [program.command('cp <SRC> <DEST>'), container.command('cp <SRC> <DEST>')]) {
    c.description('copy files between a container and the host: CONTAINER:SRC DEST, SRC CONTAINER:DEST; `-` is a tar stream on stdin/stdout')
      .option('-a, --archive', 'archive mode: files in the container belong to its user (copy all uid/gid information)')
      .option('-L, --follow-link', 'always follow a symlink in SRC_PATH')
      .addHelpText('after', '\nExamples:\n  berth cp ./config.yml web:/etc/app/\n  berth cp web:/var/log/app ./logs\n  tar -c dir | berth cp - web:/srv\n  berth cp web:/etc - | tar -t')
      .action(async (src: string, dst: string, o: { archive?: boolean; followLink?: boolean }, cmd: Command) => {
        const s = splitCpArg(src);
        const d = splitCpArg(dst);
        if (s.container && d.container) throw new InvalidArgumentError('copying between containers is not supported', { hint: 'copy to the host first, then into the other container' });
        if (!s.container && !d.container) throw new InvalidArgumentError('must specify at least one container source', { hint: 'name it as CONTAINER:PATH' });
        const ctx = await connect(cmd);
        const archive = new RemoteArchive(ctx.transport);
        if (s.container) await copyFrom(archive, s.container, s.path, d.path, !!o.followLink);
        else await copyTo(archive, s.path, d.container!, d.path, { copyUIDGID: !!o.archive, follow: !!o.followLink });
      });
  }
}

async function copyFrom(archive: RemoteArchive, ref: string, src: string, dst: string, follow: boolean): Promise<void> {
  if (!src) throw new InvalidArgumentError('source path is empty', { hint: 'name a path in the container: CONTAINER:/path' });
  if (follow) {
    const st = await archive.stat(ref, src);
    if (isLinkMode(st.mode) && st.linkTarget) src = st.linkTarget;
  }
  const { stat, stream } = await archive.get(ref, src);
  if (dst === '-') {
    await pipeline(stream, process.stdout);
    return;
  }
  const local = fs.statSync(dst, { throwIfNoEntry: false });
  const srcDir = isDirMode(stat.mode);
  let into: string;
  let rebase: { from: string; to: string } | undefined;
  if (local?.isDirectory()) {
    into = dst; // entries keep the source's name
  } else if (local) {
    if (srcDir) throw new InvalidArgumentError(`cannot copy a directory to a file: ${dst}`, { hint: 'name a directory (or a new path) as the destination' });
    into = path.dirname(dst);
    rebase = { from: stat.name, to: path.basename(dst) };
  } else {
    if (/\/$/.test(dst) && !srcDir) throw new NotFoundError(`destination directory ${dst} does not exist`, { hint: 'create it first' });
    into = path.dirname(path.resolve(dst));
    if (stat.name === '.') {
      fs.mkdirSync(dst);
      into = dst;
    } else rebase = { from: stat.name, to: path.basename(path.resolve(dst)) };
  }
  const { RootedTree, TreeWriter } = archiveModules();
  const tree = RootedTree.open(into);
  try {
    await new TreeWriter(tree, tree.root, { chown: false, noOverwriteDirNonDir: true, rebase }).extract(stream);
  } finally {
    tree.dispose();
  }
}

async function copyTo(archive: RemoteArchive, src: string, ref: string, dst: string, o: { copyUIDGID: boolean; follow: boolean }): Promise<void> {
  if (!dst) throw new InvalidArgumentError('destination path is empty', { hint: 'name a path in the container: CONTAINER:/path' });
  if (src === '-') {
    await archive.put(ref, dst, process.stdin, { copyUIDGID: o.copyUIDGID, noOverwriteDirNonDir: true });
    return;
  }
  const contents = /(^|\/)\.$/.test(src);
  const abs = path.resolve(src);
  const st = o.follow ? fs.statSync(abs) : fs.lstatSync(abs);
  const srcDir = st.isDirectory();
  let dstStat: PathStat | undefined;
  try {
    dstStat = await archive.stat(ref, dst);
    if (isLinkMode(dstStat.mode) && dstStat.linkTarget) {
      dst = dstStat.linkTarget;
      dstStat = await archive.stat(ref, dst).catch((e) => (e instanceof NotFoundError ? undefined : Promise.reject(e)));
    }
  } catch (e) {
    if (!(e instanceof NotFoundError)) throw e;
  }
  let into: string;
  let name: string;
  if (dstStat && isDirMode(dstStat.mode)) {
    into = dst;
    name = contents ? '.' : path.basename(abs);
  } else if (dstStat) {
    if (srcDir) throw new InvalidArgumentError(`cannot copy a directory to a file: ${dst}`, { hint: 'name a directory (or a new path) in the container' });
    into = path.posix.dirname(dst);
    name = path.posix.basename(dst);
  } else {
    if (/\/$/.test(dst) && !srcDir) throw new NotFoundError(`destination directory ${dst} does not exist in the container`, { hint: 'create it first, or drop the trailing /' });
    into = path.posix.dirname(dst.replace(/\/+$/, '') || '/');
    name = path.posix.basename(dst.replace(/\/+$/, '')) || '.';
  }
  // Followed with -L: the link's target is packed under the link's name.
  const real = o.follow ? fs.realpathSync(abs) : abs;
  const { RootedTree, packTree } = archiveModules();
  const tree = RootedTree.open(contents ? real : path.dirname(real));
  try {
    const tar = contents ? packTree(tree, tree.root, '', name) : packTree(tree, tree.root, path.basename(real), name);
    await archive.put(ref, into, tar, { copyUIDGID: o.copyUIDGID, noOverwriteDirNonDir: true });
  } finally {
    tree.dispose();
  }
}

/** Loaded on use: the tar packer and writer cost every other command's start-up. */
function archiveModules(): typeof import('../../engine/archive') & typeof import('../../../volumes/archive/rooted') {
  return { ...(require('../../engine/archive') as typeof import('../../engine/archive')), ...(require('../../../volumes/archive/rooted') as typeof import('../../../volumes/archive/rooted')) };
}
