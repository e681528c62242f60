import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import type { Readable } from 'node:stream';
import { UnauthenticatedError, UnavailableError } from '../../../volumes/shared/errors';
import { CERTS_DIR, type Endpoint } from './endpoint';

/**
 * HTTP for the registry client: one keep-alive agent per endpoint, HTTPS with the
 * endpoint's CAs and client certificate, verified unless the endpoint is insecure (as
 * Docker skips verification for those), plain HTTP only after an HTTPS handshake failed
 * on an insecure endpoint (endpoint.ts), redirects followed (blob GETs often go to a
 * CDN), and an Authorization header never carried to another host.
 *
 * Bodies are streams: the caller reads or discards each response (`discard`).
 */

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  /** The URL that answered (after redirects). */
  url: string;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal;
}

export class HttpTransport {
  private scheme?: 'https' | 'http';
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  constructor(readonly endpoint: Endpoint) {
    const { ca, cert, key } = endpoint.tls;
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 8,
      // Docker's insecure registries (loopback, --insecure-registry): HTTPS without
      // verifying the certificate, then plain HTTP if HTTPS fails.
      rejectUnauthorized: !endpoint.insecure,
      ...(ca ? { ca: [...tls.rootCertificates, ...ca.map((c) => c.toString())] } : {}),
      ...(cert && key ? { cert, key } : {}),
    });
  }

  /** The base URL, `https://host` or (insecure, HTTPS refused) `http://host`. */
  async base(signal?: AbortSignal): Promise<string> {
    if (!this.scheme) this.scheme = await this.probe(signal);
    return `${this.scheme}://${this.endpoint.host}`;
  }

  private async probe(signal?: AbortSignal): Promise<'https' | 'http'> {
    try {
      const r = await this.once({ method: 'GET', url: `https://${this.endpoint.host}/v2/`, signal });
      discard(r);
      return 'https';
    } catch (e) {
      // A TLS alert is a TLS server answering (refusing our client certificate, or the
      // lack of one): plain HTTP would not help.
      if (!this.endpoint.insecure || signal?.aborted || e instanceof UnauthenticatedError) throw e;
      return 'http';
    }
  }

  /** One request, following up to 5 redirects. Network failures are UnavailableError. */
  async send(req: HttpRequest): Promise<HttpResponse> {
    let cur = req;
    for (let hop = 0; ; hop++) {
      const res = await this.once(cur);
      if (![301, 302, 303, 307, 308].includes(res.status) || !res.headers.location || hop >= 5) return res;
      discard(res);
      const next = new URL(res.headers.location, cur.url);
      const headers = { ...(cur.headers ?? {}) };
      if (next.host !== new URL(cur.url).host) delete headers.Authorization;
      const method = res.status === 303 ? 'GET' : cur.method;
      cur = { ...cur, url: next.toString(), method, headers };
    }
  }

  private once(req: HttpRequest): Promise<HttpResponse> {
    const u = new URL(req.url);
    const mod = u.protocol === 'https:' ? https : http;
    const agent = u.protocol === 'https:' ? (u.host === this.endpoint.host ? this.httpsAgent : https.globalAgent) : this.httpAgent;
    return new Promise((resolve, reject) => {
      const r = mod.request(u, { method: req.method, headers: { 'User-Agent': 'berth/0.1', ...(req.headers ?? {}) }, agent, signal: req.signal });
      r.on('response', (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: req.url }));
      r.on('error', (e: NodeJS.ErrnoException) => {
        if (e.name === 'AbortError') return reject(e);
        if (CLIENT_CERT_ALERT.test(String(e.code ?? ''))) return reject(clientCertRefused(u.host, !!this.endpoint.tls.cert, e));
        reject(
          new UnavailableError(`cannot reach registry ${u.host}: ${e.message}`, {
            hint: tlsHint(e, u.host) ?? 'check the registry address and that it is up (curl https://HOST/v2/)',
            cause: e,
          }),
        );
      });
      if (req.body === undefined) r.end();
      else if (Buffer.isBuffer(req.body)) r.end(req.body);
      else {
        req.body.on('error', (e) => r.destroy(e));
        req.body.pipe(r);
      }
    });
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }
}

/** The TLS alerts a server sends when it wants a client certificate it did not get (or trust). */
const CLIENT_CERT_ALERT = /ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|UNKNOWN_CA)$/;

function clientCertRefused(host: string, hadCert: boolean, cause: Error): UnauthenticatedError {
  const dir = `${CERTS_DIR}/${host}`;
  return new UnauthenticatedError(
    hadCert ? `registry ${host} refused berth's client certificate (TLS: ${cause.message.split('\n')[0].replace(/^.*:ssl\/tls alert /, '')})` : `registry ${host} requires a TLS client certificate and berth has none for it`,
    {
      hint: hadCert
        ? `the certificate in ${dir}/ (client.cert, client.key) is not one the registry accepts: use one signed by a CA in the registry's http.tls.clientcas`
        : `put the client certificate and its key in ${dir}/client.cert and ${dir}/client.key (Docker's names; any NAME.cert with NAME.key works)`,
      cause,
    },
  );
}

function tlsHint(e: NodeJS.ErrnoException, host: string): string | undefined {
  const code = String(e.code ?? '');
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return `put the registry's CA certificate in /etc/docker/certs.d/${host}/ca.crt, or (a registry you trust on a private network) start the daemon with --insecure-registry ${host}`;
  }
  if (/wrong version number|EPROTO/i.test(`${code} ${e.message}`)) {
    return `${host} does not speak HTTPS; plain HTTP is used only for 127.0.0.0/8 and registries named with the daemon's --insecure-registry ${host}`;
  }
  return undefined;
}

/** Throw a response's body away (frees the keep-alive socket). */
export function discard(res: HttpResponse): void {
  res.body.resume();
}

export async function readAll(res: HttpResponse, limit = 16 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.body.destroy();
      throw new UnavailableError(`the registry sent more than ${limit} bytes for ${res.url}`, { hint: 'the registry misbehaves; try again or use another registry' });
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
