import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { DeleteItem, ImageSummary } from '../images/service';
import type { ImageStore } from '../images/store';
import type { ContainerAccess } from './container-access';
import { parseUntil } from './list-filter';
import type { ContainerService, ContainerSummary } from './service';
import type { Volume, VolumePool } from '../volumes/service';
import type { Volumes } from '../volumes/volumes';

export interface DiskUsage {
  LayersSize: number;
  Images: ImageSummary[];
  Containers: ContainerSummary[];
  Volumes: Volume[];
  BuildCache: [];
  /** berth's: the btrfs pool the volumes live in (absent without one). */
  VolumePool?: VolumePool;
}

/**
 * GET /system/df and POST /images/prune: what images, containers and volumes take on
 * disk (volume sizes from the driver: btrfs qgroups or a walk of the dir), and removing
 * images no container uses. berth has no build cache, so that part is always empty.
 */
export class DiskUsageService {
  constructor(
    private readonly access: ContainerAccess,
    private readonly containers: ContainerService,
    private readonly images: ImageStore,
    private readonly volumes: Volumes,
  ) {}

  async df(): Promise<DiskUsage> {
    const records = this.access.all();
    const users = (imageId: string) => records.filter((r) => r.Image === imageId).length;
    const images = (await this.images.list({ all: true })).map((i) => ({ ...i, Containers: users(i.Id), SharedSize: 0 }));
    const containers = await this.containers.list({ all: true, size: true });
    const { Volumes } = await this.volumes.list();
    const vols = await Promise.all(
      Volumes.map(async (v) => {
        const refs = records.filter((r) => (r.Mounts ?? []).some((m) => m.Type === 'volume' && m.Name === v.Name)).length;
        const size = v.UsageData?.Size ?? (await this.volumes.usage(v.Name).catch(() => -1));
        return { ...v, UsageData: { Size: size, RefCount: refs } };
      }),
    );
    const pool = await this.volumes.pool().catch(() => null);
    return { LayersSize: images.reduce((a, i) => a + i.Size, 0), Images: images, Containers: containers, Volumes: vols, BuildCache: [], ...(pool ? { VolumePool: pool } : {}) };
  }

  /**
   * Docker's image prune: dangling images (no tag, no child), or with `dangling=false`
   * every image no container uses; `until` and `label` narrow it. An image a container
   * uses is kept. Each removal takes its untagged parents with it when nothing else needs
   * them, so the build cache under a tagged image survives a prune without -a.
   */
  async pruneImages(filters: Record<string, string[]> = {}): Promise<{ ImagesDeleted: DeleteItem[]; SpaceReclaimed: number }> {
    for (const k of Object.keys(filters)) {
      if (!['dangling', 'until', 'label', 'label!'].includes(k)) throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'filter on dangling, until, label or label!' });
    }
    const danglingOnly = !['false', '0'].includes(filters.dangling?.[0] ?? 'true');
    const until = (filters.until ?? []).map((u) => parseUntil(u));
    const used = new Set(this.access.all().map((r) => r.Image));
    const deleted: DeleteItem[] = [];
    let space = 0;
    const all = await this.images.list({ all: true });
    const parents = new Set(all.map((i) => i.ParentId).filter(Boolean));
    // Sizes of the images' own layers (Size less the parent's), so a pruned chain is counted once.
    const byId = new Map(all.map((i) => [i.Id, i]));
    const sizes = new Map(all.map((i) => [i.Id, Math.max(0, i.Size - (byId.get(i.ParentId)?.Size ?? 0))]));
    for (const img of await this.images.list({ all: true, filters: filters.label ? { label: filters.label } : {} })) {
      const tags = img.RepoTags.filter((t) => t !== '<none>:<none>');
      if (danglingOnly && tags.length) continue;
      // An untagged parent is a build's cached step: it goes with the last image made on
      // it (the removal prunes parents), never on its own, as Docker prunes heads only.
      if (!tags.length && parents.has(img.Id)) continue;
      if (used.has(img.Id)) continue;
      if (!until.every((t) => img.Created * 1000 < t)) continue;
      if ((filters['label!'] ?? []).some((l) => labelHas(img.Labels, l))) continue;
      try {
        // Tag by tag without force: the last untag deletes, and the store still refuses
        // an image a container took meanwhile.
        const items: DeleteItem[] = [];
        for (const ref of tags.length ? tags : [img.Id]) items.push(...(await this.images.remove(ref)));
        deleted.push(...items);
        for (const i of items) if (i.Deleted) space += sizes.get(i.Deleted) ?? 0;
      } catch (e) {
        if (!(e instanceof ConflictError) && !(e instanceof NotFoundError)) throw e;
      }
    }
    return { ImagesDeleted: deleted, SpaceReclaimed: space };
  }
}

function labelHas(labels: Record<string, string> | null, l: string): boolean {
  const [k, ...v] = l.split('=');
  if (!labels || !(k in labels)) return false;
  return v.length === 0 || labels[k] === v.join('=');
}
