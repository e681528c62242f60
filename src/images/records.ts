import { InvalidArgumentError } from '../../volumes/shared/errors';
import { familiarTagged, idPrefix, parseReference, splitTagged } from './reference';
import type { Descriptor } from './save';

/**
 * The image store's metadata (`images.json`, one JsonStore document) and the lookups on
 * it: by id or id prefix, by name, by name@digest; tags; list filters.
 */

export interface LayerRecord {
  /** The blob as stored (and saved): compressed or not. */
  digest: string;
  mediaType: string;
  size: number;
  diffID: string;
  chainID: string;
  /** Bytes the unpacked layer takes on disk. */
  unpackedSize: number;
  /**
   * A pulled layer berth held already under another blob (the same diff id, compressed
   * otherwise) and so did not fetch: that blob, which save and push send in its place
   * (held-layers.ts). `digest` is then the registry's, not held unless fetched later.
   */
  heldAs?: Descriptor;
}

export interface ImageRecord {
  id: string;
  config: Descriptor;
  manifest: Descriptor;
  layers: LayerRecord[];
  /** From the config (RFC 3339). */
  created: string;
  lastTagTime: string;
  /**
   * A committed image's source container and its config (inspect's Container and
   * ContainerConfig). Kept here, not in the config blob, which is written in the OCI
   * shape so converters keep the image id.
   */
  container?: string;
  containerConfig?: object;
  /**
   * The image this one was made on by a commit or a build step (Docker's Parent). A list
   * without `all` hides untagged images that are some image's parent: a build's
   * intermediate images, kept for its cache.
   */
  parent?: string;
  /** 'repo@sha256:…': the manifests (or indexes) this image was pulled by or pushed as. */
  repoDigests?: string[];
}

export interface Doc {
  version: 1;
  images: Record<string, ImageRecord>;
  /** Familiar tagged name ('busybox:latest') → image id. */
  tags: Record<string, string>;
}

export const EMPTY_DOC: Doc = { version: 1, images: {}, tags: {} };

/**
 * Look an image up as docker does: a full id or 'sha256:' prefix; a name (repo[:tag],
 * tag defaulting to latest); a name@digest (manifest digest or id); then, for a bare hex
 * string that names nothing, an id prefix. InvalidArgumentError for a malformed name.
 */
export function findImage(doc: Doc, ref: string): ImageRecord | undefined {
  if (/^sha256:[0-9a-f]+$/.test(ref) || /^[0-9a-f]{64}$/.test(ref)) return byIdPrefix(doc, idPrefix(ref)!);
  let named: ReturnType<typeof parseReference> | undefined;
  try {
    named = parseReference(ref);
  } catch (e) {
    if (idPrefix(ref) === undefined) throw e;
  }
  if (named) {
    if (named.digest) {
      const d = named.digest;
      const repo = named.repo;
      const all = Object.values(doc.images).filter((r) => r.manifest.digest === d || r.id === d || (r.repoDigests ?? []).includes(`${repo}@${d}`));
      return all.find((r) => tagsOf(doc, r.id).some((t) => splitTagged(t).repo === repo)) ?? all[0];
    }
    const id = doc.tags[familiarTagged({ repo: named.repo, tag: named.tag ?? 'latest' })];
    if (id && doc.images[id]) return doc.images[id];
  }
  const hex = idPrefix(ref);
  return hex ? byIdPrefix(doc, hex) : undefined;
}

export function tagsOf(doc: Doc, id: string): string[] {
  return Object.keys(doc.tags)
    .filter((t) => doc.tags[t] === id)
    .sort();
}

export function setTag(doc: Doc, name: string, id: string): void {
  doc.tags[name] = id;
  doc.images[id].lastTagTime = new Date().toISOString();
}

/** The tag `ref` names, if it is a name (not an id) and that tag exists. */
export function tagNameOf(doc: Doc, ref: string): string | undefined {
  if (/^sha256:/.test(ref) || /^[0-9a-f]{64}$/.test(ref)) return undefined;
  try {
    const r = parseReference(ref);
    if (r.digest) return undefined;
    const t = familiarTagged({ repo: r.repo, tag: r.tag ?? 'latest' });
    return doc.tags[t] ? t : undefined;
  } catch {
    return undefined;
  }
}

export function byIdPrefix(doc: Doc, hex: string): ImageRecord | undefined {
  const hits = Object.keys(doc.images).filter((id) => id.slice('sha256:'.length).startsWith(hex));
  if (hits.length > 1) {
    throw new InvalidArgumentError(`image id prefix ${hex} is ambiguous (${hits.length} images)`, { hint: 'give more digits of the id' });
  }
  return hits.length ? doc.images[hits[0]] : undefined;
}

/** docker's reference filter: a glob on the familiar name, with or without the tag. */
export function matchReference(pattern: string, tagged: string): boolean {
  // A full name (docker.io/library/busybox) matches the familiar one.
  const familiar = pattern.replace(/^docker\.io\/(library\/(?=[^/]*$))?/, '');
  const re = new RegExp(
    `^${familiar
      .split('')
      .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('')}$`,
  );
  const { repo } = splitTagged(tagged);
  return re.test(tagged) || re.test(repo);
}

export function matchLabel(filter: string, labels: Record<string, string> | null): boolean {
  const i = filter.indexOf('=');
  if (i < 0) return !!labels && filter in labels;
  return !!labels && labels[filter.slice(0, i)] === filter.slice(i + 1);
}
