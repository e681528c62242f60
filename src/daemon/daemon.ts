import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { lockRoot } from './lock';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { configureUnpackLimits } from '../../volumes/shared/unpack-guard';
import { DEFAULT_ROOT, DaemonLocation } from './options';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { ImageStore } from '../images/store';
import { Router } from '../api/router';
import { prepareSocketDir } from '../api/socket-dir';
import { ApiServer, Logger } from '../api/server';
import { systemRoutes } from '../api/system';
import { imageRoutes } from '../api/images';
import { registryRoutes } from '../api/registry';
import { Registry } from '../images/registry/registry';
import { containerRoutes } from '../api/containers';
import { Engine } from '../engine/engine';
import { EventBus } from '../engine/events';
import { OciRuntime } from '../runtime/runtime';
import { bestDriver, openDriver, type DriverName } from '../../volumes/drivers/select';
import { Volumes } from '../volumes/volumes';
import { volumeRoutes } from '../api/volumes';
import { VolumeScheduler } from '../volumes/scheduler';
import { volumeScheduleRoutes } from '../api/volume-schedules';
import { VolumeTransfers } from '../volumes/transfers';
import { volumeTransferRoutes } from '../api/volume-transfers';
import { networkRoutes } from '../api/networks';
import { Networks } from '../network/service';
import { swarmRoutes } from '../api/swarm';
import { BridgeNetwork } from '../network/network';
import { sideRoutes } from '../api/side';
import { buildRoutes } from '../api/build';
import { openBuilder } from '../build/open';

/** How often the daemon checks whether the volume pool needs to grow. */
const POOL_CHECK_MS = 1000;

export interface DaemonOptions extends DaemonLocation {
  runtime?: string;
  /** The volume driver for a new data root (default: the best this host supports). */
  volumeDriver?: DriverName;
  /** Volume pool and limits (btrfs driver): the size of a new pool, the size limit of a volume made without one. */
  volumePool?: { size?: number; defaultVolumeSize?: number };
  /** Unpacking (import, load, volume import) refuses output past this many times its compressed input. */
  maxDecompressionRatio?: number;
  /** The bridge network's name, subnet and iptables chain suffix (default: berth0, chosen, ''). */
  network?: { bridge?: string; subnet?: string; iptablesSuffix?: string };
  /** Registries (host[:port] or CIDR) that may be reached over plain HTTP, beside 127.0.0.0/8. */
  insecureRegistries?: string[];
  /** Layers a pull downloads at once (default 3). */
  maxConcurrentDownloads?: number;
  /** Blobs a push uploads at once (default 5). */
  maxConcurrentUploads?: number;
  /** A push sends blobs up to this size in one PUT, bigger ones in PATCH chunks of it (default 32 MiB). */
  pushChunkSize?: number;
  /** Seconds in which a request body must bring 16 KiB (default 30); a JSON body must be whole within twice that. */
  bodyTimeoutSeconds?: number;
  log?: Logger;
}

export interface RunningDaemon {
  readonly socket: string;
  readonly root: string;
  close(): Promise<void>;
}

/**
 * berthd's start-up: take the root, open the stores, wire the routes, listen. It wires
 * services together and does nothing else (no god object: each service owns its state).
 * Data root layout:
 *   berthd.pid        the root's lock: its holder's pid, start time and boot id (lock.ts)
 *   berthd.log, engine-id
 *   layers/overlay/   the layer store (snapshotter)
 *   images/           the image store (content blobs + image metadata)
 *   containers/<id>/  container records, bundles, rootfs mount points, logs, exit records
 *   volumes/          data volumes and their snapshots (volumes/drivers: btrfs or dir)
 *   volume-schedules.json  scheduled snapshots and their last runs (src/volumes/scheduler.ts)
 *   volume-transfers/ volume push and pull: resumable downloads, pulls under way (src/volumes/transfers.ts)
 *   runtime/          runc's state (--root) for this daemon's containers
 *   network.json      the bridge's name, subnet and iptables chain suffix
 *   build/            the classic builder's cache index (build-cache.json)
 *   tmp/              scratch space, emptied at every start
 */
export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const log = opts.log ?? stderrLogger();
  // An unsafe socket directory is refused before anything is opened or set up.
  await prepareSocketDir(opts.socket);
  await fs.promises.mkdir(opts.root, { recursive: true, mode: 0o700 });
  const unlock = await lockRoot(opts.root, (e) => {
    log.error(`lost the lock on ${opts.root}: ${e.message}; shutting down`);
    process.kill(process.pid, 'SIGTERM');
  });
  const closers: Array<() => Promise<void>> = [unlock];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch((e) => log.error(`close: ${e?.message ?? e}`));
  };
  try {
    const tmpDir = path.join(opts.root, 'tmp');
    await fs.promises.rm(tmpDir, { recursive: true, force: true });
    await fs.promises.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const id = await engineId(opts.root);

    const snapshotter = await OverlaySnapshotter.open(path.join(opts.root, 'layers', 'overlay'));
    closers.push(() => snapshotter.close());
    const images = await ImageStore.open({ root: path.join(opts.root, 'images'), snapshotter, tmpDir, log: (m) => log.error(m) });
    closers.push(() => images.close());

    configureUnpackLimits({ maxRatio: opts.maxDecompressionRatio });
    const volumeRoot = path.join(opts.root, 'volumes');
    const planned = await plannedDriver(volumeRoot, opts.volumeDriver);
    if (planned !== 'btrfs' && (opts.volumePool?.size !== undefined || opts.volumePool?.defaultVolumeSize !== undefined)) {
      throw new InvalidArgumentError(`the ${planned} volume driver has no pool and cannot limit a volume's size`, {
        hint: 'drop --volume-pool-size and --volume-default-size, or use the btrfs driver on a new data root',
      });
    }
    // Opened on first use: a daemon without volumes mounts no btrfs pool.
    const volumes = new Volumes(async () => {
      const d = await openDriver(volumeRoot, {
        driver: opts.volumeDriver,
        poolSize: opts.volumePool?.size,
        defaultSize: opts.volumePool?.defaultVolumeSize,
        autoGrowMs: POOL_CHECK_MS,
      });
      log.info(`volume driver ${d.name} open on ${volumeRoot}`);
      return d;
    }, planned);
    // Closed after the engine (closers run in reverse): no container start needs it then.
    closers.push(() => volumes.close());

    const events = new EventBus();
    closers.push(async () => events.close());
    // runc's state for this daemon lives under its own root, so daemons never see each other's containers.
    const runtime = new OciRuntime({ path: opts.runtime ?? 'runc', root: path.join(opts.root, 'runtime') });
    const engine = await Engine.open({
      root: path.join(opts.root, 'containers'),
      dataRoot: opts.root,
      snapshotter,
      images,
      runtime,
      events,
      volumes,
      openNetwork: (running, ownIds) =>
        BridgeNetwork.open({ root: opts.root, defaultRoot: opts.root === DEFAULT_ROOT, ...opts.network, log: (m) => log.error(`network: ${m}`), events: (e) => events.emit(e), engineId: id }, running, ownIds),
      log: (m) => log.error(m),
    });
    // Closing the engine stops watching containers; they keep running (live-restore).
    closers.push(() => engine.close());
    // After the engine (a run freezes containers), closed before it: a run under way ends first.
    const registry = new Registry(images.registrySink(), { insecure: opts.insecureRegistries, downloads: opts.maxConcurrentDownloads, uploads: opts.maxConcurrentUploads, chunkSize: opts.pushChunkSize });
    // Before the socket listens (and before a schedule pushes): a volume a killed pull was making is removed first.
    const transfers = await VolumeTransfers.open(path.join(opts.root, 'volume-transfers'), volumes, (domain, auth) => registry.session(domain, auth));
    const schedules = await VolumeScheduler.open({ file: path.join(opts.root, 'volume-schedules.json'), volumes, log, push: (v, snap, ref) => transfers.push(v, snap, ref) });
    closers.push(() => schedules.close());

    const router = new Router();
    systemRoutes(router, { root: opts.root, socket: opts.socket, runtime: opts.runtime ?? 'runc', id, startedAt: new Date(), volumeDriver: planned, network: () => engine.networkInfo() }, images, engine);
    volumeRoutes(router, volumes);
    volumeScheduleRoutes(router, schedules);
    volumeTransferRoutes(router, transfers);
    imageRoutes(router, images, registry);
    registryRoutes(router, registry, images);
    containerRoutes(router, engine, events, images);
    sideRoutes(router, engine.access(), engine, images, volumes);
    networkRoutes(router, new Networks(engine.network(), id, engine.networkAttach()));
    swarmRoutes(router);
    buildRoutes(router, await openBuilder({ root: path.join(opts.root, 'build'), tmpDir, engine, images, registry }));

    const server = new ApiServer(router, log, { bodyTimeoutSeconds: opts.bodyTimeoutSeconds });
    await server.listen(opts.socket);
    closers.push(async () => {
      await server.close();
      await fs.promises.rm(opts.socket, { force: true });
    });
    log.info(`berthd ${process.pid} listening on ${opts.socket}, root ${opts.root}`);
  } catch (e) {
    await closeAll();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    socket: opts.socket,
    root: opts.root,
    close: () => (closing ??= closeAll()),
  };
}

/** The driver openDriver will pick for `dir`: the one it was made with, else the asked-for or best one. */
async function plannedDriver(dir: string, asked?: DriverName): Promise<string> {
  const recorded = (await fs.promises.readFile(path.join(dir, 'driver'), 'utf8').catch(() => '')).trim();
  if (recorded) return recorded;
  if (asked !== undefined && asked !== 'btrfs' && asked !== 'dir') {
    throw new InvalidArgumentError(`unknown volume driver ${JSON.stringify(asked)}`, { hint: "choose 'btrfs' or 'dir'" });
  }
  if (asked) return asked;
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  return (await bestDriver(dir)).driver;
}

async function engineId(root: string): Promise<string> {
  const file = path.join(root, 'engine-id');
  try {
    return (await fs.promises.readFile(file, 'utf8')).trim();
  } catch {
    const id = randomBytes(16).toString('hex');
    await fs.promises.writeFile(file, id + '\n', { mode: 0o600 });
    return id;
  }
}

export function stderrLogger(): Logger {
  const line = (level: string, msg: string) => process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
  return { info: (m) => line('info', m), error: (m) => line('error', m) };
}
