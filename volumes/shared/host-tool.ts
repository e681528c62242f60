/**
 * berth's one host-tool runner. Run host tools: the ones the volume drivers use (cp, sync, btrfs, losetup, mount,
 * mkfs.btrfs) and the network's (ip, iptables-save/-restore, nsenter).
 * A missing tool is FAILED_PRECONDITION naming the package to install; a tool that fails
 * is INTERNAL with its stderr, except "no space" and "over quota", which the caller can
 * do something about (see `isNoSpace`, `isOverQuota`).
 */
import { execFile } from 'node:child_process';
import { FailedPreconditionError, InternalError } from './errors';

const PACKAGE: Record<string, string> = {
  cp: 'coreutils',
  sync: 'coreutils',
  btrfs: 'btrfs-progs',
  'mkfs.btrfs': 'btrfs-progs',
  losetup: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  ip: 'iproute2',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  nsenter: 'util-linux',
};

/** A tool that ran and failed: its exit code and what it said. */
export class ToolError extends InternalError {
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${tool} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim().slice(0, 2000) || 'no message'}`);
  }
}

/** mkfs.btrfs, losetup and friends live in sbin, which a non-login PATH may lack. */
const PATH = [...new Set([...(process.env.PATH ?? '/usr/bin:/bin').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'])].join(':');

/** Run `cmd args` to completion (with `input` on its stdin) and return its stdout. */
export function tool(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PATH, LC_ALL: 'C' }; // C: the messages we match are the English ones
    const child = execFile(cmd, args, { cwd: opts.cwd, env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { code?: string | number };
      if (e.code === 'ENOENT' && !stderr) {
        return reject(
          new FailedPreconditionError(`${cmd} is not installed`, { hint: `install it: apt-get install ${PACKAGE[cmd] ?? cmd}`, cause: err }),
        );
      }
      reject(new ToolError(`${cmd} ${args.join(' ')}`, typeof e.code === 'number' ? e.code : null, stderr || e.message));
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
