import type { Readable } from 'node:stream';
import type { ContentStore } from '../content';
import type { Descriptor } from './manifest';

/**
 * What the registry client needs from the image store: the one small interface between
 * this room and the store. The store implements it (ImageStore.registrySink); the client
 * never sees images.json or the snapshotter.
 *
 * - Blobs go into `content` (downloads adopt their finished file there).
 * - Everything a pull makes happens inside `hold`, so the store's garbage collection
 *   does not take blobs and layers no image names yet.
 * - `recordPulled` is the commit point: one metadata transaction writes the image and its
 *   name. A pull killed before it leaves only garbage, collected at the next start, so no
 *   half-pulled image is ever listed.
 */
export interface RegistrySink {
  content: ContentStore;
  hold<T>(fn: () => Promise<T>): Promise<T>;
  /** A committed layer with this chain id exists. */
  hasLayer(chainID: string): Promise<boolean>;
  /**
   * A blob berth holds with diff id `diffID` (a layer of another image, or the one layer
   * `chainID` was unpacked from), if any: a new image's layer held under another
   * compression is recorded with it (`heldAs`) instead of being fetched.
   */
  heldBlob(chainID: string, diffID: string): Promise<Descriptor | undefined>;
  /**
   * Unpack blob `digest` (from `input` as it downloads, else from the content store) as
   * layer `chainID`, checking its diff id, into a place of its own; commit() later puts it
   * on `parent` ('' for the first), which must be committed by then. Layers unpack in
   * parallel; they commit in chain order.
   */
  unpackLayer(l: UnpackSpec, input?: Readable, onBytes?: (n: number) => void): Promise<UnpackedLayer>;
  /** Record a pulled image and point `name` (a familiar tagged name) at it. Returns the id. */
  recordPulled(img: PulledImage): Promise<string>;
  /** The image a reference names now, if any. */
  find(ref: string): { id: string; repoDigests: string[] } | undefined;
  /** What a push sends for the image `ref` names. */
  pushable(ref: string): Promise<PushableImage>;
  /** Remember that `repoDigest` (repo@sha256:…) names image `id` (after a push). */
  addRepoDigest(id: string, repoDigest: string): Promise<void>;
}

export interface UnpackedLayer {
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export interface UnpackSpec {
  digest: string;
  mediaType: string;
  diffID: string;
  chainID: string;
  parent: string;
}

export interface PulledImage {
  config: Buffer;
  manifest: { bytes: Buffer; mediaType: string };
  layers: Array<{ digest: string; mediaType: string; size: number; diffID: string; chainID: string; heldAs?: Descriptor }>;
  /** Familiar tagged name to point at the image, if pulled by tag. */
  name?: string;
  /** repo@sha256:… */
  repoDigest: string;
}

export interface PushableImage {
  id: string;
  manifest: Descriptor;
  config: Descriptor;
  /** The manifest's layers; `heldAs` where berth holds another blob in its place (held-layers.ts). */
  layers: Array<Descriptor & { heldAs?: Descriptor }>;
  read(digest: string): Promise<Readable>;
}
