import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { UnavailableError } from '../../volumes/shared/errors';
import { LIMITS } from './limits';

/**
 * What keeps one client from holding the daemon: request bodies must keep coming (a body
 * sent a byte at a time is cut off), and only a few large JSON bodies are read and parsed
 * at once (the rest wait their turn, and beyond a queue are refused UNAVAILABLE), so twenty
 * 4 MB bodies at once cost four bodies' memory, not twenty.
 */

let windowMs = LIMITS.bodyTimeoutSeconds * 1000;

/** The daemon's --body-timeout (seconds): the window in which a body must bring slowBodyBytes. */
export function setBodyTimeout(seconds: number): void {
  windowMs = Math.max(1, seconds) * 1000;
}

export function bodyWindowMs(): number {
  return windowMs;
}

/**
 * Watch a request's body until it is complete: every window, the client must have sent
 * slowBodyBytes, unless berth is the one not reading (bytes wait in the request's buffer,
 * as when a handler streams an upload to a slow disk). A client that is too slow gets its
 * connection closed. Cheap: one timer per request that has a body.
 */
export function watchBody(req: IncomingMessage, socket: Socket): void {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody || req.complete) return;
  let seen = socket.bytesRead;
  const t = setInterval(() => {
    if (req.complete || req.destroyed) return stop();
    const got = socket.bytesRead - seen;
    seen = socket.bytesRead;
    if (got < LIMITS.slowBodyBytes && req.readableLength === 0) {
      stop();
      socket.destroy();
    }
  }, windowMs);
  t.unref();
  const stop = () => clearInterval(t);
  req.once('end', stop);
  req.once('close', stop);
}

/** A counting gate: `run` waits while `limit` holders are in, and refuses when `queue` already wait. */
export class Gate {
  private active = 0;
  private waiting: Array<() => void> = [];
  constructor(
    private readonly limit: number,
    private readonly queue: number,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.queue) {
        throw new UnavailableError('too many large requests at once', { hint: 'the daemon is busy reading other large request bodies; retry in a moment' });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  get busy(): number {
    return this.active;
  }
}

/** The gate for large JSON bodies (one per daemon process). */
export const heavyBodies = new Gate(LIMITS.heavyConcurrent, LIMITS.heavyQueue);
