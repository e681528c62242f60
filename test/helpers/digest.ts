import { createHash } from 'node:crypto';

/** The SHA-256 of `b`, as 64 hex digits. */
export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The OCI digest of `b`: `sha256:` and its SHA-256 (how image ids, layers and blobs are named). */
export function digest(b: Buffer | string): string {
  return `sha256:${sha256(b)}`;
}
