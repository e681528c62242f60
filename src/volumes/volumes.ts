import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openCallerFile, type CallerFile } from '../../volumes/shared/caller-file';
import { ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';
import { readChangesetHeader } from '../../volumes/archive/changeset';
import { Lifecycle } from '../../volumes/shared/lifecycle';
import { checkName } from '../../volumes/drivers/names';
import type { PoolStatus, SnapshotInfo, SnapshotMetadata, VolumeDriver, VolumeInfo } from '../../volumes/drivers/driver';
import { ANONYMOUS_LABEL, anonymousName } from './anonymous';
import { VolumeGate } from './gate';
import { cloneForMount, clonesOf, orphanClones, parseSnapshotRef, refString, refuseWithClones, resolveSnapshot, type SnapshotRef } from './mount-clones';
import type { SnapshotHooks, Volume, VolumeCreateBody, VolumePool, VolumeService, VolumeSnapshot } from './service';

/**
 * The in-process VolumeService (the contract is service.ts): Docker's volumes over one
 * VolumeDriver (volumes/drivers/), plus what needs to know about containers: who uses a
 * volume (remove and restore refuse while they do), and freezing them for a snapshot.
 */

/** A --pre hook failed in a container: the snapshot was not taken. */
export class HookFailedError extends FailedPreconditionError {
  constructor(
    readonly container: string,
    readonly hookExitCode: number,
    command: string,
    output: string,
  ) {
    super(`pre-snapshot hook ${JSON.stringify(command)} failed in container ${container} (exit code ${hookExitCode})${output.trim() ? `: ${output.trim().slice(-2000)}` : ''}`, {
      hint: `no snapshot was taken; check the command with: berth exec ${container} sh -c ${JSON.stringify(command)}`,
    });
  }
}

/** A container that uses a volume, as the engine tells it. */
export interface VolumeUser {
  id: string;
  name: string;
  status: string;
}

/** What the volume service needs from the container engine (set once the engine is open). */
export interface ContainerHooks {
  usersOf(volume: string): VolumeUser[];
  /** Whether a container with this id exists (clones made on mount for one that does not are debris). */
  exists(id: string): boolean;
  pause(id: string): Promise<void>;
  unpause(id: string): Promise<void>;
  /** Run `cmd` in a running container; its exit code and output (stdout and stderr). */
  exec(id: string, cmd: string[]): Promise<{ code: number; output: string }>;
}

function isUp(u: VolumeUser): boolean {
  return u.status === 'running' || u.status === 'paused' || u.status === 'restarting';
}

/** `-o size=10G` and friends: the only driver option berth knows is size. */
function sizeOpt(opts: Record<string, string> | undefined): number | undefined {
  for (const [k, v] of Object.entries(opts ?? {})) {
    if (k !== 'size') throw new InvalidArgumentError(`unknown volume option ${JSON.stringify(k)}`, { hint: 'the only option is size, e.g. -o size=10G' });
    const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
    if (!m) throw new InvalidArgumentError(`invalid volume size ${JSON.stringify(v)}`, { hint: 'give a size like 512M or 10G' });
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
    return Math.floor(Number(m[1]) * mult);
  }
  return undefined;
}

export class Volumes implements VolumeService {
  private hooks: ContainerHooks = {
    usersOf: () => [],
    exists: () => true,
    pause: async () => undefined,
    unpause: async () => undefined,
    exec: async () => {
      throw new FailedPreconditionError('no container engine to run snapshot hooks in');
    },
  };

  private opening?: Promise<VolumeDriver>;
  private opened?: VolumeDriver;
  private hooksSet = false;
  /** The one collection of orphan clones, before the first use once the engine is open. */
  private collected?: Promise<void>;
  private readonly life = new Lifecycle('volume service', 'restart the daemon');
  /**
   * Per-volume gates (gate.ts): remove, restore, rename, snapshot and snapshot removal check
   * their users under the volume's gate; the engine makes a container a user under it.
   */
  readonly gate = new VolumeGate();
  /** Told, under the volume's gate, when a volume is removed or renamed (the scheduler drops or moves its schedule). */
  private readonly removalWatchers: ((name: string, renamedTo?: string) => Promise<void>)[] = [];

  /**
   * `open` opens the driver on first use, not at daemon start: a daemon that never sees a
   * volume never mounts a btrfs pool (or ties a loop device). `plannedDriver` is the name
   * it will have, for /info before then.
   */
  constructor(
    private readonly open: () => Promise<VolumeDriver>,
    private readonly plannedDriver: string,
  ) {}

  async driver(): Promise<string> {
    return this.opened?.name ?? this.plannedDriver;
  }

  private async driverNow(): Promise<VolumeDriver> {
    this.life.check();
    this.opening ??= this.open().then(
      (d) => (this.opened = d),
      (e) => {
        this.opening = undefined; // the next call tries again
        throw e;
      },
    );
    const d = await this.opening;
    if (this.hooksSet) await (this.collected ??= this.collectOrphanClones(d));
    return d;
  }

  /**
   * Remove clones made on mount for containers that do not exist: a daemon killed between
   * a clone and its container's record leaves one. Lazily, at the first use after the engine
   * is open, so a daemon that never sees a volume still never opens the driver.
   */
  private async collectOrphanClones(d: VolumeDriver): Promise<void> {
    const all = await d.list().catch(() => []);
    for (const name of orphanClones(all, (id) => this.hooks.exists(id))) {
      if (this.hooks.usersOf(name).length) continue;
      await d.remove(name, { force: true }).catch(() => undefined); // best effort: the next start tries again
    }
  }

  /** `fn` runs under the volume's gate after a volume is removed (or renamed: `renamedTo`). */
  watchRemovals(fn: (name: string, renamedTo?: string) => Promise<void>): void {
    this.removalWatchers.push(fn);
  }

  private async removed(name: string, renamedTo?: string): Promise<void> {
    for (const fn of this.removalWatchers) {
      // The volume is gone already: a watcher's failure must not make its removal look failed
      // (the scheduler sweeps schedules of missing volumes at its next start).
      await fn(name, renamedTo).catch((e: Error) => process.emitWarning(`berth: after removing volume ${name}: ${e.message}`));
    }
  }

  /** The engine tells who uses which volume once it is open. */
  setHooks(h: ContainerHooks): void {
    this.hooks = h;
    this.hooksSet = true;
  }

  /**
   * Clone on mount (engine use): a fresh clone of `ref` (VOL@SNAP, or VOL@ for the latest
   * snapshot) for container `owner`; see mount-clones.ts.
   */
  async cloneForMount(ref: SnapshotRef, owner: string, opts: { index: number; keep: boolean; labels?: Record<string, string> }): Promise<VolumeInfo> {
    return cloneForMount(await this.driverNow(), ref, owner, opts);
  }

  /** The host directory to bind-mount (engine use). */
  async mountpoint(name: string): Promise<string> {
    return (await this.driverNow()).mountpoint(name);
  }

  /** Make the volume if it does not exist; `created` tells whether this call made it (engine use). */
  async ensure(name: string, labels: Record<string, string> = {}): Promise<{ info: VolumeInfo; created: boolean }> {
    try {
      return { info: await (await this.driverNow()).inspect(name), created: false };
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
    try {
      return { info: await (await this.driverNow()).create(name, { labels }), created: true };
    } catch (e) {
      if ((e as { code?: string }).code === 'ALREADY_EXISTS') return { info: await (await this.driverNow()).inspect(name), created: false };
      throw e;
    }
  }

  async list(filters: Record<string, string[]> = {}): Promise<{ Volumes: Volume[]; Warnings: string[] }> {
    for (const k of Object.keys(filters)) {
      if (!['name', 'label', 'dangling', 'driver'].includes(k)) {
        throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'filter on name, label, driver or dangling' });
      }
    }
    const out: Volume[] = [];
    for (const v of await (await this.driverNow()).list()) {
      const vol = this.view(v);
      if (filters.name?.length && !filters.name.some((n) => v.name.includes(n))) continue;
      if (filters.driver?.length && !filters.driver.includes(v.driver)) continue;
      if (filters.label?.length && !filters.label.every((l) => labelMatches(v.labels, l))) continue;
      if (filters.dangling?.length) {
        const want = ['1', 'true'].includes(filters.dangling[0]);
        if ((this.hooks.usersOf(v.name).length === 0) !== want) continue;
      }
      out.push(vol);
    }
    return { Volumes: out, Warnings: [] };
  }

  async create(body: VolumeCreateBody = {}): Promise<Volume> {
    if (body.Driver && body.Driver !== 'local' && body.Driver !== (await this.driverNow()).name) {
      // Docker's answer for a driver it has no plugin for: 404, in its words.
      throw new NotFoundError(`error looking up volume plugin ${body.Driver}: plugin "${body.Driver}" not found`, {
        hint: `this daemon's volumes use the ${(await this.driverNow()).name} driver (also answers to 'local'); omit --driver`,
      });
    }
    const labels = { ...(body.Labels ?? {}) };
    let name = body.Name;
    if (!name) {
      name = anonymousName();
      labels[ANONYMOUS_LABEL] = '';
    }
    checkName(name, 'volume');
    const size = sizeOpt(body.DriverOpts);
    try {
      return this.view(await (await this.driverNow()).create(name, { labels, size }), body.DriverOpts);
    } catch (e) {
      // Docker: creating a volume that exists is not an error; it answers the existing one.
      if ((e as { code?: string }).code === 'ALREADY_EXISTS' && size === undefined) return this.inspect(name);
      throw e;
    }
  }

  async inspect(name: string): Promise<Volume> {
    const ref = parseSnapshotRef(name);
    if (ref) return this.snapshotView(ref);
    return this.view(await (await this.driverNow()).inspect(name));
  }

  /**
   * `VOL@SNAP` (or `VOL@`) inspected: what a container mounting it would be cloned from.
   * Compose checks that an `external` volume exists this way before it mounts it.
   */
  private async snapshotView(ref: SnapshotRef): Promise<Volume> {
    const d = await this.driverNow();
    const snap = await resolveSnapshot(d, ref);
    const src = await d.inspect(ref.volume);
    const labels = { ...src.labels };
    delete labels[ANONYMOUS_LABEL];
    return {
      Name: refString(ref),
      Driver: 'local',
      Mountpoint: '',
      CreatedAt: snap.created,
      Labels: labels,
      Scope: 'local',
      Options: {},
      Status: { Driver: d.name, Volume: ref.volume, Snapshot: snap.name, Clones: clonesOf(await d.list(), ref.volume, snap.name).length },
    };
  }

  async pool(): Promise<VolumePool | null> {
    const d = await this.driverNow();
    const p = d.poolInfo ? await d.poolInfo() : null;
    return p && poolView(p);
  }

  async growPool(size: number): Promise<VolumePool> {
    const d = await this.driverNow();
    if (!d.grow || !(await d.poolInfo?.())) {
      throw new FailedPreconditionError(`the ${d.name} volume driver here keeps no pool file to grow`, {
        hint: 'volumes use the host filesystem directly: grow that filesystem instead',
      });
    }
    await d.grow(size);
    return (await this.pool()) as VolumePool;
  }

  /** Bytes the volume takes, from its driver (btrfs qgroups, or a walk of the directory). */
  async usage(name: string): Promise<number> {
    return (await (await this.driverNow()).usage(name)).size;
  }

  async remove(name: string, opts: { force?: boolean; waitForSpace?: boolean } = {}): Promise<void> {
    const ref = parseSnapshotRef(name);
    if (ref) {
      throw new InvalidArgumentError(`${name} names a snapshot of volume ${ref.volume}, not a volume`, {
        hint: `remove the snapshot with: berth volume snapshot rm ${ref.volume} ${ref.snapshot ?? 'SNAPSHOT'}`,
      });
    }
    return this.gate.run([name], async () => {
      try {
        await (await this.driverNow()).inspect(name);
      } catch (e) {
        if (opts.force && e instanceof NotFoundError) return; // Docker: rm -f of a missing volume is no error
        throw e;
      }
      const users = this.hooks.usersOf(name);
      if (users.length) {
        // Docker refuses a volume in use even with force: its data is what the container runs on.
        throw new ConflictError(`remove ${name}: volume is in use - [${users.map((u) => u.id).join(', ')}]`, {
          hint: `remove the container(s) that use it first: berth rm ${users.map((u) => u.name).join(' ')}`,
        });
      }
      if (!opts.force) refuseWithClones(`volume ${name}`, clonesOf(await (await this.driverNow()).list(), name));
      await (await this.driverNow()).remove(name, { force: opts.force, waitForSpace: opts.waitForSpace });
      await this.removed(name);
    });
  }

  /**
   * Remove unused volumes: anonymous ones only, or every one with the filter `all=true`
   * (the API decides the default by version: before 1.42 Docker pruned them all).
   */
  async prune(filters: Record<string, string[]> = {}): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    for (const k of Object.keys(filters)) {
      if (!['label', 'label!', 'all'].includes(k)) throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'prune filters on label, label! or all' });
    }
    const pruneAll = ['1', 'true'].includes(filters.all?.[filters.all.length - 1] ?? '');
    const deleted: string[] = [];
    let space = 0;
    const all = await (await this.driverNow()).list();
    for (const v of all) {
      if (!pruneAll && !(ANONYMOUS_LABEL in v.labels)) continue;
      if (filters.label?.length && !filters.label.every((l) => labelMatches(v.labels, l))) continue;
      if (filters['label!']?.length && filters['label!'].some((l) => labelMatches(v.labels, l))) continue;
      if (clonesOf(all, v.name).length) continue; // a source of clones goes only when forced
      await this.gate.run([v.name], async () => {
        if (this.hooks.usersOf(v.name).length) return;
        const size = await (await this.driverNow()).usage(v.name).then((u) => u.size, () => 0);
        try {
          await (await this.driverNow()).remove(v.name, { force: true });
          deleted.push(v.name);
          await this.removed(v.name);
          space += size;
        } catch {
          // removed meanwhile, or busy: prune is best effort, as Docker's is
        }
      });
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  /**
   * Rename: a clone under the new name, then the old one removed (O(1) on btrfs; a copy on
   * dir). Snapshots do not follow (a clone has none), so a volume with snapshots is refused.
   */
  async rename(name: string, newName: string): Promise<Volume> {
    return this.gate.run([name, newName], async () => {
      checkName(newName, 'volume');
      const info = await (await this.driverNow()).inspect(name);
      const users = this.hooks.usersOf(name);
      if (users.length) {
        throw new ConflictError(`volume ${name} is in use by ${users.map((u) => u.name).join(', ')}`, { hint: 'remove the containers that use it first' });
      }
      if (info.snapshots > 0) {
        throw new ConflictError(`volume ${name} has ${info.snapshots} snapshot(s), which cannot be renamed with it`, {
          hint: `clone it instead (berth volume clone ${name} ${newName}), or remove its snapshots first`,
        });
      }
      const v = await (await this.driverNow()).clone(name, undefined, newName, { labels: info.labels });
      await (await this.driverNow()).remove(name);
      await this.removed(name, newName);
      return this.view(v);
    });
  }

  /** `mark`: extra metadata recorded with the snapshot (in-process: the scheduler marks its own). */
  async snapshot(name: string, snap?: string, opts: SnapshotHooks = {}, mark: SnapshotMetadata = {}): Promise<VolumeSnapshot> {
    return this.gate.run([name], async () => {
      const snapName = snap || timestampName();
      checkName(snapName, 'snapshot');
      const mountpoint = await (await this.driverNow()).mountpoint(name);
      const running = this.hooks.usersOf(name).filter((u) => u.status === 'running');
      // --pre in every running user first; a failure aborts before anything is frozen or taken.
      const hooked: VolumeUser[] = [];
      if (opts.pre) {
        for (const u of running) {
          const r = await this.hooks.exec(u.id, ['sh', '-c', opts.pre]).catch((e: Error) => ({ code: -1, output: e.message }));
          if (r.code !== 0) {
            await this.postHooks(hooked, opts.post);
            throw new HookFailedError(u.name, r.code, opts.pre, r.output);
          }
          hooked.push(u);
        }
      }
      try {
        return await this.freezeAndTake(name, snapName, mountpoint, running, opts, hooked, mark);
      } finally {
        await this.postHooks(opts.pre ? hooked : running, opts.post);
      }
    });
  }

  /** --post after the thaw, best effort: the snapshot is taken (or failed) already. */
  private async postHooks(users: VolumeUser[], post: string | undefined): Promise<void> {
    if (!post) return;
    for (const u of users) await this.hooks.exec(u.id, ['sh', '-c', post]).catch(() => undefined);
  }

  private async freezeAndTake(name: string, snapName: string, mountpoint: string, running: VolumeUser[], opts: SnapshotHooks, hooked: VolumeUser[], mark: SnapshotMetadata): Promise<VolumeSnapshot> {
    // Freeze the writers so the snapshot is one instant of the files (crash-consistent: as
    // if the power went out), flush what the kernel holds, then take it and thaw.
    const frozen: string[] = [];
    try {
      for (const u of running) {
        await this.hooks.pause(u.id);
        frozen.push(u.id);
      }
      await tool('sync', ['-f', mountpoint]);
      const info = await (await this.driverNow()).snapshot(name, snapName, {
        metadata: {
          ...mark,
          consistency: opts.pre && hooked.length ? 'application-consistent' : frozen.length ? 'crash-consistent' : 'clean',
          created: new Date().toISOString(),
          frozen,
          ...(opts.pre || opts.post
            ? { hooks: { ...(opts.pre ? { pre: opts.pre } : {}), ...(opts.post ? { post: opts.post } : {}), containers: (opts.pre ? hooked : running).map((u) => u.name) } }
            : {}),
        },
      });
      return view(info);
    } finally {
      for (const id of frozen) await this.hooks.unpause(id).catch(() => undefined);
    }
  }

  async snapshots(name: string): Promise<VolumeSnapshot[]> {
    return (await (await this.driverNow()).snapshots(name)).map(view);
  }

  async removeSnapshot(name: string, snap: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.gate.run([name], async () => {
      const d = await this.driverNow();
      if (!opts.force) refuseWithClones(`snapshot ${name}@${snap}`, clonesOf(await d.list(), name, snap));
      return d.removeSnapshot(name, snap);
    });
  }

  async restore(name: string, snap: string): Promise<void> {
    return this.gate.run([name], async () => {
      await (await this.driverNow()).inspect(name);
      this.refuseWhileRunning(name, 'restore');
      await (await this.driverNow()).restore(name, snap);
    });
  }

  async clone(name: string, snap: string | undefined, newName: string): Promise<Volume> {
    const src = await (await this.driverNow()).inspect(name);
    const labels = { ...src.labels };
    delete labels[ANONYMOUS_LABEL];
    return this.view(await (await this.driverNow()).clone(name, snap || undefined, newName, { labels }));
  }

  async export(name: string, snap?: string, opts: { since?: string; to?: CallerFile } = {}): Promise<Readable> {
    const fd = opts.to ? openCallerFile(opts.to) : undefined;
    try {
      let tar: Readable;
      if (opts.since) {
        if (!snap) {
          throw new InvalidArgumentError('--since needs the newer snapshot named: VOLUME@SNAPSHOT', {
            hint: `snapshot the volume first (berth volume snapshot ${name}), then export ${name}@SNAPSHOT --since ${opts.since}`,
          });
        }
        tar = await (await this.driverNow()).exportChanges(name, snap, opts.since);
        if (fd === undefined) return tar;
        await pipeline(tar, fs.createWriteStream('', { fd, autoClose: false }));
      } else {
        tar = await (await this.driverNow()).export(name, snap || undefined, { fd });
        if (fd === undefined) return tar;
        for await (const _ of tar); // nothing comes: it ends once tar has written the file
      }
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    return Readable.from([]);
  }

  async import(name: string, input: Readable, opts: { labels?: Record<string, string> } = {}): Promise<Volume> {
    const { header, stream } = await readChangesetHeader(input);
    if (!header) return this.view(await (await this.driverNow()).import(name, stream, { labels: opts.labels }));
    if (opts.labels && Object.keys(opts.labels).length) {
      throw new InvalidArgumentError('labels cannot be set when importing a changeset', {
        hint: 'a changeset adds to an existing volume, which keeps its labels; import without --label',
      });
    }
    return this.gate.run([name], async () => {
      const d = await this.driverNow();
      await d.inspect(name);
      this.refuseWhileRunning(name, 'import');
      await d.applyChanges(name, stream);
      return this.view(await d.inspect(name));
    });
  }

  /**
   * CONFLICT naming the running (or paused, restarting) containers that use the volume, if
   * any: restore, a changeset import and a registry pull change a volume's files in place,
   * which a running container would not see (its bind mount pins the old directory). A
   * stopped container mounts the volume again when it starts, so it does not stop them.
   * Call it under the volume's gate. `verb` is the act, for the hint.
   */
  refuseWhileRunning(name: string, verb: string): void {
    const up = this.hooks.usersOf(name).filter(isUp);
    if (up.length) {
      throw new ConflictError(`volume ${name} is in use by running container(s) ${up.map((u) => u.name).join(', ')}`, {
        hint: `stop them first (berth stop ${up.map((u) => u.name).join(' ')}), ${verb}, then start them again`,
      });
    }
  }

  /** The driver (opened on first use), for rooms that work beside this service under its gate: registry push and pull (transfers.ts). */
  storage(): Promise<VolumeDriver> {
    return this.driverNow();
  }

  /** Close the driver if it was opened. Twice is harmless. */
  close(): Promise<void> {
    return this.life.close(async () => {
      const d = await this.opening?.catch(() => undefined);
      await d?.close();
    });
  }

  private view(v: VolumeInfo, options: Record<string, string> = {}): Volume {
    const out: Volume = {
      Name: v.name,
      Driver: 'local',
      Mountpoint: v.mountpoint,
      CreatedAt: v.created,
      Labels: { ...v.labels },
      Scope: 'local',
      Options: v.size !== undefined ? { size: String(v.size), ...options } : { ...options },
      Status: { Driver: v.driver, Snapshots: v.snapshots, ...(v.origin ? { Origin: v.origin } : {}) },
    };
    return out;
  }
}

function view(s: SnapshotInfo): VolumeSnapshot {
  return { Volume: s.volume, Name: s.name, CreatedAt: s.created, ...(s.size !== undefined ? { Size: s.size } : {}), Metadata: s.metadata };
}

/** `20260128T101500Z-3f2a`: sortable, a valid name, unique enough for one volume. */
function timestampName(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z') + '-' + randomBytes(2).toString('hex');
}

function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const i = filter.indexOf('=');
  if (i < 0) return filter in labels;
  return labels[filter.slice(0, i)] === filter.slice(i + 1);
}

function poolView(p: PoolStatus): VolumePool {
  return {
    File: p.file,
    Mountpoint: p.mountpoint,
    Size: p.size,
    Used: p.used,
    Free: p.free,
    FileSize: p.fileSize,
    Allocated: p.allocated,
    HostSize: p.hostSize,
    HostFree: p.hostFree,
    GrowRoom: p.growRoom,
    AutoGrow: p.autoGrow,
    ...(p.growError ? { GrowError: p.growError } : {}),
  };
}
