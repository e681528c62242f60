import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError } from '../shared/errors';
import { tool, ToolError } from '../shared/host-tool';
import type { Mount } from './snapshotter';

/**
 * The one place that mounts and unmounts layers: the snapshotter only returns plans
 * (`Mount[]`), this executes them with util-linux mount(8)/umount(8). Shelling out costs
 * a few milliseconds per mount, and buys the tools' well-tested option parsing (bind + ro
 * remount, propagation) and messages we can show to a user.
 */

/** The kernel copies at most one page of mount data; past it the option string is cut short. */
const PAGE_SIZE = 4096;
/** Compact long before the limit, like containerd (pagesize - 512). */
const COMPACT_AT = PAGE_SIZE - 512;
const BUSY_RETRIES = 5;

/**
 * Mount `mounts` at `target`, in order (later ones stack on earlier ones, like containerd's
 * mount.All). If one fails, the ones already made are undone and the error is thrown.
 */
export async function mountAll(mounts: Mount[], target: string): Promise<void> {
  const dest = path.resolve(target);
  const st = await fs.promises.stat(dest).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new NotFoundError(`mount point ${dest} is not a directory`, { hint: 'create the directory before mounting on it' });
  }
  let done = 0;
  try {
    for (const m of mounts) {
      await mountOne(m, dest);
      done++;
    }
  } catch (e) {
    // Undo only our own mounts: something may have been mounted at `dest` before us.
    for (; done > 0; done--) await umountOnce(dest).catch(() => undefined);
    throw e;
  }
}

/**
 * Unmount everything mounted at `target` (stacked mounts too). Never lazily: a lazy unmount
 * hides a busy mount that would then pin its layers, so a busy target is retried a few
 * times and then reported as a ConflictError. Not mounted at all is fine.
 */
export async function unmountAll(target: string): Promise<void> {
  const dest = path.resolve(target);
  // Bounded: a mount that will not go away must not hang the caller for ever.
  for (let i = 0; i < 64 && (await isMountPoint(dest)); i++) await umountOnce(dest);
}

/** Whether `p` is the mount point of some mount (from /proc/self/mountinfo, so bind mounts count). */
export async function isMountPoint(p: string): Promise<boolean> {
  let real: string;
  try {
    real = await fs.promises.realpath(p);
  } catch {
    return false;
  }
  const info = await fs.promises.readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => unescapeMountinfo(line.split(' ')[4] ?? '') === real);
}

async function mountOne(m: Mount, target: string): Promise<void> {
  if (m.type === 'bind') {
    const opts = m.options.some((o) => o === 'bind' || o === 'rbind') ? m.options : [...m.options, 'bind'];
    await run('mount', ['-o', opts.join(','), m.source, target], target);
    return;
  }
  let options = m.options;
  let cwd: string | undefined;
  if (options.join(',').length >= COMPACT_AT) ({ options, cwd } = compactOptions(options));
  const data = options.join(',');
  if (data.length >= PAGE_SIZE) {
    throw new InvalidArgumentError(`mount options for ${target} are ${data.length} bytes, over the kernel's ${PAGE_SIZE}`, {
      hint: 'use an image with fewer layers (squash or flatten it)',
    });
  }
  await run('mount', ['-t', m.type, '-o', data, m.source, target], target, cwd);
}

/**
 * containerd's compactLowerdirOption: 128 absolute lowerdirs overflow a page, so rewrite the
 * directory options relative to their deepest common parent and run mount(8) in it (the
 * kernel resolves relative option paths against the caller's working directory).
 * With the snapshotter's `snapshots/<id>/fs` layout that is `snapshots/`, leaving ~8 bytes
 * per layer.
 */
export function compactOptions(options: string[]): { options: string[]; cwd?: string } {
  const dirKeys = ['lowerdir=', 'upperdir=', 'workdir='];
  const paths = options.flatMap((o) => {
    const k = dirKeys.find((d) => o.startsWith(d));
    return k ? o.slice(k.length).split(':') : [];
  });
  if (paths.length === 0 || !paths.every(path.isAbsolute)) return { options };
  // Common parent of the paths' parents, so no path collapses to '' or '.'.
  let common = path.dirname(paths[0]).split('/');
  for (const p of paths) {
    const parts = path.dirname(p).split('/');
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  const cwd = common.join('/') || '/';
  if (cwd === '/') return { options };
  const rel = (p: string) => path.relative(cwd, p);
  return {
    cwd,
    options: options.map((o) => {
      const k = dirKeys.find((d) => o.startsWith(d));
      return k ? k + o.slice(k.length).split(':').map(rel).join(':') : o;
    }),
  };
}

async function umountOnce(target: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run('umount', [target], target);
      return;
    } catch (e) {
      if ((e as { busy?: boolean }).busy && attempt < BUSY_RETRIES) {
        await new Promise((r) => setTimeout(r, 50 * attempt));
        continue;
      }
      if ((e as { notMounted?: boolean }).notMounted) return;
      throw e;
    }
  }
}

/** Run mount(8)/umount(8) through the host-tool runner and map failures to our errors. */
async function run(cmd: 'mount' | 'umount', args: string[], target: string, cwd?: string): Promise<void> {
  try {
    await tool(cmd, args, { cwd });
  } catch (e) {
    throw e instanceof ToolError ? mapError(cmd, args, target, e) : e;
  }
}

function mapError(cmd: string, args: string[], target: string, err: ToolError): Error {
  // The first line is the reason; the rest is mount(8)'s "see dmesg(1)" advice, which the hint carries.
  const stderr = err.stderr.trim().split('\n')[0];
  const msg = `${cmd} ${target} failed: ${stderr || err.message}`;
  const s = stderr.toLowerCase();
  if (s.includes('unknown filesystem type')) {
    return new FailedPreconditionError(msg, { hint: 'load the overlay module (modprobe overlay), or use a kernel with overlayfs', cause: err });
  }
  if (s.includes('target is busy') || s.includes('device is busy')) {
    return Object.assign(
      new ConflictError(msg, { hint: `stop the processes using ${target} (see: fuser -vm ${target}) and try again`, cause: err }),
      { busy: true },
    );
  }
  if (s.includes('not mounted') || s.includes('no mount point specified')) {
    return Object.assign(new InternalError(msg, { hint: `${target} is not mounted`, cause: err }), { notMounted: true });
  }
  if (s.includes('does not exist') || s.includes('no such file')) {
    return new NotFoundError(msg, { hint: 'check that the snapshot and the mount point still exist', cause: err });
  }
  if (s.includes('permission denied') || s.includes('must be superuser') || s.includes('operation not permitted')) {
    return new FailedPreconditionError(msg, { hint: 'run berth as root', cause: err });
  }
  return new InternalError(msg, { hint: `see the kernel log (dmesg | tail) for the reason; command: ${cmd} ${args.join(' ')}`, cause: err });
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
