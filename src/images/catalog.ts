import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { HistoryEntry } from './config';
import type { ImageContext } from './context';
import { matchLabel, matchReference, tagsOf, type ImageRecord } from './records';
import type { HistoryItem, ImageConfigFields, ImageInspect, ImageSummary, ResolvedImage } from './service';

/**
 * The image store's read paths: `images` (list and its filters), `image inspect`,
 * `history`, and resolve (what the engine needs to create a container). Nothing here
 * writes.
 */

const LIST_FILTERS = ['dangling', 'reference', 'label', 'before', 'since'];

export async function list(ctx: ImageContext, opts: { all?: boolean; filters?: Record<string, string[]> } = {}): Promise<ImageSummary[]> {
  ctx.life.check();
  const doc = ctx.db.read();
  const filters = opts.filters ?? {};
  for (const k of Object.keys(filters)) {
    if (!LIST_FILTERS.includes(k)) {
      throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'filter on dangling, reference, label, before or since' });
    }
  }
  const before = filters.before?.length ? Date.parse(ctx.find(doc, filters.before[0]).created) : undefined;
  const since = filters.since?.length ? Date.parse(ctx.find(doc, filters.since[0]).created) : undefined;
  const out: ImageSummary[] = [];
  const parents = new Set(Object.values(doc.images).map((r) => r.parent));
  for (const rec of Object.values(doc.images)) {
    const tags = tagsOf(doc, rec.id);
    // Docker's list hides intermediate images (untagged, with a child) unless asked for all.
    if (!opts.all && tags.length === 0 && parents.has(rec.id)) continue;
    const config = await ctx.config(rec);
    const labels = config.config?.Labels ?? null;
    if (filters.dangling?.length) {
      const want = filters.dangling[0] === 'true' || filters.dangling[0] === '1';
      if (want !== (tags.length === 0)) continue;
    }
    if (filters.reference?.length && !filters.reference.some((pat) => tags.some((t) => matchReference(pat, t)))) continue;
    if (filters.label?.length && !filters.label.every((l) => matchLabel(l, labels))) continue;
    if (before !== undefined && !(Date.parse(rec.created) < before)) continue;
    if (since !== undefined && !(Date.parse(rec.created) > since)) continue;
    const size = sizeOf(rec);
    out.push({
      Id: rec.id,
      ParentId: rec.parent && doc.images[rec.parent] ? rec.parent : '',
      RepoTags: tags.length ? tags : ['<none>:<none>'],
      RepoDigests: rec.repoDigests?.length ? rec.repoDigests : tags.length ? [] : ['<none>@<none>'],
      Created: unixSeconds(rec.created),
      Size: size,
      SharedSize: -1,
      VirtualSize: size,
      Labels: labels,
      Containers: -1,
    });
  }
  return out.sort((a, b) => b.Created - a.Created || a.Id.localeCompare(b.Id));
}

export async function inspect(ctx: ImageContext, ref: string): Promise<ImageInspect> {
  ctx.life.check();
  const { doc, rec } = await ctx.lookup(ref);
  const config = await ctx.config(rec);
  const size = sizeOf(rec);
  return {
    Id: rec.id,
    RepoTags: tagsOf(doc, rec.id),
    RepoDigests: rec.repoDigests ?? [],
    Parent: rec.parent && doc.images[rec.parent] ? rec.parent : '',
    Comment: config.comment ?? config.history?.[config.history.length - 1]?.comment ?? '',
    Created: config.created ?? rec.created,
    Container: rec.container ?? config.container ?? '',
    ...(rec.containerConfig ? { ContainerConfig: rec.containerConfig as ImageConfigFields } : {}),
    DockerVersion: config.docker_version ?? '',
    Author: config.author ?? '',
    Config: config.config ?? {},
    Architecture: config.architecture,
    Os: config.os,
    Size: size,
    VirtualSize: size,
    GraphDriver: { Name: 'overlay', Data: await graphDriverData(ctx, rec) },
    RootFS: { Type: 'layers', Layers: rec.layers.map((l) => l.diffID) },
    Metadata: { LastTagTime: rec.lastTagTime },
  };
}

export async function history(ctx: ImageContext, ref: string): Promise<HistoryItem[]> {
  ctx.life.check();
  const { doc, rec } = await ctx.lookup(ref);
  const config = await ctx.config(rec);
  const entries: HistoryEntry[] = config.history?.length
    ? config.history
    : rec.layers.map(() => ({ created: rec.created, created_by: '' }));
  const items: HistoryItem[] = [];
  let layer = 0;
  for (const h of entries) {
    const size = h.empty_layer ? 0 : rec.layers[layer++]?.unpackedSize ?? 0;
    items.push({
      Id: '<missing>',
      Created: h.created ? unixSeconds(h.created) : 0,
      CreatedBy: h.created_by ?? '',
      Tags: null,
      Size: size,
      Comment: h.comment ?? '',
    });
  }
  items.reverse();
  // Newest first, each entry is the image of one step: a locally built or committed image
  // names its ancestors through their parent links, as Docker's history does; where the
  // chain ends (a pulled or loaded base, a parent deleted) the rest stay <missing>.
  let cur: ImageRecord | undefined = rec;
  for (let i = 0; i < items.length && cur; i++) {
    const tags = tagsOf(doc, cur.id);
    items[i] = { ...items[i], Id: cur.id, Tags: tags.length ? tags : null };
    cur = cur.parent ? doc.images[cur.parent] : undefined;
  }
  return items;
}

export async function resolve(ctx: ImageContext, ref: string): Promise<ResolvedImage> {
  ctx.life.check();
  const { rec } = await ctx.lookup(ref);
  const config = await ctx.config(rec);
  return { id: rec.id, topLayer: rec.layers[rec.layers.length - 1]?.chainID ?? '', config: config.config ?? {} };
}

async function graphDriverData(ctx: ImageContext, rec: ImageRecord): Promise<Record<string, string>> {
  try {
    const dirs: string[] = [];
    for (const l of rec.layers) dirs.push(await ctx.snapshotter.upperDir(l.chainID));
    dirs.reverse();
    if (dirs.length === 0) return {};
    return { UpperDir: dirs[0], ...(dirs.length > 1 ? { LowerDir: dirs.slice(1).join(':') } : {}) };
  } catch {
    return {};
  }
}

function sizeOf(rec: ImageRecord): number {
  return rec.layers.reduce((n, l) => n + l.unpackedSize, 0);
}

function unixSeconds(iso: string): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}
