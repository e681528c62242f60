import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InternalError, NotFoundError, type BerthError } from '../../volumes/shared/errors';
import { unmountAll } from '../../volumes/layers/mount';
import type { ExitRecord } from '../runtime/monitor';
import { snapshotKey, type ContainerRecord } from './container-record';
import { message, type EngineContext } from './context';
import { MonitorGoneError, monitorPollMs, watchExit } from './exit-watch';
import { monitorAlive } from './host';
import { MonitorLink } from './monitor-link';
import { attachPath } from './terminal';
import { launch } from './launch';
import { pruneFilter } from './list-filter';
import type { LiveContainer } from './live-container';
import { unknownExit } from './reconcile';
import { shouldRestart } from './restart-policy';
import type { WaitCondition } from './service';
import { parseSignal } from './signals';
import { isActive, isUp, transition } from './state';

/** Default seconds `stop` waits before SIGKILL. */
const STOP_TIMEOUT = 10;
/** How long to wait for a SIGKILLed container's exit to be handled. */
const KILL_WAIT_MS = 30_000;

/** true if `p` settled within `ms` (ms < 0: wait for ever). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms < 0) return p.then(() => true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/**
 * A container's life: start (a run: launch.ts), the exit of a run, the restart policy,
 * stop, kill, restart, pause, wait, and remove. The state changes go through one
 * function (state.ts), under the container's lock.
 *
 * States: created -> running <-> paused; running -> exited (-> restarting -> running, by
 * the restart policy); any -> removed. A run's exit is handled once (record it, runtime
 * delete, unmount, `die`, then AutoRemove or the restart policy).
 */
export class Lifecycle {
  constructor(private readonly ctx: EngineContext) {}

  async start(ref: string): Promise<boolean> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    let failed: unknown;
    const started = await this.gated(c, () => c.lock.run(async () => {
      const s = c.rec.State.Status;
      if (c.removing) throw new ConflictError(`container ${c.id} is being removed`, { hint: 'create a new container' });
      if (s === 'running') return false;
      if (s === 'paused') {
        throw new ConflictError('cannot start a paused container, try unpause instead', { hint: `berth unpause ${c.rec.Name.slice(1)}` });
      }
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      // A user's start resets the restart manager, as Docker's does.
      c.canceled = false;
      c.backoff.reset();
      c.rec.ManualStop = false;
      c.rec.RestartCount = 0;
      try {
        await this.launch(c);
      } catch (e) {
        failed = e;
      }
      return true;
    }));
    if (failed) {
      if (c.rec.HostConfig.AutoRemove) await this.removeLive(c).catch(() => undefined);
      throw failed;
    }
    return started;
  }

  /**
   * A start under the gates of the container's volumes (volumes/gate.ts), taken before the
   * container's lock: a start waits for a snapshot, restore or removal of one of them in
   * progress, and those see it running once it has started.
   */
  private gated<T>(c: LiveContainer, fn: () => Promise<T>): Promise<T> {
    const vols = this.ctx.opts.volumes;
    const names = (c.rec.Mounts ?? []).flatMap((m) => (m.Type === 'volume' && m.Name ? [m.Name] : []));
    return vols && names.length ? vols.gate.run(names, fn) : fn();
  }

  /** One run (lock held): launch.ts, then watch its exit. */
  async launch(c: LiveContainer): Promise<void> {
    await launch(this.ctx, c);
    this.watch(c);
    this.ctx.health.begin(c);
    await this.ctx.save(c.rec);
    this.ctx.emit(c.rec, 'start');
  }

  /** Watch the current run's exit record; its exit is handled once, by onExit. */
  watch(c: LiveContainer): void {
    const run = c.run;
    const ac = new AbortController();
    c.watch?.abort();
    c.watch = ac;
    const p = this.ctx.store.paths(c.id);
    const monitorPid = c.rec.MonitorPid;
    const monitorGone = async (): Promise<boolean> => !(await monitorAlive(monitorPid, c.id));
    // The monitor's death is an event (its watch connection ends), for a run this berthd
    // started and for one adopted after a restart alike; the poll is only a backstop.
    const link = (wake: () => void): (() => void) => {
      const l = new MonitorLink(attachPath(p.watchSocket, monitorPid), wake);
      return () => l.close();
    };
    c.runEnded = watchExit(p.exitFile, ac.signal, monitorPollMs(), monitorGone, link).then(
      (exit) => {
        if (c.run === run) c.outputEnded.fire();
        return this.onExit(c, run, exit);
      },
      async (e) => {
        if (ac.signal.aborted) return;
        if (e instanceof MonitorGoneError) {
          // Nobody holds the container's stdio or will record its exit: finish it (kill
          // its init through runc and its cgroup), then clean up as for any exit.
          this.ctx.log(`${c.id}: ${e.message}; killing the container`);
          if (c.run === run) c.outputEnded.fire();
          await this.ctx.runtimeFor(c.rec.Runtime).reap(c.id, this.ctx.cgroupsPath(c.id));
          return this.onExit(c, run, unknownExit());
        }
        // An unreadable exit record: the run is over, its status unknown.
        this.ctx.log(`${c.id}: ${message(e)}`);
        return this.onExit(c, run, unknownExit());
      },
    ).catch((e) => this.ctx.log(`${c.id}: handling the exit failed: ${message(e)}`));
  }

  /**
   * A run ended: record it, delete it from the runtime, unmount, tell (`die`), then
   * AutoRemove or the restart policy. `immediate`: restart without backoff (daemon start).
   */
  async onExit(c: LiveContainer, run: number, exit: ExitRecord, immediate = false): Promise<void> {
    const ctx = this.ctx;
    const decision = await c.lock.run(async () => {
      const rec = c.rec;
      if (c.run !== run || !isUp(rec)) return undefined; // handled already
      c.watch = undefined;
      ctx.health.end(c);
      c.stdin?.close();
      c.stdin = undefined;
      c.tty?.close();
      c.tty = undefined;
      await this.cleanupRun(c);
      const ranMs = Date.parse(exit.finishedAt) - Date.parse(rec.State.StartedAt);
      const restart =
        !c.removing &&
        !ctx.closed &&
        !rec.HostConfig.AutoRemove &&
        shouldRestart(rec.HostConfig.RestartPolicy, { exitCode: exit.exitCode, restartCount: rec.RestartCount, manualStop: rec.ManualStop, canceled: c.canceled });
      transition(rec, { type: 'exited', exit, restart });
      // A --rm container is removed right after (below): saving its exited state first
      // would cost two fsyncs for a record about to go. A crash in between is safe: the
      // record still says running, and the engine's next open reads the exit record,
      // handles the exit and removes it (recovery.ts).
      const removeNext = !restart && !c.removing && !ctx.closed && !!rec.HostConfig.AutoRemove;
      if (!removeNext) await ctx.save(rec).catch((e) => ctx.log(`${c.id}: cannot save the record: ${message(e)}`));
      if (exit.oomKilled) ctx.emit(rec, 'oom');
      ctx.emit(rec, 'die', { exitCode: String(exit.exitCode) });
      c.exited.fire(exit.exitCode);
      return { restart, delay: immediate ? 0 : c.backoff.next(Number.isFinite(ranMs) ? ranMs : 0) };
    });
    if (!decision) return;
    if (decision.restart) this.scheduleRestart(c, decision.delay);
    else if (c.rec.HostConfig.AutoRemove && !c.removing && !ctx.closed) {
      await this.removeLive(c).catch(async (e) => {
        ctx.log(`${c.id}: auto-remove failed: ${message(e)}`);
        // It stays: its record must say exited (saving it was left to the removal).
        if (ctx.store.get(c.id) === c.rec) await ctx.save(c.rec).catch(() => undefined);
      });
    }
  }

  /** What a finished run leaves: runtime state, the root mount, cgroups. */
  private async cleanupRun(c: LiveContainer): Promise<void> {
    const ctx = this.ctx;
    const p = ctx.store.paths(c.id);
    if (ctx.net?.bridged(c.rec.Network)) await ctx.net.deactivate(c.id, c.rec.Network).catch((e) => ctx.log(`${c.id}: network: ${message(e)}`));
    if (c.rec.Network?.Ports?.length) c.rec.Network = { ...c.rec.Network, Ports: [] };
    // The runtime's delete and the root's unmount touch nothing of each other's (the
    // process has exited: runc removes only its state and the cgroup): both at once. A run
    // whose monitor died was deleted from the runtime already (reap): no runc to spawn.
    const rt = ctx.runtimeFor(c.rec.Runtime);
    await Promise.all([
      (fs.existsSync(path.join(rt.root, c.id)) ? rt.delete(c.id, true) : Promise.resolve()).catch((e: BerthError) => {
        if (e.code !== 'NOT_FOUND') ctx.log(`${c.id}: runtime delete: ${e.message}`);
      }),
      unmountAll(p.rootfs).catch((e) => ctx.log(`${c.id}: unmount: ${message(e)}`)),
    ]);
    await ctx.removeCgroups(c.id);
  }

  private scheduleRestart(c: LiveContainer, delay: number): void {
    const ctx = this.ctx;
    if (ctx.closed) return;
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      void this.gated(c, () =>
        c.lock.run(async () => {
          if (ctx.closed || c.removing || c.canceled || c.rec.State.Status !== 'restarting') return;
          await this.launch(c);
        }),
      ).catch((e) => ctx.log(`${c.id}: restart failed: ${message(e)}`));
    }, delay);
  }

  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<boolean> {
    const ctx = this.ctx;
    ctx.checkOpen();
    const c = ctx.live(ref);
    const rec = c.rec;
    const sig = parseSignal(opts.signal || rec.Config.StopSignal || 'SIGTERM');
    if (rec.State.Status === 'restarting') {
      c.canceled = true; // a restart that has not begun will not
      const held = await c.lock.run(async () => {
        if (rec.State.Status !== 'restarting') return false; // it came up meanwhile: stop it below
        if (c.restartTimer) clearTimeout(c.restartTimer);
        c.restartTimer = undefined;
        rec.ManualStop = true;
        transition(rec, { type: 'restart-canceled' });
        await ctx.save(rec);
        return true;
      });
      if (held) {
        ctx.emit(rec, 'stop');
        return true;
      }
    }
    if (!isUp(rec)) return false;
    c.canceled = true;
    rec.ManualStop = true;
    await ctx.save(rec);
    const ended = c.runEnded;
    const timeout = opts.timeout ?? rec.Config.StopTimeout ?? STOP_TIMEOUT;
    await this.signal(c, sig.name, false, true);
    if (!(await within(ended, timeout < 0 ? -1 : timeout * 1000))) {
      await this.signal(c, 'SIGKILL', true, true);
      if (!(await within(ended, KILL_WAIT_MS))) {
        throw new InternalError(`container ${c.id} did not stop after SIGKILL`, { hint: `see its runtime log ${ctx.store.paths(c.id).runtimeLog}` });
      }
    }
    ctx.emit(rec, 'stop');
    return true;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    const sig = parseSignal(signal || 'SIGKILL');
    if (!isUp(c.rec)) {
      throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first; only a running container can be signalled' });
    }
    const stopSignal = parseSignal(c.rec.Config.StopSignal || 'SIGTERM');
    // Docker: killing with the stop signal is a stop (no restart); any kill is a manual stop.
    if (sig.number === stopSignal.number) c.canceled = true;
    c.rec.ManualStop = true;
    await this.ctx.save(c.rec);
    const ended = c.runEnded;
    await this.signal(c, sig.name, sig.number === 9, sig.number === 9 || sig.number === stopSignal.number);
    if (sig.number === 9) await within(ended, KILL_WAIT_MS);
  }

  /** Send a signal (to every process with `all`), thawing a paused container so it can act on it. */
  private async signal(c: LiveContainer, name: string, all: boolean, thaw: boolean): Promise<void> {
    const rt = this.ctx.runtimeFor(c.rec.Runtime);
    try {
      await rt.kill(c.id, name, all);
    } catch (e) {
      if ((e as BerthError).code !== 'NOT_FOUND' && (e as BerthError).code !== 'CONFLICT') throw e; // gone already
    }
    if (thaw && c.rec.State.Status === 'paused') await rt.resume(c.id).catch(() => undefined);
    this.ctx.emit(c.rec, 'kill', { signal: String(parseSignal(name).number) });
  }

  private async killAndWait(c: LiveContainer): Promise<void> {
    const ended = c.runEnded;
    await this.signal(c, 'SIGKILL', true, true);
    if (!(await within(ended, KILL_WAIT_MS))) {
      throw new InternalError(`container ${c.id} did not die after SIGKILL`, { hint: 'check the host for stuck processes (D state) and try again' });
    }
  }

  async restart(ref: string, opts: { timeout?: number } = {}): Promise<void> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    await this.stop(c.id, opts);
    await this.start(c.id);
    this.ctx.emit(c.rec, 'restart');
  }

  async pause(ref: string): Promise<void> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    await c.lock.run(async () => {
      if (c.rec.State.Status === 'paused') throw new ConflictError(`Container ${c.id} is already paused`, { hint: 'unpause it with berth unpause' });
      if (c.rec.State.Status !== 'running') throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
      await this.ctx.runtimeFor(c.rec.Runtime).pause(c.id);
      this.ctx.health.end(c);
      transition(c.rec, { type: 'paused' });
      await this.ctx.save(c.rec);
    });
    this.ctx.emit(c.rec, 'pause');
  }

  async unpause(ref: string): Promise<void> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    await c.lock.run(async () => {
      if (c.rec.State.Status !== 'paused') throw new ConflictError(`Container ${c.id} is not paused`, { hint: 'only a paused container can be unpaused' });
      await this.ctx.runtimeFor(c.rec.Runtime).resume(c.id);
      transition(c.rec, { type: 'unpaused' });
      this.ctx.health.resume(c);
      await this.ctx.save(c.rec);
    });
    this.ctx.emit(c.rec, 'unpause');
  }

  async wait(ref: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    let code: number;
    if (condition === 'removed') code = await c.removed.next(signal);
    else if (condition === 'next-exit' || isActive(c.rec)) code = await c.exited.next(signal);
    else code = c.rec.State.ExitCode;
    return { StatusCode: code, Error: c.rec.State.Error ? { Message: c.rec.State.Error } : null };
  }

  // ---- remove -------------------------------------------------------------------------------

  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    this.ctx.checkOpen();
    const c = this.ctx.live(ref);
    if (c.removing) {
      throw new ConflictError(`removal of container ${c.id} is already in progress`, { hint: 'wait for it to finish' });
    }
    if (isActive(c.rec) && !opts.force) {
      throw new ConflictError(`You cannot remove a ${c.rec.State.Status} container ${c.id}. Stop the container before attempting removal or force remove`, {
        hint: `stop it first (berth stop ${c.rec.Name.slice(1)}), or remove it with -f`,
      });
    }
    await this.removeLive(c, !!opts.volumes);
  }

  async prune(filters: Record<string, string[]> = {}): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const ctx = this.ctx;
    ctx.checkOpen();
    const keep = pruneFilter(filters);
    const deleted: string[] = [];
    let space = 0;
    for (const c of [...ctx.lives.values()]) {
      if (isActive(c.rec) || c.removing || !keep(c.rec)) continue;
      const size = await ctx.opts.snapshotter.usage(snapshotKey(c.id)).then((u) => u.size, () => 0);
      try {
        await this.removeLive(c);
        deleted.push(c.id);
        space += size;
      } catch (e) {
        ctx.log(`prune: cannot remove ${c.id}: ${message(e)}`);
      }
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
  }

  /** Kill if need be, then remove (the commit point is the rename in store.beginRemove). */
  async removeLive(c: LiveContainer, volumes = false): Promise<void> {
    const ctx = this.ctx;
    c.removing = true;
    c.canceled = true;
    try {
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      if (isUp(c.rec)) await this.killAndWait(c);
      await c.lock.run(async () => {
        if (ctx.store.get(c.id) !== c.rec) return; // removed meanwhile
        if (isUp(c.rec)) throw new ConflictError(`container ${c.id} is still running`, { hint: 'try again, or kill it first' });
        const p = ctx.store.paths(c.id);
        await unmountAll(p.rootfs); // before the rename: a busy root fails here, changing nothing
        const trash = await ctx.store.beginRemove(c.rec);
        ctx.net?.freeAll(c.rec.Network);
        ctx.lives.delete(c.id);
        ctx.execs.forget(c.id);
        // Past the commit point the container is gone; what cannot be undone now is
        // finished when the engine opens next (rm-* leftovers).
        await finishRemoval(ctx, c.id, trash, c.rec.Runtime).catch((e) => ctx.log(`${c.id}: finishing the removal: ${message(e)}`));
      });
    } catch (e) {
      c.removing = false;
      throw e;
    }
    ctx.emit(c.rec, 'destroy');
    await this.removeOwnedVolumes(c.rec, volumes || !!c.rec.HostConfig.AutoRemove);
    c.exited.fire(c.rec.State.ExitCode);
    c.removed.fire(c.rec.State.ExitCode);
  }

  /**
   * The volumes that go with a container: its unkept clones made on mount always, its
   * anonymous volumes on `rm -v` and `run --rm` — unless another container uses them too.
   * It does not wait for the filesystem to reclaim their space (btrfs's cleaner takes
   * 20-30 s): `run --rm -v /data` and a build's RUN after VOLUME return when the volume is gone.
   */
  private async removeOwnedVolumes(rec: ContainerRecord, anonymous: boolean): Promise<void> {
    const vols = this.ctx.opts.volumes;
    if (!vols) return;
    for (const m of rec.Mounts ?? []) {
      if (m.Type !== 'volume' || !m.Name || !(m.Owned || (anonymous && m.Anonymous))) continue;
      await vols.remove(m.Name, { force: true, waitForSpace: false }).catch((e) => {
        if (!(e instanceof NotFoundError) && !(e instanceof ConflictError)) this.ctx.log(`${rec.Id}: removing volume ${m.Name}: ${message(e)}`);
      });
    }
  }
}

/** Everything after the commit point of remove; also run on open for `rm-*` leftovers (recovery.ts). */
export async function finishRemoval(ctx: EngineContext, id: string, dir: string, runtimePath?: string): Promise<void> {
  // The runtime's state is usually gone already (the exit's cleanup deleted it): look
  // before spawning the runtime for nothing (~15 ms of every `run --rm`).
  const rt = ctx.runtimeFor(runtimePath);
  if (fs.existsSync(path.join(rt.root, id))) await rt.delete(id, true).catch(() => undefined);
  await unmountAll(path.join(dir, 'rootfs'));
  // Unmounted: the snapshot, the cgroups and the directory are three separate things now.
  await Promise.all([
    ctx.opts.snapshotter.remove(snapshotKey(id)).catch((e) => {
      if (!(e instanceof NotFoundError)) throw e;
    }),
    ctx.removeCgroups(id),
    ctx.store.removeDir(dir),
  ]);
}
