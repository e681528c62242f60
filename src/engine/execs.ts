import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { ExecProcess, OciRuntime } from '../runtime/runtime';
import { DetachWatcher, parseDetachKeys } from './detach-keys';
import type { ExecConfig, ExecInspect } from './service';

/**
 * Exec instances (`docker exec`): made by execCreate, run once by execStart, kept in
 * memory (like Docker) until their container is removed. Without a tty the process gets
 * pipes and its output goes to the caller's writables; with one (runExecTty) it gets a pty
 * and its output is one raw stream.
 */

export interface ExecRecord {
  ID: string;
  ContainerID: string;
  config: ExecConfig;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  started: boolean;
  /** Resize its pty (tty execs, while they run). */
  resize?: (rows: number, cols: number) => void;
  /** A size asked for before its pty existed (the docker CLI resizes right after the upgrade). */
  pendingSize?: { rows: number; cols: number };
}

export class ExecStore {
  private readonly byId = new Map<string, ExecRecord>();

  create(containerId: string, cfg: ExecConfig): ExecRecord {
    if (!cfg || !Array.isArray(cfg.Cmd) || cfg.Cmd.length === 0 || cfg.Cmd.some((a) => typeof a !== 'string') || cfg.Cmd[0] === '') {
      throw new InvalidArgumentError('No exec command specified', { hint: 'give the command to run, e.g. berth exec CONTAINER ls /' });
    }
    // docker-py sends `detachKeys` (Docker's JSON decoding ignores case).
    const lower = (cfg as { detachKeys?: string }).detachKeys;
    if (cfg.DetachKeys === undefined && lower !== undefined) cfg = { ...cfg, DetachKeys: lower };
    if (cfg.DetachKeys !== undefined && cfg.DetachKeys !== '') {
      if (typeof cfg.DetachKeys !== 'string') throw new InvalidArgumentError('DetachKeys must be a string', { hint: 'e.g. ctrl-p,ctrl-q' });
      parseDetachKeys(cfg.DetachKeys);
    }
    if (cfg.Privileged !== undefined && cfg.Privileged !== null && typeof cfg.Privileged !== 'boolean') {
      throw new InvalidArgumentError('Privileged must be true or false', { hint: 'e.g. "Privileged": true (berth exec --privileged)' });
    }
    const rec: ExecRecord = { ID: randomBytes(32).toString('hex'), ContainerID: containerId, config: structuredClone(cfg), Running: false, ExitCode: null, Pid: 0, started: false };
    this.byId.set(rec.ID, rec);
    return rec;
  }

  get(id: string): ExecRecord {
    const rec = this.byId.get(id);
    if (!rec) throw new NotFoundError(`No such exec instance: ${id}`, { hint: 'create it first with POST /containers/{id}/exec' });
    return rec;
  }

  /** Mark it started; a second start is a conflict (an exec runs once). */
  claim(id: string): ExecRecord {
    const rec = this.get(id);
    if (rec.started) {
      throw new ConflictError(`exec ${id} has already been started`, { hint: 'create a new exec instance to run the command again' });
    }
    rec.started = true;
    return rec;
  }

  ofContainer(containerId: string): string[] {
    return [...this.byId.values()].filter((e) => e.ContainerID === containerId).map((e) => e.ID);
  }

  /** Drop one exec (a health check's, once done). */
  remove(id: string): void {
    this.byId.delete(id);
  }

  forget(containerId: string): void {
    for (const id of this.ofContainer(containerId)) this.byId.delete(id);
  }
}

export function toExecInspect(rec: ExecRecord): ExecInspect {
  const c = rec.config;
  return {
    ID: rec.ID,
    ContainerID: rec.ContainerID,
    Running: rec.Running,
    ExitCode: rec.ExitCode,
    Pid: rec.Pid,
    ProcessConfig: { entrypoint: c.Cmd[0], arguments: c.Cmd.slice(1), tty: !!c.Tty, user: c.User ?? '', privileged: !!c.Privileged },
    OpenStdin: !!c.AttachStdin,
    OpenStdout: c.AttachStdout !== false,
    OpenStderr: c.AttachStderr !== false,
    CanRemove: false,
    DetachKeys: c.DetachKeys ?? '',
  };
}

/**
 * Run the process through the runtime: output piped to `io` (which is not ended), stdin
 * from `io.stdin` when given. Resolves with the exit status (128+n for signal n) once the
 * process has exited and its output has been read. Aborting `kill` SIGKILLs the process
 * (a health check past its timeout); it then resolves as soon as the process has exited,
 * even if something it started still holds its output open.
 */
export function runExec(
  rt: OciRuntime,
  containerId: string,
  proc: ExecProcess,
  io: { stdin?: Readable; stdout?: Writable; stderr?: Writable },
  onSpawn: (pid: number) => void,
  kill?: AbortSignal,
): Promise<number> {
  const pidFile = kill ? path.join(rt.root, `exec-${randomBytes(8).toString('hex')}.pid`) : undefined;
  let child: ChildProcess;
  try {
    child = rt.exec(containerId, proc, [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], { pidFile });
  } catch (e) {
    return Promise.reject(e);
  }
  onSpawn(child.pid ?? 0);
  if (io.stdin && child.stdin) {
    child.stdin.on('error', () => undefined); // the process may exit without reading
    io.stdin.pipe(child.stdin);
  }
  const forward = (from: Readable | null, to: Writable | undefined): void => {
    if (!from) return;
    if (to) from.on('data', (d: Buffer) => to.write(d));
    else from.resume();
  };
  forward(child.stdout, io.stdout);
  forward(child.stderr, io.stderr);
  // runc's own failure (the command could not be started) ends with 255 and its message
  // on stderr; keep the tail to tell Docker's 126/127 apart.
  let errTail = '';
  child.stderr?.on('data', (d: Buffer) => (errTail = (errTail + d.toString('utf8')).slice(-4096)));
  let exited = false;
  const onAbort = () => void killByPidFile(pidFile!, () => exited);
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      kill?.removeEventListener('abort', onAbort);
      if (pidFile) fs.rm(pidFile, { force: true }, () => undefined);
      if (io.stdin && child.stdin) io.stdin.unpipe(child.stdin);
      if (code !== null) return resolve(startFailure(code, errTail) ?? code);
      const n = signal ? (osConstants.signals as Record<string, number>)[signal] ?? 0 : 0;
      resolve(128 + n);
    };
    child.once('error', (e) => {
      settled = true;
      kill?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      exited = true;
      if (!kill?.aborted) return; // wait for 'close': all of its output
      child.stdout?.destroy();
      child.stderr?.destroy();
      finish(code, signal);
    });
    child.once('close', finish);
    kill?.addEventListener('abort', onAbort, { once: true });
    if (kill?.aborted) onAbort();
  });
}

/** SIGKILL the exec process whose pid runc writes to `file` (it may not have yet); gives up once `done`. */
async function killByPidFile(file: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!done() && Date.now() < deadline) {
    const pid = Number((await fs.promises.readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * An exec's output collected in memory: everything, or the first `limit` bytes followed by
 * "..." (Docker's health check output, 4096 bytes).
 */
export class OutputCollector {
  private readonly parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(private readonly limit = Infinity) {}

  /** A writable that adds to it (one for stdout, one for stderr: they interleave as written). */
  writable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.add(Buffer.from(chunk));
        cb();
      },
    });
  }

  add(b: Buffer): void {
    const keep = Math.min(b.length, this.limit - this.size);
    if (keep > 0) {
      this.parts.push(keep === b.length ? b : b.subarray(0, keep));
      this.size += keep;
    }
    if (keep < b.length) this.truncated = true;
  }

  text(): string {
    return Buffer.concat(this.parts).toString('utf8') + (this.truncated ? '...' : '');
  }
}

/**
 * Docker's exit status for a command that could not be started: runc ends with 255 and
 * says why (on stderr, or on the terminal with a tty): 127 when the file does not exist,
 * 126 when it cannot be executed. undefined when the command did start.
 */
function startFailure(code: number, tail: string): number | undefined {
  if (code !== 255 || !/exec failed|unable to start container process/.test(tail)) return undefined;
  if (/executable file not found|no such file or directory/i.test(tail)) return 127;
  if (/permission denied|is a directory|exec format error/i.test(tail)) return 126;
  return undefined;
}

/**
 * Run the process with a terminal (`exec -it`): runc makes the pty inside the container,
 * node-pty gives our side one. Input from `io.stdin`, raw output to `io.output`. Resolves
 * with the exit status; `onStart` gets the pid and a resize function for /exec/{id}/resize.
 * When the client types `io.detachKeys` it is let go (`io.onDetach`): its input and output
 * are dropped, and the process runs on, as after a detach from `docker exec -it`.
 */
export function runExecTty(
  rt: OciRuntime,
  containerId: string,
  proc: ExecProcess,
  io: { stdin?: Readable; output?: Writable; detachKeys?: Buffer; onDetach?: () => void },
  size: { rows: number; cols: number },
  onStart: (pid: number, resize: (rows: number, cols: number) => void) => void,
): Promise<number> {
  let p: ReturnType<OciRuntime['execTty']>;
  try {
    p = rt.execTty(containerId, proc, size);
  } catch (e) {
    return Promise.reject(e);
  }
  let done = false;
  onStart(p.pid, (rows, cols) => {
    if (!done) p.resize(cols, rows);
  });
  // runc's own failure is written to the terminal: keep the tail to tell 126 from 127.
  let tail = '';
  let detached = false;
  p.onData((d) => {
    tail = (tail + d).slice(-4096);
    if (!detached) io.output?.write(d as unknown as Buffer);
  });
  const watcher = io.detachKeys ? new DetachWatcher(io.detachKeys) : undefined;
  const onInput = (d: Buffer) => {
    if (done || detached) return;
    const { pass, detach } = watcher ? watcher.feed(d) : { pass: d, detach: false };
    if (pass.length) p.write(pass as unknown as string);
    if (detach) {
      detached = true;
      io.stdin?.off('data', onInput);
      io.onDetach?.();
    }
  };
  io.stdin?.on('data', onInput);
  return new Promise<number>((resolve) => {
    p.onExit(({ exitCode, signal }) => {
      done = true;
      io.stdin?.off('data', onInput);
      resolve(signal ? 128 + signal : startFailure(exitCode, tail) ?? exitCode);
    });
  });
}
