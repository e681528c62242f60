/**
 * berth's one host-tool runner: every host tool berth runs to completion goes through
 * `tool` (or `toolBytes`): the volume drivers' (cp, sync, btrfs, losetup, mkfs.btrfs), the
 * mounts (mount, umount), the layer applier's (mknod, setfattr, getfattr), the network's
 * (ip, iptables-save/-restore, nsenter), the image builders' (ldd, busybox) and the
 * engine's (ps, runc ps, mkfifo, cp). Long-lived children (berth-monitor, GNU tar streaming
 * a volume export, runc driven by the runtime) are not tools in this sense.
 *
 * Every tool runs with sbin on PATH and in the C locale (the messages callers match are
 * the English ones). A missing tool is FAILED_PRECONDITION naming the package to install.
 * A tool that fails is a ToolError (INTERNAL) carrying its exit code, its stderr (and
 * stdout), and a hint; callers that know better map it to their own class (mount.ts turns
 * "target is busy" into CONFLICT), and "no space" and "over quota" are recognised by
 * `isNoSpace` and `isOverQuota`.
 */
import { execFile } from 'node:child_process';
import { FailedPreconditionError, InternalError } from './errors';

const PACKAGE: Record<string, string> = {
  cp: 'coreutils',
  sync: 'coreutils',
  mkfifo: 'coreutils',
  mknod: 'coreutils',
  sh: 'dash',
  btrfs: 'btrfs-progs',
  'mkfs.btrfs': 'btrfs-progs',
  losetup: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  setfattr: 'attr',
  getfattr: 'attr',
  ldd: 'libc-bin',
  ps: 'procps',
  ip: 'iproute2',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  nsenter: 'util-linux',
};

/** A tool that ran and failed: the command line, its exit code and what it said. */
export class ToolError extends InternalError {
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    opts: { stdout?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(`${tool} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim().slice(0, 2000) || 'no message'}`, {
      hint: opts.hint ?? `the host tool's own message above says why; to see it again, run: ${tool.slice(0, 500)}`,
      cause: opts.cause,
    });
    this.stdout = opts.stdout ?? '';
  }
  /** What the tool printed before it failed (ps and ldd print useful output and exit non-zero). */
  readonly stdout: string;
}

export interface ToolOptions {
  cwd?: string;
  /** Written to the tool's stdin, which is then closed. */
  input?: string | Buffer;
  /** The hint a failure carries, when the caller knows what the user should do. */
  hint?: string;
}

/** mkfs.btrfs, losetup and friends live in sbin, which a non-login PATH may lack. */
const PATH = [...new Set([...(process.env.PATH ?? '/usr/bin:/bin').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'])].join(':');

/** Run `cmd args` to completion (with `input` on its stdin) and return its stdout. */
export async function tool(cmd: string, args: string[], opts: ToolOptions = {}): Promise<string> {
  return (await toolBytes(cmd, args, opts)).toString('utf8');
}

/** `tool`, with stdout as bytes (for output that may hold names that are not UTF-8). */
export function toolBytes(cmd: string, args: string[], opts: ToolOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PATH, LC_ALL: 'C' }; // C: the messages we match are the English ones
    const child = execFile(cmd, args, { cwd: opts.cwd, env, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { code?: string | number };
      const errText = stderr.toString('utf8');
      if (e.code === 'ENOENT' && !errText) {
        return reject(
          new FailedPreconditionError(`${cmd} is not installed`, { hint: `install it: apt-get install ${PACKAGE[cmd] ?? cmd}`, cause: err }),
        );
      }
      const line = `${cmd} ${args.join(' ')}`;
      reject(new ToolError(line, typeof e.code === 'number' ? e.code : null, errText || e.message, { stdout: stdout.toString('utf8'), hint: opts.hint, cause: err }));
    });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // a tool that fails early closes its stdin
      child.stdin?.end(opts.input);
    }
  });
}

/** Linux errno 122; Node reports it as code 'Unknown system error -122'. */
const EDQUOT = 122;

function errnoOf(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
    if ((cur as NodeJS.ErrnoException).errno === -EDQUOT) return 'EDQUOT'; // libuv has no name for it
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function textOf(e: unknown): string {
  return e instanceof ToolError ? e.stderr : '';
}

/** The filesystem was full: ENOSPC from a syscall, or a tool saying so. */
export function isNoSpace(e: unknown): boolean {
  return errnoOf(e) === 'ENOSPC' || /No space left on device/i.test(textOf(e));
}

/** A quota (a btrfs qgroup limit) was hit: EDQUOT from a syscall, or a tool saying so. */
export function isOverQuota(e: unknown): boolean {
  return errnoOf(e) === 'EDQUOT' || /Disk quota exceeded/i.test(textOf(e));
}
