/**
 * A directory tree reached only through file descriptors, so a path inside it can never
 * lead out of it, even while something else rewrites the tree (the CVE-2018-15664 class:
 * a container swapping a directory for a symlink to `/` during `docker cp`).
 *
 * Words:
 *   root      an open directory fd; "/" of the tree. Symlinks are resolved as if it were
 *             the process's root (openat2's RESOLVE_IN_ROOT): `/x` and `../../x` stay inside.
 *   mount     a directory fd grafted at a path of the tree (a container's volumes and
 *             binds when its root is not seen through its own mount namespace).
 *   Dir       an open directory of the tree and its path inside it.
 *
 * Every step opens ONE component relative to an open directory fd: `/proc/self/fd/N/name`
 * is openat(N, name) — the kernel jumps to the fd's directory and looks up a single name,
 * and O_NOFOLLOW / lstat never follow that name if it is a symlink. No host path is ever
 * resolved twice, so a swap between two steps changes nothing: the fds we hold are the
 * directories we checked.
 *
 * Example: `const t = RootedTree.open('/proc/1234/root')`, then
 * `t.resolve('/etc/passwd', { follow: true })` gives the parent Dir of `passwd`.
 */
import fs, { constants as C } from 'node:fs';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../shared/errors';
import { Lifecycle } from '../shared/lifecycle';

/** openat(fd, name) as a path the kernel resolves to exactly that. */
export function at(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** The same, for another process (a host tool such as mknod): its /proc/self is its own. */
export function atFromChild(fd: number, name: string): string {
  return `/proc/${process.pid}/fd/${fd}/${name}`;
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
/** Linux's MAXSYMLINKS. */
const MAX_LINKS = 40;

export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

export function lstatAt(fd: number, name: string): fs.BigIntStats | fs.Stats | undefined {
  try {
    return fs.lstatSync(at(fd, name));
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw e;
  }
}

/** An open directory of the tree. */
export interface Dir {
  fd: number;
  /** Components from the tree's root ([] is the root). */
  path: string[];
}

/** Where a path led: the open directory holding its last component (which may not exist). */
export interface Location {
  parent: Dir;
  /** The last component; '' when the path is the root itself (or names a directory with a trailing '/.'). */
  name: string;
  /** The path inside the tree, cleaned, symlinks resolved. */
  path: string[];
  st?: fs.Stats;
}

export class RootedTree {
  private readonly owned = new Set<number>();
  /** Open until dispose(); opening or resolving after it is FAILED_PRECONDITION. */
  private readonly life = new Lifecycle('container path tree', 'open the container path again');

  private constructor(
    private readonly rootFd: number,
    private readonly mounts: Map<string, () => number>,
  ) {
    this.owned.add(rootFd);
  }

  /**
   * Open `root` (a trusted host path: a container's rootfs, or /proc/PID/root) with
   * `mounts` grafted at their container paths (their sources are trusted host paths too).
   */
  static open(root: string, mounts: Array<{ destination: string; source: string }> = []): RootedTree {
    const fd = fs.openSync(root, C.O_RDONLY | C.O_DIRECTORY);
    const table = new Map<string, () => number>();
    for (const m of mounts) table.set(splitPath(m.destination).join('/'), () => fs.openSync(m.source, C.O_RDONLY | C.O_DIRECTORY));
    return new RootedTree(fd, table);
  }

  get root(): Dir {
    return { fd: this.rootFd, path: [] };
  }

  /** Is `p` (components) the destination of a grafted mount? */
  isMount(p: string[]): boolean {
    return this.mounts.has(p.join('/'));
  }

  /** The grafted mounts at or under `p`, as paths. */
  mountsUnder(p: string[]): string[][] {
    const key = p.join('/');
    return [...this.mounts.keys()].filter((k) => key === '' || k === key || k.startsWith(key + '/')).map((k) => k.split('/'));
  }

  /**
   * Open the child directory `name` of `dir` without following a symlink. A grafted mount
   * there wins over what the root has at that path. undefined when it is not a directory
   * (or not there); the caller decides whether that is an error.
   */
  openChildDir(dir: Dir, name: string): Dir | undefined {
    this.life.check();
    const p = [...dir.path, name];
    const mount = this.mounts.get(p.join('/'));
    let fd: number;
    try {
      fd = mount ? mount() : fs.openSync(at(dir.fd, name), DIR_FLAGS);
    } catch (e) {
      const code = errno(e);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
      throw e;
    }
    this.owned.add(fd);
    return { fd, path: p };
  }

  /** lstat of `name` in `dir` (a grafted mount's own root when one is there). */
  lstat(dir: Dir, name: string): fs.Stats | undefined {
    const p = [...dir.path, name];
    const mount = this.mounts.get(p.join('/'));
    if (mount) {
      const fd = mount();
      try {
        return fs.fstatSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    return lstatAt(dir.fd, name) as fs.Stats | undefined;
  }

  close(d: Dir): void {
    if (d.fd === this.rootFd || !this.owned.delete(d.fd)) return;
    fs.closeSync(d.fd);
  }

  /**
   * Resolve `p` inside the tree, as RESOLVE_IN_ROOT would: every symlink on the way is
   * followed inside the tree (absolute targets restart at its root, `..` stops at it); the
   * last component is followed only with `follow`. A trailing `/` or `/.` always follows
   * it (the path names a directory). Missing intermediate directories are NOT_FOUND.
   */
  resolve(p: string, opts: { follow: boolean }): Location {
    this.life.check();
    const trailing = /\/\.?$/.test(p) || p === '.' || p === '';
    const queue = splitPath(p);
    const stack: Dir[] = [this.root];
    let links = 0;
    const top = () => stack[stack.length - 1];
    try {
      for (;;) {
        const name = queue.shift();
        if (name === undefined) {
          // The root itself, or a trailing '/' that ended on a directory.
          const dir = top();
          stack.pop();
          for (const d of stack) this.close(d);
          return { parent: dir, name: '', path: dir.path, st: fs.fstatSync(dir.fd) };
        }
        if (name === '..') {
          if (stack.length > 1) this.close(stack.pop()!);
          continue;
        }
        const last = queue.length === 0;
        const st = this.lstat(top(), name);
        if (!st) {
          if (last && !trailing) return this.done(stack, name);
          throw new NotFoundError(`no such file or directory: ${'/' + [...top().path, name].join('/')}`, { hint: 'check the path inside the container' });
        }
        if (st.isSymbolicLink() && !this.isMount([...top().path, name]) && (!last || opts.follow || trailing)) {
          if (++links > MAX_LINKS) throw new InvalidArgumentError(`too many levels of symbolic links in ${p}`, { hint: 'check the symlinks on that path' });
          const target = fs.readlinkSync(at(top().fd, name));
          if (target.startsWith('/')) while (stack.length > 1) this.close(stack.pop()!);
          queue.unshift(...splitPath(target));
          continue;
        }
        if (last && !trailing) return this.done(stack, name, st);
        if (!st.isDirectory()) throw new FailedPreconditionError(`not a directory: ${'/' + [...top().path, name].join('/')}`, { hint: 'check the path inside the container' });
        const child = this.openChildDir(top(), name);
        if (!child) {
          // Swapped since the lstat: look again (the fresh look decides, never the old one).
          queue.unshift(name);
          if (++links > MAX_LINKS) throw new FailedPreconditionError(`${p} keeps changing while it is resolved`, { hint: 'try again when the container is quiet' });
          continue;
        }
        stack.push(child);
      }
    } catch (e) {
      for (const d of stack) this.close(d);
      throw e;
    }
  }

  private done(stack: Dir[], name: string, st?: fs.Stats): Location {
    const parent = stack.pop()!;
    for (const d of stack) this.close(d);
    return { parent, name, path: [...parent.path, name], st };
  }

  /** Close every fd this tree opened. Twice is harmless. */
  dispose(): void {
    // The release has no await: the fds are closed before close() returns.
    void this.life.close(async () => {
      for (const fd of this.owned) fs.closeSync(fd);
      this.owned.clear();
    }).catch(() => undefined); // an fd that will not close is not the caller's to mend
  }
}

/** Path components, lexically: empty and '.' dropped ('..' kept for the resolver). */
export function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}

/**
 * Remove `name` in `dir` and, if it is a directory, everything under it, one fd-anchored
 * step at a time: a directory swapped for a symlink mid-way is unlinked as the symlink
 * it now is, never followed.
 */
export function removeAt(dirFd: number, name: string): void {
  const st = lstatAt(dirFd, name);
  if (!st) return;
  if (!st.isDirectory()) {
    fs.unlinkSync(at(dirFd, name));
    return;
  }
  let fd: number;
  try {
    fd = fs.openSync(at(dirFd, name), DIR_FLAGS);
  } catch (e) {
    if (errno(e) === 'ELOOP' || errno(e) === 'ENOTDIR') return removeAt(dirFd, name);
    throw e;
  }
  try {
    for (const child of fs.readdirSync(at(fd))) removeAt(fd, child);
  } finally {
    fs.closeSync(fd);
  }
  fs.rmdirSync(at(dirFd, name));
}
