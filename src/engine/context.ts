import * as path from 'node:path';
import { NotFoundError } from '../../volumes/shared/errors';
import { Lifecycle } from '../../volumes/shared/lifecycle';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import type { ImageStore } from '../images/store';
import { OciRuntime } from '../runtime/runtime';
import { readHostInfo, type HostInfo } from '../runtime/spec';
import type { BridgeNetwork } from '../network/network';
import type { PublishedPort } from '../network/rules';
import type { ContainerRecord } from './container-record';
import type { ContainerStore } from './container-store';
import type { EventBus } from './events';
import { ExecStore } from './execs';
import { HealthChecks, type HealthHooks } from './health';
import { cgroupParent, removeCgroup } from './host';
import { LiveContainer } from './live-container';
import type { Volumes } from '../volumes/volumes';

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

/** An error's message, for the daemon's log. */
export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * What every room of the engine shares: the records (store), the live containers, the
 * exec instances, the runtimes, the bridge network, and the small helpers they all use
 * (find a container, pick its runtime, save, emit an event, its cgroups). The rooms
 * (create.ts, lifecycle.ts, recovery.ts, exec.ts, filesystem.ts, queries.ts, attach.ts,
 * network-plan.ts) take one of these; engine.ts makes it and delegates.
 */
export class EngineContext {
  readonly lives = new Map<string, LiveContainer>();
  readonly execs = new ExecStore();
  readonly hostInfo: HostInfo;
  readonly cgroupBase: string;
  readonly defaultRuntime: string;
  readonly log: (msg: string) => void;
  /** The health checks of running containers (health.ts); they run through the exec path. */
  readonly health: HealthChecks;
  /** Open until Engine.close(); the rooms check it before every operation. */
  readonly life = new Lifecycle('container engine', 'restart the daemon');
  net?: BridgeNetwork;
  private readonly runtimes = new Map<string, OciRuntime>();

  constructor(
    readonly store: ContainerStore,
    readonly opts: EngineOptions,
    healthExec: HealthHooks['exec'],
  ) {
    this.hostInfo = readHostInfo();
    this.cgroupBase = cgroupParent(opts.dataRoot);
    this.defaultRuntime = opts.defaultRuntime ?? path.basename(opts.runtime.path);
    this.log = opts.log ?? ((m) => process.stderr.write(`berth engine: ${m}\n`));
    this.runtimes.set(opts.runtime.path, opts.runtime);
    this.health = new HealthChecks({ exec: healthExec, save: (rec) => this.save(rec), emit: (rec, action) => this.emit(rec, action), log: (m) => this.log(m) });
  }

  get closed(): boolean {
    return this.life.closed;
  }

  checkOpen(): void {
    this.life.check();
  }

  live(ref: string): LiveContainer {
    const rec = this.store.find(ref);
    const c = this.lives.get(rec.Id);
    if (!c) throw new NotFoundError(`No such container: ${ref}`, { hint: 'list containers with `berth ps -a`' });
    return c;
  }

  save(rec: ContainerRecord): Promise<void> {
    return this.store.save(rec);
  }

  emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    this.opts.events.emit({
      Type: 'container',
      Action: action,
      Actor: { ID: rec.Id, Attributes: { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.slice(1), ...extra } },
    });
  }

  /** The runtime binary for HostConfig.Runtime: the daemon's unless another is named. */
  runtimePath(name: string | undefined): string {
    const d = this.opts.runtime.path;
    if (!name || name === this.defaultRuntime || name === d || name === path.basename(d)) return d;
    return name;
  }

  runtimeFor(p: string | undefined): OciRuntime {
    const key = p || this.opts.runtime.path;
    let rt = this.runtimes.get(key);
    if (!rt) {
      // Same state root: `runtime list` and reconcile see every container in one place.
      rt = new OciRuntime({ path: key, root: this.opts.runtime.root });
      this.runtimes.set(key, rt);
    }
    return rt;
  }

  cgroupsPath(id: string): string {
    return `${this.cgroupBase}/${id}`;
  }

  /**
   * A container's cgroups. Not the daemon's parent cgroup, even when it is empty: removing it
   * here raced with runc creating another container's cgroup under it (mkdir …/berth-X/<id>:
   * ENOENT, seen with many containers starting at once). The engine's close removes it.
   */
  async removeCgroups(id: string): Promise<void> {
    await removeCgroup(this.cgroupsPath(id));
  }
}
