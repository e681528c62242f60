import { attachDeps, repairNetworks } from './network-attach';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unmountAll } from '../../volumes/layers/mount';
import { readExit } from '../runtime/monitor';
import type { RuntimeState } from '../runtime/runtime';
import { SNAPSHOT_PREFIX, ZERO_TIME } from './container-record';
import { message, type EngineContext } from './context';
import { monitorAlive } from './host';
import { finishRemoval, type Lifecycle } from './lifecycle';
import { LiveContainer } from './live-container';
import { recoverRunning } from './reconcile';
import { shouldRestart } from './restart-policy';
import { isUp, transition } from './state';
import { StdinPipe } from './stdin-pipe';
import { attachPath, consoleSize, logTail } from './terminal';
import { TtySession } from './tty';

/**
 * Recovery at engine open (daemon start): finish or clean what a crash left (half-made
 * and half-removed containers, orphan snapshots and runtime state), then bring every
 * record in line with what still runs — adopt a live run, record one that ended while
 * berthd was away, restart by policy. What to do with each one is decided in
 * reconcile.ts; this does it.
 */
export async function recover(ctx: EngineContext, life: Lifecycle): Promise<void> {
  await cleanLeftovers(ctx);
  await reconcile(ctx, life);
  await ctx.net?.pruneLinks(new Set(ctx.store.all().filter(isUp).map((r) => r.Id)), ctx.store.all().map((r) => r.Id));
  await repairNetworks(attachDeps(ctx));
}

/** Finish removals and undo creates a crash interrupted; drop orphans of both. */
async function cleanLeftovers(ctx: EngineContext): Promise<void> {
  const { store, opts } = ctx;
  for (const { id, dir } of store.leftovers.removing) {
    await finishRemoval(ctx, id, dir).catch((e) => ctx.log(`cannot finish removing ${id}: ${message(e)}`));
  }
  for (const { dir } of store.leftovers.creating) {
    await unmountAll(path.join(dir, 'rootfs')).catch(() => undefined);
    await store.removeDir(dir).catch((e) => ctx.log(`cannot remove ${dir}: ${message(e)}`));
  }
  const orphans: string[] = [];
  await opts.snapshotter.walk((info) => {
    if (!info.name.startsWith(SNAPSHOT_PREFIX)) return;
    const id = info.name.slice(SNAPSHOT_PREFIX.length);
    if (!fs.existsSync(path.join(store.root, id))) orphans.push(info.name);
  });
  for (const key of orphans) await opts.snapshotter.remove(key).catch((e) => ctx.log(`cannot remove snapshot ${key}: ${message(e)}`));
  const known = await opts.runtime.list().catch(() => []);
  for (const s of known) {
    if (/^[0-9a-f]{64}$/.test(s.id) && !fs.existsSync(path.join(store.root, s.id))) {
      await opts.runtime.delete(s.id, true).catch(() => undefined);
      await ctx.removeCgroups(s.id);
    }
  }
}

/** Bring every record in line with what still runs (reconcile.ts); restart per policy. */
async function reconcile(ctx: EngineContext, life: Lifecycle): Promise<void> {
  // One `runc list` for all: who has runtime state, and each one's status (an adopted
  // run's paused or not), instead of a `runc state` per container (100 of them ~2 s).
  const known = new Map((await ctx.opts.runtime.list().catch(() => [])).map((s) => [s.id, s]));
  for (const rec of ctx.store.all()) {
    const c = new LiveContainer(rec);
    ctx.lives.set(rec.Id, c);
    const own = rec.Runtime === ctx.opts.runtime.path;
    try {
      await reconcileOne(ctx, life, c, known.has(rec.Id) || !own, own ? known.get(rec.Id) : undefined);
    } catch (e) {
      ctx.log(`${rec.Id}: reconcile: ${message(e)}`);
    }
  }
}

/** `inRuntime`: the runtime may have state of it; `listed`: its state in that one `list` at open. */
async function reconcileOne(ctx: EngineContext, life: Lifecycle, c: LiveContainer, inRuntime: boolean, listed?: RuntimeState): Promise<void> {
  const rec = c.rec;
  const p = ctx.store.paths(c.id);
  const rt = ctx.runtimeFor(rec.Runtime);
  if (isUp(rec)) {
    c.run = 1;
    const exit = await readExit(p.exitFile).catch(() => undefined);
    const r = recoverRunning(exit, await monitorAlive(rec.MonitorPid, c.id));
    if (r.kind === 'adopt') {
      const paused = await adopt(ctx, c, listed);
      life.watch(c);
      if (!paused) ctx.health.resume(c);
      return;
    }
    // Dead while we were away; kill what may remain of a lost one (its monitor is gone).
    if (r.kind === 'lost') await rt.kill(c.id, 'SIGKILL', true).catch(() => undefined);
    await life.onExit(c, c.run, r.exit, true);
    return;
  }
  // Not running by the record: nothing of it may run or stay mounted.
  if (inRuntime) await rt.delete(c.id, true).catch(() => undefined);
  if (rec.Network?.Ports?.length) {
    rec.Network = { ...rec.Network, Ports: [] };
    await ctx.save(rec);
  }
  await unmountAll(p.rootfs).catch((e) => ctx.log(`${c.id}: unmount: ${message(e)}`));
  await ctx.removeCgroups(c.id);
  if (rec.State.StartedAt === ZERO_TIME) return; // created, never started: stays created
  if (rec.HostConfig.AutoRemove) {
    await life.removeLive(c); // it exited while its removal was due
    return;
  }
  const restart =
    rec.State.Status === 'restarting' ||
    shouldRestart(rec.HostConfig.RestartPolicy, {
      exitCode: rec.State.ExitCode,
      restartCount: rec.RestartCount,
      // Docker brings `always` back at daemon start even if stopped by hand; we do
      // the same, but an on-failure container a user stopped stays stopped.
      manualStop: rec.ManualStop && rec.HostConfig.RestartPolicy?.Name !== 'always',
      canceled: rec.ManualStop && rec.HostConfig.RestartPolicy?.Name === 'on-failure',
    });
  if (restart) {
    await c.lock.run(async () => {
      rec.ManualStop = false;
      await life.launch(c);
    }).catch((e) => ctx.log(`${c.id}: restart at daemon start failed: ${message(e)}`));
  }
}

/** A run that lives on: take runc's word on paused, reconnect its terminal or hold its stdin again. Paused or not. */
async function adopt(ctx: EngineContext, c: LiveContainer, listed?: RuntimeState): Promise<boolean> {
  const rec = c.rec;
  const p = ctx.store.paths(c.id);
  const st = listed ?? (await ctx.runtimeFor(rec.Runtime).state(c.id).catch(() => undefined));
  const paused = st?.status === 'paused';
  if (paused !== rec.State.Paused) {
    transition(rec, { type: 'adopted', paused });
    await ctx.save(rec);
  }
  if (rec.Config.Tty) {
    // The monitor still holds the pty: connect again, and rebuild the screen from the log.
    const size = consoleSize(rec.HostConfig);
    const tty = new TtySession(attachPath(p.attachSocket, rec.MonitorPid), size ? { rows: size.height, cols: size.width } : {}, (m) => ctx.log(`${c.id}: ${m}`), () => logTail(p.log));
    try {
      await tty.connect();
      tty.prime(await logTail(p.log));
      c.tty = tty;
    } catch (e) {
      tty.close();
      ctx.log(`${c.id}: cannot reconnect to its terminal: ${message(e)}`);
    }
  } else if (rec.Config.OpenStdin) {
    // berthd's end of stdin died with it; hold a new one so the process does not read
    // EOF from now on (what it read meanwhile is gone).
    const stdin = new StdinPipe(p.stdin, !!rec.Config.StdinOnce);
    try {
      stdin.open();
      c.stdin = stdin;
    } catch {
      // the process closed its stdin: nothing to hold
    }
  }
  return paused;
}
