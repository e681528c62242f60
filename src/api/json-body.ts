import type { IncomingMessage } from 'node:http';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { bodyWindowMs, heavyBodies } from './body-guard';
import { LIMITS } from './limits';
import type { BodySpec } from './schemas/common';
import { validate } from './validate';

/**
 * Reading a JSON request body: bounded in size, in time and in nesting, and checked against
 * its schema before the handler sees it. The nesting is counted while the bytes arrive (a
 * scan of brackets outside strings), so a body of four million `[` is refused after its
 * 65th byte and never reaches JSON.parse, whose recursion on it blocked the daemon and
 * took gigabytes. A `null` body is an empty one, as Go's decoder reads it.
 */
export async function readJSON<T>(req: IncomingMessage, spec: BodySpec, empty: T): Promise<T> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > LIMITS.jsonBodyBytes) throw tooLarge();
  const upgraded = (req as IncomingMessage & { upgradeBody?: Buffer }).upgradeBody;
  const heavy = !upgraded && !(declared <= LIMITS.heavyBodyBytes);
  const text = heavy ? await heavyBodies.run(() => readText(req)) : await readText(req, upgraded);
  if (text === undefined) return empty;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`${spec.what} is not valid JSON`, { hint: 'send a JSON object' });
  }
  if (parsed === null) return empty;
  return validate<T>(spec.schema, parsed, spec.what, spec.hints);
}

async function readText(req: IncomingMessage, upgraded?: Buffer): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  const depth = new DepthScan(LIMITS.jsonDepth);
  let n = 0;
  // A whole JSON body within two windows, however it trickles (the watchdog checks the rate).
  const deadline = setTimeout(() => req.socket?.destroy(), 2 * bodyWindowMs());
  deadline.unref();
  try {
    for await (const c of upgraded ? [upgraded] : req) {
      const b = c as Buffer;
      n += b.length;
      if (n > LIMITS.jsonBodyBytes) throw tooLarge();
      if (!depth.feed(b)) {
        throw new InvalidArgumentError(`request body nests deeper than ${LIMITS.jsonDepth} levels`, { hint: "Docker's API bodies nest a few levels; send the body the API describes" });
      }
      chunks.push(b);
    }
  } catch (e) {
    if (req.destroyed && !(e instanceof InvalidArgumentError)) {
      throw new InvalidArgumentError('request body was not received in time', { hint: `send the whole body within ${(2 * bodyWindowMs()) / 1000} s` });
    }
    throw e;
  } finally {
    clearTimeout(deadline);
  }
  return n === 0 ? undefined : Buffer.concat(chunks).toString('utf8');
}

function tooLarge(): InvalidArgumentError {
  return new InvalidArgumentError(`request body over ${LIMITS.jsonBodyBytes} bytes`, { hint: `API bodies are small: keep it under ${LIMITS.jsonBodyBytes >> 20} MiB (pass bulk data in a volume or an image)` });
}

/** Counts `{`/`[` nesting outside JSON strings, across chunks. False once deeper than `max`. */
export class DepthScan {
  private depth = 0;
  private inString = false;
  private escaped = false;
  constructor(private readonly max: number) {}

  feed(b: Buffer): boolean {
    // Locals, not fields, in the loop: this runs over every byte of every JSON body.
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    const max = this.max;
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++depth > max) return false;
      } else if (c === 0x7d || c === 0x5d) depth--;
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return true;
  }
}
