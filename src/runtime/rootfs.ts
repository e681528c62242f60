import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';

/**
 * Safe lookups inside an untrusted root filesystem (an image's, or a container's that has
 * run): every path is resolved the way the kernel would resolve it after chroot(root), so
 * a symlink such as /etc/passwd -> /etc/shadow or -> ../../../../etc/shadow lands inside
 * the rootfs, never on the host. This is Go's filepath-securejoin, in our words:
 *
 *   - components are resolved one at a time with lstat;
 *   - a symlink's target is resolved relative to the rootfs (absolute targets restart at
 *     the rootfs root), and `..` never climbs above the root;
 *   - at most MAX_SYMLINKS symlinks are followed (a loop is an error, not a hang);
 *   - a component that does not exist is kept as is (the result may name a new file).
 *
 * The result is a host path with no symlink left in it, valid as long as nobody changes
 * the rootfs meanwhile (do not use it on a rootfs a running container can write to when
 * the answer matters for the host's safety: open with O_NOFOLLOW at the least, as here).
 */

const MAX_SYMLINKS = 255;
/** /etc/passwd and /etc/group larger than this are refused rather than read into memory. */
const MAX_DB_SIZE = 16 * 1024 * 1024;

/** Resolve `p` inside `root` and return the path inside the container ('/etc/passwd'). */
export async function resolveInRootRelative(root: string, p: string): Promise<string> {
  const base = path.resolve(root);
  let resolved = ''; // '' is the root; otherwise '/a/b', with no symlink in it
  let rest = p;
  let links = 0;
  while (rest !== '') {
    const slash = rest.indexOf('/');
    const part = slash === -1 ? rest : rest.slice(0, slash);
    rest = slash === -1 ? '' : rest.slice(slash + 1);
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved = resolved.slice(0, resolved.lastIndexOf('/')); // clamped: '' stays ''
      continue;
    }
    const next = `${resolved}/${part}`;
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(base + next);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      resolved = next; // missing: keep the name as it is
      continue;
    }
    if (!st.isSymbolicLink()) {
      resolved = next;
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new InvalidArgumentError(`too many levels of symbolic links resolving ${JSON.stringify(p)} in ${root}`, {
        hint: 'the image has a symlink loop: fix or remove the symlinks on that path',
      });
    }
    const target = await fs.promises.readlink(base + next);
    if (target.startsWith('/')) resolved = '';
    rest = rest === '' ? target : `${target}/${rest}`;
  }
  return resolved === '' ? '/' : resolved;
}

/** Resolve `p` inside `root` as the container would see it; returns the host path. */
export async function resolveInRoot(root: string, p: string): Promise<string> {
  const rel = await resolveInRootRelative(root, p);
  const base = path.resolve(root);
  return rel === '/' ? base : base + rel;
}

/**
 * Read a small regular file inside the rootfs, or undefined when it is missing or is not
 * a regular file. O_NOFOLLOW: the last component was resolved already, so a symlink there
 * now means someone swapped it meanwhile.
 */
async function readInRoot(root: string, p: string): Promise<string | undefined> {
  const file = await resolveInRoot(root, p);
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    if (st.size > MAX_DB_SIZE) {
      throw new InvalidArgumentError(`${p} in the image is too large (${st.size} bytes)`, { hint: 'use a numeric uid:gid for this image' });
    }
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0x7fffffff ? n : undefined;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] || '/' });
  }
  return out;
}

function parseGroup(text: string | undefined): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) continue;
    const gid = parseId(f[2]);
    if (gid === undefined) continue;
    out.push({ name: f[0], gid, members: f[3].split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: those of /etc/group that list the user as a member. */
  additionalGids: number[];
  home: string;
}

/**
 * Resolve Docker's `--user` ('', 'name', 'uid', 'uid:gid', 'name:group', ...) against the
 * rootfs's /etc/passwd and /etc/group, read through resolveInRoot. Numeric ids need no
 * files; a name that is not there is a NotFoundError.
 */
export async function lookupUser(root: string, user: string): Promise<ResolvedUser> {
  const [userPart, groupPart, ...more] = user.split(':');
  if (more.length > 0) {
    throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}`, { hint: 'use name, uid, name:group or uid:gid' });
  }
  const passwd = parsePasswd(await readInRoot(root, '/etc/passwd'));
  const wantUid = userPart === '' ? 0 : parseId(userPart);
  if (wantUid === undefined && /^\d+$/.test(userPart)) {
    throw new InvalidArgumentError(`uid ${userPart} is out of range`, { hint: 'use a uid between 0 and 2147483647' });
  }
  const entry = wantUid !== undefined ? passwd.find((e) => e.uid === wantUid) : passwd.find((e) => e.name === userPart);
  if (!entry && wantUid === undefined) {
    throw new NotFoundError(`unable to find user ${userPart}: no matching entries in the image's /etc/passwd`, {
      hint: 'use a numeric uid (e.g. --user 1000:1000), or add the user to the image',
    });
  }
  const uid = entry ? entry.uid : (wantUid as number);
  let gid = entry ? entry.gid : 0;

  const needGroups = groupPart !== undefined || entry !== undefined;
  const groups = needGroups ? parseGroup(await readInRoot(root, '/etc/group')) : [];
  if (groupPart !== undefined && groupPart !== '') {
    const g = parseId(groupPart);
    if (g !== undefined) {
      gid = g;
    } else if (/^\d+$/.test(groupPart)) {
      throw new InvalidArgumentError(`gid ${groupPart} is out of range`, { hint: 'use a gid between 0 and 2147483647' });
    } else {
      const ge = groups.find((x) => x.name === groupPart);
      if (!ge) {
        throw new NotFoundError(`unable to find group ${groupPart}: no matching entries in the image's /etc/group`, {
          hint: 'use a numeric gid (e.g. --user 1000:1000), or add the group to the image',
        });
      }
      gid = ge.gid;
    }
  }
  const additionalGids: number[] = [];
  if (entry) {
    for (const g of groups) {
      if (g.members.includes(entry.name) && g.gid !== gid && !additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  return { uid, gid, additionalGids, home: entry ? entry.home : '/' };
}

/**
 * Docker's `--group-add`: each group as a gid, a number as is, a name looked up in the
 * rootfs's /etc/group (a name that is not there is a NotFoundError).
 */
export async function lookupGroups(root: string, groups: string[]): Promise<number[]> {
  if (!groups.length) return [];
  const known = groups.every((g) => parseId(g) !== undefined) ? [] : parseGroup(await readInRoot(root, '/etc/group'));
  return groups.map((g) => {
    const id = parseId(g);
    if (id !== undefined) return id;
    const ge = known.find((x) => x.name === g);
    if (!ge) {
      throw new NotFoundError(`unable to find group ${g}: no matching entries in the image's /etc/group`, {
        hint: 'use a numeric gid (e.g. --group-add 1001), or add the group to the image',
      });
    }
    return ge.gid;
  });
}

async function isExecutableFile(root: string, p: string): Promise<boolean> {
  try {
    const st = await fs.promises.stat(await resolveInRoot(root, p));
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EACCES') return false;
    throw e;
  }
}

/**
 * Where `cmd` is inside the rootfs, as the container's exec would find it: a command with
 * a '/' is checked as is (relative to '/'), otherwise each absolute directory of PATH in
 * order. It must be a regular file with an x bit. Returns the path inside the container.
 */
export async function findExecutable(root: string, cmd: string, PATH: string): Promise<string | undefined> {
  if (cmd === '') return undefined;
  if (cmd.includes('/')) {
    const p = path.posix.resolve('/', cmd);
    return (await isExecutableFile(root, p)) ? p : undefined;
  }
  for (const dir of PATH.split(':')) {
    if (!dir.startsWith('/')) continue; // relative PATH entries depend on the cwd: skip them
    const p = path.posix.join(dir, cmd);
    if (await isExecutableFile(root, p)) return p;
  }
  return undefined;
}

function isUnderProc(p: string): boolean {
  return p === '/proc' || p.startsWith('/proc/');
}

/**
 * Check a working directory and return it normalised. It must be absolute, and neither
 * /proc nor under it: a cwd of /proc/self/fd/N is how CVE-2024-21626 (runc "Leaky
 * Vessels") reached the host's filesystem through a leaked fd.
 */
export function validateWorkdir(cwd: string): string {
  if (!cwd.startsWith('/')) {
    throw new InvalidArgumentError(`the working directory ${JSON.stringify(cwd)} is not absolute`, {
      hint: 'give an absolute working directory, e.g. -w /app',
    });
  }
  const norm = path.posix.normalize(cwd).replace(/(.)\/+$/, '$1');
  if (isUnderProc(norm)) {
    throw new InvalidArgumentError(`the working directory ${JSON.stringify(cwd)} is under /proc, which is not allowed`, {
      hint: 'choose a working directory outside /proc, e.g. -w /',
    });
  }
  return norm;
}

/**
 * validateWorkdir, then the same check after resolving symlinks inside the rootfs, so a
 * rootfs symlink /work -> /proc/self/fd/7 cannot smuggle a /proc cwd past the first check.
 */
export async function validateWorkdirInRoot(root: string, cwd: string): Promise<string> {
  const norm = validateWorkdir(cwd);
  const resolved = await resolveInRootRelative(root, norm);
  if (isUnderProc(resolved)) {
    throw new InvalidArgumentError(`the working directory ${JSON.stringify(cwd)} resolves to ${resolved}, under /proc, which is not allowed`, {
      hint: 'choose a working directory outside /proc, or fix the symlink in the image',
    });
  }
  return norm;
}
