import { randomBytes } from 'node:crypto';

/** Docker's label on a volume made without a name (`-v /data`, an image's VOLUME). */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

/** A new anonymous volume's name: 64 hex digits, as Docker makes them. */
export function anonymousName(): string {
  return randomBytes(32).toString('hex');
}
