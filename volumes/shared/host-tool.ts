/**
 * berth's one host-tool runner: every host tool berth runs goes through it. `tool` (or
 * `toolBytes`) runs one to completion and gives its output: the volume drivers' (cp, sync,
 * btrfs, losetup, mkfs.btrfs), the mounts (mount, umount), the layer applier's (mknod,
 * setfattr, getfattr), the network's (ip, iptables-save/-restore, nsenter), the image
 * builders' (ldd, busybox), the runtime's (runc) and the engine's (ps, mkfifo, cp).
 * `toolProcess` runs one whose output is a stream or a progress log: GNU tar streaming a
 * volume export, debootstrap. Children that are not tools but parts of a container (the
 * berth-monitor, a `runc exec` process with the caller's stdio) are spawned by their owners.
 *
 * Every tool runs with sbin on PATH and in the C locale (the messages callers match are
 * the English ones). A missing tool is FAILED_PRECONDITION naming the package to install.
 * A tool that fails is a ToolError (INTERNAL) carrying its exit code, its stderr (and
 * stdout), and a hint; callers that know better map it to their own class (mount.ts turns
 * "target is busy" into CONFLICT), and "no space" and "over quota" are recognised by
 * `isNoSpace` and `isOverQuota`.
 */
import { execFile, spawn } from 'node:child_process';
import { Readable } from 'node:stream';
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
  tar: 'tar',
  debootstrap: 'debootstrap',
  runc: 'runc',
  'redis-cli': 'redis-tools',
  stty: 'coreutils',
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
  /** The Debian package that has the tool, when `cmd` is not one of the known ones (a path). */
  package?: string;
  /** Stop it (SIGTERM) after this many milliseconds: a ToolError then. */
  timeoutMs?: number;
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
    const child = execFile(cmd, args, { cwd: opts.cwd, env, timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { code?: string | number };
      const errText = stderr.toString('utf8');
      if (e.code === 'ENOENT' && !errText) return reject(notInstalled(cmd, opts, err));
      const line = `${cmd} ${args.join(' ')}`;
      const timedOut = (err as { killed?: boolean }).killed && opts.timeoutMs !== undefined ? `no answer within ${opts.timeoutMs} ms; ` : '';
      reject(new ToolError(line, typeof e.code === 'number' ? e.code : null, timedOut + (errText || e.message), { stdout: stdout.toString('utf8'), hint: opts.hint, cause: err }));
    });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // a tool that fails early closes its stdin
      child.stdin?.end(opts.input);
    }
  });
}

function notInstalled(cmd: string, opts: ToolOptions, cause: unknown): FailedPreconditionError {
  return new FailedPreconditionError(`${cmd} is not installed`, { hint: `install it: apt-get install ${opts.package ?? PACKAGE[cmd] ?? cmd}`, cause });
}

export interface ToolProcessOptions extends Omit<ToolOptions, 'input'> {
  /** Exit codes that are success too (GNU tar's 1: "some files changed as we read them"). */
  okCodes?: number[];
  /** More environment (PATH and LC_ALL stay the runner's). */
  env?: NodeJS.ProcessEnv;
  /**
   * Each non-empty line of stdout and stderr as it comes (a progress log, e.g.
   * debootstrap's). Then stdout is read here, and a failure's text is the last 20 lines.
   */
  onLine?: (line: string) => void;
  /** Give the tool this descriptor as its stdout (it writes a file itself); `stdout` is then empty. */
  stdoutFd?: number;
}

/** A running tool: its stdout as a stream, its end, and a way to stop it early. */
export interface ToolProcess {
  stdout: Readable;
  /** Resolves when it exits with success; rejects as `tool` does (not installed, ToolError). */
  done: Promise<void>;
  /** SIGKILL it, if it still runs (the reader of its output went away). */
  kill(): void;
}

/**
 * Start `cmd args` and give its output as it comes, for a tool whose output is a stream
 * (tar -c) or a long log (debootstrap). Failures are `tool`'s: FAILED_PRECONDITION naming
 * the package when it is not installed, else a ToolError with its exit code (or the
 * signal), what it said on stderr, and the hint.
 */
export function toolProcess(cmd: string, args: string[], opts: ToolProcessOptions = {}): ToolProcess {
  const env = { ...process.env, ...opts.env, PATH, LC_ALL: 'C' };
  const child = spawn(cmd, args, { cwd: opts.cwd, env, stdio: ['ignore', opts.stdoutFd ?? 'pipe', 'pipe'] });
  const stdout = child.stdout ?? Readable.from([]);
  const tail: string[] = [];
  let stderr = '';
  const lineSplitter = () => {
    let rest = '';
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const l of parts) {
        const t = l.trim();
        if (!t) continue;
        tail.push(t);
        if (tail.length > 20) tail.shift();
        opts.onLine?.(t);
      }
    };
  };
  if (opts.onLine) {
    stdout.on('data', lineSplitter());
    child.stderr!.on('data', lineSplitter());
  } else {
    child.stderr!.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-64 * 1024);
    });
  }
  const line = `${cmd} ${args.join(' ')}`;
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(notInstalled(cmd, opts, e));
      else reject(new ToolError(line, null, e.message, { hint: opts.hint, cause: e }));
    });
    child.once('close', (code, signal) => {
      if (code !== null && (code === 0 || opts.okCodes?.includes(code))) return resolve();
      const text = opts.onLine ? tail.join('\n') : stderr;
      reject(new ToolError(line, code, signal ? `killed by ${signal}${text ? `\n${text}` : ''}` : text, { hint: opts.hint }));
    });
  });
  done.catch(() => undefined); // the caller may learn of the end another way (its reader closed)
  return {
    stdout,
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
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
