import { InvalidArgumentError } from '../../volumes/shared/errors';
import { ARCHIVE_HINT, ArchiveIndex, blobPath, missingFile, type ArchiveFile } from './archive';
import { LAYER_MEDIA_TYPES, MEDIA, goArch, layerMediaType, type ImageConfig } from './config';
import { familiarTagged, parseNamed, parseReference } from './reference';

/**
 * Turning a read archive into the images it holds, without touching the store: which
 * config, which layer files in which order, which names. Two formats, one result:
 *
 * - docker-archive (`docker save`, `podman save`): `manifest.json` lists
 *   [{Config, RepoTags, Layers}] with paths into the archive (legacy `<id>/layer.tar`,
 *   podman's `<digest>.tar`, or Docker 25+'s `blobs/sha256/<hex>`).
 * - OCI image layout: `oci-layout` + `index.json` → manifests (possibly through nested
 *   indexes) → config and layer descriptors under `blobs/`. Names come from the
 *   `io.containerd.image.name` or `org.opencontainers.image.ref.name` annotations.
 *
 * When an archive is both (Docker 25+ and berth write both), manifest.json wins: it carries
 * the names as `docker load` sees them.
 */

export interface PendingLayer {
  file: ArchiveFile;
  mediaType: string;
  diffID: string;
}

export interface PendingImage {
  config: ImageConfig;
  configFile: ArchiveFile;
  layers: PendingLayer[];
  /** Familiar tagged names ('busybox:latest'). */
  names: string[];
  /** The image's manifest, when the archive has one (OCI layout). */
  manifest?: { file: ArchiveFile; mediaType: string };
}

interface DockerManifestEntry {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string; variant?: string };
}

interface OciManifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

export async function resolveArchive(index: ArchiveIndex): Promise<PendingImage[]> {
  let images: PendingImage[];
  if (index.has('manifest.json')) images = await fromDockerArchive(index);
  else if (index.has('index.json')) images = await fromOciLayout(index);
  else {
    throw new InvalidArgumentError('the archive has neither manifest.json nor index.json: it is not an image archive', {
      hint: ARCHIVE_HINT,
    });
  }
  if (images.length === 0) {
    throw new InvalidArgumentError('the archive lists no images', { hint: ARCHIVE_HINT });
  }
  return merge(images);
}

async function fromDockerArchive(index: ArchiveIndex): Promise<PendingImage[]> {
  const entries = await index.json<DockerManifestEntry[]>('manifest.json');
  if (!Array.isArray(entries)) throw malformed('manifest.json is not a list');
  const out: PendingImage[] = [];
  for (const e of entries) {
    if (!e || typeof e.Config !== 'string' || !Array.isArray(e.Layers)) throw malformed('a manifest.json entry lacks Config or Layers');
    const configFile = index.get(e.Config);
    if (!configFile) throw missingFile(e.Config);
    const config = await parseConfig(index, configFile, e.Config);
    const diffIDs = config.rootfs.diff_ids;
    if (diffIDs.length !== e.Layers.length) {
      throw malformed(`${e.Config} lists ${diffIDs.length} layers but manifest.json lists ${e.Layers.length}`);
    }
    const layers: PendingLayer[] = [];
    for (let i = 0; i < e.Layers.length; i++) {
      const p = e.Layers[i];
      if (typeof p !== 'string') throw malformed('a layer path in manifest.json is not a string');
      const file = index.get(p);
      if (!file) throw missingFile(p);
      layers.push({ file, mediaType: layerMediaType(await index.head(file)), diffID: diffIDs[i] });
    }
    const names = (e.RepoTags ?? []).map((t) => {
      const ref = parseNamed(t);
      if (!ref.tag) throw malformed(`RepoTags entry ${t} has no tag`);
      return familiarTagged({ repo: ref.repo, tag: ref.tag });
    });
    out.push({ config, configFile, layers, names });
  }
  return out;
}

async function fromOciLayout(index: ArchiveIndex): Promise<PendingImage[]> {
  if (index.has('oci-layout')) {
    const layout = await index.json<{ imageLayoutVersion?: string }>('oci-layout');
    if (typeof layout?.imageLayoutVersion !== 'string') throw malformed('oci-layout has no imageLayoutVersion');
  }
  const top = await index.json<OciManifest>('index.json');
  if (!top || !Array.isArray(top.manifests)) throw malformed('index.json has no manifests list');
  const out: PendingImage[] = [];
  await walkIndex(index, top.manifests, [], out, 0);
  return out;
}

async function walkIndex(index: ArchiveIndex, descs: Descriptor[], inherited: string[], out: PendingImage[], depth: number): Promise<void> {
  if (depth > 8) throw malformed('indexes nest more than 8 deep');
  for (const d of pickPlatform(descs, depth)) {
    const names = namesOf(d.annotations);
    const use = names.length ? names : inherited;
    const file = blobFile(index, d);
    const doc = await parseJson<OciManifest>(index, file);
    const mt = d.mediaType ?? doc.mediaType;
    if (mt === MEDIA.ociIndex || mt === MEDIA.dockerManifestList || (!mt && Array.isArray(doc.manifests))) {
      await walkIndex(index, doc.manifests ?? [], use, out, depth + 1);
      continue;
    }
    if (mt !== MEDIA.ociManifest && mt !== MEDIA.dockerManifest && !(mt === undefined && doc.config)) {
      continue; // not an image (e.g. an artifact or attestation manifest)
    }
    if (!doc.config || !Array.isArray(doc.layers)) throw malformed(`manifest ${d.digest} has no config or layers`);
    const configFile = blobFile(index, doc.config);
    const config = await parseConfig(index, configFile, blobPath(doc.config.digest!));
    if (config.rootfs.diff_ids.length !== doc.layers.length) {
      throw malformed(`config ${doc.config.digest} lists ${config.rootfs.diff_ids.length} layers but its manifest lists ${doc.layers.length}`);
    }
    const layers: PendingLayer[] = [];
    for (let i = 0; i < doc.layers.length; i++) {
      const l = doc.layers[i];
      const mediaType = l.mediaType ?? '';
      if (!LAYER_MEDIA_TYPES.has(mediaType)) {
        throw new InvalidArgumentError(`layer ${l.digest} has media type ${JSON.stringify(mediaType)}, which berth cannot unpack`, {
          hint: 'convert the image to plain or gzip layers first (e.g. skopeo copy --dest-compress-format gzip)',
        });
      }
      layers.push({ file: blobFile(index, l), mediaType, diffID: config.rootfs.diff_ids[i] });
    }
    out.push({ config, configFile, layers, names: use, manifest: { file, mediaType: mt ?? MEDIA.ociManifest } });
  }
}

/**
 * Only the entries this host runs (all, when none names a platform); inside a nested
 * index (one image, several platforms) only the first of those.
 */
function pickPlatform(descs: Descriptor[], depth: number): Descriptor[] {
  if (!descs.some((d) => d.platform)) return descs;
  const arch = goArch();
  const mine = descs.filter((d) => !d.platform || ((d.platform.os ?? 'linux') === 'linux' && (d.platform.architecture ?? arch) === arch));
  if (mine.length === 0) {
    throw new InvalidArgumentError(`the archive has no image for linux/${arch}`, { hint: 'export the image for this platform' });
  }
  return depth > 0 ? mine.slice(0, 1) : mine;
}

/**
 * Names from annotations: containerd's full name first; the OCI ref name only when it is a
 * whole reference (a bare 'latest' is a tag with no repository, so it names nothing).
 */
function namesOf(a: Record<string, string> | undefined): string[] {
  if (!a) return [];
  const candidates = [a['io.containerd.image.name'], a['org.opencontainers.image.ref.name']];
  for (const c of candidates) {
    if (!c || !/[/:]/.test(c)) continue;
    try {
      const ref = parseReference(c);
      if (ref.digest && !ref.tag) continue;
      return [familiarTagged({ repo: ref.repo, tag: ref.tag ?? 'latest' })];
    } catch {
      continue; // a ref name that is not a docker reference: keep the image, unnamed
    }
  }
  return [];
}

function blobFile(index: ArchiveIndex, d: Descriptor): ArchiveFile {
  if (typeof d.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d.digest)) {
    throw malformed(`a descriptor has a bad digest ${JSON.stringify(d.digest)}`);
  }
  const p = blobPath(d.digest);
  const f = index.get(p);
  if (!f) throw missingFile(p);
  if (f.digest !== d.digest) {
    throw new InvalidArgumentError(`digest mismatch for ${p}: the file hashes to ${f.digest}`, {
      hint: 'the archive is corrupt or was changed after it was written; export it again',
    });
  }
  if (typeof d.size === 'number' && d.size !== f.size) {
    throw new InvalidArgumentError(`size mismatch for ${p}: the descriptor says ${d.size} bytes, the file has ${f.size}`, {
      hint: 'the archive is corrupt or was changed after it was written; export it again',
    });
  }
  return f;
}

async function parseJson<T>(index: ArchiveIndex, f: ArchiveFile): Promise<T> {
  return index.json<T>(f.path);
}

async function parseConfig(index: ArchiveIndex, f: ArchiveFile, name: string): Promise<ImageConfig> {
  const c = await parseJson<ImageConfig>(index, f);
  if (!c || typeof c !== 'object' || !c.rootfs || !Array.isArray(c.rootfs.diff_ids)) {
    throw malformed(`${name} is not an image config (no rootfs.diff_ids)`);
  }
  for (const d of c.rootfs.diff_ids) {
    if (typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d)) throw malformed(`${name} has a bad diff_id ${JSON.stringify(d)}`);
  }
  // Legacy docker-archives name the config by its digest: hold them to it.
  const m = /(?:^|\/)([0-9a-f]{64})\.json$/.exec(name);
  if (m && `sha256:${m[1]}` !== f.digest) {
    throw new InvalidArgumentError(`digest mismatch for ${name}: the file hashes to ${f.digest}`, {
      hint: 'the archive is corrupt or was changed after it was written; export it again',
    });
  }
  return c;
}

/** One entry per image id, names merged in order. */
function merge(images: PendingImage[]): PendingImage[] {
  const by = new Map<string, PendingImage>();
  for (const img of images) {
    const prev = by.get(img.configFile.digest);
    if (!prev) by.set(img.configFile.digest, { ...img, names: [...img.names] });
    else {
      for (const n of img.names) if (!prev.names.includes(n)) prev.names.push(n);
      prev.manifest ??= img.manifest;
    }
  }
  return [...by.values()];
}

function malformed(what: string): InvalidArgumentError {
  return new InvalidArgumentError(`malformed image archive: ${what}`, { hint: ARCHIVE_HINT });
}

