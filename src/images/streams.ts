import { PassThrough, Readable } from 'node:stream';
import { InvalidArgumentError, isBerthError, toBerthError, type BerthError } from '../../volumes/shared/errors';
import type { Progress } from './service';

/**
 * Small stream helpers for the image store: split one input between two consumers,
 * peek at the first bytes, and tell a malformed input apart from an I/O failure.
 */

/**
 * Feed `input` to two consumers with backpressure (the slower one sets the pace). An error
 * on the input is passed to both; call `abort(err)` when either consumer fails so the other
 * stops too. `head()` gives the first bytes seen (up to 512), `bytes()` the count so far.
 */
export function tee(input: Readable): {
  a: PassThrough;
  b: PassThrough;
  abort(err: Error): void;
  head(): Buffer;
  bytes(): number;
} {
  const a = new PassThrough({ highWaterMark: 1 << 20 });
  const b = new PassThrough({ highWaterMark: 1 << 20 });
  // A consumer that already gave up no longer listens; its side's error is not news.
  a.on('error', () => undefined);
  b.on('error', () => undefined);
  if (input.destroyed) {
    // It failed (or was closed) before we got to it: nothing will ever flow.
    const e = input.errored ?? new InvalidArgumentError('the input stream was closed before it ended', { hint: 'send the whole file again' });
    a.destroy(e);
    b.destroy(e);
  }
  let head = Buffer.alloc(0);
  let bytes = 0;
  input.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (head.length < 512) head = Buffer.concat([head, chunk.subarray(0, 512 - head.length)]);
  });
  input.on('error', (e) => {
    a.destroy(e);
    b.destroy(e);
  });
  // A client that hangs up closes the request without 'end' and often without 'error'.
  input.on('close', () => {
    if (input.readableEnded) return;
    const e = new InvalidArgumentError('the input stream was closed before it ended', { hint: 'send the whole file again' });
    a.destroy(e);
    b.destroy(e);
  });
  input.pipe(a);
  input.pipe(b);
  return {
    a,
    b,
    abort(err) {
      input.unpipe(a);
      input.unpipe(b);
      a.destroy(err);
      b.destroy(err);
      drain(input);
    },
    head: () => head,
    bytes: () => bytes,
  };
}

/**
 * Read the rest of an input we no longer want and throw it away. We do not destroy it: for
 * an HTTP request that would reset the connection, and the client, still sending, would
 * never see our error reply. The caller who owns the stream may still destroy it.
 */
export function drain(input: Readable): void {
  if (input.destroyed || input.readableEnded) return;
  input.on('error', () => undefined);
  input.removeAllListeners('readable');
  input.resume();
}

/**
 * Listen for errors on `input` from the moment a request takes it, so a failure before the
 * consumer is attached (while a snapshot is being prepared, say) is not an uncaught
 * exception. The consumer still sees the error: the stream is destroyed with it.
 */
export function guard(input: Readable): void {
  input.on('error', () => undefined);
}

/**
 * Read the first `n` bytes of `input` (fewer if it is shorter) and return them together
 * with a stream that yields the whole input, those bytes included.
 */
export async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let got = 0;
  // Returning the iterator must not destroy the input: the caller may still drain it.
  const it = input.iterator({ destroyOnReturn: false });
  let done = false;
  while (got < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const c = typeof r.value === 'string' ? Buffer.from(r.value) : (r.value as Buffer);
    chunks.push(c);
    got += c.length;
  }
  const head = Buffer.concat(chunks).subarray(0, n);
  async function* all(): AsyncGenerator<Buffer> {
    for (const c of chunks) yield c;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield typeof r.value === 'string' ? Buffer.from(r.value) : (r.value as Buffer);
    }
  }
  const stream = Readable.from(all(), { objectMode: false });
  stream.on('close', () => {
    // Our consumer gave up early: let go of the source and read it to the end.
    if (input.readableEnded) return;
    void it.return?.(undefined);
    drain(input);
  });
  return { head, stream };
}

/**
 * Errors from parsing (tar-stream, zlib, JSON) mean the input is malformed: the caller's
 * error, reported as InvalidArgumentError. Errors from a syscall (ENOSPC, EIO) are ours
 * and keep their class.
 */
export function formatError(e: unknown, what: string, hint: string): BerthError {
  if (isBerthError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.syscall === 'string') return toBerthError(e);
  return new InvalidArgumentError(`${what}: ${err?.message ?? String(e)}`, { hint, cause: e });
}

/** Compression formats seen at the start of a stream. */
export function compressionOf(head: Buffer): 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'none' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/**
 * A progress callback that passes at most one report per `ms` (a 1 GB import reports
 * 16000 chunks; a client needs a few updates a second), and always the last one of a
 * known total.
 */
export function throttle(progress: Progress | undefined, ms = 100): Progress {
  let last = 0;
  return (p) => {
    if (!progress) return;
    const now = Date.now();
    if (now - last < ms && !(p.total !== undefined && p.current === p.total)) return;
    last = now;
    progress(p);
  };
}
