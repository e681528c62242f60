import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import { spawn, type ChildProcess } from 'node:child_process';
import { eventually } from './eventually';

/**
 * A real registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a
 * free port and its own storage directory, stopped (and its directory removed) by `stop()`.
 * Options add htpasswd basic auth, TLS (certificate and key files) or token auth (realm,
 * service, issuer and the certificate bundle the token server signs with).
 */
export interface RegistryOptions {
  /** Listen on this port (one found free before, e.g. to bring a registry up where a client already points); default: a free one. */
  port?: number;
  htpasswd?: string;
  /** TLS; with `clientcas`, clients must show a certificate one of these CAs signed. */
  tls?: { cert: string; key: string; clientcas?: string[] };
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
}

export class TestRegistry {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private child: ChildProcess,
    private readonly tlsOn: boolean,
    readonly log: () => string,
  ) {}

  /** host:port, as image references name it. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** PUT a blob (one POST, one PUT ?digest=), as a plain client of the distribution API over HTTP. */
  async putBlob(repo: string, data: Buffer): Promise<{ digest: string; size: number }> {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const start = await fetch(`http://${this.host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(start.headers.get('location')!, `http://${this.host}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(data), headers: { 'Content-Type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`blob PUT: ${put.status}`);
    return { digest, size: data.length };
  }

  /** Where the registry keeps blob `digest` (for corruption tests). */
  blobPath(digest: string): string {
    const hex = digest.replace(/^sha256:/, '');
    return path.join(this.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  }

  static async start(opts: RegistryOptions = {}): Promise<TestRegistry> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-registry-'));
    const port = opts.port ?? (await freePort());
    const lines = [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: berth-test-secret',
    ];
    if (opts.tls) {
      lines.push('  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`);
      if (opts.tls.clientcas?.length) lines.push('    clientcas:', ...opts.tls.clientcas.map((c) => `      - ${c}`));
    }
    if (opts.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${opts.htpasswd}`);
    if (opts.token) {
      lines.push('auth:', '  token:', `    realm: ${opts.token.realm}`, `    service: ${opts.token.service}`, `    issuer: ${opts.token.issuer}`, `    rootcertbundle: ${opts.token.rootcertbundle}`);
    }
    fs.writeFileSync(path.join(dir, 'config.yml'), lines.join('\n') + '\n');
    const child = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    const reg = new TestRegistry(dir, port, child, !!opts.tls, () => out);
    try {
      await eventually(async () => child.exitCode !== null || (await reg.answers()), { timeout: 30_000, interval: 100, message: `docker-registry to answer on ${port}` });
    } catch (e) {
      await reg.stop();
      throw new Error(`docker-registry did not answer on ${port}: ${out}`, { cause: e });
    }
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${out}`);
    return reg;
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const mod = this.tlsOn ? https : http;
      const r = mod.get({ host: '127.0.0.1', port: this.port, path: '/v2/', rejectUnauthorized: false, timeout: 2000 }, (res) => {
        res.resume();
        resolve(true);
      });
      // A TLS alert is a registry that answers: it wants a client certificate (clientcas).
      r.on('error', (e: NodeJS.ErrnoException) => resolve(/ALERT/.test(String(e.code ?? ''))));
      r.on('timeout', () => r.destroy());
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (this.child.exitCode === null) this.child.kill('SIGKILL');
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface FaultProxy {
  /** host:port of the proxy, as image references name it. */
  host: string;
  /** Every request that passed, with the status it got; `aborted` when the client hung up before the whole answer went. */
  seen: Array<{ method: string; url: string; range?: string; status: number; aborted?: boolean }>;
  /** Answer the next manifest GET with 429 and this Retry-After. */
  throttle(retryAfter: string): void;
  /** Drop the connection halfway through the body of the next layer blob (over 4 KiB). */
  resetNextBlob(): void;
  /** Drop the connection halfway through the body of the next GET of blob `digest`. */
  cutBlob(digest: string): void;
  /** Send the next blob GET upstream without its Authorization: the registry answers 401 with its challenge. */
  unauthorizeNextBlob(): void;
  /** Answer the next GET of blob `digest` with the first half of its body, the rest only when `release()` is called. */
  holdBlob(digest: string): () => void;
  close(): Promise<void>;
}

/**
 * A proxy in front of a real registry (plain HTTP) that injects the faults a healthy
 * loopback registry never shows: a 429 with Retry-After on the next manifest GET, the
 * connection dropped halfway through a blob's body, a token refused mid-pull. Everything
 * else passes through.
 */
export async function faultProxy(target: TestRegistry): Promise<FaultProxy> {
  let throttle: string | undefined;
  let reset = false;
  let cut: string | undefined;
  let unauthorize = false;
  let hold: { digest: string; released: Promise<void> } | undefined;
  const seen: FaultProxy['seen'] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (throttle !== undefined && req.method === 'GET' && url.includes('/manifests/')) {
      seen.push({ method: 'GET', url, status: 429 });
      res.writeHead(429, { 'Retry-After': throttle, 'Content-Type': 'application/json' });
      throttle = undefined;
      res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      return;
    }
    const headers = { ...req.headers };
    if (unauthorize && req.method === 'GET' && url.includes('/blobs/')) {
      unauthorize = false;
      delete headers.authorization;
    }
    const up = http.request({ host: '127.0.0.1', port: target.port, method: req.method, path: url, headers }, (ur) => {
      const entry: FaultProxy['seen'][number] = { method: req.method ?? '', url, range: req.headers.range, status: ur.statusCode ?? 0 };
      seen.push(entry);
      res.on('close', () => {
        if (!res.writableFinished) {
          entry.aborted = true;
          ur.destroy();
        }
      });
      const isBlobGet = req.method === 'GET' && url.includes('/blobs/') && ur.statusCode === 200;
      const cutThis = isBlobGet && ((cut !== undefined && url.includes(cut)) || (reset && Number(ur.headers['content-length']) > 4096));
      if (cutThis) {
        if (cut !== undefined && url.includes(cut)) cut = undefined;
        else reset = false;
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          const body = Buffer.concat(chunks);
          res.writeHead(200, ur.headers);
          // Closed, not RST: a reset may throw away bytes the client has not read yet, and the
          // tests want some on disk to resume from.
          res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 200));
        });
        return;
      }
      if (isBlobGet && hold && url.includes(hold.digest)) {
        const { released } = hold;
        hold = undefined;
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          const body = Buffer.concat(chunks);
          res.writeHead(200, ur.headers);
          res.write(body.subarray(0, body.length >> 1));
          void released.then(() => res.end(body.subarray(body.length >> 1)));
        });
        return;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    throttle: (ra) => void (throttle = ra),
    resetNextBlob: () => void (reset = true),
    cutBlob: (digest) => void (cut = digest),
    unauthorizeNextBlob: () => void (unauthorize = true),
    holdBlob: (digest) => {
      let release!: () => void;
      hold = { digest, released: new Promise<void>((r) => (release = r)) };
      return release;
    },
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
