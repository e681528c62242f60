import type { Readable, Writable } from 'node:stream';
import type { CallerFile } from '../../volumes/shared/caller-file';
import { attach, logs, type AttachOptions } from './attach';
import { lendAccess } from './access';
import type { ContainerAccess } from './container-access';
import { ContainerStore } from './container-store';
import { EngineContext, message, type EngineOptions } from './context';
import { createContainer, renameContainer } from './create';
import { execCollect, execCreate, execInspect, execResize, execStart } from './exec';
import { commit, exportRootfs, type CommitOptions } from './filesystem';
import { MAX_OUTPUT } from './health';
import { removeCgroupParent } from './host';
import { Lifecycle } from './lifecycle';
import { networkPlan, openNetwork } from './network-plan';
import { attachDeps, networkAttach } from './network-attach';
import type { NetworkAttach } from '../network/service';
import { inspect, list, topOf, type ListOptions } from './queries';
import { recover } from './recovery';
import type { ContainerInspect, ContainerService, ContainerSummary, CreateBody, CreateOptions, ExecConfig, ExecInspect, ExecIO, LogOptions, OutputChunk, WaitCondition } from './service';
import { isUp } from './state';
import type { TopResult } from './top';
import { TtyAttachments, type TtyAttachOptions } from './tty-attach';
import { volumeHooks } from './volume-hooks';

export type { EngineOptions } from './context';

/**
 * The container engine: Docker's container lifecycle on runc, berth-monitor and the
 * overlay snapshotter. This is its front: it opens and closes the engine and delegates
 * every call to the room that does that job —
 *
 *   create.ts       create, rename              lifecycle.ts   start, stop, kill, restart,
 *   launch.ts       one run, up to its start                   pause, wait, exit, remove, prune
 *   recovery.ts     at open: leftovers, adopt   state.ts       the one State transition
 *   exec.ts         exec instances              filesystem.ts  commit, export (archive)
 *   attach.ts       logs, attach (no tty)       tty-attach.ts  a tty container's terminal
 *   queries.ts      list, inspect, top          network-plan.ts  ports, `run --dry-run`
 *
 * and context.ts holds what they share. The monitor outlives berthd, so `close()` leaves
 * containers running and `open()` adopts them again. New capabilities get a room of
 * their own, not code here.
 */
export class Engine implements ContainerService {
  private readonly life: Lifecycle;
  private readonly ttys: TtyAttachments;

  private constructor(private readonly ctx: EngineContext) {
    this.life = new Lifecycle(ctx);
    this.ttys = new TtyAttachments((c, action) => ctx.emit(c.rec, action));
  }

  /**
   * Open the engine on `root`: open the network, recover (recovery.ts), and register
   * with the image store which images containers use and with the volume service how
   * to reach containers.
   */
  static async open(opts: EngineOptions): Promise<Engine> {
    const store = await ContainerStore.open(opts.root);
    const ctx: EngineContext = new EngineContext(store, opts, (id, cmd, signal) => execCollect(ctx, id, cmd, { limit: MAX_OUTPUT, signal }));
    const engine = new Engine(ctx);
    for (const dir of store.unreadable) ctx.log(`cannot read the container record in ${dir}: left alone; move it away if it is debris`);
    for (const r of store.repaired) ctx.log(`container ${r.id.slice(0, 12)}: its record had values of the wrong type, put right: ${r.fixes.join('; ')}`);
    ctx.net = await openNetwork(ctx);
    await recover(ctx, engine.life);
    opts.images.setInUse((imageId) => store.all().filter((r) => r.Image === imageId).map((r) => r.Id));
    opts.volumes?.setHooks(volumeHooks(store, engine, (id, cmd) => execCollect(ctx, id, cmd)));
    return engine;
  }

  /** Stop watching; containers keep running (live restore). Twice is harmless. */
  close(): Promise<void> {
    const ctx = this.ctx;
    return ctx.life.close(async () => {
      ctx.health.close();
      for (const c of ctx.lives.values()) {
        c.watch?.abort();
        c.watch = undefined;
        if (c.restartTimer) clearTimeout(c.restartTimer);
        c.stdin?.close();
        c.tty?.close();
      }
      await ctx.net?.close(ctx.store.all().some(isUp)).catch((e) => ctx.log(`closing the network: ${message(e)}`));
      await removeCgroupParent(ctx.cgroupBase); // only if no container runs
    });
  }

  // ---- create.ts ----
  create(body: CreateBody, name?: string, opts?: CreateOptions): Promise<{ Id: string; Warnings: string[] }> {
    return createContainer(this.ctx, body, name, opts);
  }
  rename(ref: string, newName: string): Promise<void> {
    return renameContainer(this.ctx, ref, newName);
  }

  // ---- lifecycle.ts ----
  start(ref: string): Promise<boolean> {
    return this.life.start(ref);
  }
  stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<boolean> {
    return this.life.stop(ref, opts);
  }
  kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    return this.life.kill(ref, signal);
  }
  restart(ref: string, opts: { timeout?: number } = {}): Promise<void> {
    return this.life.restart(ref, opts);
  }
  pause(ref: string): Promise<void> {
    return this.life.pause(ref);
  }
  unpause(ref: string): Promise<void> {
    return this.life.unpause(ref);
  }
  wait(ref: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    return this.life.wait(ref, condition, signal);
  }
  remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    return this.life.remove(ref, opts);
  }
  prune(filters: Record<string, string[]> = {}): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    return this.life.prune(filters);
  }

  // ---- queries.ts ----
  list(opts: ListOptions = {}): Promise<ContainerSummary[]> {
    return list(this.ctx, opts);
  }
  inspect(ref: string): Promise<ContainerInspect> {
    return inspect(this.ctx, ref);
  }
  top(ref: string, psArgs?: string): Promise<TopResult> {
    return topOf(this.ctx, ref, psArgs);
  }

  // ---- attach.ts, tty-attach.ts ----
  logs(ref: string, opts: LogOptions): AsyncIterable<OutputChunk> {
    return logs(this.ctx, ref, opts);
  }
  attach(ref: string, opts: AttachOptions): Promise<AsyncIterable<OutputChunk>> {
    return attach(this.ctx, ref, opts);
  }
  /** A tty container's terminal: see tty-attach.ts. */
  async attachTty(ref: string, opts: TtyAttachOptions): Promise<'detached' | 'ended'> {
    this.ctx.checkOpen();
    return this.ttys.attach(this.ctx.live(ref), opts);
  }
  async attachTtyCheck(ref: string, detachKeys?: string, size?: { rows?: number; cols?: number }): Promise<{ detachKeys: string }> {
    this.ctx.checkOpen();
    return this.ttys.check(this.ctx.live(ref), detachKeys, size);
  }
  async resize(ref: string, rows: number, cols: number, clientId?: string): Promise<void> {
    this.ctx.checkOpen();
    this.ttys.resize(this.ctx.live(ref), rows, cols, clientId);
  }

  // ---- exec.ts ----
  execCreate(ref: string, cfg: ExecConfig): Promise<{ Id: string }> {
    return execCreate(this.ctx, ref, cfg);
  }
  /** `kill` (berthd's own callers: health checks) SIGKILLs the process when aborted. */
  execStart(execId: string, io: ExecIO, kill?: AbortSignal): Promise<number> {
    return execStart(this.ctx, execId, io, kill);
  }
  execInspect(execId: string): Promise<ExecInspect> {
    return execInspect(this.ctx, execId);
  }
  execResize(execId: string, rows: number, cols: number): Promise<void> {
    return execResize(this.ctx, execId, rows, cols);
  }

  // ---- filesystem.ts ----
  commit(ref: string, opts: CommitOptions): Promise<{ Id: string }> {
    return commit(this.ctx, ref, opts);
  }
  export(ref: string, out: Writable, to?: CallerFile): Promise<void> {
    return exportRootfs(this.ctx, ref, out, to);
  }

  /** What the side modules (archive, stats, update, changes, df) may use: see container-access.ts. */
  access(): ContainerAccess {
    return lendAccess(this.ctx);
  }

  // ---- network-plan.ts ----
  networkPlan(body: CreateBody): Promise<{ Rules: string[]; Warnings: string[] }> {
    return networkPlan(this.ctx, body);
  }
  /** For the networks service: connect/disconnect (network-attach.ts), the predefined networks' members. */
  networkAttach(): NetworkAttach {
    return networkAttach(attachDeps(this.ctx));
  }

  network(): EngineContext['net'] {
    return this.ctx.net;
  }

  /** The bridge network, for `berth info`. */
  networkInfo(): ReturnType<NonNullable<EngineContext['net']>['info']> | undefined {
    return this.ctx.net?.info();
  }
}
