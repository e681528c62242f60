import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { applyLayer } from '../../volumes/archive/apply';
import { MEDIA, chainIDs, isGzip } from './config';
import type { ImageContext } from './context';
import { EXTRACT_PREFIX } from './gc';
import type { LayerRecord } from './records';
import { tee } from './streams';
import { faultPoint } from '../../volumes/shared/fault';

/**
 * Layers: unpacking a blob into a committed snapshot named by its chain id, shared by
 * every image that has it. A layer is unpacked into an extract snapshot first and
 * committed under its chain id only when whole; an extract snapshot a crash left is
 * garbage (gc.ts). Run these inside the gc gate's op().
 */

const LABEL_DIFF_ID = 'berth.image/diff-id';
const LABEL_BLOB = 'berth.image/blob';

/**
 * Store `input` as a blob and unpack it as a layer on top of `parents`, in one pass (the
 * input is split between the content store and applyLayer): the shared step of import
 * and commit. A layer that exists already is reused; on failure nothing is left but
 * garbage for the next gc.
 */
export async function addLayer(ctx: ImageContext, input: Readable, parents: LayerRecord[], onBytes?: (n: number) => void): Promise<LayerRecord> {
  const { snapshotter, content } = ctx;
  const key = extractKey();
  let prepared = false;
  try {
    await snapshotter.prepare(key, parents[parents.length - 1]?.chainID ?? '');
    prepared = true;
    const upper = await snapshotter.upperDir(key);
    const t = tee(input);
    let first: unknown;
    const fail = (e: unknown) => {
      first ??= e;
      t.abort(e as Error);
      throw e;
    };
    const [blob, applied] = await Promise.allSettled([content.write(t.a, { onBytes }).catch(fail), applyLayer(t.b, upper).catch(fail)]);
    if (t.bytes() === 0) {
      throw new InvalidArgumentError('the input is empty, not a tar archive', { hint: 'give a root filesystem tarball (plain or gzip)' });
    }
    if (blob.status === 'rejected' || applied.status === 'rejected') throw first;
    const diffID = applied.value.diffID;
    const chainID = chainIDs([...parents.map((l) => l.diffID), diffID]).pop() as string;
    faultPoint('image.layer.applied');
    if (await hasLayer(ctx, chainID)) await dropExtract(ctx, key);
    else await commitLayer(ctx, chainID, key, diffID, blob.value.digest);
    prepared = false;
    return {
      digest: blob.value.digest,
      mediaType: isGzip(t.head()) ? MEDIA.ociLayerGzip : MEDIA.ociLayer,
      size: blob.value.size,
      diffID,
      chainID,
      unpackedSize: (await snapshotter.usage(chainID)).size,
    };
  } finally {
    if (prepared) await dropExtract(ctx, key);
  }
}

/**
 * Unpack the stored blob `digest` as layer `chainID` on `parent`, unless a snapshot with
 * that chain id exists. A layer that exists is trusted only if the blob is the one it was
 * made from or provably has its diffID.
 */
export async function unpack(
  ctx: ImageContext,
  digest: string,
  mediaType: string,
  diffID: string,
  chainID: string,
  parent: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  const { snapshotter, content } = ctx;
  const existing = await snapshotter.stat(chainID).catch((e) => {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  });
  if (existing) {
    if (existing.labels[LABEL_BLOB] === digest) return;
    const actual = await diffIDOf(ctx, digest, mediaType);
    if (actual !== diffID) throw diffMismatch(digest, diffID, actual);
    return;
  }
  const key = extractKey();
  await snapshotter.prepare(key, parent);
  let keep = false;
  try {
    const applied = await applyLayer(await content.reader(digest), await snapshotter.upperDir(key), { onBytes });
    if (applied.diffID !== diffID) throw diffMismatch(digest, diffID, applied.diffID);
    faultPoint('image.layer.applied');
    await commitLayer(ctx, chainID, key, diffID, digest);
    keep = true;
  } finally {
    if (!keep) await dropExtract(ctx, key);
  }
}

/** A layer unpacked into an extract snapshot of its own, not yet committed. */
export interface UnpackedLayer {
  /** Commit it as its chain id on its parent (which must be committed by now). */
  commit(): Promise<void>;
  /** Throw it away (a failed pull). */
  discard(): Promise<void>;
}

/**
 * Unpack layer `chainID` into an extract snapshot of its own, prepared on nothing, so
 * layers of one image unpack side by side and before their parents are in; commit() puts
 * it on `parent` afterwards (the snapshotter's reparenting commit). `input` is the blob's
 * bytes as they arrive (a download teed); without it the stored blob is read. The diff
 * id is checked here; the blob's digest is the caller's to check before it commits.
 */
export async function unpackApart(
  ctx: ImageContext,
  l: { digest: string; mediaType: string; diffID: string; chainID: string; parent: string },
  input?: Readable,
  onBytes?: (n: number) => void,
): Promise<UnpackedLayer> {
  const { snapshotter, content } = ctx;
  const key = extractKey();
  const drop = () => dropExtract(ctx, key);
  try {
    await snapshotter.prepare(key, '');
  } catch (e) {
    input?.destroy(e as Error);
    throw e;
  }
  let ownRoot: boolean;
  try {
    const applied = await applyLayer(input ?? (await content.reader(l.digest)), await snapshotter.upperDir(key), { onBytes });
    if (applied.diffID !== l.diffID) throw diffMismatch(l.digest, l.diffID, applied.diffID);
    ownRoot = applied.rootSet;
  } catch (e) {
    input?.destroy(e as Error);
    await drop();
    throw e;
  }
  let done = false;
  return {
    commit: async () => {
      if (done) return;
      done = true;
      try {
        faultPoint('image.layer.applied');
        await commitLayer(ctx, l.chainID, key, l.diffID, l.digest, { parent: l.parent, ownRoot });
      } catch (e) {
        await drop();
        throw e;
      }
    },
    discard: async () => {
      if (done) return;
      done = true;
      await drop();
    },
  };
}

/**
 * Remove an extract snapshot that will not be committed (a failed or duplicate unpack).
 * It never names an image, so it is never listed; a removal that fails (the disk, a
 * closing store) is logged and left to garbage collection, asked for here (it runs once
 * the operations in flight end, and again later while it fails: context.ts), never
 * dropped silently. The caller's own error, if any, is what its caller sees.
 */
async function dropExtract(ctx: ImageContext, key: string): Promise<void> {
  try {
    await ctx.snapshotter.remove(key);
  } catch (e) {
    if (e instanceof NotFoundError) return;
    ctx.log(`image store: cannot remove snapshot ${key} of an unpack that did not finish: ${e instanceof Error ? e.message : String(e)}; garbage collection removes it later`);
    ctx.collectLater();
    void ctx.gate.request();
  }
}

function extractKey(): string {
  return `${EXTRACT_PREFIX}${randomBytes(8).toString('hex')}`;
}

/** Commit an extract snapshot as layer `chainID`; someone else committing it first is fine. */
async function commitLayer(ctx: ImageContext, chainID: string, key: string, diffID: string, blob: string, at?: { parent: string; ownRoot: boolean }): Promise<void> {
  try {
    await ctx.snapshotter.commit(chainID, key, { labels: { [LABEL_DIFF_ID]: diffID, [LABEL_BLOB]: blob }, ...at });
  } catch (e) {
    if (!(e instanceof AlreadyExistsError)) throw e;
    await dropExtract(ctx, key);
  }
}

/** The blob layer `chainID` was unpacked from (its label), if it exists. */
export async function layerBlob(ctx: ImageContext, chainID: string): Promise<string | undefined> {
  try {
    return (await ctx.snapshotter.stat(chainID)).labels[LABEL_BLOB];
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

export async function hasLayer(ctx: ImageContext, chainID: string): Promise<boolean> {
  try {
    return (await ctx.snapshotter.stat(chainID)).kind === 'committed';
  } catch (e) {
    if (e instanceof NotFoundError) return false;
    throw e;
  }
}

/** sha256 of the uncompressed blob, without unpacking it. */
async function diffIDOf(ctx: ImageContext, digest: string, mediaType: string): Promise<string> {
  if (!/gzip|zstd/.test(mediaType)) return digest;
  const hash = createHash('sha256');
  const src = (await ctx.content.reader(digest)).pipe(/zstd/.test(mediaType) ? createZstdDecompress() : createGunzip());
  for await (const c of src) hash.update(c as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function diffMismatch(digest: string, expected: string, actual: string): InvalidArgumentError {
  return new InvalidArgumentError(`layer ${digest} has diff id ${actual}, but the image config says ${expected}`, {
    hint: 'the archive is corrupt or its layers do not belong to its config; export it again',
  });
}
