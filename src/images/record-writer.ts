import { MEDIA, serializeConfig, ociLayerMediaType, type ImageConfig } from './config';
import type { ImageContext } from './context';
import { setTag, type ImageRecord, type LayerRecord } from './records';
import type { Descriptor } from './save';

/**
 * The commit point of every path that makes an image (import, commit, load): its config
 * and manifest blobs are written, then the image and its names are recorded in ONE
 * JsonStore update. A crash before that update leaves only blobs and layers no image
 * names, which the next gc removes.
 */

/** Write the config as Go would (see serializeConfig: converters keep it, and so its id) and record the image and its names in one transaction. */
export async function saveImage(
  ctx: ImageContext,
  config: ImageConfig,
  layers: LayerRecord[],
  names: string[],
  from: Pick<ImageRecord, 'container' | 'containerConfig' | 'parent'> = {},
): Promise<string> {
  const configText = serializeConfig(config);
  const rec = { ...(await makeRecord(ctx, Buffer.from(configText), JSON.parse(configText) as ImageConfig, layers)), ...from };
  await ctx.db.update((doc) => {
    doc.images[rec.id] = doc.images[rec.id] ?? rec;
    for (const n of names) setTag(doc, n, rec.id);
  });
  return rec.id;
}

/** Store the config (and a manifest, if none was given) and build the record; records nothing yet. */
export async function makeRecord(ctx: ImageContext, configBuf: Buffer, config: ImageConfig, layers: LayerRecord[], manifest?: Descriptor): Promise<ImageRecord> {
  const cfg = await ctx.content.writeBuffer(configBuf);
  const configDesc: Descriptor = { mediaType: MEDIA.ociConfig, digest: cfg.digest, size: cfg.size };
  if (!manifest) {
    const m = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: configDesc,
      layers: layers.map((l) => ({ mediaType: ociLayerMediaType(l.mediaType), digest: l.digest, size: l.size })),
    };
    const info = await ctx.content.writeBuffer(JSON.stringify(m));
    manifest = { mediaType: MEDIA.ociManifest, digest: info.digest, size: info.size };
  }
  ctx.configs.set(cfg.digest, config);
  return {
    id: cfg.digest,
    config: configDesc,
    manifest,
    layers,
    created: config.created ?? new Date(0).toISOString(),
    lastTagTime: new Date().toISOString(),
  };
}
