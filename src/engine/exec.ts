import { ConflictError } from '../../volumes/shared/errors';
import { lookupUser } from '../runtime/rootfs';
import type { EngineContext } from './context';
import { mergeEnv } from './create-config';
import { execSecurity } from './security-config';
import { OutputCollector, runExec, runExecTty, toExecInspect } from './execs';
import type { LiveContainer } from './live-container';
import type { ExecConfig, ExecInspect, ExecIO } from './service';
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from './detach-keys';
import { exitCodeOf } from '../runtime/runtime';
import { checkWindow } from './tty-attach';

/**
 * `docker exec` on the engine: create, start, inspect and resize an exec instance. The
 * instances and how a process is run (pipes or a pty) are execs.ts.
 */

export async function execCreate(ctx: EngineContext, ref: string, cfg: ExecConfig): Promise<{ Id: string }> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  checkExecutable(c);
  const e = ctx.execs.create(c.id, cfg);
  ctx.emit(c.rec, `exec_create: ${e.config.Cmd.join(' ')}`, { execID: e.ID });
  return { Id: e.ID };
}

/**
 * `kill` (berthd's own callers: health checks) SIGKILLs the process when aborted. A tty
 * exec's client detaches with its DetachKeys (`io.onDetach`); the process runs on. A
 * failure to run it leaves its ExitCode set, as Docker's does.
 */
export async function execStart(ctx: EngineContext, execId: string, io: ExecIO, kill?: AbortSignal): Promise<number> {
  ctx.checkOpen();
  const e = ctx.execs.get(execId);
  const c = ctx.lives.get(e.ContainerID);
  if (!c) throw new ConflictError(`the container of exec ${execId} is gone`, { hint: 'exec in an existing container' });
  checkExecutable(c);
  ctx.execs.claim(execId);
  const rec = c.rec;
  const p = ctx.store.paths(c.id);
  let code: number;
  try {
    const user = await lookupUser(p.rootfs, e.config.User || rec.Config.User || '');
    const proc = {
      args: e.config.Cmd,
      env: mergeEnv(rec.Config.Env, e.config.Env ?? []),
      cwd: e.config.WorkingDir || rec.Config.WorkingDir || '/',
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
      ...execSecurity(rec.HostConfig, !!e.config.Privileged),
    };
    e.Running = true;
    ctx.emit(rec, `exec_start: ${e.config.Cmd.join(' ')}`, { execID: e.ID });
    if (e.config.Tty) {
      const cs = Array.isArray(e.config.ConsoleSize) ? e.config.ConsoleSize : [];
      const size = e.pendingSize ?? { rows: cs[0] > 0 && cs[0] <= 10000 ? cs[0] : 24, cols: cs[1] > 0 && cs[1] <= 10000 ? cs[1] : 80 };
      const detach = { detachKeys: parseDetachKeys(e.config.DetachKeys || DEFAULT_DETACH_KEYS), onDetach: () => (ctx.emit(rec, 'exec_detach', { execID: e.ID }), io.onDetach?.()) };
      code = await runExecTty(ctx.runtimeFor(rec.Runtime), c.id, proc, { stdin: e.config.AttachStdin ? io.stdin : undefined, output: io.stdout, ...detach }, size, (pid, resize) => {
        e.Pid = pid;
        e.resize = resize;
        // One that came while the pty was being made (after `size` was read) applies now.
        if (e.pendingSize && (e.pendingSize.rows !== size.rows || e.pendingSize.cols !== size.cols)) resize(e.pendingSize.rows, e.pendingSize.cols);
      });
    } else code = await runExec(
      ctx.runtimeFor(rec.Runtime),
      c.id,
      proc,
      { stdin: e.config.AttachStdin ? io.stdin : undefined, stdout: e.config.AttachStdout === false ? undefined : io.stdout, stderr: e.config.AttachStderr === false ? undefined : io.stderr },
      (pid) => (e.Pid = pid),
      kill,
    );
  } catch (err) {
    // Docker: an exec that could not be run is over, with 126 unless the cause says otherwise.
    e.ExitCode = exitCodeOf(err) ?? 126;
    throw err;
  } finally {
    e.Running = false;
    e.resize = undefined;
  }
  e.ExitCode = code;
  ctx.emit(rec, 'exec_die', { execID: e.ID, exitCode: String(code) });
  return code;
}

/**
 * Run `cmd` in a running container through the exec path (events and all) and collect
 * its output (the first `limit` bytes, then "..."); the exec is forgotten after. For
 * berthd's own execs: health checks, volume snapshot hooks.
 */
export async function execCollect(ctx: EngineContext, id: string, cmd: string[], opts: { limit?: number; signal?: AbortSignal } = {}): Promise<{ code: number; output: string }> {
  const { Id } = await execCreate(ctx, id, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const out = new OutputCollector(opts.limit);
  try {
    const code = await execStart(ctx, Id, { stdout: out.writable(), stderr: out.writable() }, opts.signal);
    return { code, output: out.text() };
  } finally {
    ctx.execs.remove(Id);
  }
}

export async function execInspect(ctx: EngineContext, execId: string): Promise<ExecInspect> {
  ctx.checkOpen();
  return toExecInspect(ctx.execs.get(execId));
}

export async function execResize(ctx: EngineContext, execId: string, rows: number, cols: number): Promise<void> {
  ctx.checkOpen();
  checkWindow(rows, cols);
  const e = ctx.execs.get(execId);
  if (e.resize) e.resize(rows, cols);
  else if (e.ExitCode === null) e.pendingSize = { rows, cols };
}

function checkExecutable(c: LiveContainer): void {
  if (c.rec.State.Status === 'paused') {
    throw new ConflictError(`Container ${c.id} is paused, unpause the container before exec`, { hint: 'berth unpause it' });
  }
  if (c.rec.State.Status !== 'running') throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
}
