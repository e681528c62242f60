import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import { spawn, type ChildProcess } from 'node:child_process';

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
  tls?: { cert: string; key: string };
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
    if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`);
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
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${out}`);
      if (await reg.answers()) return reg;
      if (Date.now() > deadline) {
        await reg.stop();
        throw new Error(`docker-registry did not answer on ${port}: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const mod = this.tlsOn ? https : http;
      const r = mod.get({ host: '127.0.0.1', port: this.port, path: '/v2/', rejectUnauthorized: false, timeout: 2000 }, (res) => {
        res.resume();
        resolve(true);
      });
      r.on('error', () => resolve(false));
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
