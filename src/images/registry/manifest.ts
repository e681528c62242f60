import { createHash } from 'node:crypto';
import { InvalidArgumentError, NotFoundError, UnavailableError } from '../../../volumes/shared/errors';
import { LAYER_MEDIA_TYPES, MEDIA, goArch } from '../config';
import type { RegistrySession } from './client';
import { header } from './client';
import { readAll } from './transport';

/**
 * Manifests: what we ask for (Accept), how we check what came (digest), and how an index
 * becomes one image manifest (platform). Four shapes are images: OCI index and manifest,
 * Docker manifest list and schema2. Docker's schema1 is refused with a hint (distribution
 * deprecated it in 2019; Docker refuses it since 28).
 */

export const SCHEMA1 = ['application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.docker.distribution.manifest.v1+json'];

export const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerManifestList, MEDIA.ociManifest, MEDIA.dockerManifest, ...SCHEMA1].join(', ');

/** A layer media type berth can unpack: plain, gzip and zstd tars. */
export const PULLABLE_LAYERS: ReadonlySet<string> = new Set([...LAYER_MEDIA_TYPES, MEDIA.ociLayerZstd, 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd']);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ManifestDoc {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
  doc: ManifestDoc;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parse `os/arch[/variant]` (`--platform`). */
export function parsePlatform(s: string | undefined): Platform {
  if (!s) return { os: 'linux', architecture: goArch() };
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(s)}`, { hint: 'give os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8' });
  }
  return { os: parts[0], architecture: normaliseArch(parts[1]), ...(parts[2] ? { variant: parts[2] } : {}) };
}

function normaliseArch(a: string): string {
  return ({ x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386' } as Record<string, string>)[a] ?? a;
}

export function platformString(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** GET a manifest by tag or digest, checked against its digest as it is read. */
export async function fetchManifest(s: RegistrySession, repo: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
  const res = await s.request('GET', `/v2/${repo}/manifests/${reference}`, {
    scope: `repository:${repo}:pull`,
    headers: { Accept: ACCEPT },
    what: `manifest ${repo}:${reference}`,
    signal,
  });
  const bytes = await readAll(res, 4 << 20);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const claimed = header(res, 'docker-content-digest');
  if (DIGEST.test(reference) && digest !== reference) throw corrupt(`manifest ${repo}@${reference}`, digest);
  if (!DIGEST.test(reference) && claimed && DIGEST.test(claimed) && claimed !== digest) throw corrupt(`manifest ${repo}:${reference}`, digest);
  let doc: ManifestDoc;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as ManifestDoc;
  } catch {
    throw new UnavailableError(`manifest ${repo}:${reference} from ${s.domain} is not JSON`, { hint: 'the registry sent something that is not a manifest; check the registry' });
  }
  const ct = (header(res, 'content-type') ?? '').split(';')[0].trim();
  const mediaType = doc.mediaType || ct || (doc.manifests ? MEDIA.ociIndex : MEDIA.ociManifest);
  if (SCHEMA1.includes(mediaType) || doc.schemaVersion === 1) {
    throw new InvalidArgumentError(`${repo}:${reference} on ${s.domain} has a Docker schema 1 manifest, which berth does not pull`, {
      hint: 'schema 1 is deprecated; push the image again with a current tool (docker push, skopeo copy, podman push write schema 2 or OCI)',
    });
  }
  return { bytes, mediaType, digest, doc };
}

export function isIndex(m: FetchedManifest): boolean {
  return m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerManifestList;
}

/**
 * The entry of an index for `want`: os and architecture equal, and the variant when
 * asked (arm64's default v8 matches none given). Attestations (`vnd.docker.reference.type`
 * annotations, unknown/unknown platforms) and unknown media types are skipped.
 */
export function pickFromIndex(m: FetchedManifest, want: Platform, name: string): Descriptor {
  const entries = (m.doc.manifests ?? []).filter(
    (d) =>
      (d.mediaType === MEDIA.ociManifest || d.mediaType === MEDIA.dockerManifest) &&
      !d.annotations?.['vnd.docker.reference.type'] &&
      d.platform &&
      d.platform.os !== 'unknown',
  );
  const variantOf = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : '');
  const hit =
    entries.find((d) => d.platform!.os === want.os && d.platform!.architecture === want.architecture && (!want.variant || variantOf(d.platform!) === variantOf(want))) ??
    undefined;
  if (!hit) {
    const have = entries.map((d) => platformString(d.platform!)).join(', ') || 'none';
    throw new NotFoundError(`no matching manifest for ${platformString(want)} in the manifest list entries of ${name} (it has: ${have})`, {
      hint: 'pick one of its platforms with --platform',
    });
  }
  if (!DIGEST.test(hit.digest)) throw new UnavailableError(`the index of ${name} has a bad digest ${JSON.stringify(hit.digest)}`, { hint: 'the image in the registry is malformed' });
  return hit;
}

/** Check an image manifest's shape: a config and layers berth can unpack. */
export function checkImageManifest(m: FetchedManifest, name: string): { config: Descriptor; layers: Descriptor[] } {
  if (m.mediaType !== MEDIA.ociManifest && m.mediaType !== MEDIA.dockerManifest) {
    throw new InvalidArgumentError(`${name} is a ${m.mediaType}, not an image`, { hint: 'pull an image (an artifact cannot be run)' });
  }
  const { config, layers } = m.doc;
  if (!config || !DIGEST.test(config.digest) || !Array.isArray(layers)) {
    throw new UnavailableError(`the manifest of ${name} has no config or layers`, { hint: 'the image in the registry is malformed' });
  }
  for (const l of layers) {
    if (!DIGEST.test(l.digest) || typeof l.size !== 'number') throw new UnavailableError(`the manifest of ${name} has a bad layer descriptor`, { hint: 'the image in the registry is malformed' });
    if (!PULLABLE_LAYERS.has(l.mediaType)) {
      throw new InvalidArgumentError(`layer ${l.digest} of ${name} has media type ${JSON.stringify(l.mediaType)}, which berth cannot unpack`, {
        hint: 'berth pulls plain, gzip and zstd tar layers; push the image with one of them',
      });
    }
  }
  return { config, layers };
}

export function corrupt(what: string, got: string): UnavailableError {
  return new UnavailableError(`${what} failed verification: its content hashes to ${got}`, {
    hint: 'the registry holds corrupt data or something on the way changed it; nothing of it was kept',
  });
}
