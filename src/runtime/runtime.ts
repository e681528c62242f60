import type { IPty } from 'node-pty';
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AlreadyExistsError,
  BerthError,
  ConflictError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
} from '../../volumes/shared/errors';
import { replaceFile } from '../../volumes/shared/atomic';
import { tool, ToolError } from '../../volumes/shared/host-tool';
import { killCgroup } from './cgroups';
import { MonitorTimeoutError, readExit, startMonitor, type ExitRecord } from './monitor';
import { validateWorkdir } from './rootfs';
import { DEFAULT_PATH_ENV, specToJson, type OciSpec, type OciUser } from './spec';

/**
 * The OCI runtime driver: runc (or any runtime with runc's command line, such as crun)
 * driven through its CLI. Every call passes `--root`, so each daemon keeps its own runtime
 * state and many daemons can share a host.
 *
 * Lifecycle of one container:
 *
 *   await rt.writeBundle(bundle, buildSpec(...));                // config.json
 *   const { pid } = await rt.create(id, bundle, { log, exitFile, pidFile, runtimeLog });
 *   await rt.start(id);                                          // the process runs
 *   (or create(..., { ..., start: true }): created and started in one runtime call)
 *   ... rt.kill(id, 'SIGTERM'), rt.exec(...), rt.pause(id) ...
 *   await waitExit(exitFile);                                    // written by the monitor
 *   await rt.delete(id);
 *
 * create() starts a berth-monitor, which runs `runc create` and holds the container's
 * stdio and exit status; it outlives berthd. Errors are BerthErrors: NotFoundError when the
 * container is gone, ConflictError when its state forbids the call, and for create a
 * FailedPreconditionError carrying `exitCode` (127 not found, 126 not executable, as
 * Docker reports them).
 */

/** `runc state` output. */
export interface RuntimeState {
  ociVersion: string;
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  owner?: string;
}

/**
 * tty mode (the spec's process.terminal must be true): runc makes the pty inside the
 * container and sends its master to the monitor over `consoleSocket`; the monitor holds it,
 * logs its output as "stdout" and serves one attach client on `attachSocket` (protocol:
 * the top comment of src/runtime/monitor/monitor.c). Both paths absolute; the monitor
 * replaces stale sockets there, removes the console socket once it has the master and the
 * attach socket when the container has exited.
 */
export interface TtyIO {
  /** Where the monitor listens for runc's pty master (only during create). */
  consoleSocket: string;
  /** Where the monitor serves the attach client (berthd) while the container runs. */
  attachSocket: string;
  /** Initial pty size (both or neither; 1..10000), applied before create resolves. */
  rows?: number;
  cols?: number;
}

export interface CreateIO {
  /** Container log, Docker json-file format. */
  log: string;
  /** Where the monitor writes the ExitRecord. */
  exitFile: string;
  /** Where runc writes the container's pid. */
  pidFile: string;
  /** runc's own log (JSON lines) for this container. */
  runtimeLog: string;
  /** A fifo the container reads as stdin; /dev/null when absent. */
  stdinFifo?: string;
  /** The spec's cgroupsPath, so the monitor can tell an OOM kill. */
  cgroupPath?: string;
  /** Rotate the log at this size in bytes; <= 0: never (default). */
  logMaxSize?: number;
  /** Files kept in all when rotating (default 1: the log is truncated). */
  logMaxFiles?: number;
  /**
   * Where the monitor holds watch connections (monitor.c, "Watch socket"): each ends when
   * the monitor's process does, so a watcher learns of its death at once. In the same
   * directory as tty.attachSocket (a long path is reached through the monitor's cwd).
   */
  watchSocket?: string;
  /** A pty instead of pipes (not with stdinFifo: input comes through the attach socket). */
  tty?: TtyIO;
  /**
   * Start it too (`runc run --detach`): the process runs when create resolves, and there is
   * no start() to call. One runtime process less (runc start, ~50 ms of every run), for a
   * caller with nothing to do between create and start (no network to plug in, no stdin
   * to open, no attach client to connect first).
   */
  start?: boolean;
}

export interface ExecProcess {
  args: string[];
  env: string[];
  cwd: string;
  user: OciUser;
  /** Its own capability set (`exec --privileged`: all); default the container's. */
  capabilities?: string[];
  /** runc gives an exec no-new-privileges only when asked, whatever the container has. */
  noNewPrivileges?: boolean;
}

/** A failure that Docker would report with this exit status (126, 127, 128). */
export type ExitCodeError = BerthError & { exitCode: number };

/** The exit code a create error carries, if any. */
export function exitCodeOf(e: unknown): number | undefined {
  const c = (e as { exitCode?: unknown } | undefined)?.exitCode;
  return typeof c === 'number' ? c : undefined;
}

/** The last error message runc printed (JSON log lines on stderr), else the raw text. */
function runcMessage(stderr: string): string {
  let msg = '';
  for (const line of stderr.split('\n')) {
    try {
      const j = JSON.parse(line) as { level?: string; msg?: string };
      if ((j.level === 'error' || j.level === 'fatal') && j.msg) msg = j.msg;
    } catch {
      // not a log line
    }
  }
  return msg || stderr.trim();
}

function notFound(id: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`no such container in the runtime: ${id}`, {
    hint: 'it was deleted or never created; list containers to see what exists',
    cause,
  });
}

/** Map a runc failure to a BerthError by what runc said. */
function mapRuncError(id: string, op: string, msg: string, cause?: unknown): BerthError {
  if (/container does not exist/i.test(msg)) return notFound(id, cause);
  if (/already exists/i.test(msg)) {
    return new AlreadyExistsError(`a container ${id} already exists in the runtime`, { hint: 'delete it first, or use another id', cause });
  }
  if (/not running|not paused|is not stopped|cannot (start|delete|pause|resume)|has stopped|already (running|paused)/i.test(msg)) {
    return new ConflictError(`cannot ${op} container ${id}: ${msg}`, { hint: `check its state first (runtime state ${id})`, cause });
  }
  return new InternalError(`runtime ${op} ${id} failed: ${msg}`, {
    hint: "the message is the OCI runtime's own; check the container's state and the host's kernel log",
    cause,
  });
}

/** A create failure, as Docker classifies it by runc's message. */
function createError(id: string, msg: string, runtimeLog: string): BerthError {
  if (/already exists/i.test(msg)) return mapRuncError(id, 'create', msg);
  if (msg.startsWith('berth-monitor:')) {
    // The monitor itself could not set up (log or fifo path, fork): not the container's fault.
    return new InternalError(`failed to create container ${id}: ${msg}`, {
      hint: "check that the directories of the container's log, exit and pid files exist and are writable",
    });
  }
  let exitCode = 128;
  let hint = `see the runtime log ${runtimeLog}`;
  if (/^cannot run the OCI runtime/.test(msg)) {
    hint = 'install the runtime (apt-get install -y runc) or name an installed one with --runtime';
  } else if (/executable file not found|no such file or directory/i.test(msg)) {
    exitCode = 127;
    hint = 'check the command (entrypoint/cmd), the PATH and the working directory: something does not exist in the image';
  } else if (/permission denied|is a directory|exec format error/i.test(msg)) {
    exitCode = 126;
    hint = 'the command is not an executable file for this machine: check its mode (chmod +x) and architecture';
  }
  const err = new FailedPreconditionError(`failed to create container ${id}: ${msg}`, { hint }) as ExitCodeError;
  err.exitCode = exitCode;
  return err;
}

/** How often `pause` tries a freeze the kernel gave up on (cgroup v1 "unable to freeze"). */
const PAUSE_ATTEMPTS = 5;

/** A runc command (other than create, which the monitor runs) that takes longer is killed. */
const RUNC_TIMEOUT_MS = 120_000;

export class OciRuntime {
  readonly path: string;
  readonly root: string;

  constructor(opts: { path: string; root: string }) {
    this.path = opts.path;
    this.root = path.resolve(opts.root);
  }

  /** Run `runtime --root R <args>` (through the host-tool runner; killed after RUNC_TIMEOUT_MS); resolves with stdout, rejects with a mapped BerthError. */
  private async run(id: string, op: string, args: string[]): Promise<string> {
    try {
      return await tool(this.path, ['--root', this.root, '--log-format', 'json', ...args], { package: 'runc', timeoutMs: RUNC_TIMEOUT_MS });
    } catch (e) {
      if (!(e instanceof ToolError)) throw e; // not installed: FAILED_PRECONDITION, naming the package
      throw mapRuncError(id, op, runcMessage(e.stderr) || e.message, e);
    }
  }

  /**
   * Write bundle/config.json whole (temp file + rename), not synced: it is written again
   * before every create and the runtime reads it once, keeping its own state after, so a
   * crash that loses it loses nothing (the next start writes it anew).
   */
  async writeBundle(dir: string, spec: OciSpec): Promise<void> {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await replaceFile(path.join(dir, 'config.json'), specToJson(spec), 0o600);
  }

  /**
   * Create the container through a new monitor; the process waits for start(). Resolves
   * with the container's pid and the monitor's. On failure nothing is left in the runtime.
   */
  async create(id: string, bundle: string, io: CreateIO): Promise<{ pid: number; monitorPid: number }> {
    if (io.tty) {
      if (io.stdinFifo) throw new InvalidArgumentError('a tty container takes no stdin fifo', { hint: 'its input comes through the attach socket' });
      const { rows, cols } = io.tty;
      const ok = (v: number | undefined): boolean => v === undefined || (Number.isInteger(v) && v >= 1 && v <= 10000);
      if (!ok(rows) || !ok(cols) || (rows === undefined) !== (cols === undefined)) {
        throw new InvalidArgumentError(`invalid tty size ${rows}x${cols}`, { hint: 'give both rows and columns, whole numbers between 1 and 10000' });
      }
    }
    await fs.promises.mkdir(this.root, { recursive: true, mode: 0o700 });
    await fs.promises.rm(io.exitFile, { force: true }); // a record from an earlier run is stale
    await fs.promises.rm(io.pidFile, { force: true });
    const reply = await startMonitor({
      id,
      bundle,
      runtime: this.path,
      runtimeRoot: this.root,
      log: io.log,
      logMaxSize: io.logMaxSize ?? -1,
      logMaxFiles: io.logMaxFiles ?? 1,
      exitFile: io.exitFile,
      pidFile: io.pidFile,
      runtimeLog: io.runtimeLog,
      stdinFifo: io.stdinFifo,
      cgroupPath: io.cgroupPath,
      tty: io.tty,
      start: io.start,
      watchSocket: io.watchSocket,
    }).catch(async (e: unknown) => {
      // The monitor and `runc create` are dead (startMonitor killed them); what runc made
      // may remain: its state, and the container's init waiting in the cgroup.
      if (e instanceof MonitorTimeoutError) await this.reap(id, io.cgroupPath);
      throw e;
    });
    if ('pid' in reply) return reply;
    const err = createError(id, reply.error, io.runtimeLog);
    if (err.code !== 'ALREADY_EXISTS') await this.delete(id, true).catch(() => undefined); // runc usually cleans up; be sure
    throw err;
  }

  /**
   * End everything of a container whose monitor is gone: SIGKILL to everything in its
   * cgroup (the container's processes, whoever their parent; an init runc never recorded),
   * then runc's delete (when runc has state for it), then the cgroup once more. Killing
   * through the cgroup spawns nothing: one runtime process less on the way to a `rm -f`
   * (without a cgroup path, runc's kill does it). Never throws; logs nothing: the caller
   * decides what to say.
   */
  async reap(id: string, cgroupPath?: string): Promise<void> {
    if (cgroupPath) await killCgroup(cgroupPath);
    else await this.kill(id, 'SIGKILL', true).catch(() => undefined);
    await this.delete(id, true).catch(() => undefined);
    if (cgroupPath) await killCgroup(cgroupPath);
  }

  /** Let the created container's process run. */
  async start(id: string): Promise<void> {
    await this.run(id, 'start', ['start', id]);
  }

  /** The runtime's view of the container; NotFoundError when it is gone. */
  async state(id: string): Promise<RuntimeState> {
    return JSON.parse(await this.run(id, 'inspect', ['state', id])) as RuntimeState;
  }

  /** Send a signal ('SIGTERM', 'KILL', 9, ...) to the init process, or to every process. */
  async kill(id: string, signal: string | number = 'SIGTERM', all = false): Promise<void> {
    await this.run(id, 'kill', ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  /** Remove the container from the runtime (force: kill it first if it runs). */
  async delete(id: string, force = false): Promise<void> {
    await this.run(id, 'delete', ['delete', ...(force ? ['--force'] : []), id]);
  }

  /**
   * Freeze the container. On cgroup v1, runc's freezer gives up on a group that keeps forking
   * or writing ("unable to freeze", after about a second; it thaws the group again), which a
   * busy database under load can cause: try again a few times, backing off, before failing.
   */
  async pause(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.run(id, 'pause', ['pause', id]);
        return;
      } catch (e) {
        if (attempt >= PAUSE_ATTEMPTS || !/unable to freeze/i.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  async resume(id: string): Promise<void> {
    await this.run(id, 'resume', ['resume', id]);
  }

  /** Change a running container's resources (`runc update` flags, e.g. --memory N). */
  async update(id: string, flags: string[]): Promise<void> {
    await this.run(id, 'update', ['update', ...flags, id]);
  }

  /** Every container in this runtime root. */
  async list(): Promise<RuntimeState[]> {
    const out = await this.run('', 'list', ['list', '--format', 'json']);
    return (JSON.parse(out) as RuntimeState[] | null) ?? [];
  }

  /**
   * Run a process in a running container (no tty). `stdio` is as for child_process.spawn
   * (default pipes); the ChildProcess exits with the process's status, and with 255 and
   * runc's message on stderr if the process could not be started. Docker's PATH is added
   * when env has none. With `pidFile`, runc writes the process's pid there.
   */
  exec(id: string, proc: ExecProcess, stdio: StdioOptions = 'pipe', opts: { pidFile?: string } = {}): ChildProcess {
    const { args, cleanup } = this.execArgs(id, proc, false);
    // runc writes the process's (host) pid there once it runs: what a caller kills it by.
    if (opts.pidFile) args.splice(args.indexOf('--process'), 0, '--pid-file', opts.pidFile);
    const child = spawn(this.path, args, { stdio });
    child.once('exit', cleanup);
    child.once('error', cleanup);
    return child;
  }

  /**
   * Run a process in a running container with a terminal (`exec -it`): runc makes the pty
   * inside the container (so `tty` there names a /dev/pts of its own) and copies it to
   * its own stdio, which is a pty node-pty made for us in a new session: our side can
   * resize it (runc passes SIGWINCH on) and nothing the process types can reach berthd's
   * own terminal.
   */
  execTty(id: string, proc: ExecProcess, size: { rows: number; cols: number }): IPty {
    const { args, cleanup } = this.execArgs(id, proc, true);
    // Loaded on first use: node-pty is native, and most commands never need it.
    const nodePty = require('node-pty') as typeof import('node-pty');
    let p: IPty;
    try {
      // Our side of the pty is made raw before runc runs: runc does it too, but only once it
      // has started, and output the process wrote before then would get a second \r.
      const raw = ['-c', 'stty raw -echo 2>/dev/null; exec "$0" "$@"', this.path, ...args];
      p = nodePty.spawn('/bin/sh', raw, { name: 'xterm', cols: size.cols, rows: size.rows, cwd: '/', env: { PATH: process.env.PATH ?? DEFAULT_PATH_ENV.slice(5) }, encoding: null });
    } catch (e) {
      cleanup();
      throw e;
    }
    p.onExit(cleanup);
    return p;
  }

  private execArgs(id: string, proc: ExecProcess, terminal: boolean): { args: string[]; cleanup: () => void } {
    if (!proc.args.length) throw new InvalidArgumentError('no command to run', { hint: 'give the command to execute' });
    const processJson = {
      terminal,
      user: proc.user,
      args: proc.args,
      env: proc.env.some((e) => e.startsWith('PATH=')) ? proc.env : [DEFAULT_PATH_ENV, ...proc.env],
      cwd: validateWorkdir(proc.cwd || '/'),
      ...(proc.capabilities ? { capabilities: { bounding: proc.capabilities, effective: proc.capabilities, permitted: proc.capabilities } } : {}),
      noNewPrivileges: !!proc.noNewPrivileges,
    };
    // The process file is read by runc at start-up; it lives in our runtime root (0700).
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const file = path.join(this.root, `exec-${randomBytes(8).toString('hex')}.json`);
    fs.writeFileSync(file, JSON.stringify(processJson), { mode: 0o600 });
    return { args: ['--root', this.root, 'exec', '--process', file, id], cleanup: () => fs.rmSync(file, { force: true }) };
  }

  /** The monitor's exit record for a container, or undefined while it runs. */
  readExit(exitFile: string): Promise<ExitRecord | undefined> {
    return readExit(exitFile);
  }
}
