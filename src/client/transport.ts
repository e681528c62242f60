import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { errorFromResponse } from '../api/errors';
import { UnavailableError, errorFromCode } from '../../volumes/shared/errors';
import { API_VERSION } from '../version';

export interface RequestOptions {
  query?: Record<string, string | string[] | number | boolean | undefined>;
  /** A JSON value, a Buffer, or a stream piped as the body. */
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * HTTP over berthd's unix socket, one connection per request (`agent: false`): Node 20's
 * default agent keeps idle sockets that the daemon closes after 5 s, and a long-lived
 * client then writes into a dead one (EPIPE). Responses with status >= 400 become the typed error
 * the server threw (the inverse of the server's one table).
 */
export class Transport {
  constructor(readonly socket: string) {}

  request(method: string, p: string, opts: RequestOptions = {}): Promise<http.IncomingMessage> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) qs.append(k, String(one));
    }
    const pathWithQuery = `/v${API_VERSION}${p}${qs.size ? '?' + qs.toString() : ''}`;
    const headers: Record<string, string> = { ...opts.headers };
    let payload: Buffer | Readable | undefined;
    if (opts.body instanceof Readable) {
      payload = opts.body;
      headers['Content-Type'] ??= 'application/x-tar';
    } else if (Buffer.isBuffer(opts.body)) {
      payload = opts.body;
    } else if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body));
      headers['Content-Type'] = 'application/json';
    }
    if (Buffer.isBuffer(payload)) headers['Content-Length'] = String(payload.length);
    return new Promise((resolve, reject) => {
      const req = http.request({ agent: false, socketPath: this.socket, method, path: pathWithQuery, headers }, (res) => {
        if ((res.statusCode ?? 500) < 400) return resolve(res);
        readAll(res).then((buf) => reject(responseError(res.statusCode ?? 500, buf)), reject);
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
          reject(new UnavailableError(`no berth daemon answers on ${this.socket}`, { hint: 'start one with `berth daemon`, or run any berth command without --no-autostart' }));
        } else if (e.code === 'EACCES') {
          reject(new UnavailableError(`permission denied on ${this.socket}`, { hint: 'the berth socket is root-only: run as root (sudo)' }));
        } else reject(e);
      });
      if (payload instanceof Readable) {
        payload.on('error', (e) => req.destroy(e));
        payload.pipe(req);
      } else req.end(payload);
    });
  }

  /**
   * Docker's hijacked connection (attach, exec start): `Upgrade: tcp`, then the socket is
   * a raw two-way stream. An error status before the upgrade is thrown as a typed error.
   */
  async hijack(method: string, p: string, opts: RequestOptions = {}): Promise<import('node:net').Socket> {
    return (await this.hijackWithHeaders(method, p, opts)).socket;
  }

  /** hijack, with the headers of the 101 answer (berth's Berth-Attach-Id names a tty client). */
  hijackWithHeaders(method: string, p: string, opts: RequestOptions = {}): Promise<{ socket: import('node:net').Socket; headers: http.IncomingHttpHeaders }> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) qs.append(k, String(v));
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = { Connection: 'Upgrade', Upgrade: 'tcp' };
    if (body) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
    return new Promise((resolve, reject) => {
      const req = http.request({ agent: false, socketPath: this.socket, method, path: `/v${API_VERSION}${p}${qs.size ? '?' + qs : ''}`, headers });
      req.on('upgrade', (res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve({ socket, headers: res.headers });
      });
      req.on('response', (res) => {
        readAll(res).then((buf) => reject(responseError(res.statusCode ?? 500, buf)), reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  async json<T>(method: string, p: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, p, opts);
    const buf = await readAll(res);
    return (buf.length ? JSON.parse(buf.toString('utf8')) : undefined) as T;
  }

  /** Read a JSON message stream to its end; in-band errors are thrown as typed errors. */
  async messages(res: http.IncomingMessage, onMessage: (m: JSONMessage) => void = () => undefined): Promise<JSONMessage[]> {
    const all: JSONMessage[] = [];
    let rest = '';
    const handle = (line: string) => {
      if (!line.trim()) return;
      const m = JSON.parse(line) as JSONMessage;
      if (m.error || m.errorDetail) {
        const err = errorFromCode(m.code ?? 'INTERNAL', m.errorDetail?.message ?? m.error ?? 'error', m.hint);
        if (typeof m.errorDetail?.code === 'number') Object.assign(err, { exitCode: m.errorDetail.code });
        throw err;
      }
      all.push(m);
      onMessage(m);
    };
    for await (const chunk of res) {
      rest += (chunk as Buffer).toString('utf8');
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      lines.forEach(handle);
    }
    handle(rest);
    return all;
  }

  async ping(): Promise<boolean> {
    try {
      const res = await this.request('GET', '/_ping');
      res.resume();
      return true;
    } catch {
      return false;
    }
  }
}

export interface JSONMessage {
  status?: string;
  stream?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  aux?: Record<string, unknown>;
  error?: string;
  /** `code`: a failed build step's exit code (the docker CLI exits with it). */
  errorDetail?: { message: string; code?: number };
  code?: string;
  hint?: string;
}

/** The typed error of an answer with status >= 400: its JSON body's, or its text as the message. */
export function responseError(status: number, buf: Buffer): Error {
  let body: unknown;
  try {
    body = JSON.parse(buf.toString('utf8'));
  } catch {
    body = { message: buf.toString('utf8').trim() };
  }
  return errorFromResponse(status, body);
}

export async function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/**
 * Users never have to think about the daemon: when none answers on the socket, start one
 * in the background (its log in the data root) and wait for it to answer.
 */
export async function ensureDaemon(t: Transport, root: string, timeoutMs = 20_000): Promise<void> {
  if (await t.ping()) return;
  await fs.promises.mkdir(root, { recursive: true, mode: 0o700 });
  const logFile = path.join(root, 'berthd.log');
  const log = fs.openSync(logFile, 'a', 0o600);
  const main = path.join(__dirname, '..', 'cli', 'main.js');
  const child = spawn(process.execPath, [main, 'daemon', '--root', root, '--host', 'unix://' + t.socket], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await t.ping()) return;
    if (exited !== null) {
      // A daemon that lost the race to another one exits; the winner answers soon.
      if (await t.ping()) return;
      const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join('\n');
      throw new UnavailableError(`berthd exited while starting (code ${exited}): ${tail}`, { hint: `see ${logFile}` });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new UnavailableError(`berthd did not answer on ${t.socket} within ${timeoutMs / 1000}s`, { hint: `see ${logFile}` });
}
