import type { Writable } from 'node:stream';
import * as tar from 'tar-stream';
import { UnavailableError } from '../../volumes/shared/errors';
import { blobPath } from './archive';
import { MEDIA } from './config';
import type { ContentStore } from './content';
import { fullTagged, splitTagged } from './reference';

/**
 * Writing `docker save` output the way Docker 25+ does: one tarball that is at the same
 * time an OCI image layout (oci-layout, index.json, blobs/) and a docker-archive
 * (manifest.json, repositories) whose paths point into the same blobs/. Blobs are the
 * stored bytes, unchanged, so a load → save → load round trip keeps every digest.
 *
 * Entries get fixed owners and times (root, epoch 0): saving the same images twice gives
 * the same bytes.
 */

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface SaveImage {
  id: string;
  config: Descriptor;
  layers: Descriptor[];
  manifest: Descriptor;
  /** Familiar tagged names to write for this image (none: saved by id, unnamed). */
  names: string[];
}

const EPOCH = new Date(0);

export async function writeArchive(images: SaveImage[], content: ContentStore, out: Writable): Promise<void> {
  const pack = tar.pack();
  let failed: Error | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    const fail = (e: Error) => {
      failed ??= e;
      pack.destroy(e);
      reject(e);
    };
    out.once('error', fail);
    out.once('close', () => {
      if (!out.writableFinished) fail(new UnavailableError('the reader of the archive went away', { hint: 'save again' }));
    });
    out.once('finish', () => resolve());
    pack.once('error', fail);
  });
  finished.catch(() => undefined);
  pack.pipe(out);

  try {
    const blobs = new Map<string, Descriptor>();
    for (const img of images) {
      for (const d of [...img.layers, img.config, img.manifest]) blobs.set(d.digest, d);
    }
    await addDir(pack, 'blobs');
    await addDir(pack, 'blobs/sha256');
    for (const d of blobs.values()) {
      if (failed) throw failed;
      await addBlob(pack, content, d);
    }

    const index = {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: images.flatMap((img) => {
        const base = { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size };
        if (img.names.length === 0) return [base];
        return img.names.map((n) => ({
          ...base,
          annotations: { 'io.containerd.image.name': fullTagged(n), 'org.opencontainers.image.ref.name': splitTagged(n).tag },
        }));
      }),
    };
    const manifest = images.map((img) => ({
      Config: blobPath(img.config.digest),
      RepoTags: img.names.length ? img.names : null,
      Layers: img.layers.map((l) => blobPath(l.digest)),
    }));
    const repositories: Record<string, Record<string, string>> = {};
    for (const img of images) {
      const top = img.layers[img.layers.length - 1];
      if (!top) continue;
      for (const n of img.names) {
        const { repo, tag } = splitTagged(n);
        (repositories[repo] ??= {})[tag] = top.digest.split(':')[1];
      }
    }
    await addFile(pack, 'index.json', JSON.stringify(index));
    await addFile(pack, 'manifest.json', JSON.stringify(manifest));
    await addFile(pack, 'oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (Object.keys(repositories).length) await addFile(pack, 'repositories', JSON.stringify(repositories));
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    throw failed ?? e;
  }
  await finished;
}

function addDir(pack: tar.Pack, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name: `${name}/`, type: 'directory', mode: 0o755, mtime: EPOCH, uid: 0, gid: 0 }, (err) => (err ? reject(err) : resolve()));
  });
}

function addFile(pack: tar.Pack, name: string, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0 }, Buffer.from(data), (err) => (err ? reject(err) : resolve()));
  });
}

async function addBlob(pack: tar.Pack, content: ContentStore, d: Descriptor): Promise<void> {
  const { size } = await content.info(d.digest);
  const reader = await content.reader(d.digest);
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry({ name: blobPath(d.digest), size, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0 }, (err) =>
      err ? reject(err) : resolve(),
    );
    reader.on('error', (e) => {
      entry.destroy(e);
      reject(e);
    });
    reader.pipe(entry as unknown as NodeJS.WritableStream);
  });
}

