import type { Readable } from 'node:stream';
import { BerthError, NotFoundError, UnavailableError, InvalidArgumentError, InternalError } from '../../../volumes/shared/errors';
import { Authorizer, unauthorized, type Credentials } from './auth';
import type { Endpoint } from './endpoint';
import { HttpTransport, discard, readAll, type HttpResponse } from './transport';

/**
 * One session with one registry (distribution's HTTP API v2): requests carry the right
 * Authorization for their scope (auth.ts), a 401 teaches the session the registry's
 * challenge and is tried once more, network failures (a refused or reset connection) and
 * 5xx answers are retried with backoff, a 429 with a short Retry-After is waited out and
 * tried again, and any other 429 becomes an error that says when the limit resets. All
 * retries are bounded by `attempts`.
 */

export interface RequestOptions {
  /** The token scope the request needs, e.g. `repository:library/redis:pull`. */
  scope: string;
  headers?: Record<string, string>;
  /** A Buffer can be sent again on retry; a stream is sent once. */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
  /** Statuses that are answers, not errors (default: 2xx). */
  ok?: number[];
  /** What was asked, for error messages (`manifest redis:7`, `blob sha256:…`). */
  what: string;
}

export interface SessionOptions {
  /** Attempts for a failed request (network, 5xx): 1 means no retry. */
  attempts?: number;
  /** First backoff delay in ms (doubled each time). */
  backoffMs?: number;
}

export class RegistrySession {
  readonly http: HttpTransport;
  private readonly auth: Authorizer;
  /** Attempts for a failed request or blob download, and the first backoff delay (doubled each time). */
  readonly attempts: number;
  readonly backoffMs: number;

  constructor(
    readonly endpoint: Endpoint,
    creds: Credentials | undefined,
    opts: SessionOptions = {},
  ) {
    this.http = new HttpTransport(endpoint);
    this.auth = new Authorizer(this.http, creds);
    this.attempts = opts.attempts ?? 4;
    this.backoffMs = opts.backoffMs ?? 500;
  }

  get domain(): string {
    return this.endpoint.domain;
  }

  /** GET /v2/: does the registry answer, and do our credentials work (login). */
  async ping(signal?: AbortSignal): Promise<void> {
    const res = await this.request('GET', '/v2/', { scope: '', what: 'the registry', signal });
    discard(res);
  }

  async request(method: string, path: string, o: RequestOptions): Promise<HttpResponse> {
    let lastErr: unknown;
    let challenged = false;
    for (let attempt = 1; ; attempt++) {
      let res: HttpResponse;
      try {
        const base = await this.http.base(o.signal);
        const url = /^https?:\/\//.test(path) ? path : `${base}${path}`;
        const authz = await this.auth.header(o.scope, o.signal);
        const headers = { ...(o.headers ?? {}), ...(authz ? { Authorization: authz } : {}) };
        const body = typeof o.body === 'function' ? o.body() : o.body;
        res = await this.http.send({ method, url, headers, body, signal: o.signal });
      } catch (e) {
        lastErr = e;
        if (o.signal?.aborted || !(e instanceof UnavailableError) || typeof o.body === 'function' || attempt >= this.attempts) throw e;
        await sleep(this.backoffMs * 2 ** (attempt - 1), o.signal);
        continue;
      }
      if (res.status === 401) {
        // A token refused mid-transfer (expired or revoked) is dropped and a fresh one
        // asked for, once per request.
        const hadToken = this.auth.hasToken(o.scope);
        const learned = this.auth.learn(header(res, 'www-authenticate'));
        discard(res);
        if (!challenged && (learned || hadToken || this.auth.hasCredentials)) {
          challenged = true;
          this.auth.forget(o.scope);
          continue;
        }
        throw unauthorized(this.domain, undefined);
      }
      if ((o.ok ?? []).includes(res.status) || (res.status >= 200 && res.status < 300)) return res;
      if (res.status === 429) {
        // Throttled: wait as long as Retry-After asks, if that is short, and try again
        // (bounded by the attempts); otherwise say when the limit resets.
        discard(res);
        const wait = retryAfterMs(res);
        if (wait !== undefined && wait <= MAX_RETRY_AFTER_MS && typeof o.body !== 'function' && attempt < this.attempts) {
          await sleep(Math.max(wait, this.backoffMs * 2 ** (attempt - 1)), o.signal);
          continue;
        }
        throw rateLimited(this.domain, res);
      }
      if ([500, 502, 503, 504].includes(res.status) && typeof o.body !== 'function' && attempt < this.attempts) {
        discard(res);
        await sleep(this.backoffMs * 2 ** (attempt - 1), o.signal);
        continue;
      }
      throw await registryError(this.domain, o.what, res);
      void lastErr;
    }
  }

  close(): void {
    this.http.close();
  }
}

/** The error for a non-2xx answer, from distribution's `{errors:[{code,message}]}` body. */
export async function registryError(domain: string, what: string, res: HttpResponse): Promise<BerthError> {
  let detail = '';
  try {
    const body = JSON.parse((await readAll(res, 1 << 20)).toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    detail = (body.errors ?? []).map((e) => `${(e.code ?? '').toLowerCase()}: ${e.message ?? ''}`).join('; ');
  } catch {
    /* no JSON body */
  }
  const why = detail ? ` (${detail})` : '';
  if (res.status === 404) {
    return new NotFoundError(`${what} not found in registry ${domain}${why}`, {
      hint: 'check the name and tag (the repository may not exist, or may need `berth login`)',
    });
  }
  if (res.status === 403) return unauthorized(domain, undefined);
  if (res.status === 400 || res.status === 405 || res.status === 413 || res.status === 416) {
    return new InvalidArgumentError(`registry ${domain} refused ${what}: HTTP ${res.status}${why}`, {
      hint: 'the registry does not accept this request; check its configuration (e.g. deletes or pushes disabled)',
    });
  }
  if (res.status >= 500) {
    return new UnavailableError(`registry ${domain} failed on ${what}: HTTP ${res.status}${why}`, { hint: 'try again later' });
  }
  return new InternalError(`registry ${domain} answered HTTP ${res.status} to ${what}${why}`, { hint: 'the registry answered something berth does not expect; check the registry' });
}

/** The longest Retry-After a request waits out before it gives up with the reset time. */
const MAX_RETRY_AFTER_MS = 30_000;

/** Retry-After (seconds or an HTTP date) in ms from now, if the answer has one. */
function retryAfterMs(res: HttpResponse): number | undefined {
  const v = header(res, 'retry-after');
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** Sleep before attempt `attempt + 1`: backoff doubled each time, ended early by `signal`. */
export function backoff(s: RegistrySession, attempt: number, signal?: AbortSignal): Promise<void> {
  return sleep(s.backoffMs * 2 ** (attempt - 1), signal);
}

/** 429: Docker Hub's pull limit and any registry's throttling, with when it resets. */
function rateLimited(domain: string, res: HttpResponse): UnavailableError {
  const retry = header(res, 'retry-after');
  const reset = header(res, 'ratelimit-reset') ?? header(res, 'x-ratelimit-reset');
  let at: Date | undefined;
  if (retry && /^\d+$/.test(retry)) at = new Date(Date.now() + Number(retry) * 1000);
  else if (retry && Number.isFinite(Date.parse(retry))) at = new Date(Date.parse(retry));
  else if (reset && /^\d+$/.test(reset)) {
    const n = Number(reset);
    at = new Date(n > 1e9 ? n * 1000 : Date.now() + n * 1000);
  }
  const limit = header(res, 'ratelimit-limit');
  const when = at ? `; it resets at ${at.toISOString()}` : '';
  return new UnavailableError(`toomanyrequests: registry ${domain} rate-limited this client${limit ? ` (limit ${limit})` : ''}${when}`, {
    hint: at ? `wait until ${at.toISOString()} and try again, or log in (authenticated clients get a higher limit)` : 'wait and try again, or log in (authenticated clients get a higher limit)',
  });
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
