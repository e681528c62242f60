import type { Router } from './router';
import { archiveRoutes } from './archive';
import { qbool, qfilters, sendJSON } from './http';
import { readJSON } from './json-body';
import { UPDATE_BODY } from './schemas/bodies';
import { ContainerArchive } from '../engine/archive';
import type { ContainerAccess } from '../engine/container-access';
import { ContainerChanges } from '../engine/changes';
import { DiskUsageService } from '../engine/disk-usage';
import type { ContainerService } from '../engine/service';
import { ContainerStats } from '../engine/stats';
import { ContainerUpdate, type UpdateBody } from '../engine/update';
import type { ImageStore } from '../images/store';
import type { Volumes } from '../volumes/volumes';

/**
 * The routes of the modules that work on containers from the side (archive, stats,
 * update, changes, disk usage, image prune), wired from the engine's ContainerAccess in
 * one place.
 */
export function sideRoutes(router: Router, access: ContainerAccess, containers: ContainerService, images: ImageStore, volumes: Volumes): void {
  const C = '^/containers/([^/]+)';
  archiveRoutes(router, new ContainerArchive(access));

  const stats = new ContainerStats(access);
  router.add('GET', new RegExp(`${C}/stats$`), async ({ res, params, query }) => {
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    const samples = stats.samples(params[0], { stream: qbool(query, 'stream', true), oneShot: qbool(query, 'one-shot'), signal: ac.signal });
    const first = await samples.next(); // a missing container is a 404, before any header
    res.writeHead(200, { 'Content-Type': 'application/json' });
    if (!first.done) res.write(JSON.stringify(first.value) + '\n');
    for await (const s of samples) if (!ac.signal.aborted) res.write(JSON.stringify(s) + '\n');
    res.end();
  });

  const update = new ContainerUpdate(access);
  router.add('POST', new RegExp(`${C}/update$`), async ({ req, res, params }) => {
    sendJSON(res, 200, await update.update(params[0], await readJSON<UpdateBody>(req, UPDATE_BODY, {} as UpdateBody)));
  });

  const changes = new ContainerChanges(access);
  router.add('GET', new RegExp(`${C}/changes$`), async ({ res, params }) => sendJSON(res, 200, await changes.changes(params[0])));

  const du = new DiskUsageService(access, containers, images, volumes);
  router.add('GET', /^\/system\/df$/, async ({ res }) => sendJSON(res, 200, await du.df()));
  router.add('POST', /^\/images\/prune$/, async ({ res, query }) => sendJSON(res, 200, await du.pruneImages(qfilters(query))));
  // What `docker system prune` calls besides: /networks/prune is the networks service's
  // (api/networks.ts); berth keeps no build cache, so that has nothing to remove.
  router.add('POST', /^\/build\/prune$/, async ({ res }) => sendJSON(res, 200, { CachesDeleted: [], SpaceReclaimed: 0 }));
}
