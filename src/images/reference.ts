import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Docker image references, parsed and normalised the way the docker CLI and daemon do
 * (distribution/reference's grammar):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [domain "/"] path-component ["/" path-component]*
 *   domain    := host [":" port]            (only when the first component has '.' or ':',
 *                                            or is 'localhost', or has upper case)
 *   path-component := [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := algorithm ":" hex
 *
 * Words: the **full name** is `docker.io/library/busybox`; the **familiar name** (what
 * users type and what berth shows) is `busybox`; a **tagged name** is `busybox:latest`.
 * berth keys its tags by familiar tagged name.
 */

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DOMAIN = 'index.docker.io';
const NAME_TOTAL_LENGTH_MAX = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

const NAME_HINT =
  'image names are lower case: components of letters and digits joined by . _ __ or -, separated by /, ' +
  'with an optional registry host first (e.g. busybox, myorg/app, localhost:5000/app:v1)';
const TAG_HINT = 'a tag is 1 to 128 characters of letters, digits, _ . and -, and does not start with . or -';

export interface Reference {
  /** Registry host[:port], e.g. 'docker.io' or 'localhost:5000'. */
  domain: string;
  /** Repository path inside the registry, e.g. 'library/busybox'. */
  path: string;
  /** Full name: `${domain}/${path}`. */
  name: string;
  /** Familiar name: 'busybox', 'myorg/app', 'localhost:5000/app'. */
  repo: string;
  /** The tag as written, if any. */
  tag?: string;
  /** The digest as written, if any ('sha256:…'). */
  digest?: string;
}

/**
 * Parse a reference like the docker CLI does (ParseNormalizedNamed). Throws
 * InvalidArgumentError (with a hint) for anything Docker rejects.
 */
export function parseReference(input: string): Reference {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidArgumentError('invalid reference format: empty image name', { hint: NAME_HINT });
  }
  if (HEX64.test(input)) {
    throw new InvalidArgumentError(`invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`, {
      hint: 'to name an image by id, use sha256:<id>; to tag it, pick a name that is not 64 hex digits',
    });
  }
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw new InvalidArgumentError(`invalid reference format: bad digest in ${JSON.stringify(input)}`, {
        hint: 'a digest is algorithm:hex, e.g. name@sha256:<64 hex digits>',
      });
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw new InvalidArgumentError(`invalid reference format: bad tag ${JSON.stringify(tag)} in ${JSON.stringify(input)}`, {
        hint: TAG_HINT,
      });
    }
  }
  const { domain, path } = splitDomain(rest, input);
  const name = `${domain}/${path}`;
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw new InvalidArgumentError(`invalid reference format: repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`, {
      hint: 'use a shorter image name',
    });
  }
  return { domain, path, name, repo: familiarName(domain, path), ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** Parse and give the reference a tag ('latest') when it has neither tag nor digest. */
export function parseNamed(input: string): Reference & { tag?: string } {
  const ref = parseReference(input);
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** Validate a tag on its own (the `tag` parameter of tag/import). */
export function validateTag(tag: string): string {
  if (!TAG.test(tag)) throw new InvalidArgumentError(`invalid tag format ${JSON.stringify(tag)}`, { hint: TAG_HINT });
  return tag;
}

/**
 * Parse `repo` (which may carry a tag) plus an optional separate `tag` into a familiar
 * tagged name ('busybox:latest'), as the tag and import endpoints do.
 */
export function parseRepoTag(repo: string, tag?: string): Reference & { tag: string } {
  const ref = parseReference(repo);
  if (ref.digest) {
    throw new InvalidArgumentError(`cannot tag with a digest reference ${JSON.stringify(repo)}`, {
      hint: 'give a name and a tag, e.g. myimage:v1',
    });
  }
  if (tag) {
    validateTag(tag);
    if (ref.tag !== undefined && ref.tag !== tag) {
      throw new InvalidArgumentError(`both ${JSON.stringify(repo)} and tag ${JSON.stringify(tag)} name a tag`, {
        hint: 'give the tag once: either repo:tag or repo plus tag',
      });
    }
    ref.tag = tag;
  }
  return { ...ref, tag: ref.tag ?? DEFAULT_TAG };
}

/** 'busybox:latest' for a tagged reference. */
export function familiarTagged(ref: { repo: string; tag: string }): string {
  return `${ref.repo}:${ref.tag}`;
}

/** 'docker.io/library/busybox:latest': what goes in io.containerd.image.name. */
export function fullTagged(familiar: string): string {
  const ref = parseNamed(familiar);
  return `${ref.name}:${ref.tag}`;
}

/** Split a familiar tagged name ('localhost:5000/a:t') into repo and tag. */
export function splitTagged(tagged: string): { repo: string; tag: string } {
  const i = tagged.lastIndexOf(':');
  return { repo: tagged.slice(0, i), tag: tagged.slice(i + 1) };
}

/**
 * If `s` can be an image id or id prefix ('sha256:abc…' or 'abc…'), its hex part;
 * otherwise undefined.
 */
export function idPrefix(s: string): string | undefined {
  const m = /^(?:sha256:)?([0-9a-f]{1,64})$/.exec(s);
  return m ? m[1] : undefined;
}

export function isDigest(s: string): boolean {
  return SHA256_DIGEST.test(s);
}

function splitDomain(name: string, input: string): { domain: string; path: string } {
  let domain = DEFAULT_DOMAIN;
  let remainder = name;
  const i = name.indexOf('/');
  if (i >= 0) {
    const first = name.slice(0, i);
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      domain = first;
      remainder = name.slice(i + 1);
    }
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (!DOMAIN.test(domain)) {
    throw new InvalidArgumentError(`invalid reference format: bad registry host ${JSON.stringify(domain)} in ${JSON.stringify(input)}`, {
      hint: NAME_HINT,
    });
  }
  if (remainder.toLowerCase() !== remainder) {
    throw new InvalidArgumentError(`invalid reference format: repository name (${remainder}) must be lowercase`, { hint: NAME_HINT });
  }
  const parts = remainder.split('/');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) {
      throw new InvalidArgumentError(`invalid reference format: ${JSON.stringify(input)}`, { hint: NAME_HINT });
    }
  }
  if (domain === DEFAULT_DOMAIN && parts.length === 1) remainder = `library/${remainder}`;
  return { domain, path: remainder };
}

function familiarName(domain: string, path: string): string {
  if (domain !== DEFAULT_DOMAIN) return `${domain}/${path}`;
  if (path.startsWith('library/') && path.split('/').length === 2) return path.slice('library/'.length);
  return path;
}
