import type { HistoryEntry, ImageConfig } from './config';
import type { ImageContext } from './context';
import type { ImageRecord } from './records';
import { saveImage } from './record-writer';
import type { ImageConfigFields } from './service';

/**
 * `docker build --cache-from` with images that have no parent chain here (pulled, or
 * loaded from `docker save`): the classic builder's history cache. A step hits on a
 * source image when the stage's image so far is a prefix of it (the same history entries
 * and the same layers in order) and the source's next history entry was made by the same
 * instruction (its created_by). The hit is the source itself when that entry is its last;
 * otherwise an image is made of the stage's image plus that one entry (and its layer,
 * already unpacked as part of the source), so the next step can match the entry after it.
 * As in moby's image/cache, once a source gave a hit the next steps look at that source
 * only (the caller narrows the list).
 */

export interface HistoryHit {
  id: string;
  /** The source the hit came from. */
  source: string;
}

export function historyCacheHit(ctx: ImageContext, parentId: string | null, sources: string[], createdBy: string, config: ImageConfigFields): Promise<HistoryHit | undefined> {
  return ctx.gate.op(async () => {
    const parent = parentId === null ? undefined : await ctx.lookup(parentId).then((r) => r.rec, () => undefined);
    if (parentId !== null && !parent) return undefined;
    const parentConfig = parent ? await ctx.config(parent) : undefined;
    const parentHistory = parentConfig ? historyOf(parent as ImageRecord, parentConfig) : [];
    const parentLayers = parent?.layers ?? [];
    for (const src of sources) {
      const target = await ctx.lookup(src).then((r) => r.rec, () => undefined);
      if (!target) continue;
      const targetConfig = await ctx.config(target);
      const history = historyOf(target, targetConfig);
      const i = parentHistory.length;
      if (i >= history.length || (history[i].created_by ?? '') !== createdBy) continue;
      if (!parentHistory.every((h, n) => sameEntry(h, history[n]))) continue;
      if (parentLayers.length > target.layers.length || !parentLayers.every((l, n) => l.diffID === target.layers[n].diffID)) continue;
      if (i === history.length - 1) {
        if (parent && !target.parent) {
          await ctx.db.update((doc) => {
            const rec = doc.images[target.id];
            if (rec && !rec.parent) rec.parent = parent.id;
          });
        }
        return { id: target.id, source: target.id };
      }
      // The layer of entry i, when it has one: the source's next layer after the parent's.
      const entry = history[i];
      const layers = entry.empty_layer ? [...parentLayers] : [...parentLayers, target.layers[parentLayers.length]];
      if (layers.some((l) => l === undefined)) continue;
      const made: ImageConfig = {
        architecture: targetConfig.architecture,
        os: targetConfig.os,
        ...(targetConfig.variant ? { variant: targetConfig.variant } : {}),
        ...(targetConfig.author ? { author: targetConfig.author } : {}),
        created: entry.created,
        config,
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
        history: [...parentHistory, entry],
      };
      const id = await saveImage(ctx, made, layers, [], parent ? { parent: parent.id } : {});
      return { id, source: target.id };
    }
    return undefined;
  });
}

/** An image's history entries; an image without any (some imports) gets one per layer, as commitImageConfig does. */
function historyOf(rec: ImageRecord, config: ImageConfig): HistoryEntry[] {
  if (config.history?.length) return config.history;
  return rec.layers.map(() => ({ created: rec.created, created_by: '' }));
}

function sameEntry(a: HistoryEntry, b: HistoryEntry): boolean {
  return (
    (a.created ?? '') === (b.created ?? '') &&
    (a.created_by ?? '') === (b.created_by ?? '') &&
    (a.author ?? '') === (b.author ?? '') &&
    (a.comment ?? '') === (b.comment ?? '') &&
    !!a.empty_layer === !!b.empty_layer
  );
}
