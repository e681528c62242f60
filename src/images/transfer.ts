import type { Readable, Writable } from 'node:stream';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { readArchive, type ArchiveFile } from './archive';
import { isBusyboxRef } from './busybox';
import { chainIDs } from './config';
import { shortId, type ImageContext } from './context';
import { blobToSend, withHeldLayers } from './held-layers';
import { unpack } from './layers';
import { resolveArchive } from './load';
import { makeRecord } from './record-writer';
import { idPrefix, parseReference, splitTagged } from './reference';
import { setTag, tagNameOf, type Doc, type ImageRecord, type LayerRecord } from './records';
import { writeArchive, type Descriptor, type SaveImage } from './save';
import type { Progress } from './service';
import { drain, formatError, guard, throttle } from './streams';
import { faultPoint } from '../../volumes/shared/fault';

/**
 * `docker load` and `docker save`: the glue between the archive formats (archive.ts and
 * load.ts read them, save.ts writes them) and the store. A load records every image of
 * the archive in one JsonStore update, after all their blobs and layers exist.
 */

export async function load(ctx: ImageContext, input: Readable, opts: { progress?: Progress } = {}): Promise<{ loaded: string[] }> {
  guard(input);
  ctx.life.check();
  try {
    return await loadOp(ctx, input, opts);
  } finally {
    // Files of the archive no image uses (and, after a failure, everything this load
    // made) are garbage now: collected at once, or when the last running import ends.
    await ctx.gate.request();
  }
}

function loadOp(ctx: ImageContext, input: Readable, opts: { progress?: Progress }): Promise<{ loaded: string[] }> {
  return ctx.gate.op(async () => {
    try {
      const index = await readArchive(input, ctx.content, { progress: throttle(opts.progress) });
      const pending = await resolveArchive(index);
      const records: Array<{ rec: ImageRecord; names: string[] }> = [];
      for (const img of pending) {
        const layers: LayerRecord[] = [];
        const chains = chainIDs(img.layers.map((l) => l.diffID));
        let parent = '';
        for (let i = 0; i < img.layers.length; i++) {
          const l = img.layers[i];
          await ensureBlob(ctx, l.file);
          opts.progress?.({ status: 'Unpacking layer', id: shortId(l.diffID), current: i + 1, total: img.layers.length });
          await unpack(ctx, l.file.digest, l.mediaType, l.diffID, chains[i], parent);
          parent = chains[i];
          layers.push({
            digest: l.file.digest,
            mediaType: l.mediaType,
            size: l.file.size,
            diffID: l.diffID,
            chainID: chains[i],
            unpackedSize: (await ctx.snapshotter.usage(chains[i])).size,
          });
        }
        await ensureBlob(ctx, img.configFile);
        let manifest: Descriptor | undefined;
        if (img.manifest) {
          await ensureBlob(ctx, img.manifest.file);
          manifest = { mediaType: img.manifest.mediaType, digest: img.manifest.file.digest, size: img.manifest.file.size };
        }
        const configBuf = await index.read(img.configFile.path);
        records.push({ rec: await makeRecord(ctx, configBuf, img.config, layers, manifest), names: img.names });
      }
      faultPoint('image.before-record');
      const loaded = await ctx.db.update((doc) => {
        const lines: string[] = [];
        for (const { rec, names } of records) {
          doc.images[rec.id] = doc.images[rec.id] ?? rec;
          for (const n of names) {
            const old = doc.tags[n];
            if (old && old !== rec.id) {
              lines.push(`The image ${n} already exists, renaming the old one with ID ${old} to empty string`);
            }
            setTag(doc, n, rec.id);
            lines.push(`Loaded image: ${n}`);
          }
          if (names.length === 0) lines.push(`Loaded image ID: ${rec.id}`);
        }
        return lines;
      });
      faultPoint('image.load.recorded');
      return { loaded };
    } catch (e) {
      drain(input);
      throw formatError(e, 'cannot load the image archive', 'give the output of `docker save`, `podman save` or an OCI image layout tarball');
    }
  });
}

export async function save(ctx: ImageContext, refs: string[], out: Writable): Promise<void> {
  ctx.life.check();
  if (refs.length === 0) throw new InvalidArgumentError('nothing to save', { hint: 'name at least one image' });
  for (const ref of refs) if (isBusyboxRef(ref)) await ctx.lookup(ref);
  const doc = ctx.db.read();
  const byId = new Map<string, SaveImage>();
  const recs = new Map<string, ImageRecord>();
  for (const ref of refs) {
    const { rec, names } = namesToSave(ctx, doc, ref);
    const img = byId.get(rec.id) ?? {
      id: rec.id,
      config: rec.config,
      manifest: rec.manifest,
      layers: rec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      names: [],
    };
    for (const n of names) if (!img.names.includes(n)) img.names.push(n);
    byId.set(rec.id, img);
    recs.set(rec.id, rec);
  }
  return ctx.gate.op(async () => {
    // A layer held under another blob (held-layers.ts) is saved as that blob, in a manifest
    // rewritten to name it (kept in the content store until the next collection).
    for (const img of byId.values()) {
      const rec = recs.get(img.id) as ImageRecord;
      const sent = await Promise.all(rec.layers.map((l) => blobToSend(ctx.content, l)));
      if (sent.every((d, i) => d.digest === img.layers[i].digest)) continue;
      const m = withHeldLayers(await ctx.content.readBuffer(rec.manifest.digest), rec.manifest.mediaType, sent);
      await ctx.content.writeBuffer(m.bytes, { expected: m.digest });
      img.layers = sent;
      img.manifest = { mediaType: m.mediaType, digest: m.digest, size: m.size };
    }
    return writeArchive([...byId.values()], ctx.content, out);
  });
}

/** A blob the archive holds in memory (a config, a small layer) goes to the content store. */
async function ensureBlob(ctx: ImageContext, f: ArchiveFile): Promise<void> {
  if (f.data && !(await ctx.content.has(f.digest))) await ctx.content.writeBuffer(f.data, { expected: f.digest });
}

/** The image `ref` names and the names to write for it, as `docker save` picks them. */
function namesToSave(ctx: ImageContext, doc: Doc, ref: string): { rec: ImageRecord; names: string[] } {
  const tagged = tagNameOf(doc, ref);
  if (tagged) return { rec: doc.images[doc.tags[tagged]], names: [tagged] };
  // A repository without a tag: every tag of it.
  try {
    const r = parseReference(ref);
    if (r.tag === undefined && r.digest === undefined) {
      const names = Object.keys(doc.tags).filter((t) => splitTagged(t).repo === r.repo);
      const ids = new Set(names.map((n) => doc.tags[n]));
      if (ids.size === 1) return { rec: doc.images[[...ids][0]], names };
      if (ids.size > 1) {
        throw new InvalidArgumentError(`${ref} names ${ids.size} different images`, { hint: 'save them by repo:tag, one name each' });
      }
    }
  } catch (e) {
    if (!(e instanceof InvalidArgumentError) || idPrefix(ref) === undefined) throw e;
  }
  return { rec: ctx.find(doc, ref), names: [] };
}
