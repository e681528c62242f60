import type { Readable } from 'node:stream';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { packDir } from '../../volumes/archive/pack';
import { applyChanges, goArch, goTime, type HistoryEntry, type ImageConfig } from './config';
import type { ImageContext } from './context';
import type { CommitLayerSpec, ConfigCommitSpec, LayerImportSpec } from './layer-spec';
import { addLayer } from './layers';
import { saveImage } from './record-writer';
import { familiarTagged, parseRepoTag } from './reference';
import type { ImageConfigFields, ImportOptions } from './service';
import { drain, formatError, guard, throttle } from './streams';
import { faultPoint } from '../../volumes/shared/fault';

/**
 * Images made of one new layer read from a stream: `import` (a root filesystem tarball),
 * the base-image builders (a packed directory), and `commit` (a container's changes on
 * top of its image). The tar is stored as it came and unpacked in the same pass; the
 * image record is the commit point (record-writer.ts). After a failure what was made is
 * garbage, collected through the gc gate.
 */

/** `docker import`: names and --change are checked before a byte is read. */
export async function importRootfs(ctx: ImageContext, input: Readable, opts: ImportOptions): Promise<{ id: string }> {
  guard(input);
  ctx.life.check();
  let names: string[] = [];
  let config: ImageConfigFields;
  try {
    // Bad names and changes fail before a byte is read, so they leave nothing behind.
    if (opts.repo) names = [familiarTagged(parseRepoTag(opts.repo, opts.tag))];
    else if (opts.tag) throw new InvalidArgumentError('a tag needs a repository name', { hint: 'give repo:tag, e.g. myimage:v1' });
    config = applyChanges({}, opts.changes ?? []);
  } catch (e) {
    drain(input); // not destroy: an HTTP client still sending must get our reply
    throw e;
  }
  return importLayer(ctx, input, {
    names,
    config,
    createdBy: 'berth import',
    comment: opts.message || 'Imported from -',
    progress: opts.progress,
  });
}

/**
 * Make a one-layer image from a root filesystem tarball (plain or gzip): the shared path
 * of import, busybox, vendor and bootstrap.
 */
export async function importLayer(ctx: ImageContext, input: Readable, spec: LayerImportSpec): Promise<{ id: string }> {
  guard(input);
  try {
    return await importLayerOp(ctx, input, spec);
  } catch (e) {
    // What the failed import made (a blob, a layer) is garbage: collect it now, unless
    // other imports run, in which case it goes when the last of them ends.
    await ctx.gate.request();
    throw e;
  }
}

function importLayerOp(ctx: ImageContext, input: Readable, spec: LayerImportSpec): Promise<{ id: string }> {
  return ctx.gate.op(async () => {
    try {
      let done = 0;
      const progress = throttle(spec.progress);
      const layer = await addLayer(ctx, input, [], (n) => {
        done += n;
        progress({ status: 'Importing', current: done });
      });
      const now = goTime();
      const config: ImageConfig = {
        architecture: goArch(),
        os: 'linux',
        created: now,
        config: spec.config,
        rootfs: { type: 'layers', diff_ids: [layer.diffID] },
        history: [{ created: now, created_by: spec.createdBy, ...(spec.comment ? { comment: spec.comment } : {}) }],
      };
      faultPoint('image.before-record');
      const id = await saveImage(ctx, config, [layer], spec.names);
      spec.progress?.({ status: `Imported ${id}` });
      return { id };
    } catch (e) {
      drain(input);
      throw formatError(e, 'cannot import the root filesystem', 'give a root filesystem tarball (plain or gzip)');
    }
  });
}

/** importLayer of a directory's contents (packed deterministically). */
export async function importDirectory(ctx: ImageContext, dir: string, spec: LayerImportSpec): Promise<{ id: string }> {
  const tar = packDir(dir);
  try {
    return await importLayer(ctx, tar, spec);
  } finally {
    tar.destroy(); // ours: after a failure there is no client waiting to be answered
  }
}

/**
 * `docker commit`: a new image made of image `parentImageId`'s layers plus one new layer
 * read from `input` (a layer tar, e.g. a container's upper dir packed with overlay
 * whiteouts), and the parent's config with `spec.config`, the history entry and the
 * new diff id appended. The new layer is unpacked on top of the parent's top layer.
 */
export async function commitImageLayer(ctx: ImageContext, parentImageId: string, input: Readable, spec: CommitLayerSpec): Promise<{ id: string }> {
  guard(input);
  try {
    let emptied = false;
    const made = await commitImageLayerOp(ctx, parentImageId, input, spec, () => (emptied = true));
    if (emptied) await ctx.gate.request();
    return made;
  } catch (e) {
    await ctx.gate.request(); // what the failed commit made is garbage
    throw e;
  }
}

/** The diff id of an empty layer tar (1024 zero bytes). */
const EMPTY_TAR_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

function commitImageLayerOp(ctx: ImageContext, parentImageId: string, input: Readable, spec: CommitLayerSpec, onEmpty: () => void): Promise<{ id: string }> {
  return ctx.gate.op(async () => {
    try {
      const { rec: parent } = await ctx.lookup(parentImageId);
      const parentConfig = await ctx.config(parent);
      const added = await addLayer(ctx, input, parent.layers);
      // An empty diff (a RUN that changed nothing) adds no layer: the history entry is
      // marked empty_layer, as Docker's commit does; the unused layer goes to the gc.
      const empty = added.diffID === EMPTY_TAR_DIFF_ID;
      if (empty) onEmpty();
      const layers = empty ? parent.layers : [...parent.layers, added];
      const now = goTime();
      // One history entry per layer below ours, so `history` can pair entries with layers.
      const history: HistoryEntry[] = parentConfig.history?.length
        ? [...parentConfig.history]
        : parent.layers.map(() => ({ created: parent.created, created_by: '' }));
      history.push({
        created: now,
        created_by: spec.createdBy,
        ...(spec.author ? { author: spec.author } : {}),
        ...(spec.comment ? { comment: spec.comment } : {}),
        ...(empty ? { empty_layer: true } : {}),
      });
      const config: ImageConfig = {
        ...parentConfig,
        created: now,
        config: spec.config,
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
        history,
      };
      delete config.author;
      delete config.comment;
      delete config.container;
      if (spec.author) config.author = spec.author;
      if (spec.comment) config.comment = spec.comment;
      const from = { parent: parent.id, ...(spec.container ? { container: spec.container, ...(spec.containerConfig ? { containerConfig: spec.containerConfig } : {}) } : {}) };
      return { id: await saveImage(ctx, config, layers, spec.names, from) };
    } catch (e) {
      drain(input);
      throw formatError(e, 'cannot commit the layer', "check the container's files and the space left on the data root");
    }
  });
}

/**
 * A new image with image `parentImageId`'s layers (none for null: FROM scratch) and no
 * layer of its own: `spec.config` and a history entry marked empty_layer, as Docker's
 * classic builder records ENV, CMD, LABEL and the other metadata steps.
 */
export function commitImageConfig(ctx: ImageContext, parentImageId: string | null, spec: ConfigCommitSpec): Promise<{ id: string }> {
  return ctx.gate.op(async () => {
    const parent = parentImageId === null ? undefined : (await ctx.lookup(parentImageId)).rec;
    const parentConfig: ImageConfig = parent ? await ctx.config(parent) : { architecture: goArch(), os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, history: [] };
    const layers = parent?.layers ?? [];
    const now = goTime();
    const history: HistoryEntry[] = parentConfig.history?.length || !parent ? [...(parentConfig.history ?? [])] : layers.map(() => ({ created: parent.created, created_by: '' }));
    if (spec.createdBy !== undefined) history.push({ created: now, created_by: spec.createdBy, empty_layer: true });
    const config: ImageConfig = { ...parentConfig, created: now, config: spec.config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) }, history };
    delete config.container;
    return { id: await saveImage(ctx, config, layers, spec.names, parent ? { parent: parent.id } : {}) };
  });
}
