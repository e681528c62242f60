import type { ImageConfig } from './config';
import type { ImageContext } from './context';
import * as fs from 'node:fs';
import { layerTypeOf } from './held-layers';
import { hasLayer, layerBlob, unpackApart } from './layers';
import type { Descriptor } from './save';
import { findImage, setTag, type LayerRecord } from './records';
import { makeRecord } from './record-writer';
import type { PulledImage, RegistrySink } from './registry/sink';

/**
 * The image store as the registry client (registry/) sees it: the RegistrySink. Pulls run
 * inside the gc gate; `recordPulled` is a pull's commit point, as record-writer.ts is for
 * import and load: the image, its repo digest and its name in one JsonStore update.
 */
export function registrySink(ctx: ImageContext): RegistrySink {
  return {
    content: ctx.content,
    hold: (fn) => ctx.gate.op(fn),
    hasLayer: (chainID) => hasLayer(ctx, chainID),
    heldBlob: (chainID, diffID) => heldBlob(ctx, chainID, diffID),
    unpackLayer: (l, input, onBytes) => unpackApart(ctx, l, input, onBytes),
    recordPulled: (img) => recordPulled(ctx, img),
    find: (ref) => {
      const rec = findImage(ctx.db.read(), ref);
      return rec && { id: rec.id, repoDigests: rec.repoDigests ?? [] };
    },
    pushable: async (ref) => {
      const { rec } = await ctx.lookup(ref);
      return {
        id: rec.id,
        manifest: rec.manifest,
        config: rec.config,
        layers: await Promise.all(rec.layers.map(async (l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, heldAs: l.heldAs && !(await ctx.content.has(l.digest)) ? l.heldAs : undefined }))),
        read: (d) => ctx.content.reader(d),
      };
    },
    addRepoDigest: (id, repoDigest) =>
      ctx.db.update((doc) => {
        const rec = doc.images[id];
        if (rec) rec.repoDigests = withRepoDigest(rec.repoDigests, repoDigest);
      }),
  };
}

async function recordPulled(ctx: ImageContext, img: PulledImage): Promise<string> {
  const layers: LayerRecord[] = [];
  for (const l of img.layers) layers.push({ ...l, unpackedSize: (await ctx.snapshotter.usage(l.chainID)).size });
  const m = await ctx.content.writeBuffer(img.manifest.bytes);
  const config = JSON.parse(img.config.toString('utf8')) as ImageConfig;
  const rec = await makeRecord(ctx, img.config, config, layers, { mediaType: img.manifest.mediaType, digest: m.digest, size: m.size });
  await ctx.db.update((doc) => {
    const cur = (doc.images[rec.id] ??= rec);
    cur.repoDigests = withRepoDigest(cur.repoDigests, img.repoDigest);
    if (img.name) setTag(doc, img.name, rec.id);
  });
  return rec.id;
}

/** A held blob with diff id `diffID`: a layer of an image held, else the blob layer `chainID` was unpacked from. */
async function heldBlob(ctx: ImageContext, chainID: string, diffID: string): Promise<Descriptor | undefined> {
  for (const rec of Object.values(ctx.db.read().images)) {
    for (const l of rec.layers) {
      if (l.diffID !== diffID) continue;
      if (await ctx.content.has(l.digest)) return { mediaType: l.mediaType, digest: l.digest, size: l.size };
      if (l.heldAs && (await ctx.content.has(l.heldAs.digest))) return l.heldAs;
    }
  }
  const from = await layerBlob(ctx, chainID);
  if (!from || !(await ctx.content.has(from))) return undefined;
  const head = Buffer.alloc(4);
  const fh = await fs.promises.open(ctx.content.path(from), 'r');
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  return { mediaType: layerTypeOf(head), digest: from, size: (await ctx.content.info(from)).size };
}

/** One digest per repository: a newer pull or push of the same repository replaces it. */
function withRepoDigest(list: string[] | undefined, repoDigest: string): string[] {
  const repo = repoDigest.slice(0, repoDigest.indexOf('@'));
  return [...(list ?? []).filter((x) => x.slice(0, x.indexOf('@')) !== repo), repoDigest];
}
