import { createHash } from 'node:crypto';
import { MEDIA } from './config';
import type { ContentStore } from './content';
import type { LayerRecord } from './records';
import type { Descriptor } from './save';

/**
 * Layers held under another blob. A pull of a new image whose layer berth holds already
 * (the same diff id, so the same unpacked snapshot) but under another compression (the
 * registry has it as zstd, berth as gzip or as a plain tar) does not fetch that blob, as
 * Docker does not: the layer record keeps the registry's descriptor (what the image's
 * manifest names) and `heldAs`, the blob of the same diff id berth has. Save and push send
 * `heldAs` in its place, in a manifest rewritten to name it (`withHeldLayers`); the image
 * id (its config) is the same. A push first asks the registry for the original blob (HEAD,
 * then a mount from where it was pulled) and keeps the original manifest when it has it.
 */

/** The blob berth holds that a save or push sends for this layer: its own, else heldAs. */
export async function blobToSend(content: ContentStore, l: Pick<LayerRecord, 'digest' | 'mediaType' | 'size' | 'heldAs'>): Promise<Descriptor> {
  if (!l.heldAs || (await content.has(l.digest))) return { mediaType: l.mediaType, digest: l.digest, size: l.size };
  return l.heldAs;
}

/** The OCI media type for a layer blob that starts with `head` (gzip, zstd, or a plain tar). */
export function layerTypeOf(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return MEDIA.ociLayerGzip;
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return MEDIA.ociLayerZstd;
  return MEDIA.ociLayer;
}

const TO_OCI: Record<string, string> = {
  [MEDIA.dockerConfig]: MEDIA.ociConfig,
  [MEDIA.dockerLayer]: MEDIA.ociLayer,
  [MEDIA.dockerLayerGzip]: MEDIA.ociLayerGzip,
};

/**
 * `manifest` (the stored one, bytes as pulled) with layer i replaced by `sent[i]` where it
 * differs: an OCI image manifest (Docker's schema2 has no media type for zstd), with the
 * same config and, for an OCI manifest, its annotations. Unchanged when nothing differs.
 */
export function withHeldLayers(manifest: Buffer, mediaType: string, sent: Descriptor[]): { bytes: Buffer; mediaType: string; digest: string; size: number } {
  const doc = JSON.parse(manifest.toString('utf8')) as { config: Descriptor; layers: Array<Descriptor & Record<string, unknown>>; annotations?: Record<string, string> };
  const same = doc.layers.length === sent.length && doc.layers.every((l, i) => l.digest === sent[i].digest);
  if (same) return { bytes: manifest, mediaType, digest: sha256(manifest), size: manifest.length };
  const oci = (d: Descriptor) => ({ mediaType: TO_OCI[d.mediaType] ?? d.mediaType, digest: d.digest, size: d.size });
  const out: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: oci(doc.config),
    layers: doc.layers.map((l, i) => (l.digest === sent[i].digest ? { ...l, mediaType: TO_OCI[l.mediaType] ?? l.mediaType } : oci(sent[i]))),
  };
  if (mediaType === MEDIA.ociManifest && doc.annotations) out.annotations = doc.annotations;
  const bytes = Buffer.from(JSON.stringify(out));
  return { bytes, mediaType: MEDIA.ociManifest, digest: sha256(bytes), size: bytes.length };
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}
