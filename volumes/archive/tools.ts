/**
 * The few things Node cannot do itself: mknod (whiteouts, fifos, devices) and extended
 * attributes. Each helper runs ONE child process for a whole batch, because a layer can
 * hold thousands of whiteouts and a process per node would dominate apply time.
 * Paths are relative to `cwd` (the layer root), which the caller has already checked.
 */
import { toolBytes } from '../shared/host-tool';

/** Run a command to completion through the one host-tool runner; stdout as a Buffer. */
function run(cmd: string, args: string[], opts: { cwd: string; input?: string }): Promise<Buffer> {
  return toolBytes(cmd, args, { cwd: opts.cwd, input: opts.input ?? '' });
}

export interface NodeSpec {
  path: string;
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
}

/** Whole argv stays well under ARG_MAX (2 MiB, shared with the environment). */
const ARGV_BUDGET = 512 * 1024;
const MKNOD_LOOP =
  'while [ $# -gt 0 ]; do if [ "$2" = p ]; then mknod -- "$1" p || exit 1; ' +
  'else mknod -- "$1" "$2" "$3" "$4" || exit 1; fi; shift 4; done';

/** mknod every node: one `sh` per ~512 KiB of argv, which loops over coreutils mknod. */
export async function mknodBatch(cwd: string, nodes: NodeSpec[]): Promise<void> {
  let args: string[] = [];
  let bytes = 0;
  for (const n of nodes) {
    args.push(n.path, n.type, String(n.major), String(n.minor));
    bytes += Buffer.byteLength(n.path) + 24;
    if (bytes > ARGV_BUDGET) {
      await run('sh', ['-c', MKNOD_LOOP, 'sh', ...args], { cwd });
      args = [];
      bytes = 0;
    }
  }
  if (args.length) await run('sh', ['-c', MKNOD_LOOP, 'sh', ...args], { cwd });
}

/**
 * getfattr/setfattr dump format quoting: attr's quote() writes backslash and control
 * characters as \ooo octal and unquote() reads any \ooo back. We escape every byte outside
 * printable ASCII (and space, so no trailing blank is lost), which is a superset and safe.
 */
export function quotePath(p: string): string {
  let s = '';
  for (const b of Buffer.from(p)) {
    s += b > 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : '\\' + b.toString(8).padStart(3, '0');
  }
  return s;
}

export function unquotePath(q: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(q);
  for (let i = 0; i < raw.length; i++) {
    const oct = raw[i] === 0x5c && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'));
    if (oct) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8) & 0xff);
      i += 3;
    } else bytes.push(raw[i]);
  }
  return Buffer.from(bytes).toString();
}

/** Set many xattrs with one `setfattr --restore`; -h so a final symlink is never followed. */
export async function setXattrs(cwd: string, attrs: Map<string, Map<string, Buffer>>): Promise<void> {
  if (attrs.size === 0) return;
  let dump = '';
  for (const [path, kv] of attrs) {
    dump += `# file: ${path === '' ? '.' : quotePath(path)}\n`;
    for (const [name, value] of kv) dump += `${name}=${value.length ? '0x' + value.toString('hex') : '""'}\n`;
    dump += '\n';
  }
  await run('setfattr', ['-h', '--restore=-'], { cwd, input: dump });
}

/**
 * Every path under `cwd` (relative, '' for cwd itself) whose xattr `name` equals `value`,
 * from one `getfattr -R` walk (-P: never descend through symlinks, -h: never follow one).
 */
export async function findXattr(cwd: string, name: string, value: string): Promise<Set<string>> {
  const pattern = '^' + name.replace(/[.]/g, '\\.') + '$';
  const out = (await run('getfattr', ['-R', '-P', '-h', '-d', '-e', 'hex', '-m', pattern, '.'], { cwd })).toString();
  const want = `${name}=0x${Buffer.from(value).toString('hex')}`;
  const found = new Set<string>();
  let file: string | null = null;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const p = unquotePath(line.slice(8));
      file = p === '.' ? '' : p.replace(/^\.\//, '');
    } else if (file !== null && line === want) found.add(file);
  }
  return found;
}

/** The xattrs a volume archive carries: user.* (applications' own) and security.capability. */
export const KEPT_XATTRS = '^(user\\..*|security\\.capability)$';

/**
 * Every kept xattr under `cwd` (relative path, '' for cwd itself → name → value), from one
 * `getfattr -R` walk that never follows or descends through a symlink. A tree without any
 * is one cheap walk and an empty map.
 */
export async function readXattrs(cwd: string, pattern = KEPT_XATTRS): Promise<Map<string, Map<string, Buffer>>> {
  const out = (await run('getfattr', ['-R', '-P', '-h', '-d', '-e', 'hex', '-m', pattern, '.'], { cwd })).toString();
  const found = new Map<string, Map<string, Buffer>>();
  let file: string | null = null;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const p = unquotePath(line.slice(8));
      file = p === '.' ? '' : p.replace(/^\.\//, '');
      continue;
    }
    const eq = line.indexOf('=');
    if (file === null || eq <= 0) continue;
    const v = line.slice(eq + 1);
    const value = v.startsWith('0x') ? Buffer.from(v.slice(2), 'hex') : v === '""' ? Buffer.alloc(0) : Buffer.from(v.replace(/^"|"$/g, ''));
    let m = found.get(file);
    if (!m) found.set(file, (m = new Map()));
    m.set(line.slice(0, eq), value);
  }
  return found;
}
