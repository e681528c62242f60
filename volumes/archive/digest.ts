/**
 * sha256 while streaming: a pass-through Transform that hashes and counts what flows
 * through it, so a layer's diffID (digest of the uncompressed tar) comes out of the same
 * single pass that applies or uploads it, with nothing buffered.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

export interface DigestStream {
  stream: Transform;
  /** `sha256:<hex>` of everything that passed; call after the stream has ended. */
  digest(): string;
  /** Bytes that passed so far. */
  size(): number;
}

export function digestStream(): DigestStream {
  const hash = createHash('sha256');
  let size = 0;
  let hex: string | null = null;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    stream,
    digest: () => 'sha256:' + (hex ??= hash.digest('hex')),
    size: () => size,
  };
}
