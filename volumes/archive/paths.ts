/**
 * Name rules for layer tar entries: how a tar member name becomes a path inside the layer
 * directory, and which names are OCI whiteouts. Pure functions (no I/O), so the hostile
 * cases are cheap to reason about; the file system checks (symlinks on the way) live in
 * apply.ts.
 */
import { InvalidArgumentError } from '../shared/errors';

/** Linux PATH_MAX; longer names cannot be created anyway, and only hostile tars have them. */
export const MAX_NAME_BYTES = 4096;
/** Linux NAME_MAX for one component. */
const MAX_COMPONENT_BYTES = 255;

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

const HINT = 'the layer tarball is malformed or hostile; rebuild or re-pull the image from a trusted source';

export function badLayer(message: string): InvalidArgumentError {
  return new InvalidArgumentError(message, { hint: HINT });
}

/** Reject what no file system path may hold: NUL bytes, over-long names. */
export function checkRawName(name: string, what: string): void {
  if (name.includes('\0')) throw badLayer(`${what} contains a NUL byte: ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw badLayer(`${what} is longer than ${MAX_NAME_BYTES} bytes`);
}

/**
 * A tar member name as path components relative to the layer root. Lexical, like Go's
 * filepath.Clean: leading slashes are dropped (absolute names are neutralised the way
 * `tar` strips them), `.` and empty components vanish, `..` pops, and a `..` that would
 * climb above the root rejects the whole layer rather than being clamped, because a tar
 * that tries it is hostile. An empty array is the root itself.
 */
export function cleanPath(name: string, what = 'entry name'): string[] {
  checkRawName(name, what);
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw badLayer(`${what} climbs above the layer root: ${JSON.stringify(name)}`);
      out.pop();
      continue;
    }
    if (Buffer.byteLength(part) > MAX_COMPONENT_BYTES) throw badLayer(`${what} has a component over 255 bytes`);
    out.push(part);
  }
  return out;
}

export type WhiteoutKind = { kind: 'none' } | { kind: 'opaque' } | { kind: 'whiteout'; name: string };

/**
 * Classify a base name under the OCI whiteout rules. `.wh.NAME` hides NAME of lower
 * layers, `.wh..wh..opq` makes its directory opaque. Every other `.wh..wh.` name (aufs
 * hardlink dirs and the like) and whiteouts of '', '.' or '..' are rejected: converting
 * them would either mean nothing or hit the parent directory itself.
 */
export function classifyWhiteout(base: string): WhiteoutKind {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_MARKER) return { kind: 'opaque' };
  if (base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) throw badLayer(`unsupported whiteout ${JSON.stringify(base)}`);
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..') throw badLayer(`invalid whiteout ${JSON.stringify(base)}`);
  return { kind: 'whiteout', name };
}
