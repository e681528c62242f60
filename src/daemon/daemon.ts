import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { lockRoot } from './lock';
import { DaemonLocation } from './options';
import { OverlaySnapshotter } from '../../volumes/layers/overlay';
import { ImageStore } from '../images/store';
import { Router } from '../api/router';
import { ApiServer, Logger } from '../api/server';
import { systemRoutes } from '../api/system';
import { imageRoutes } from '../api/images';
import { containerRoutes } from '../api/containers';
import { Engine } from '../engine/engine';
import { EventBus } from '../engine/events';
import { OciRuntime } from '../runtime/runtime';

export interface DaemonOptions extends DaemonLocation {
  runtime?: string;
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
 *   berthd.lock, berthd.pid, berthd.log, engine-id
 *   layers/overlay/   the layer store (snapshotter)
 *   images/           the image store (content blobs + image metadata)
 *   containers/<id>/  container records, bundles, rootfs mount points, logs, exit records
 *   runtime/          runc's state (--root) for this daemon's containers
 *   tmp/              scratch space, emptied at every start
 */
export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const log = opts.log ?? stderrLogger();
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
    const images = await ImageStore.open({ root: path.join(opts.root, 'images'), snapshotter, tmpDir });
    closers.push(() => images.close());

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
      log: (m) => log.error(m),
    });
    // Closing the engine stops watching containers; they keep running (live-restore).
    closers.push(() => engine.close());

    const router = new Router();
    systemRoutes(router, { root: opts.root, socket: opts.socket, runtime: opts.runtime ?? 'runc', id, startedAt: new Date() }, images, engine);
    imageRoutes(router, images);
    containerRoutes(router, engine, events);

    const server = new ApiServer(router, log);
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
