import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { Progress } from '../images/service';
import { errorResponse } from './errors';

/** Small helpers shared by the route modules. */

export function sendJSON(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body) + '\n');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length });
  res.end(data);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

/** Read and discard the rest of a request body, for at most `ms`. */
export function drainBody(req: IncomingMessage, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(done, ms);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.resume();
  });
}

/** The words a boolean query parameter may be: Docker's BoolValue reads '', 0, no, false and none as false; Go's ParseBool adds t/f. */
const QUERY_TRUE = new Set(['1', 't', 'true', 'y', 'yes', 'on']);
const QUERY_FALSE = new Set(['0', 'f', 'false', 'n', 'no', 'none', 'off']);

/**
 * A boolean query parameter, read as Docker reads it (case and surrounding spaces aside);
 * absent or empty is `dflt`. Docker takes any other word as true; berth refuses it by name
 * (`force=maybe` is a client's mistake, not a yes).
 */
export function qbool(q: URLSearchParams, name: string, dflt = false): boolean {
  const raw = q.get(name);
  if (raw === null) return dflt;
  const v = raw.trim().toLowerCase();
  if (v === '') return dflt;
  if (QUERY_TRUE.has(v)) return true;
  if (QUERY_FALSE.has(v)) return false;
  throw new InvalidArgumentError(`invalid query parameter ${name}=${JSON.stringify(raw.length > 40 ? raw.slice(0, 40) + '…' : raw)}: not a boolean`, {
    hint: `give ${name}=1 or ${name}=0 (true/false also do)`,
  });
}

/**
 * Docker's `filters` query parameter: JSON {name: [values]} or {name: {value: true}}.
 * Anything else (null, a list, numbers) is refused by name, never read as internals.
 */
export function qfilters(q: URLSearchParams): Record<string, string[]> {
  const raw = q.get('filters');
  if (!raw) return {};
  const bad = () => new InvalidArgumentError(`invalid filters: ${JSON.stringify(raw.length > 80 ? raw.slice(0, 80) + '…' : raw)}`, { hint: 'give filters as a JSON object of lists, e.g. {"label": ["app=db"]}; the CLI takes --filter key=value' });
  if (raw.length > 64 << 10) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad();
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw bad();
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v as string[];
    else if (v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'boolean')) out[k] = Object.keys(v);
    else throw bad();
  }
  return out;
}

/** A whole-number query parameter in [min, max]; absent or empty is undefined. */
export function qint(q: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(`invalid query parameter ${name}=${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`, { hint: `give a whole number from ${min} to ${max}` });
  }
  return n;
}

/**
 * A JSON message stream (Docker's progress protocol: one JSON object per line). Errors
 * after the header went out are sent in-band as {"error", "errorDetail"} as Docker does,
 * plus berth's `code` and `hint` so our client can rebuild the typed error.
 */
export class JSONMessageStream {
  private started = false;
  constructor(private res: ServerResponse) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { 'Content-Type': 'application/json' });
  }

  write(msg: object): void {
    this.start();
    this.res.write(JSON.stringify(msg) + '\n');
  }

  /** A Progress callback that writes Docker-style progress messages, throttled. */
  progress(): Progress {
    let last = 0;
    return (p) => {
      const now = Date.now();
      if (p.current !== undefined && p.total !== undefined && p.current < p.total && now - last < 100) return;
      last = now;
      this.write({
        status: p.status,
        ...(p.id ? { id: p.id } : {}),
        ...(p.current !== undefined ? { progressDetail: { current: p.current, total: p.total } } : { progressDetail: {} }),
      });
    };
  }

  end(): void {
    this.start();
    this.res.end();
  }

  /** End with an error in the stream, as Docker reports a failure of a streamed operation (the status stays 200). */
  fail(e: unknown): void {
    const { body } = errorResponse(e);
    this.write({ errorDetail: { message: body.message }, error: body.message, code: body.code, ...(body.hint ? { hint: body.hint } : {}) });
    this.res.end();
  }

  get headersSent(): boolean {
    return this.started;
  }
}
