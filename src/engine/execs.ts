import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { ExecProcess, OciRuntime } from '../runtime/runtime';
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
    if (cfg.Privileged) {
      throw new InvalidArgumentError('privileged exec is not supported', { hint: "run without --privileged: the process gets the container's capabilities" });
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
    DetachKeys: '',
  };
}

/**
 * Run the process through the runtime: output piped to `io` (which is not ended), stdin
 * from `io.stdin` when given. Resolves with the exit status (128+n for signal n) once the
 * process has exited and its output has been read.
 */
export function runExec(
  rt: OciRuntime,
  containerId: string,
  proc: ExecProcess,
  io: { stdin?: Readable; stdout?: Writable; stderr?: Writable },
  onSpawn: (pid: number) => void,
): Promise<number> {
  let child: ChildProcess;
  try {
    child = rt.exec(containerId, proc, [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe']);
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
  return new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (io.stdin && child.stdin) io.stdin.unpipe(child.stdin);
      if (code !== null) return resolve(startFailure(code, errTail) ?? code);
      const n = signal ? (osConstants.signals as Record<string, number>)[signal] ?? 0 : 0;
      resolve(128 + n);
    });
  });
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
 */
export function runExecTty(
  rt: OciRuntime,
  containerId: string,
  proc: ExecProcess,
  io: { stdin?: Readable; output?: Writable },
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
  p.onData((d) => {
    tail = (tail + d).slice(-4096);
    io.output?.write(d as unknown as Buffer);
  });
  const onInput = (d: Buffer) => {
    if (!done) p.write(d as unknown as string);
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
