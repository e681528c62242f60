import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { DEFAULT_PATH } from './config';
import { familiarTagged, parseRepoTag } from './reference';
import type { VendorOptions } from './service';
import { installBusybox, withStaging, writeBaseFiles, type BuilderContext } from './staging';
import { tool, ToolError } from '../../volumes/shared/host-tool';

/**
 * `berth image vendor redis /usr/bin/redis-server /usr/bin/redis-cli`: an image made of
 * host binaries, each at its own path, with every shared library `ldd` says it needs (the
 * dynamic loader included), plus busybox as /bin/sh, /etc/passwd, /etc/group and /tmp.
 *
 * Paths are copied the way the host has them: a symlink on the way (Debian's /lib ->
 * usr/lib, /usr/bin/redis-server -> redis-check-rdb) is recreated as the same symlink and
 * its target copied too, so every path a binary or the loader uses resolves in the image
 * just as on the host.
 */
export async function vendorImage(opts: VendorOptions, ctx: BuilderContext): Promise<{ id: string }> {
  const name = familiarTagged(parseRepoTag(opts.ref));
  if (!Array.isArray(opts.binaries) || opts.binaries.length === 0) {
    throw new InvalidArgumentError('no binaries to vendor', { hint: 'name at least one host binary, e.g. /usr/bin/redis-server' });
  }
  const bins: string[] = [];
  for (const b of opts.binaries) bins.push(await locate(b));
  const progress = opts.progress;
  return withStaging(ctx.tmpDir, 'vendor-', async (dir) => {
    const copied = new Set<string>();
    for (const bin of bins) {
      progress?.({ status: `Copying ${bin}` });
      await copyHostPath(dir, bin, copied);
      for (const lib of await sharedLibraries(bin)) await copyHostPath(dir, lib, copied);
    }
    await installBusybox(dir, ctx.busyboxPath);
    await writeBaseFiles(dir);
    const cmd = opts.cmd ?? (opts.entrypoint ? undefined : [bins[0]]);
    return ctx.importDirectory(dir, {
      names: [name],
      config: {
        Env: [DEFAULT_PATH],
        ...(opts.entrypoint ? { Entrypoint: opts.entrypoint } : {}),
        ...(cmd ? { Cmd: cmd } : {}),
      },
      createdBy: `berth vendor ${bins.join(' ')}`,
      comment: 'host binaries vendored by berth',
      progress,
    });
  });
}

/** An absolute path to a regular, executable file: as given, or found in $PATH. */
async function locate(bin: string): Promise<string> {
  if (typeof bin !== 'string' || bin === '') throw new InvalidArgumentError('empty binary name', { hint: 'give a path like /usr/bin/redis-server' });
  let p = bin;
  if (!bin.includes('/')) {
    const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
    const hit = await firstExisting(dirs.filter(Boolean).map((d) => path.join(d, bin)));
    if (!hit) throw new NotFoundError(`${bin} not found in PATH`, { hint: `give its absolute path, or install it (which ${bin})` });
    p = hit;
  }
  p = path.resolve(p);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch {
    throw new NotFoundError(`${p}: no such file on the host`, { hint: 'give the path of an installed binary (see: which <name>)' });
  }
  if (!st.isFile()) throw new InvalidArgumentError(`${p} is not a regular file`, { hint: 'vendor binaries, not directories or devices' });
  if ((st.mode & 0o111) === 0) throw new InvalidArgumentError(`${p} is not executable`, { hint: 'vendor executables only (chmod +x it if it is one)' });
  return p;
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    const st = await fs.promises.stat(p).catch(() => undefined);
    if (st?.isFile()) return p;
  }
  return undefined;
}

/**
 * The shared libraries `ldd` lists for `bin`, the dynamic loader included; none for a
 * static binary. A library ldd cannot find is an error: the image would not run.
 */
export async function sharedLibraries(bin: string): Promise<string[]> {
  let out: string;
  try {
    out = await tool('ldd', [bin], { hint: 'check that the binary is for this machine' });
  } catch (e) {
    if (!(e instanceof ToolError)) throw e; // ldd missing: FAILED_PRECONDITION naming libc-bin
    if (/not a dynamic executable|statically linked/.test(`${e.stdout}${e.stderr}`)) return [];
    throw e;
  }
  return parseLdd(out, bin);
}

export function parseLdd(out: string, bin = 'the binary'): string[] {
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const l = line.trim();
    if (!l || /statically linked/.test(l)) continue;
    let m = /^(\S+)\s+=>\s+not found/.exec(l);
    if (m) {
      throw new FailedPreconditionError(`${bin} needs ${m[1]}, which is not installed`, { hint: `install the package that has ${m[1]} (apt-file search ${m[1]})` });
    }
    m = /^\S+\s+=>\s+(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(l) ?? /^(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(l);
    if (m && !libs.includes(m[1])) libs.push(m[1]);
  }
  return libs;
}

/**
 * Copy host path `p` into `root` at the same path, recreating every symlink met on the
 * way (and copying what it points to), with modes and owners kept.
 */
export async function copyHostPath(root: string, p: string, done: Set<string>, depth = 0): Promise<void> {
  if (done.has(p)) return;
  if (depth > 40) throw new InternalError(`too many levels of symbolic links copying ${p}`, { hint: `check the host's links on that path (namei ${p})` });
  const parts = p.split('/').filter(Boolean);
  let cur = '';
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === '.' || parts[i] === '..') throw new InternalError(`unexpected path ${p}`, { hint: 'give absolute paths without . or ..' });
    cur += `/${parts[i]}`;
    const st = await fs.promises.lstat(cur);
    const dest = path.join(root, cur);
    const there = await fs.promises.lstat(dest).catch(() => undefined);
    if (st.isSymbolicLink()) {
      const target = await fs.promises.readlink(cur);
      if (!there) {
        await fs.promises.symlink(target, dest);
        await fs.promises.lchown(dest, st.uid, st.gid);
      } else if (!there.isSymbolicLink()) {
        throw new InternalError(`cannot vendor ${p}: ${cur} is a symlink on the host but not in the image`, {
          hint: 'vendor the binaries in separate images, or report this as a bug',
        });
      }
      const rest = parts.slice(i + 1);
      await copyHostPath(root, path.join(path.resolve(path.dirname(cur), target), ...rest), done, depth + 1);
      done.add(p);
      return;
    }
    if (st.isDirectory()) {
      if (!there) {
        await fs.promises.mkdir(dest);
        await fs.promises.chown(dest, st.uid, st.gid);
        await fs.promises.chmod(dest, st.mode & 0o7777);
      }
      continue;
    }
    if (i !== parts.length - 1 || !st.isFile()) {
      throw new InvalidArgumentError(`cannot vendor ${p}: ${cur} is not a regular file`, { hint: 'vendor regular files only' });
    }
    if (!there) {
      await fs.promises.copyFile(cur, dest);
      await fs.promises.chown(dest, st.uid, st.gid);
      await fs.promises.chmod(dest, st.mode & 0o7777);
    }
  }
  done.add(p);
}
