import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError, InternalError } from '../../volumes/shared/errors';

/**
 * The TypeScript side of berth-monitor (src/runtime/monitor/monitor.c, whose top comment is
 * the protocol): where the binary is, how to start one and wait for its first word on
 * fd 3, and how to read the exit record it leaves.
 */

/** Repository root, from dist/src/runtime/ (compiled) or src/runtime/ (ts-node). */
function repoRoot(): string {
  const up = path.resolve(__dirname, '..', '..');
  return path.basename(up) === 'dist' ? path.dirname(up) : up;
}

/** The monitor binary: $BERTH_MONITOR, else <repo>/dist/bin/berth-monitor. */
export function monitorPath(): string {
  return process.env.BERTH_MONITOR || path.join(repoRoot(), 'dist', 'bin', 'berth-monitor');
}

/** The monitor's C source (for builds and tests). */
export function monitorSourcePath(): string {
  return path.join(repoRoot(), 'src', 'runtime', 'monitor', 'monitor.c');
}

/** The exit record the monitor writes when the container's init exits. */
export interface ExitRecord {
  /** The exit status, or 128 + signal number when a signal ended the process. */
  exitCode: number;
  /** The signal that ended it, or null for a normal exit. */
  signal: number | null;
  /** The kernel OOM killer killed a process of the container. */
  oomKilled: boolean;
  /** RFC 3339 with nanoseconds, UTC. */
  finishedAt: string;
}

export interface MonitorArgs {
  id: string;
  bundle: string;
  runtime: string;
  runtimeRoot: string;
  log: string;
  logMaxSize: number;
  logMaxFiles: number;
  exitFile: string;
  pidFile: string;
  runtimeLog: string;
  stdinFifo?: string;
  cgroupPath?: string;
  /** `run --detach` instead of `create` (--start): the process runs when the reply comes. */
  start?: boolean;
  /** Where the monitor listens for watchers (--watch-socket): a connection ends when it does. */
  watchSocket?: string;
  /** tty mode (see TtyIO in runtime.ts): --tty --console-socket --attach-socket [--tty-size]. */
  tty?: { consoleSocket: string; attachSocket: string; rows?: number; cols?: number };
}

/** How long a container's create may take: $BERTH_CREATE_TIMEOUT_MS, else 120 s. */
export function createTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.BERTH_CREATE_TIMEOUT_MS);
  return Number.isSafeInteger(v) && v > 0 ? v : 120_000;
}

/** The monitor gave no answer in time; the monitor and its runtime process were killed. */
export class MonitorTimeoutError extends InternalError {}

/** What the monitor said on fd 3. */
export type MonitorReply = { pid: number; monitorPid: number } | { error: string; monitorPid: number };

/** The monitor's command line for `a` (monitor.c's usage). */
export function monitorArgs(a: MonitorArgs): string[] {
  const args = [
    '--id', a.id, '--bundle', path.resolve(a.bundle), '--runtime', a.runtime,
    '--runtime-root', path.resolve(a.runtimeRoot), '--log', path.resolve(a.log),
    '--log-max-size', String(a.logMaxSize), '--log-max-files', String(a.logMaxFiles),
    '--exit-file', path.resolve(a.exitFile), '--pid-file', path.resolve(a.pidFile),
    '--runtime-log', path.resolve(a.runtimeLog),
  ];
  if (a.stdinFifo) args.push('--stdin-fifo', path.resolve(a.stdinFifo));
  if (a.cgroupPath) args.push('--cgroup-path', a.cgroupPath);
  if (a.start) args.push('--start');
  if (a.watchSocket) args.push('--watch-socket', path.resolve(a.watchSocket));
  if (a.tty) {
    args.push('--tty', '--console-socket', path.resolve(a.tty.consoleSocket), '--attach-socket', path.resolve(a.tty.attachSocket));
    if (a.tty.rows && a.tty.cols) args.push('--tty-size', `${a.tty.rows}x${a.tty.cols}`);
  }
  return args;
}

/**
 * Start a monitor (detached: its own session, stdio on /dev/null, so it outlives berthd)
 * and wait for its one line on fd 3. Resolves with the container's pid or runc's error.
 */
export function startMonitor(a: MonitorArgs, timeoutMs = createTimeoutMs()): Promise<MonitorReply> {
  const bin = monitorPath();
  if (!fs.existsSync(bin)) {
    return Promise.reject(
      new FailedPreconditionError(`the container monitor ${bin} is missing`, {
        hint: `build it: cc -O2 -Wall -o ${bin} ${monitorSourcePath()} (npm run setup does this)`,
      }),
    );
  }
  const args = monitorArgs(a);

  return new Promise<MonitorReply>((resolve, reject) => {
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    const sync = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    let text = '';
    let done = false;
    const finish = (err: Error | undefined, reply?: MonitorReply): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sync.destroy();
      child.unref(); // berthd may exit while the monitor lives on
      if (err) reject(err);
      else resolve(reply as MonitorReply);
    };
    const timer = setTimeout(() => {
      // Nothing it started may outlive the timeout: the monitor leads its own process
      // group (setsid), and `runc create` runs in it. The container's init is in its
      // cgroup, which the caller empties (runtime.ts create).
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // gone already
      }
      finish(new MonitorTimeoutError(`the container monitor for ${a.id} did not answer within ${timeoutMs} ms; it and the runtime were killed`, {
        hint: `see the runtime log ${a.runtimeLog}; a start this slow is often a huge environment or a slow disk`,
      }));
    }, timeoutMs);
    child.on('error', (e) => finish(new FailedPreconditionError(`cannot start the container monitor ${bin}: ${e.message}`, { hint: 'rebuild it with npm run setup', cause: e })));
    sync.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl === -1) return;
      const monitorPid = child.pid as number;
      try {
        const msg = JSON.parse(text.slice(0, nl)) as { pid?: number; error?: string };
        if (typeof msg.pid === 'number') finish(undefined, { pid: msg.pid, monitorPid });
        else finish(undefined, { error: String(msg.error ?? 'unknown error'), monitorPid });
      } catch (e) {
        finish(new InternalError(`the container monitor sent a bad line: ${JSON.stringify(text.slice(0, nl))}`, { cause: e }));
      }
    });
    sync.on('error', () => undefined); // 'close' below reports it
    let exitHow = 'its end of fd 3 closed';
    child.on('exit', (code, signal) => (exitHow = `it exited (${signal ?? `status ${code}`})`));
    // fd 3 is close-on-exec in the monitor, so 'close' means it exited or closed fd 3;
    // waiting for it (rather than for 'exit') lets a last line arrive first.
    sync.on('close', () =>
      finish(new InternalError(`the container monitor gave no reply: ${exitHow}`, {
        hint: 'usage error or a crash: check the arguments and rebuild it with npm run setup',
      })),
    );
  });
}

/** The monitor's exit record, or undefined while the container has not exited. */
export async function readExit(exitFile: string): Promise<ExitRecord | undefined> {
  let text: string;
  try {
    text = await fs.promises.readFile(exitFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let r: ExitRecord;
  try {
    r = JSON.parse(text) as ExitRecord;
  } catch (e) {
    throw new InternalError(`the exit record ${exitFile} is not valid JSON`, { hint: 'it was changed by hand or the disk is damaged: remove it', cause: e });
  }
  return { exitCode: r.exitCode, signal: r.signal ?? null, oomKilled: !!r.oomKilled, finishedAt: r.finishedAt };
}

/**
 * Wait until the exit record exists (the write is atomic: it appears whole). Watches the
 * directory and re-checks every `pollMs` in case an event is missed.
 */
export async function waitExit(exitFile: string, opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ExitRecord> {
  let changed = false; // an event came while we were reading, not waiting
  let wake: () => void = () => (changed = true);
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(path.dirname(exitFile), () => wake());
    watcher.on('error', () => undefined);
  } catch {
    // cannot watch: polling alone
  }
  const onAbort = (): void => wake();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      changed = false;
      const rec = await readExit(exitFile);
      if (rec) return rec;
      if (changed || opts.signal?.aborted) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => wake(), opts.pollMs ?? 500);
        wake = () => {
          clearTimeout(t);
          wake = () => (changed = true);
          resolve();
        };
      });
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    watcher?.close();
  }
}
