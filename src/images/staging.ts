import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError, InternalError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';
import { unmountAll } from '../../volumes/layers/mount';
import type { LayerImportSpec } from './layer-spec';

/**
 * Building root filesystems on the host (busybox, vendor, bootstrap): a staging directory
 * under the store's tmpDir, filled, packed and imported as one layer, then removed.
 */

/** What a builder needs from the image store. */
export interface BuilderContext {
  tmpDir: string;
  busyboxPath: string;
  /** Pack `dir` and import it as a one-layer image (the same path as `berth import`). */
  importDirectory(dir: string, spec: LayerImportSpec): Promise<{ id: string }>;
  /** The id of the image `ref` names, if there is one. */
  exists(ref: string): string | undefined;
}

/**
 * Run `fn` in a fresh staging directory, and remove the directory afterwards whatever
 * happens. Mounts a tool left inside (debootstrap mounts proc and sys) are unmounted first:
 * removing a tree with a live /proc mount in it would reach into the host.
 */
export async function withStaging<T>(tmpDir: string, prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  await fs.promises.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const dir = await fs.promises.mkdtemp(path.join(tmpDir, prefix));
  try {
    return await fn(dir);
  } finally {
    await removeStaging(dir);
  }
}

export async function removeStaging(dir: string): Promise<void> {
  const mounts = await mountsUnder(dir);
  for (const m of mounts) await unmountAll(m);
  if ((await mountsUnder(dir)).length) {
    throw new InternalError(`cannot remove ${dir}: something is still mounted in it`, {
      hint: `unmount what is under ${dir} (see: findmnt -R ${dir}) and remove it`,
    });
  }
  await fs.promises.rm(dir, { recursive: true, force: true });
}

/** Mount points at or below `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const real = await fs.promises.realpath(dir).catch(() => path.resolve(dir));
  const info = await fs.promises.readFile('/proc/self/mountinfo', 'utf8');
  const points = info
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === real || p.startsWith(`${real}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * The host path of `p` inside the root filesystem at `root`, following symlinks the way
 * they would resolve inside it (absolute targets start again at `root`), so a link in the
 * staged tree never leads a write out of it. Components that do not exist are kept as they
 * are.
 */
export async function resolveInRoot(root: string, p: string): Promise<string> {
  let todo = p.split('/').filter(Boolean);
  let done: string[] = [];
  let hops = 0;
  while (todo.length) {
    const c = todo.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, c);
    const st = await fs.promises.lstat(host).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      if (++hops > 40) {
        throw new InternalError(`too many levels of symbolic links at ${p} in ${root}`, { hint: 'a symlink in the staged tree loops; check the binaries vendored' });
      }
      const target = await fs.promises.readlink(host);
      if (target.startsWith('/')) done = [];
      todo = [...target.split('/').filter(Boolean), ...todo];
      continue;
    }
    done.push(c);
  }
  return path.join(root, ...done);
}

/** Where to create `p` itself inside `root`: its parent resolved in the root, its own name not followed. */
export async function placeInRoot(root: string, p: string): Promise<string> {
  const parent = await resolveInRoot(root, path.posix.dirname(path.posix.resolve('/', p)));
  await fs.promises.mkdir(parent, { recursive: true, mode: 0o755 });
  return path.join(parent, path.posix.basename(p));
}

async function exists(p: string): Promise<boolean> {
  return fs.promises.lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * The files every berth-made image has, unless the tree has its own: /etc/passwd and
 * /etc/group with root and nobody, /tmp (1777), /root (0700).
 */
export async function writeBaseFiles(root: string): Promise<void> {
  const files: Array<[string, string]> = [
    ['/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'],
    ['/etc/group', 'root:x:0:\nnobody:x:65534:\n'],
  ];
  for (const [p, text] of files) {
    const dest = await placeInRoot(root, p);
    if (!(await exists(dest))) await fs.promises.writeFile(dest, text, { mode: 0o644 });
  }
  for (const [p, mode] of [['/tmp', 0o1777], ['/root', 0o700]] as const) {
    const dest = await placeInRoot(root, p);
    if (!(await exists(dest))) {
      await fs.promises.mkdir(dest);
      await fs.promises.chmod(dest, mode); // explicit: mkdir's mode is cut by the umask
    }
  }
}

/**
 * Install the host's static busybox as /bin/busybox and a symlink for each applet
 * (`busybox --list-full`: bin/sh, usr/bin/env, …). Paths the tree already has are left
 * alone, so a vendored binary wins over the applet of the same name.
 */
export async function installBusybox(root: string, busyboxPath: string): Promise<void> {
  const st = await fs.promises.stat(busyboxPath).catch(() => undefined);
  if (!st?.isFile()) {
    throw new FailedPreconditionError(`${busyboxPath} not found: berth makes its busybox image from the host's static busybox`, {
      hint: 'install it: apt-get install busybox-static',
    });
  }
  const applets = (await tool(busyboxPath, ['--list-full'])).split('\n').filter(Boolean);
  if ((await tool('ldd', [busyboxPath]).catch(() => '')).includes('=>')) {
    throw new FailedPreconditionError(`${busyboxPath} is dynamically linked; images need a static busybox`, {
      hint: 'install the static build: apt-get install busybox-static',
    });
  }
  const bin = await placeInRoot(root, '/bin/busybox');
  if (!(await exists(bin))) {
    await fs.promises.copyFile(busyboxPath, bin);
    await fs.promises.chmod(bin, 0o755);
  }
  for (const a of applets) {
    if (a.includes('..') || a.endsWith('/busybox')) continue;
    const dest = await placeInRoot(root, `/${a}`);
    if (!(await exists(dest))) await fs.promises.symlink('/bin/busybox', dest);
  }
}
