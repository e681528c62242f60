import * as fs from 'node:fs';
import type { BerthError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';
import { isMountPoint, mountAll, unmountAll } from '../../volumes/layers/mount';
import type { PublishedPort } from '../network/rules';
import { resolveInRoot } from '../runtime/rootfs';
import { exitCodeOf, type OciRuntime } from '../runtime/runtime';
import { buildSpec } from '../runtime/spec';
import { snapshotKey } from './container-record';
import { message, type EngineContext } from './context';
import { planLaunch } from './launch-plan';
import { logLimits } from './log-drivers';
import type { LiveContainer } from './live-container';
import { linkEnvFor } from './network-attach';
import { portPlan } from './network-plan';
import { transition } from './state';
import { StdinPipe } from './stdin-pipe';
import { attachPath, consoleSize, logTail } from './terminal';
import { TtySession } from './tty';

/**
 * One run of a container, up to its process running (the caller holds the container's
 * lock, then watches the exit: lifecycle.ts). The steps, in order:
 *
 *   mount the root (and fill new volumes from the image, once: copyUp)
 *   write the bundle (spec)   reserve the host ports   runtime.create (starts the monitor)
 *   connect the terminal or open stdin   plug in the network   runtime.start
 *
 * When none of the steps between create and start applies (no bridged network, no tty,
 * no stdin), create starts the process too (`runc run --detach`): one runtime call less.
 *
 * Each step that leaves something behind registers how to undo it; a failure undoes
 * them newest first, records the failure in the state (exit code 127/126/128 and Error,
 * as Docker does) and is thrown.
 */
export async function launch(ctx: EngineContext, c: LiveContainer): Promise<void> {
  const undo: Array<() => unknown> = [];
  let run: Awaited<ReturnType<typeof startRun>>;
  try {
    run = await startRun(ctx, c, undo);
  } catch (e) {
    for (const u of undo.reverse()) await Promise.resolve().then(u).catch(() => undefined);
    await recordStartFailure(ctx, c, e);
    throw e;
  }
  c.stdin = run.stdin;
  c.tty = run.tty;
  c.run++;
  transition(c.rec, { type: 'started', pid: run.pid, monitorPid: run.monitorPid, at: new Date().toISOString() });
  if (c.rec.Network) c.rec.Network = { ...c.rec.Network, Ports: run.ports };
}

async function startRun(
  ctx: EngineContext,
  c: LiveContainer,
  undo: Array<() => unknown>,
): Promise<{ pid: number; monitorPid: number; ports: PublishedPort[]; stdin?: StdinPipe; tty?: TtySession }> {
  const rec = c.rec;
  const id = c.id;
  const p = ctx.store.paths(id);
  const rt = ctx.runtimeFor(rec.Runtime);
  const mode = rec.Network?.Mode ?? 'none';
  const net = ctx.net?.bridged(rec.Network) ? ctx.net : undefined;
  const primary = net?.primaryAddress(rec.Network);

  await fs.promises.mkdir(p.rootfs, { recursive: true, mode: 0o755 });
  if (!(await isMountPoint(p.rootfs))) await mountAll(await ctx.opts.snapshotter.mounts(snapshotKey(id)), p.rootfs);
  await copyUp(ctx, c, p.rootfs);
  undo.push(() => unmountAll(p.rootfs));
  if (net) undo.push(() => net.deactivate(id, rec.Network));

  const tsize = consoleSize(rec.HostConfig);
  const spec = buildSpec(
    { ...(await planLaunch(rec, p, ctx.cgroupsPath(id), linkEnvFor(ctx, rec))), hostNetwork: mode === 'host', terminal: !!rec.Config.Tty, consoleSize: tsize },
    ctx.hostInfo,
  );
  await rt.writeBundle(p.bundle, spec);
  const { maxSize, maxFiles } = logLimits(rec.HostConfig.LogConfig);
  const io = {
    log: p.log,
    exitFile: p.exitFile,
    pidFile: p.pidFile,
    runtimeLog: p.runtimeLog,
    stdinFifo: rec.Config.OpenStdin && !rec.Config.Tty ? p.stdin : undefined,
    tty: rec.Config.Tty ? { consoleSocket: p.consoleSocket, attachSocket: p.attachSocket, rows: tsize?.height, cols: tsize?.width } : undefined,
    cgroupPath: ctx.cgroupsPath(id),
    watchSocket: p.watchSocket,
    logMaxSize: maxSize,
    logMaxFiles: maxFiles,
    // Nothing to do between create and start (no network to plug in before the first
    // instruction, no stdin or terminal to connect first): one runtime call does both.
    start: !net && !rec.Config.Tty && !rec.Config.OpenStdin,
  };
  // Host ports first: a port someone holds fails the start before anything runs.
  const ports = primary ? await net!.publish(id, rec.Name.slice(1), portPlan(mode, rec).requests) : [];
  undo.push(() => ctx.removeCgroups(id)); // a create that failed or timed out may leave its cgroup
  const created = await createInRuntime(rt, id, p.bundle, io);

  let stdin: StdinPipe | undefined;
  let tty: TtySession | undefined;
  undo.push(async () => {
    stdin?.close();
    tty?.close();
    c.tty = undefined;
    await rt.delete(id, true);
  });
  if (rec.Config.Tty) {
    tty = new TtySession(attachPath(p.attachSocket, created.monitorPid), { rows: tsize?.height, cols: tsize?.width }, (m) => ctx.log(`${id}: ${m}`), () => logTail(p.log));
    await tty.connect();
    // Clients waiting to attach (docker run -it) join before the process runs, so
    // they miss none of its output.
    c.tty = tty;
    c.started.fire();
  } else if (rec.Config.OpenStdin) {
    // Opened before start, so the process never reads an early EOF (docker run -i).
    stdin = new StdinPipe(p.stdin, !!rec.Config.StdinOnce);
    for (const s of c.pendingStdin.splice(0)) stdin.attach(s);
    stdin.open();
  }
  if (net) {
    // Plugged in and forwarded before the process runs its first instruction.
    await net!.plug(id, created.pid, rec.Network!, rec.Name.slice(1));
    if (primary) await net!.activate(id, primary, ports);
  }
  if (!io.start) await rt.start(id);
  return { pid: created.pid, monitorPid: created.monitorPid, ports, stdin, tty };
}

/** runtime.create, replacing a stale entry an earlier run left. */
async function createInRuntime(rt: OciRuntime, id: string, bundle: string, io: Parameters<OciRuntime['create']>[2]): ReturnType<OciRuntime['create']> {
  return rt.create(id, bundle, io).catch(async (e: BerthError) => {
    if (e.code !== 'ALREADY_EXISTS') throw e;
    await rt.delete(id, true); // a stale entry of an earlier run
    return rt.create(id, bundle, io);
  });
}

async function recordStartFailure(ctx: EngineContext, c: LiveContainer, e: unknown): Promise<void> {
  const code = exitCodeOf(e) ?? 128;
  transition(c.rec, { type: 'start-failed', exitCode: code, error: message(e), at: new Date().toISOString() });
  await ctx.save(c.rec);
  c.exited.fire(code);
}

/**
 * Before a container's first start: fill each new volume from the image's files at its
 * destination (Docker's copy-up), once. Only into an empty volume, so data is never
 * overwritten; the image path is resolved inside the root without following a symlink out.
 */
async function copyUp(ctx: EngineContext, c: LiveContainer, rootfs: string): Promise<void> {
  const pending = (c.rec.Mounts ?? []).filter((m) => m.CopyUp);
  if (pending.length === 0) return;
  for (const m of pending) {
    const src = await resolveInRoot(rootfs, m.Destination);
    const st = await fs.promises.lstat(src).catch(() => undefined);
    const empty = (await fs.promises.readdir(m.Source).catch(() => ['?'])).length === 0;
    if (st?.isDirectory() && empty) await tool('cp', ['-a', '--', src + '/.', m.Source + '/']);
    delete m.CopyUp;
  }
  await ctx.save(c.rec);
}
