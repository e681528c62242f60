import type { IncomingMessage, ServerResponse } from 'node:http';
import { NotFoundError } from '../../volumes/shared/errors';

/** What a route handler gets: the request, the response, path params and the query. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: string[];
  query: URLSearchParams;
  /** Set when the client asked to upgrade the connection (docker's hijacked streams). */
  upgrade?: { socket: import('node:net').Socket; head: Buffer };
  /** Set once the connection is a raw stream (openRawStream): no HTTP answer can follow. */
  hijacked?: boolean;
}
export type Handler = (ctx: Ctx) => Promise<void>;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

/**
 * A tiny router. Docker's API is addressed with and without a `/v1.NN` prefix; the prefix
 * is stripped here, once, so routes are written without it.
 */
export class Router {
  private routes: Route[] = [];

  add(method: string, pattern: RegExp, handler: Handler): this {
    this.routes.push({ method, pattern, handler });
    return this;
  }

  match(method: string, rawPath: string): { handler: Handler; params: string[] } {
    const path = stripVersion(rawPath);
    for (const r of this.routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) {
        return { handler: r.handler, params: m.slice(1).map((s) => decodeURIComponent(s)) };
      }
    }
    // Docker's answer to any route it does not serve, whatever the method: clients read a
    // 404 with exactly this message as "this daemon has no such endpoint".
    throw new NotFoundError('page not found', {
      hint: `berth does not serve ${method} ${path}; it speaks the Docker Engine API v1.41 and /berth/v1`,
    });
  }
}

export function stripVersion(path: string): string {
  const m = /^\/v1\.\d+(\/.*)$/.exec(path);
  return m ? m[1] : path;
}

/** a < b, for API versions like 1.41. */
export function versionBefore(a: string, b: string): boolean {
  const [am, an] = a.split('.').map(Number);
  const [bm, bn] = b.split('.').map(Number);
  return am < bm || (am === bm && an < bn);
}

/** The API version a request asked for (default: ours). */
export function requestVersion(path: string): string | undefined {
  return /^\/v(1\.\d+)\//.exec(path)?.[1];
}
