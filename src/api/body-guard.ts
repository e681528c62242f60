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

/** Requests waiting at a Gate for their turn: their bodies are not being read, so their pace is not the client's fault. */
const waitingTurn = new WeakSet<IncomingMessage>();

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
  let tick = performance.now();
  const t = setInterval(() => {
    if (req.complete || req.destroyed) return stop();
    const got = socket.bytesRead - seen;
    seen = socket.bytesRead;
    // A tick that comes late means berth's own loop was held (a loaded host): it read
    // nothing in that window, so the window does not count against the client.
    const late = performance.now() - tick > 1.5 * windowMs;
    tick = performance.now();
    if (late) return;
    if (got < LIMITS.slowBodyBytes && req.readableLength === 0 && !waitingTurn.has(req)) {
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
    private readonly what = 'large requests',
  ) {}

  /** Run `fn` in turn; `req`, while it waits, is not held to the body pace (berth is not reading it yet). */
  async run<T>(fn: () => Promise<T>, req?: IncomingMessage): Promise<T> {
    const leave = await this.enter(req);
    try {
      return await fn();
    } finally {
      leave();
    }
  }

  /**
   * Wait for a turn (or be refused UNAVAILABLE when the queue is full); call the answer, once
   * or more, to give it back. `onWait` hears it when this request joins the queue, with the
   * queue's length then (berthd logs it: the operator sees the throttling).
   */
  async enter(req?: IncomingMessage, onWait?: (waiting: number) => void): Promise<() => void> {
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.queue) {
        throw new UnavailableError(`too many ${this.what} at once`, { hint: `the daemon is busy with ${this.limit} ${this.what} and ${this.queue} more waiting; retry in a moment` });
      }
      if (req) waitingTurn.add(req);
      try {
        await new Promise<void>((resolve) => {
          this.waiting.push(resolve);
          onWait?.(this.waiting.length);
        });
      } finally {
        if (req) waitingTurn.delete(req);
      }
    } else {
      this.active++;
    }
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }

  get busy(): number {
    return this.active;
  }
}

/** The gate for large JSON bodies (one per daemon process). */
export const heavyBodies = new Gate(LIMITS.heavyConcurrent, LIMITS.heavyQueue, 'large request bodies');

/**
 * The gate for streaming uploads (image load and import, volume import, a build's context,
 * `docker cp` into a container): a few are read at once, the rest wait their turn (their
 * bytes wait in the socket), and beyond a queue they are refused 503 UNAVAILABLE, which the
 * docker CLI shows with its message. A turn ends when the upload's body has been read (a
 * build keeps running without one) or its request ends.
 */
export const uploads = new Gate(LIMITS.uploadConcurrent, LIMITS.uploadQueue, 'uploads');

const UPLOADS: Array<[string, RegExp]> = [
  ['POST', /^\/images\/load$/],
  ['POST', /^\/images\/create$/], // with fromSrc (import); a pull has no body
  ['POST', /^\/volumes\/[^/]+\/import$/],
  ['PUT', /^\/containers\/[^/]+\/archive$/],
  ['POST', /^\/build$/],
];

/** Whether a request is a streaming upload that takes a turn at `uploads`. */
export function isUpload(method: string, pathname: string, query: URLSearchParams): boolean {
  const path = pathname.replace(/^\/v\d+\.\d+(?=\/)/, '');
  if (!UPLOADS.some(([m, re]) => m === method && re.test(path))) return false;
  if (path === '/images/create') return query.get('fromSrc') === '-';
  return true;
}
