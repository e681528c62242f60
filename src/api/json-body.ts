import type { IncomingMessage } from 'node:http';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { bodyWindowMs, heavyBodies } from './body-guard';
import { DepthScan, scanRefusal } from './depth-scan';
import { parseInWorker } from './json-pool';
import { LIMITS } from './limits';
import type { BodySpec } from './schemas/common';
import { validate } from './validate';

/**
 * Reading a JSON request body: bounded in size, in time and in nesting, and checked against
 * its schema before the handler sees it. The nesting is counted while the bytes arrive (a
 * scan of brackets outside strings), so a body of four million `[` is refused after its
 * 65th byte and never reaches JSON.parse, whose recursion on it blocked the daemon and
 * took gigabytes; the same scan counts the body's values, which bounds what parsing it
 * costs. A large body (over LIMITS.heavyBodyBytes) is then parsed and checked in a worker
 * thread (json-pool.ts), so the daemon's event loop is not held by it; when its length was
 * declared, only its head is scanned here and the worker scans the whole of it before it
 * parses (same refusals, after the body is read); a small one is
 * parsed here, which is quicker than the trip to a worker. A `null` body is an empty one,
 * as Go's decoder reads it.
 */
export async function readJSON<T>(req: IncomingMessage, spec: BodySpec, empty: T): Promise<T> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > LIMITS.jsonBodyBytes) throw tooLarge();
  const upgraded = (req as IncomingMessage & { upgradeBody?: Buffer }).upgradeBody;
  const heavy = !upgraded && !(declared <= LIMITS.heavyBodyBytes);
  if (heavy) {
    return heavyBodies.run(async () => {
      const size = Number.isSafeInteger(declared) ? declared : undefined;
      const raw = await readBody(req, undefined, size);
      if (raw === undefined) return empty;
      // A chunked body without a length is heavy until read (and scanned whole); a small one is parsed here.
      if (size === undefined && raw.length <= LIMITS.heavyBodyBytes) return parseHere(raw, spec, empty);
      const parsed = await parseInWorker(raw, spec.what);
      return parsed === undefined ? empty : (parsed as T);
    }, req);
  }
  const raw = await readBody(req, upgraded);
  if (raw === undefined) return empty;
  return parseHere(raw, spec, empty);
}

function parseHere<T>(raw: Buffer, spec: BodySpec, empty: T): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`${spec.what} is not valid JSON`, { hint: 'send a JSON object' });
  }
  if (parsed === null) return empty;
  return validate<T>(spec.schema, parsed, spec.what, spec.hints);
}

/** Bytes scanned between turns of the event loop: a body that came all at once is not scanned in one go. */
const SCAN_SLICE = 256 << 10;
/** What of a large body (one with a Content-Length, parsed in a worker) is scanned here as it comes. */
const HEAD_SCAN = 64 << 10;

/**
 * Read a JSON body, scanning its nesting as it comes. `size`, a large body's Content-Length:
 * its bytes are gathered into one buffer of that size as they come (no copy of them all at
 * the end, and the buffer can be moved to a parse worker whole), and only its first
 * HEAD_SCAN bytes are scanned here (the scan of a 4 MB body was most of what the event
 * loop spent on it; the worker scans the whole body before it parses it).
 */
async function readBody(req: IncomingMessage, upgraded?: Buffer, size?: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  const whole = size ? Buffer.allocUnsafeSlow(size) : undefined;
  const depth = new DepthScan(LIMITS.jsonDepth);
  let n = 0;
  let filled = 0;
  let sinceTurn = 0;
  // A whole JSON body within two windows, however it trickles (the watchdog checks the rate).
  const deadline = setTimeout(() => req.socket?.destroy(), 2 * bodyWindowMs());
  deadline.unref();
  try {
    for await (const c of upgraded ? [upgraded] : req) {
      const b = c as Buffer;
      n += b.length;
      if (n > LIMITS.jsonBodyBytes) throw tooLarge();
      // A body moved whole to a parse worker (`size`) is scanned here for its head only,
      // which stops a bomb of `[` at its 65th byte; the worker scans all of it before parsing.
      const scan = size === undefined ? b : n - b.length < HEAD_SCAN ? b.subarray(0, HEAD_SCAN - (n - b.length)) : undefined;
      if (scan && !depth.feed(scan)) throw scanRefusal(depth);
      if (whole && chunks.length === 0 && filled + b.length <= whole.length) filled += b.copy(whole, filled);
      else chunks.push(b);
      // Chunks already buffered are handed over in one task: let the loop turn between slices.
      if ((sinceTurn += b.length) >= SCAN_SLICE) {
        sinceTurn = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
  } catch (e) {
    if (req.destroyed && !(e instanceof InvalidArgumentError)) {
      throw new InvalidArgumentError('request body was not received in time', { hint: `send the whole body within ${(2 * bodyWindowMs()) / 1000} s` });
    }
    throw e;
  } finally {
    clearTimeout(deadline);
  }
  if (n === 0) return undefined;
  if (whole && filled === whole.length && chunks.length === 0) return whole;
  return Buffer.concat(whole ? [whole.subarray(0, filled), ...chunks] : chunks);
}

function tooLarge(): InvalidArgumentError {
  return new InvalidArgumentError(`request body over ${LIMITS.jsonBodyBytes} bytes`, { hint: `API bodies are small: keep it under ${LIMITS.jsonBodyBytes >> 20} MiB (pass bulk data in a volume or an image)` });
}
