import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import {
  BerthError,
  ConflictError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
} from '../../volumes/shared/errors';
import { packDir } from '../../volumes/archive/pack';
import { isMountPoint, mountAll, unmountAll } from '../../volumes/layers/mount';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import { applyChanges } from '../images/config';
import { familiarTagged, parseRepoTag } from '../images/reference';
import type { ImageConfigFields } from '../images/service';
import type { ImageStore } from '../images/store';
import { readExit, type ExitRecord } from '../runtime/monitor';
import { lookupUser } from '../runtime/rootfs';
import { exitCodeOf, OciRuntime } from '../runtime/runtime';
import { buildSpec, readHostInfo, type HostInfo } from '../runtime/spec';
import { newState, snapshotKey, SNAPSHOT_PREFIX, ZERO_TIME, type ContainerRecord } from './container-record';
import { ContainerStore } from './container-store';
import { commitConfig } from './commit-config';
import { mergeEnv, planCreate } from './create-config';
import { checkReadable, logLimits } from './log-drivers';
import { writeEtcFiles } from './etc-files';
import { nameSettings } from '../network/dns-options';
import { checkMacAddress } from '../network/mac-address';
import { checkTmpfsTargets, execSecurity } from './security-config';
import type { EventBus } from './events';
import { ExecStore, OutputCollector, runExec, runExecTty, toExecInspect } from './execs';
import { HealthChecks, MAX_OUTPUT } from './health';
import { watchExit } from './exit-watch';
import { cgroupParent, monitorAlive, removeCgroup, removeCgroupParent } from './host';
import { planLaunch } from './launch-plan';
import { containerFilter, pruneFilter } from './list-filter';
import { LiveContainer } from './live-container';
import { readLogs } from './logs';
import { newContainerId, randomName, validateName } from './names';
import { recoverRunning, unknownExit } from './reconcile';
import { shouldRestart } from './restart-policy';
import type {
  ContainerInspect,
  ContainerService,
  ContainerSummary,
  CreateBody,
  ExecConfig,
  ExecInspect,
  LogOptions,
  OutputChunk,
  WaitCondition,
} from './service';
import { parseSignal } from './signals';
import { StdinPipe } from './stdin-pipe';
import { top, type TopResult } from './top';
import { toInspect, toSummary } from './views';
import { bindPoints, planMounts, type MountPoint } from './mounts';
import { ANONYMOUS_LABEL, anonymousName } from '../volumes/anonymous';
import type { Volumes } from '../volumes/volumes';
import { resolveInRoot } from '../runtime/rootfs';
import { checkPorts, networkMode, type BridgeNetwork, type NetworkMode } from '../network/network';
import type { PublishedPort } from '../network/rules';
import { TtySession } from './tty';
import { checkWindow, TtyAttachments, type TtyAttachOptions } from './tty-attach';
import type { ContainerAccess } from './container-access';
import { withRootfs } from './rootfs-view';

const execFileP = promisify(execFile);

export interface EngineOptions {
  /** The containers directory, e.g. <data-root>/containers. */
  root: string;
  /** The daemon's data root: names the cgroup parent (/berth-<8 hex of its sha256>). */
  dataRoot: string;
  snapshotter: Snapshotter;
  images: ImageStore;
  /** The daemon's OCI runtime; its root holds every container's runtime state. */
  runtime: OciRuntime;
  events: EventBus;
  /** Data volumes (named and anonymous `-v`, --mount type=volume); without it only binds work. */
  volumes?: Volumes;
  /** What HostConfig.Runtime says when a container names none (default: the runtime binary's name). */
  defaultRuntime?: string;
  /**
   * Opens the bridge network, given the published ports of the containers the records say
   * are running (their DNAT rules are restored in the same transaction). Without it,
   * containers get a network namespace with loopback only.
   */
  openNetwork?: (running: Array<{ id: string; name: string; ip: string; ports: PublishedPort[] }>, ownIds: string[]) => Promise<BridgeNetwork>;
  /** Errors the engine handles on its own (a failed cleanup), for the daemon's log. */
  log?: (msg: string) => void;
}

/** Default seconds `stop` waits before SIGKILL. */
const STOP_TIMEOUT = 10;
/** How long to wait for a SIGKILLed container's exit to be handled. */
const KILL_WAIT_MS = 30_000;

function isActive(rec: ContainerRecord): boolean {
  const s = rec.State.Status;
  return s === 'running' || s === 'paused' || s === 'restarting';
}

function isUp(rec: ContainerRecord): boolean {
  return rec.State.Status === 'running' || rec.State.Status === 'paused';
}

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

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The container engine: Docker's container lifecycle on runc, berth-monitor and the
 * overlay snapshotter. It wires the pieces and keeps the state machine; the pieces are
 * in their own files (records, create plan, launch plan, restart policy, views, filters,
 * top, exec, stdin, reconcile).
 *
 * States: created -> running <-> paused; running -> exited (-> restarting -> running, by
 * the restart policy); any -> removed. A run is: mount the root, build the spec, start a
 * monitor (runtime.create), open stdin, runtime.start, then watch the monitor's exit
 * record; its exit is handled once (record it, runtime delete, unmount, `die`, then
 * AutoRemove or the restart policy). The monitor outlives berthd, so `close()` leaves
 * containers running and `open()` adopts them again (see reconcile.ts).
 */
export class Engine implements ContainerService {
  private readonly lives = new Map<string, LiveContainer>();
  private readonly execs = new ExecStore();
  private readonly runtimes = new Map<string, OciRuntime>();
  private readonly hostInfo: HostInfo;
  private readonly cgroupBase: string;
  private readonly defaultRuntime: string;
  private readonly log: (msg: string) => void;
  private closed = false;
  private net?: BridgeNetwork;
  private readonly ttys = new TtyAttachments((c, action) => this.emit(c.rec, action));
  private readonly health = new HealthChecks({
    exec: (id, cmd, signal) => this.execCollect(id, cmd, { limit: MAX_OUTPUT, signal }),
    save: (rec) => this.save(rec),
    emit: (rec, action) => this.emit(rec, action),
    log: (m) => this.log(m),
  });

  private constructor(
    private readonly store: ContainerStore,
    private readonly opts: EngineOptions,
  ) {
    this.hostInfo = readHostInfo();
    this.cgroupBase = cgroupParent(opts.dataRoot);
    this.defaultRuntime = opts.defaultRuntime ?? path.basename(opts.runtime.path);
    this.log = opts.log ?? ((m) => process.stderr.write(`berth engine: ${m}\n`));
    this.runtimes.set(opts.runtime.path, opts.runtime);
  }

  /**
   * Open the engine on `root`: finish or clean what a crash left (half-made and
   * half-removed containers, orphan snapshots and runtime state), then reconcile every
   * container with what still runs (reconcile.ts), and register with the image store
   * which images containers use.
   */
  static async open(opts: EngineOptions): Promise<Engine> {
    const store = await ContainerStore.open(opts.root);
    const engine = new Engine(store, opts);
    for (const dir of store.unreadable) engine.log(`cannot read the container record in ${dir}: left alone; move it away if it is debris`);
    if (opts.openNetwork) {
      const running = store
        .all()
        .filter((r) => isUp(r) && r.Network?.Endpoint && r.Network.Ports?.length)
        .map((r) => ({ id: r.Id, name: r.Name.slice(1), ip: r.Network!.Endpoint!.IPAddress, ports: r.Network!.Ports! }));
      engine.net = await opts.openNetwork(running, store.all().map((r) => r.Id));
      for (const r of store.all()) if (r.Network?.Endpoint) engine.net.adopt(r.Network.Endpoint);
    }
    await engine.cleanLeftovers();
    await engine.reconcile();
    await engine.net?.pruneLinks(new Set(store.all().filter(isUp).map((r) => r.Id)), store.all().map((r) => r.Id));
    opts.images.setInUse((imageId) => store.all().filter((r) => r.Image === imageId).map((r) => r.Id));
    opts.volumes?.setHooks({
      usersOf: (volume) =>
        store
          .all()
          .filter((r) => (r.Mounts ?? []).some((m) => m.Type === 'volume' && m.Name === volume))
          .map((r) => ({ id: r.Id, name: r.Name.slice(1), status: r.State.Status })),
      pause: (id) => engine.pause(id),
      unpause: (id) => engine.unpause(id),
      exec: (id, cmd) => engine.execCollect(id, cmd),
    });
    return engine;
  }

  /** Stop watching; containers keep running (live restore). Twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health.close();
    for (const c of this.lives.values()) {
      c.watch?.abort();
      c.watch = undefined;
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.stdin?.close();
      c.tty?.close();
    }
    await this.net?.close(this.store.all().some(isUp)).catch((e) => this.log(`closing the network: ${message(e)}`));
    await removeCgroupParent(this.cgroupBase); // only if no container runs
  }

  // ---- create / remove ------------------------------------------------------------------

  async create(body: CreateBody, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    this.checkOpen();
    const id = newContainerId();
    const n = name !== undefined && name !== '' ? validateName(name) : randomName((x) => this.store.holderOf(x) !== undefined);
    if (!body || typeof body.Image !== 'string' || body.Image === '') {
      throw new InvalidArgumentError('no image given', { hint: 'name the image to run, e.g. berth run busybox' });
    }
    this.store.reserveName(n, id); // before any await: two creates cannot take one name
    let rec: ContainerRecord;
    let madeVolumes: string[] = [];
    let endpoint: ReturnType<BridgeNetwork['allocate']> | undefined;
    let warnings: string[] = [];
    try {
      const image = await this.opts.images.resolve(body.Image);
      const plan = planCreate(body, image.config, id, this.hostInfo);
      plan.HostConfig.Runtime = plan.HostConfig.Runtime || this.defaultRuntime;
      const mode = networkMode(plan.HostConfig.NetworkMode);
      warnings = this.portPlan(mode, plan).warnings;
      if (mode === 'host' && !body.Hostname) plan.Config.Hostname = os.hostname();
      madeVolumes = [];
      const mounts = await this.makeMounts(plan.Config, plan.HostConfig, madeVolumes);
      const mac = checkMacAddress(plan.Config.MacAddress, mode === 'bridge' && !!this.net);
      endpoint = mode === 'bridge' ? this.net?.allocate() : undefined;
      if (endpoint && mac) endpoint.MacAddress = mac;
      checkTmpfsTargets(plan.HostConfig, mounts);
      rec = {
        version: 1,
        Id: id,
        Name: `/${n}`,
        Created: new Date().toISOString(),
        Image: image.id,
        Path: plan.Path,
        Args: plan.Args,
        Config: plan.Config,
        HostConfig: plan.HostConfig,
        State: newState(),
        RestartCount: 0,
        ManualStop: false,
        MonitorPid: 0,
        Runtime: this.runtimePath(plan.HostConfig.Runtime),
        Mounts: mounts,
        Network: { Mode: mode, ...(endpoint ? { Endpoint: endpoint } : {}), Ports: [] },
      };
      const key = snapshotKey(id);
      // The snapshot first, then the directory: a crash in between leaves a snapshot
      // without a directory, which open() removes.
      await this.opts.snapshotter.prepare(key, image.topLayer, { labels: { 'berth.container/id': id } });
      try {
        await this.store.create(rec, async (p) => {
          await fs.promises.mkdir(p.rootfs, { mode: 0o755 });
          await writeEtcFiles(p, {
            hostname: rec.Config.Hostname,
            name: n,
            address: endpoint?.IPAddress,
            resolvConf: endpoint ? this.net?.resolvConf() : undefined,
            hostNetwork: mode === 'host',
            ...nameSettings(rec.HostConfig, this.net?.info().gateway),
          });
          if (rec.Config.OpenStdin && !rec.Config.Tty) await execFileP('mkfifo', ['-m', '600', p.stdin]);
        });
      } catch (e) {
        await this.opts.snapshotter.remove(key).catch(() => undefined);
        throw e;
      }
    } catch (e) {
      this.store.releaseName(n, id);
      this.net?.free(endpoint);
      // Anonymous volumes made for this create go with it; a named one made on first use stays (as Docker's does).
      for (const v of madeVolumes) await this.opts.volumes?.remove(v, { force: true }).catch(() => undefined);
      throw e;
    }
    this.lives.set(id, new LiveContainer(rec));
    this.emit(rec, 'create');
    return { Id: id, Warnings: warnings };
  }

  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
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

  /**
   * The container's mounts: volumes named on first use are made here, anonymous ones
   * (`-v /path`, an image VOLUME) get a fresh 64-hex name. `made` collects the anonymous
   * volumes made, so a failed create can remove them.
   */
  private async makeMounts(cfg: ContainerRecord['Config'], hc: ContainerRecord['HostConfig'], made: string[]): Promise<MountPoint[]> {
    const reqs = planMounts(cfg, hc, (ref) => {
      const r = this.store.find(ref);
      return r.Mounts ?? bindPoints(r.HostConfig.Binds);
    });
    const out: MountPoint[] = [];
    for (const r of reqs) {
      if (!r.ensure) {
        out.push(r.point);
        continue;
      }
      const vols = this.opts.volumes;
      if (!vols) throw new FailedPreconditionError('this engine has no volume service', { hint: 'bind a host directory instead: -v /host/path:/container/path' });
      const name = r.ensure.anonymous ? anonymousName() : r.ensure.name;
      const labels = { ...(r.ensure.labels ?? {}), ...(r.ensure.anonymous ? { [ANONYMOUS_LABEL]: '' } : {}) };
      const { info, created } = await vols.ensure(name, labels);
      if (created && r.ensure.anonymous) made.push(name);
      out.push({
        ...r.point,
        Name: name,
        Source: info.mountpoint,
        ...(r.ensure.anonymous ? { Anonymous: true } : {}),
        ...(created && !r.ensure.nocopy && !r.point.Subpath ? { CopyUp: true } : {}),
      });
    }
    return out;
  }

  /**
   * Before a container's first start: fill each new volume from the image's files at its
   * destination (Docker's copy-up), once. Only into an empty volume, so data is never
   * overwritten; the image path is resolved inside the root without following a symlink out.
   */
  private async copyUp(c: LiveContainer, rootfs: string): Promise<void> {
    const pending = (c.rec.Mounts ?? []).filter((m) => m.CopyUp);
    if (pending.length === 0) return;
    for (const m of pending) {
      const src = await resolveInRoot(rootfs, m.Destination);
      const st = await fs.promises.lstat(src).catch(() => undefined);
      const empty = (await fs.promises.readdir(m.Source).catch(() => ['?'])).length === 0;
      if (st?.isDirectory() && empty) await execFileP('cp', ['-a', '--', src + '/.', m.Source + '/']);
      delete m.CopyUp;
    }
    await this.save(c.rec);
  }

  /** `rm -v`, `run --rm`: the container's anonymous volumes, unless another container uses them too. */
  private async removeAnonymousVolumes(rec: ContainerRecord): Promise<void> {
    const vols = this.opts.volumes;
    if (!vols) return;
    for (const m of rec.Mounts ?? []) {
      if (m.Type !== 'volume' || !m.Anonymous || !m.Name) continue;
      await vols.remove(m.Name, { force: true }).catch((e) => {
        if (!(e instanceof NotFoundError) && !(e instanceof ConflictError)) this.log(`${rec.Id}: removing volume ${m.Name}: ${message(e)}`);
      });
    }
  }

  /** Kill if need be, then remove (the commit point is the rename in store.beginRemove). */
  private async removeLive(c: LiveContainer, volumes = false): Promise<void> {
    c.removing = true;
    c.canceled = true;
    try {
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      if (isUp(c.rec)) await this.killAndWait(c);
      await c.lock.run(async () => {
        if (this.store.get(c.id) !== c.rec) return; // removed meanwhile
        if (isUp(c.rec)) throw new ConflictError(`container ${c.id} is still running`, { hint: 'try again, or kill it first' });
        const p = this.store.paths(c.id);
        await unmountAll(p.rootfs); // before the rename: a busy root fails here, changing nothing
        const trash = await this.store.beginRemove(c.rec);
        this.net?.free(c.rec.Network?.Endpoint);
        this.lives.delete(c.id);
        this.execs.forget(c.id);
        // Past the commit point the container is gone; what cannot be undone now is
        // finished when the engine opens next (rm-* leftovers).
        await this.finishRemoval(c.id, trash, c.rec.Runtime).catch((e) => this.log(`${c.id}: finishing the removal: ${message(e)}`));
      });
    } catch (e) {
      c.removing = false;
      throw e;
    }
    this.emit(c.rec, 'destroy');
    if (volumes || c.rec.HostConfig.AutoRemove) await this.removeAnonymousVolumes(c.rec);
    c.exited.fire(c.rec.State.ExitCode);
    c.removed.fire(c.rec.State.ExitCode);
  }

  /** Everything after the commit point of remove; also run on open for `rm-*` leftovers. */
  private async finishRemoval(id: string, dir: string, runtimePath?: string): Promise<void> {
    // The runtime's state is usually gone already (the exit's cleanup deleted it): look
    // before spawning the runtime for nothing (~15 ms of every `run --rm`).
    const rt = this.runtimeFor(runtimePath);
    if (fs.existsSync(path.join(rt.root, id))) await rt.delete(id, true).catch(() => undefined);
    await unmountAll(path.join(dir, 'rootfs'));
    await this.opts.snapshotter.remove(snapshotKey(id)).catch((e) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
    await this.removeCgroups(id);
    await this.store.removeDir(dir);
  }

  async prune(filters: Record<string, string[]> = {}): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    this.checkOpen();
    const keep = pruneFilter(filters);
    const deleted: string[] = [];
    let space = 0;
    for (const c of [...this.lives.values()]) {
      if (isActive(c.rec) || c.removing || !keep(c.rec)) continue;
      const size = await this.opts.snapshotter.usage(snapshotKey(c.id)).then((u) => u.size, () => 0);
      try {
        await this.removeLive(c);
        deleted.push(c.id);
        space += size;
      } catch (e) {
        this.log(`prune: cannot remove ${c.id}: ${message(e)}`);
      }
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
  }

  async rename(ref: string, newName: string): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
    const n = validateName(newName);
    const old = c.rec.Name;
    if (n === old.slice(1)) {
      throw new InvalidArgumentError('Renaming a container with the same name as its current name', { hint: 'give a different name' });
    }
    await this.store.rename(c.rec, n);
    this.emit(c.rec, 'rename', { oldName: old });
  }

  // ---- lifecycle --------------------------------------------------------------------------

  async start(ref: string): Promise<boolean> {
    this.checkOpen();
    const c = this.live(ref);
    let failed: unknown;
    const started = await c.lock.run(async () => {
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
    });
    if (failed) {
      if (c.rec.HostConfig.AutoRemove) await this.removeLive(c).catch(() => undefined);
      throw failed;
    }
    return started;
  }

  /**
   * One run (lock held): mount, spec, monitor, stdin, start, watch. A failure is recorded
   * in the state (exit code 127/126/128 and Error, as Docker does) and thrown.
   */
  private async launch(c: LiveContainer): Promise<void> {
    const rec = c.rec;
    const id = c.id;
    const p = this.store.paths(id);
    const rt = this.runtimeFor(rec.Runtime);
    const mode = rec.Network?.Mode ?? 'none';
    const ep = this.net && mode === 'bridge' ? rec.Network?.Endpoint : undefined;
    try {
      await fs.promises.mkdir(p.rootfs, { recursive: true, mode: 0o755 });
      if (!(await isMountPoint(p.rootfs))) await mountAll(await this.opts.snapshotter.mounts(snapshotKey(id)), p.rootfs);
      await this.copyUp(c, p.rootfs);
      let stdin: StdinPipe | undefined;
      let tty: TtySession | undefined;
      const tsize = consoleSize(rec.HostConfig);
      try {
        const spec = buildSpec(
          { ...(await planLaunch(rec, p, this.cgroupsPath(id))), hostNetwork: mode === 'host', terminal: !!rec.Config.Tty, consoleSize: tsize },
          this.hostInfo,
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
          cgroupPath: this.cgroupsPath(id),
          logMaxSize: maxSize,
          logMaxFiles: maxFiles,
        };
        // Host ports first: a port someone holds fails the start before anything runs.
        const ports = ep ? await this.net!.publish(id, rec.Name.slice(1), this.portPlan(mode, rec).requests) : [];
        const created = await rt.create(id, p.bundle, io).catch(async (e: BerthError) => {
          if (e.code !== 'ALREADY_EXISTS') throw e;
          await rt.delete(id, true); // a stale entry of an earlier run
          return rt.create(id, p.bundle, io);
        });
        try {
          if (rec.Config.Tty) {
            tty = new TtySession(attachPath(p.attachSocket, created.monitorPid), { rows: tsize?.height, cols: tsize?.width }, (m) => this.log(`${id}: ${m}`), () => logTail(p.log));
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
          if (ep) {
            // Plugged in and forwarded before the process runs its first instruction.
            await this.net!.connect(id, created.pid, ep);
            await this.net!.activate(id, ep.IPAddress, ports);
          }
          await rt.start(id);
        } catch (e) {
          stdin?.close();
          tty?.close();
          c.tty = undefined;
          await rt.delete(id, true).catch(() => undefined);
          throw e;
        }
        c.stdin = stdin;
        c.tty = tty;
        c.run++;
        rec.State = {
          ...rec.State,
          Status: 'running',
          Running: true,
          Paused: false,
          Restarting: false,
          OOMKilled: false,
          Dead: false,
          Pid: created.pid,
          ExitCode: 0,
          Error: '',
          StartedAt: new Date().toISOString(),
        };
        rec.MonitorPid = created.monitorPid;
        if (rec.Network) rec.Network = { ...rec.Network, Ports: ports };
      } catch (e) {
        if (ep) await this.net!.deactivate(id).catch(() => undefined);
        await unmountAll(p.rootfs).catch(() => undefined);
        throw e;
      }
    } catch (e) {
      await this.recordStartFailure(c, e);
      throw e;
    }
    this.watch(c);
    this.health.begin(c);
    await this.save(rec);
    this.emit(rec, 'start');
  }

  private async recordStartFailure(c: LiveContainer, e: unknown): Promise<void> {
    const code = exitCodeOf(e) ?? 128;
    c.rec.State = {
      ...c.rec.State,
      Status: 'exited',
      Running: false,
      Paused: false,
      Restarting: false,
      Pid: 0,
      ExitCode: code,
      Error: message(e),
      FinishedAt: new Date().toISOString(),
    };
    c.rec.MonitorPid = 0;
    await this.save(c.rec);
    c.exited.fire(code);
  }

  /** Watch the current run's exit record; its exit is handled once, by onExit. */
  private watch(c: LiveContainer): void {
    const run = c.run;
    const ac = new AbortController();
    c.watch?.abort();
    c.watch = ac;
    const exitFile = this.store.paths(c.id).exitFile;
    c.runEnded = watchExit(exitFile, ac.signal).then(
      (exit) => {
        if (c.run === run) c.outputEnded.fire();
        return this.onExit(c, run, exit);
      },
      (e) => {
        if (ac.signal.aborted) return;
        // An unreadable exit record: the run is over, its status unknown.
        this.log(`${c.id}: ${message(e)}`);
        return this.onExit(c, run, unknownExit());
      },
    ).catch((e) => this.log(`${c.id}: handling the exit failed: ${message(e)}`));
  }

  /**
   * A run ended: record it, delete it from the runtime, unmount, tell (`die`), then
   * AutoRemove or the restart policy. `immediate`: restart without backoff (daemon start).
   */
  private async onExit(c: LiveContainer, run: number, exit: ExitRecord, immediate = false): Promise<void> {
    const decision = await c.lock.run(async () => {
      const rec = c.rec;
      if (c.run !== run || !isUp(rec)) return undefined; // handled already
      c.watch = undefined;
      this.health.end(c);
      c.stdin?.close();
      c.stdin = undefined;
      c.tty?.close();
      c.tty = undefined;
      await this.cleanupRun(c);
      const ranMs = Date.parse(exit.finishedAt) - Date.parse(rec.State.StartedAt);
      const restart =
        !c.removing &&
        !this.closed &&
        !rec.HostConfig.AutoRemove &&
        shouldRestart(rec.HostConfig.RestartPolicy, { exitCode: exit.exitCode, restartCount: rec.RestartCount, manualStop: rec.ManualStop, canceled: c.canceled });
      rec.State = {
        ...rec.State,
        Status: restart ? 'restarting' : 'exited',
        Running: restart,
        Paused: false,
        Restarting: restart,
        Pid: 0,
        ExitCode: exit.exitCode,
        OOMKilled: exit.oomKilled,
        Error: '',
        FinishedAt: exit.finishedAt,
      };
      rec.MonitorPid = 0;
      if (restart) rec.RestartCount++;
      await this.save(rec).catch((e) => this.log(`${c.id}: cannot save the record: ${message(e)}`));
      if (exit.oomKilled) this.emit(rec, 'oom');
      this.emit(rec, 'die', { exitCode: String(exit.exitCode) });
      c.exited.fire(exit.exitCode);
      return { restart, delay: immediate ? 0 : c.backoff.next(Number.isFinite(ranMs) ? ranMs : 0) };
    });
    if (!decision) return;
    if (decision.restart) this.scheduleRestart(c, decision.delay);
    else if (c.rec.HostConfig.AutoRemove && !c.removing && !this.closed) {
      await this.removeLive(c).catch((e) => this.log(`${c.id}: auto-remove failed: ${message(e)}`));
    }
  }

  /** What a finished run leaves: runtime state, the root mount, cgroups. */
  private async cleanupRun(c: LiveContainer): Promise<void> {
    const p = this.store.paths(c.id);
    if (this.net && c.rec.Network?.Endpoint) await this.net.deactivate(c.id).catch((e) => this.log(`${c.id}: network: ${message(e)}`));
    if (c.rec.Network?.Ports?.length) c.rec.Network = { ...c.rec.Network, Ports: [] };
    await this.runtimeFor(c.rec.Runtime).delete(c.id, true).catch((e: BerthError) => {
      if (e.code !== 'NOT_FOUND') this.log(`${c.id}: runtime delete: ${e.message}`);
    });
    await unmountAll(p.rootfs).catch((e) => this.log(`${c.id}: unmount: ${message(e)}`));
    await this.removeCgroups(c.id);
  }

  private scheduleRestart(c: LiveContainer, delay: number): void {
    if (this.closed) return;
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      void c.lock
        .run(async () => {
          if (this.closed || c.removing || c.canceled || c.rec.State.Status !== 'restarting') return;
          await this.launch(c);
        })
        .catch((e) => this.log(`${c.id}: restart failed: ${message(e)}`));
    }, delay);
  }

  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<boolean> {
    this.checkOpen();
    const c = this.live(ref);
    const rec = c.rec;
    const sig = parseSignal(opts.signal || rec.Config.StopSignal || 'SIGTERM');
    if (rec.State.Status === 'restarting') {
      c.canceled = true; // a restart that has not begun will not
      const held = await c.lock.run(async () => {
        if (rec.State.Status !== 'restarting') return false; // it came up meanwhile: stop it below
        if (c.restartTimer) clearTimeout(c.restartTimer);
        c.restartTimer = undefined;
        rec.ManualStop = true;
        rec.State = { ...rec.State, Status: 'exited', Running: false, Restarting: false };
        await this.save(rec);
        return true;
      });
      if (held) {
        this.emit(rec, 'stop');
        return true;
      }
    }
    if (!isUp(rec)) return false;
    c.canceled = true;
    rec.ManualStop = true;
    await this.save(rec);
    const ended = c.runEnded;
    const timeout = opts.timeout ?? rec.Config.StopTimeout ?? STOP_TIMEOUT;
    await this.signal(c, sig.name, false, true);
    if (!(await within(ended, timeout < 0 ? -1 : timeout * 1000))) {
      await this.signal(c, 'SIGKILL', true, true);
      if (!(await within(ended, KILL_WAIT_MS))) {
        throw new InternalError(`container ${c.id} did not stop after SIGKILL`, { hint: `see its runtime log ${this.store.paths(c.id).runtimeLog}` });
      }
    }
    this.emit(rec, 'stop');
    return true;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
    const sig = parseSignal(signal || 'SIGKILL');
    if (!isUp(c.rec)) {
      throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first; only a running container can be signalled' });
    }
    const stopSignal = parseSignal(c.rec.Config.StopSignal || 'SIGTERM');
    // Docker: killing with the stop signal is a stop (no restart); any kill is a manual stop.
    if (sig.number === stopSignal.number) c.canceled = true;
    c.rec.ManualStop = true;
    await this.save(c.rec);
    const ended = c.runEnded;
    await this.signal(c, sig.name, sig.number === 9, sig.number === 9 || sig.number === stopSignal.number);
    if (sig.number === 9) await within(ended, KILL_WAIT_MS);
  }

  /** Send a signal (to every process with `all`), thawing a paused container so it can act on it. */
  private async signal(c: LiveContainer, name: string, all: boolean, thaw: boolean): Promise<void> {
    const rt = this.runtimeFor(c.rec.Runtime);
    try {
      await rt.kill(c.id, name, all);
    } catch (e) {
      if ((e as BerthError).code !== 'NOT_FOUND' && (e as BerthError).code !== 'CONFLICT') throw e; // gone already
    }
    if (thaw && c.rec.State.Status === 'paused') await rt.resume(c.id).catch(() => undefined);
    this.emit(c.rec, 'kill', { signal: String(parseSignal(name).number) });
  }

  private async killAndWait(c: LiveContainer): Promise<void> {
    const ended = c.runEnded;
    await this.signal(c, 'SIGKILL', true, true);
    if (!(await within(ended, KILL_WAIT_MS))) {
      throw new InternalError(`container ${c.id} did not die after SIGKILL`, { hint: 'check the host for stuck processes (D state) and try again' });
    }
  }

  async restart(ref: string, opts: { timeout?: number } = {}): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
    await this.stop(c.id, opts);
    await this.start(c.id);
    this.emit(c.rec, 'restart');
  }

  async pause(ref: string): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
    await c.lock.run(async () => {
      if (c.rec.State.Status === 'paused') throw new ConflictError(`Container ${c.id} is already paused`, { hint: 'unpause it with berth unpause' });
      if (c.rec.State.Status !== 'running') throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
      await this.runtimeFor(c.rec.Runtime).pause(c.id);
      this.health.end(c);
      c.rec.State = { ...c.rec.State, Status: 'paused', Paused: true };
      await this.save(c.rec);
    });
    this.emit(c.rec, 'pause');
  }

  async unpause(ref: string): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
    await c.lock.run(async () => {
      if (c.rec.State.Status !== 'paused') throw new ConflictError(`Container ${c.id} is not paused`, { hint: 'only a paused container can be unpaused' });
      await this.runtimeFor(c.rec.Runtime).resume(c.id);
      c.rec.State = { ...c.rec.State, Status: 'running', Paused: false };
      this.health.resume(c);
      await this.save(c.rec);
    });
    this.emit(c.rec, 'unpause');
  }

  async wait(ref: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    this.checkOpen();
    const c = this.live(ref);
    let code: number;
    if (condition === 'removed') code = await c.removed.next(signal);
    else if (condition === 'next-exit' || isActive(c.rec)) code = await c.exited.next(signal);
    else code = c.rec.State.ExitCode;
    return { StatusCode: code, Error: c.rec.State.Error ? { Message: c.rec.State.Error } : null };
  }

  // ---- queries ----------------------------------------------------------------------------

  async list(opts: { all?: boolean; limit?: number; size?: boolean; filters?: Record<string, string[]> } = {}): Promise<ContainerSummary[]> {
    this.checkOpen();
    const keep = await containerFilter(opts.filters ?? {}, {
      resolveImage: (r) => this.opts.images.inspect(r).then((i) => i.Id, () => undefined),
      findContainer: (r) => this.store.find(r),
    });
    const limit = opts.limit && opts.limit > 0 ? opts.limit : 0;
    let recs = this.store.all().filter((r) => (opts.all || limit > 0 || isActive(r)) && keep(r));
    recs.sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created) || a.Id.localeCompare(b.Id));
    if (limit) recs = recs.slice(0, limit);
    const now = Date.now();
    const out: ContainerSummary[] = [];
    for (const r of recs) {
      const s = toSummary(r, now);
      if (opts.size) {
        s.SizeRw = await this.opts.snapshotter.usage(snapshotKey(r.Id)).then((u) => u.size, () => 0);
        s.SizeRootFs = s.SizeRw + (await this.opts.images.inspect(r.Image).then((i) => i.Size, () => 0));
      }
      out.push(s);
    }
    return out;
  }

  async inspect(ref: string): Promise<ContainerInspect> {
    this.checkOpen();
    const c = this.live(ref);
    const p = this.store.paths(c.id);
    const graph: Record<string, string> = { MergedDir: p.rootfs };
    try {
      const key = snapshotKey(c.id);
      const upper = await this.opts.snapshotter.upperDir(key);
      graph.UpperDir = upper;
      graph.WorkDir = path.join(path.dirname(upper), 'work');
      for (const m of await this.opts.snapshotter.mounts(key)) {
        const lower = m.options.find((o) => o.startsWith('lowerdir='));
        if (lower) graph.LowerDir = lower.slice('lowerdir='.length);
      }
    } catch {
      // the snapshot is gone (being removed): show what we know
    }
    return toInspect(c.rec, p, graph, this.execs.ofContainer(c.id));
  }

  async top(ref: string, psArgs?: string): Promise<TopResult> {
    this.checkOpen();
    const c = this.live(ref);
    if (!isUp(c.rec)) throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
    return top(this.runtimeFor(c.rec.Runtime), c.id, psArgs);
  }

  // ---- I/O --------------------------------------------------------------------------------

  logs(ref: string, opts: LogOptions): AsyncIterable<OutputChunk> {
    this.checkOpen();
    const c = this.live(ref);
    checkReadable(c.rec.HostConfig.LogConfig);
    const follow = !!opts.follow && isUp(c.rec);
    // Follow ends when the run does: the monitor has written the whole log by then.
    const stop = follow ? c.exited.next(opts.signal).then(() => undefined) : undefined;
    stop?.catch(() => undefined);
    const entries = readLogs(this.store.paths(c.id).log, {
      follow,
      tail: opts.tail,
      since: opts.since || undefined,
      until: opts.until || undefined,
      stdout: opts.stdout,
      stderr: opts.stderr,
      stop,
      signal: opts.signal,
    });
    return chunks(entries);
  }

  async attach(
    ref: string,
    opts: { stdin?: Readable; stdout?: boolean; stderr?: boolean; logs?: boolean; stream?: boolean; signal?: AbortSignal },
  ): Promise<AsyncIterable<OutputChunk>> {
    this.checkOpen();
    const c = this.live(ref);
    if (c.rec.State.Status === 'paused') throw new ConflictError(`container ${c.id} is paused, unpause it first`, { hint: 'berth unpause it' });
    if (c.rec.State.Status === 'restarting') {
      throw new ConflictError(`container ${c.id} is restarting, wait until the container is running`, { hint: 'try again in a moment' });
    }
    if (opts.stdin && c.rec.Config.OpenStdin) {
      if (c.stdin) c.stdin.attach(opts.stdin);
      else if (!isUp(c.rec)) {
        // `docker run -i`: attach, then start. A client that leaves before the start is dropped.
        const input = opts.stdin;
        c.pendingStdin.push(input);
        opts.signal?.addEventListener('abort', () => {
          const i = c.pendingStdin.indexOf(input);
          if (i >= 0) c.pendingStdin.splice(i, 1);
        }, { once: true });
      }
    }
    if (opts.logs) checkReadable(c.rec.HostConfig.LogConfig);
    this.emit(c.rec, 'attach');
    const stream = opts.stream !== false;
    if (!opts.logs && !stream) return chunks((async function* () {})());
    // Live output is what is written from now on: an attach made before start sees the
    // whole run, and one made later does not replay history (unless `logs`).
    const since = opts.logs ? undefined : Date.now() / 1000;
    const ends = stream ? [c.exited.next(opts.signal), c.outputEnded.next(opts.signal)] : [];
    for (const e of ends) e.catch(() => undefined); // the loser of the race may reject on abort
    const stop = stream ? Promise.race(ends).then(() => undefined) : undefined;
    stop?.catch(() => undefined);
    return chunks(
      readLogs(this.store.paths(c.id).log, { follow: stream, since, stdout: opts.stdout, stderr: opts.stderr, stop, signal: opts.signal }),
    );
  }

  /** A tty container's terminal: see tty-attach.ts. */
  async attachTty(ref: string, opts: TtyAttachOptions): Promise<'detached' | 'ended'> {
    this.checkOpen();
    return this.ttys.attach(this.live(ref), opts);
  }

  async attachTtyCheck(ref: string, detachKeys?: string, size?: { rows?: number; cols?: number }): Promise<{ detachKeys: string }> {
    this.checkOpen();
    return this.ttys.check(this.live(ref), detachKeys, size);
  }

  async resize(ref: string, rows: number, cols: number, clientId?: string): Promise<void> {
    this.checkOpen();
    this.ttys.resize(this.live(ref), rows, cols, clientId);
  }

  async execResize(execId: string, rows: number, cols: number): Promise<void> {
    this.checkOpen();
    checkWindow(rows, cols);
    const e = this.execs.get(execId);
    if (e.resize) e.resize(rows, cols);
    else if (e.ExitCode === null) e.pendingSize = { rows, cols };
  }

  async execCreate(ref: string, cfg: ExecConfig): Promise<{ Id: string }> {
    this.checkOpen();
    const c = this.live(ref);
    this.checkExecutable(c);
    const e = this.execs.create(c.id, cfg);
    this.emit(c.rec, `exec_create: ${e.config.Cmd.join(' ')}`, { execID: e.ID });
    return { Id: e.ID };
  }

  /** `kill` (berthd's own callers: health checks) SIGKILLs the process when aborted. */
  async execStart(execId: string, io: { stdin?: Readable; stdout?: Writable; stderr?: Writable }, kill?: AbortSignal): Promise<number> {
    this.checkOpen();
    const e = this.execs.get(execId);
    const c = this.lives.get(e.ContainerID);
    if (!c) throw new ConflictError(`the container of exec ${execId} is gone`, { hint: 'exec in an existing container' });
    this.checkExecutable(c);
    this.execs.claim(execId);
    const rec = c.rec;
    const p = this.store.paths(c.id);
    const user = await lookupUser(p.rootfs, e.config.User || rec.Config.User || '');
    const proc = {
      args: e.config.Cmd,
      env: mergeEnv(rec.Config.Env, e.config.Env ?? []),
      cwd: e.config.WorkingDir || rec.Config.WorkingDir || '/',
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
      ...execSecurity(rec.HostConfig, !!e.config.Privileged),
    };
    e.Running = true;
    this.emit(rec, `exec_start: ${e.config.Cmd.join(' ')}`, { execID: e.ID });
    let code: number;
    try {
      if (e.config.Tty) {
        const cs = Array.isArray(e.config.ConsoleSize) ? e.config.ConsoleSize : [];
        const size = e.pendingSize ?? { rows: cs[0] > 0 && cs[0] <= 10000 ? cs[0] : 24, cols: cs[1] > 0 && cs[1] <= 10000 ? cs[1] : 80 };
        code = await runExecTty(this.runtimeFor(rec.Runtime), c.id, proc, { stdin: e.config.AttachStdin ? io.stdin : undefined, output: io.stdout }, size, (pid, resize) => {
          e.Pid = pid;
          e.resize = resize;
          // One that came while the pty was being made (after `size` was read) applies now.
          if (e.pendingSize && (e.pendingSize.rows !== size.rows || e.pendingSize.cols !== size.cols)) resize(e.pendingSize.rows, e.pendingSize.cols);
        });
      } else code = await runExec(
        this.runtimeFor(rec.Runtime),
        c.id,
        proc,
        { stdin: e.config.AttachStdin ? io.stdin : undefined, stdout: e.config.AttachStdout === false ? undefined : io.stdout, stderr: e.config.AttachStderr === false ? undefined : io.stderr },
        (pid) => (e.Pid = pid),
        kill,
      );
    } finally {
      e.Running = false;
      e.resize = undefined;
    }
    e.ExitCode = code;
    this.emit(rec, 'exec_die', { execID: e.ID, exitCode: String(code) });
    return code;
  }

  /**
   * Run `cmd` in a running container through the exec path (events and all) and collect
   * its output (the first `limit` bytes, then "..."); the exec is forgotten after. For
   * berthd's own execs: health checks, volume snapshot hooks.
   */
  private async execCollect(id: string, cmd: string[], opts: { limit?: number; signal?: AbortSignal } = {}): Promise<{ code: number; output: string }> {
    const { Id } = await this.execCreate(id, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const out = new OutputCollector(opts.limit);
    try {
      const code = await this.execStart(Id, { stdout: out.writable(), stderr: out.writable() }, opts.signal);
      return { code, output: out.text() };
    } finally {
      this.execs.remove(Id);
    }
  }

  async execInspect(execId: string): Promise<ExecInspect> {
    this.checkOpen();
    return toExecInspect(this.execs.get(execId));
  }

  private checkExecutable(c: LiveContainer): void {
    if (c.rec.State.Status === 'paused') {
      throw new ConflictError(`Container ${c.id} is paused, unpause the container before exec`, { hint: 'berth unpause it' });
    }
    if (c.rec.State.Status !== 'running') throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
  }

  // ---- filesystem -------------------------------------------------------------------------

  async commit(
    ref: string,
    opts: { repo?: string; tag?: string; comment?: string; author?: string; changes?: string[]; pause?: boolean; config?: Partial<ImageConfigFields> },
  ): Promise<{ Id: string }> {
    this.checkOpen();
    const c = this.live(ref);
    let names: string[] = [];
    if (opts.repo) names = [familiarTagged(parseRepoTag(opts.repo, opts.tag))];
    else if (opts.tag) throw new InvalidArgumentError('a tag needs a repository name', { hint: 'give repo:tag, e.g. myimage:v1' });
    const config = applyChanges(commitConfig(c.rec, opts.config ?? {}), opts.changes ?? []);
    const rt = this.runtimeFor(c.rec.Runtime);
    const { id } = await c.lock.run(async () => {
      const pause = opts.pause !== false && c.rec.State.Status === 'running';
      if (pause) await rt.pause(c.id); // a consistent snapshot of the files
      try {
        const tar = packDir(await this.opts.snapshotter.upperDir(snapshotKey(c.id)), { overlayWhiteouts: true });
        try {
          return await this.opts.images.commitImageLayer(c.rec.Image, tar, {
            names,
            config,
            createdBy: [c.rec.Path, ...c.rec.Args].join(' '),
            comment: opts.comment,
            author: opts.author,
            container: c.id,
            containerConfig: c.rec.Config,
          });
        } finally {
          tar.destroy();
        }
      } finally {
        if (pause) await rt.resume(c.id).catch((e) => this.log(`${c.id}: unpause after commit: ${message(e)}`));
      }
    });
    this.emit(c.rec, 'commit', { comment: opts.comment ?? '', imageID: id, imageRef: names[0] ?? '' });
    return { Id: id };
  }

  async export(ref: string, out: Writable): Promise<void> {
    this.checkOpen();
    const c = this.live(ref);
    await c.lock.run(async () => {
      const p = this.store.paths(c.id);
      const mounted = await isMountPoint(p.rootfs);
      if (!mounted) await mountAll(await this.opts.snapshotter.mounts(snapshotKey(c.id)), p.rootfs);
      try {
        await pipeline(packDir(p.rootfs), out);
      } finally {
        if (!mounted) await unmountAll(p.rootfs);
      }
    });
    this.emit(c.rec, 'export');
  }

  // ---- open: leftovers and reconcile ---------------------------------------------------

  /** Finish removals and undo creates a crash interrupted; drop orphans of both. */
  private async cleanLeftovers(): Promise<void> {
    for (const { id, dir } of this.store.leftovers.removing) {
      await this.finishRemoval(id, dir).catch((e) => this.log(`cannot finish removing ${id}: ${message(e)}`));
    }
    for (const { dir } of this.store.leftovers.creating) {
      await unmountAll(path.join(dir, 'rootfs')).catch(() => undefined);
      await this.store.removeDir(dir).catch((e) => this.log(`cannot remove ${dir}: ${message(e)}`));
    }
    const orphans: string[] = [];
    await this.opts.snapshotter.walk((info) => {
      if (!info.name.startsWith(SNAPSHOT_PREFIX)) return;
      const id = info.name.slice(SNAPSHOT_PREFIX.length);
      if (!fs.existsSync(path.join(this.store.root, id))) orphans.push(info.name);
    });
    for (const key of orphans) await this.opts.snapshotter.remove(key).catch((e) => this.log(`cannot remove snapshot ${key}: ${message(e)}`));
    const known = await this.opts.runtime.list().catch(() => []);
    for (const s of known) {
      if (/^[0-9a-f]{64}$/.test(s.id) && !fs.existsSync(path.join(this.store.root, s.id))) {
        await this.opts.runtime.delete(s.id, true).catch(() => undefined);
        await this.removeCgroups(s.id);
      }
    }
  }

  /** Bring every record in line with what still runs (reconcile.ts); restart per policy. */
  private async reconcile(): Promise<void> {
    const known = new Set((await this.opts.runtime.list().catch(() => [])).map((s) => s.id));
    for (const rec of this.store.all()) {
      const c = new LiveContainer(rec);
      this.lives.set(rec.Id, c);
      try {
        await this.reconcileOne(c, known.has(rec.Id) || rec.Runtime !== this.opts.runtime.path);
      } catch (e) {
        this.log(`${rec.Id}: reconcile: ${message(e)}`);
      }
    }
  }

  /** `inRuntime`: the runtime may have state of it (one `list` for all, at open). */
  private async reconcileOne(c: LiveContainer, inRuntime: boolean): Promise<void> {
    const rec = c.rec;
    const p = this.store.paths(c.id);
    const rt = this.runtimeFor(rec.Runtime);
    if (isUp(rec)) {
      c.run = 1;
      const exit = await readExit(p.exitFile).catch(() => undefined);
      const r = recoverRunning(exit, await monitorAlive(rec.MonitorPid, c.id));
      if (r.kind === 'adopt') {
        const st = await rt.state(c.id).catch(() => undefined);
        const paused = st?.status === 'paused';
        if (paused !== rec.State.Paused) {
          rec.State = { ...rec.State, Status: paused ? 'paused' : 'running', Paused: paused };
          await this.save(rec);
        }
        if (rec.Config.Tty) {
          // The monitor still holds the pty: connect again, and rebuild the screen from the log.
          const size = consoleSize(rec.HostConfig);
          const tty = new TtySession(attachPath(p.attachSocket, rec.MonitorPid), size ? { rows: size.height, cols: size.width } : {}, (m) => this.log(`${c.id}: ${m}`), () => logTail(p.log));
          try {
            await tty.connect();
            tty.prime(await logTail(p.log));
            c.tty = tty;
          } catch (e) {
            tty.close();
            this.log(`${c.id}: cannot reconnect to its terminal: ${message(e)}`);
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
        this.watch(c);
        if (!paused) this.health.resume(c);
        return;
      }
      // Dead while we were away; kill what may remain of a lost one (its monitor is gone).
      if (r.kind === 'lost') await rt.kill(c.id, 'SIGKILL', true).catch(() => undefined);
      await this.onExit(c, c.run, r.exit, true);
      return;
    }
    // Not running by the record: nothing of it may run or stay mounted.
    if (inRuntime) await rt.delete(c.id, true).catch(() => undefined);
    if (rec.Network?.Ports?.length) {
      rec.Network = { ...rec.Network, Ports: [] };
      await this.save(rec);
    }
    await unmountAll(p.rootfs).catch((e) => this.log(`${c.id}: unmount: ${message(e)}`));
    await this.removeCgroups(c.id);
    if (rec.State.StartedAt === ZERO_TIME) return; // created, never started: stays created
    if (rec.HostConfig.AutoRemove) {
      await this.removeLive(c); // it exited while its removal was due
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
        await this.launch(c);
      }).catch((e) => this.log(`${c.id}: restart at daemon start failed: ${message(e)}`));
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** The ports a container publishes (checked; CONFLICT-free until reserved at start). */
  private portPlan(mode: NetworkMode, c: Pick<ContainerRecord, 'Config' | 'HostConfig'>): ReturnType<typeof checkPorts> {
    const hc = c.HostConfig;
    return checkPorts(mode, c.Config.ExposedPorts as Record<string, unknown> | undefined, hc.PortBindings, !!hc.PublishAllPorts);
  }

  /**
   * The iptables rules a container made from `body` would get, without making it
   * (`berth run --dry-run`): its address would be the next free one, a random port
   * is shown as such.
   */
  async networkPlan(body: CreateBody): Promise<{ Rules: string[]; Warnings: string[] }> {
    this.checkOpen();
    const image = await this.opts.images.resolve(body?.Image);
    const plan = planCreate(body, image.config, '0'.repeat(64));
    const mode = networkMode(plan.HostConfig.NetworkMode);
    const { requests, warnings } = this.portPlan(mode, plan);
    if (!this.net || mode !== 'bridge') return { Rules: [], Warnings: warnings };
    const ports = requests.map((r) => ({ proto: r.proto, hostIp: r.hostIp, hostPort: r.hostPortLo, containerPort: r.containerPort }));
    const rules = this.net.planFor(this.net.peekAddress(), ports).map((l) => l.replace(/--dport 0\b/, '--dport RANDOM'));
    return { Rules: rules, Warnings: warnings };
  }

  /** The bridge network, for `berth info`. */
  /** What the side modules (archive, stats, update, changes, df) may use: see container-access.ts. */
  access(): ContainerAccess {
    return {
      record: (ref) => this.store.find(ref),
      all: () => this.store.all(),
      paths: (id) => this.store.paths(id),
      cgroupsPath: (id) => this.cgroupsPath(id),
      locked: (ref, fn) => {
        const c = this.live(ref);
        return c.lock.run(() => fn(c.rec));
      },
      save: (rec) => this.save(rec),
      withRootfs: (ref, fn) => withRootfs(this.live(ref), this.store.paths(this.live(ref).id).rootfs, this.opts.snapshotter, fn),
      runtimeFor: (rec) => this.runtimeFor(rec.Runtime),
      emit: (rec, action, extra) => this.emit(rec, action, extra),
      snapshotter: this.opts.snapshotter,
      volumes: this.opts.volumes,
    };
  }

  networkInfo(): ReturnType<BridgeNetwork['info']> | undefined {
    return this.net?.info();
  }

  private live(ref: string): LiveContainer {
    const rec = this.store.find(ref);
    const c = this.lives.get(rec.Id);
    if (!c) throw new NotFoundError(`No such container: ${ref}`, { hint: 'list containers with `berth ps -a`' });
    return c;
  }

  private cgroupsPath(id: string): string {
    return `${this.cgroupBase}/${id}`;
  }

  /** A container's cgroups, and the daemon's parent cgroup once it is empty. */
  private async removeCgroups(id: string): Promise<void> {
    await removeCgroup(this.cgroupsPath(id));
    await removeCgroupParent(this.cgroupBase);
  }

  /** The runtime binary for HostConfig.Runtime: the daemon's unless another is named. */
  private runtimePath(name: string | undefined): string {
    const d = this.opts.runtime.path;
    if (!name || name === this.defaultRuntime || name === d || name === path.basename(d)) return d;
    return name;
  }

  private runtimeFor(p: string | undefined): OciRuntime {
    const key = p || this.opts.runtime.path;
    let rt = this.runtimes.get(key);
    if (!rt) {
      // Same state root: `runtime list` and reconcile see every container in one place.
      rt = new OciRuntime({ path: key, root: this.opts.runtime.root });
      this.runtimes.set(key, rt);
    }
    return rt;
  }

  private save(rec: ContainerRecord): Promise<void> {
    return this.store.save(rec);
  }

  private emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    this.opts.events.emit({
      Type: 'container',
      Action: action,
      Actor: { ID: rec.Id, Attributes: { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.slice(1), ...extra } },
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new FailedPreconditionError('the container engine is closed', { hint: 'restart the daemon' });
  }
}

async function* chunks(entries: AsyncIterable<{ stream: 'stdout' | 'stderr'; log: Buffer; time: string }>): AsyncGenerator<OutputChunk> {
  for await (const e of entries) yield { stream: e.stream, data: e.log, time: e.time };
}

/** HostConfig.ConsoleSize ([height, width], Docker's) as the pty's first size. */
function consoleSize(hc: ContainerRecord['HostConfig']): { height: number; width: number } | undefined {
  const cs = hc.ConsoleSize as unknown;
  if (!Array.isArray(cs) || cs.length !== 2) return undefined;
  const [h, w] = cs.map(Number);
  return h > 0 && w > 0 && h <= 10000 && w <= 10000 ? { height: h, width: w } : undefined;
}

/**
 * The monitor's attach socket, reachable whatever the length of the container's path
 * (sun_path holds 107 bytes): through the monitor's working directory, which it sets to
 * the socket's directory.
 */
function attachPath(socket: string, monitorPid: number): string {
  return Buffer.byteLength(socket) < 100 ? socket : `/proc/${monitorPid}/cwd/${path.basename(socket)}`;
}

/** A tty container's recent output from its log (the last 1000 entries), to rebuild its screen. */
async function logTail(log: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const e of readLogs(log, { tail: 1000 })) parts.push(e.log);
  return Buffer.concat(parts);
}
