import { InvalidArgumentError } from '../../../volumes/shared/errors';
import { parseReference } from '../reference';
import type { Credentials } from './auth';
import { RegistrySession } from './client';
import { endpointFor, type EndpointOptions } from './endpoint';
import type { BlobFetch } from './blobs';
import { pullImage } from './pull';
import { pushImage } from './push';
import { searchRegistry } from './search';
import type { LoginResult, PullOptions, PullResult, PushResult, RegistryService, SearchResult, TransferOptions } from './service';
import type { RegistrySink } from './sink';

export interface RegistryOptions extends EndpointOptions {
  /** Layers downloaded at once per pull (Docker's max-concurrent-downloads: 3). */
  downloads?: number;
  /** Blobs uploaded at once per push (Docker's max-concurrent-uploads: 5). */
  uploads?: number;
  /** Blobs up to this size go up in one PUT; bigger ones in PATCH chunks of it. */
  chunkSize?: number;
  /** Attempts per request (network errors, 5xx); 1 = no retry. */
  attempts?: number;
  backoffMs?: number;
}

/**
 * The daemon's registry client: a RegistryService over one image store (through its
 * RegistrySink). Sessions are per request: credentials come with each request
 * (X-Registry-Auth), and berthd keeps none.
 */
export class Registry implements RegistryService {
  private readonly inflight = new Map<string, Promise<BlobFetch>>();

  constructor(
    private readonly sink: RegistrySink,
    private readonly opts: RegistryOptions = {},
  ) {}

  /**
   * A session with registry `domain` as this daemon makes them (insecure registries,
   * loopback, certs.d, retries) for one request's credentials; the caller closes it. Volume
   * push and pull (src/volumes/transfers.ts) use it too.
   */
  session(domain: string, auth?: Credentials): RegistrySession {
    return new RegistrySession(endpointFor(domain, this.opts), auth, { attempts: this.opts.attempts, backoffMs: this.opts.backoffMs });
  }

  async pull(refText: string, opts: PullOptions = {}): Promise<PullResult> {
    const ref = parseReference(refText);
    const s = this.session(ref.domain, opts.auth);
    try {
      const r = await pullImage({ session: s, sink: this.sink, inflight: this.inflight, concurrency: this.opts.downloads ?? 3 }, ref, opts);
      return { id: r.id, digest: r.digest, updated: r.updated };
    } finally {
      s.close();
    }
  }

  async push(refText: string, opts: TransferOptions = {}): Promise<PushResult> {
    const ref = parseReference(refText);
    const s = this.session(ref.domain, opts.auth);
    try {
      return await pushImage(
        { session: s, sink: this.sink, concurrency: this.opts.uploads ?? 5, chunkSize: this.opts.chunkSize ?? 32 << 20 },
        ref,
        ref.tag || ref.digest ? refText : `${refText}:latest`,
        opts,
      );
    } finally {
      s.close();
    }
  }

  async login(creds: Credentials): Promise<LoginResult> {
    const domain = loginDomain(creds.serveraddress);
    const s = this.session(domain, creds);
    try {
      await s.ping();
      return { Status: 'Login Succeeded', IdentityToken: '' };
    } finally {
      s.close();
    }
  }

  async search(term: string, opts: { limit?: number; filters?: Record<string, string[]>; auth?: Credentials } = {}): Promise<SearchResult[]> {
    return searchRegistry((domain, auth) => this.session(domain, auth), term, opts);
  }
}

/**
 * The registry a login names: Docker Hub for nothing, `docker.io`, `index.docker.io` or
 * its v1 URL `https://index.docker.io/v1/`; otherwise host[:port] with any scheme and
 * path dropped.
 */
export function loginDomain(server: string | undefined): string {
  if (!server) return 'docker.io';
  const host = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  if (!host) throw new InvalidArgumentError(`invalid registry address ${JSON.stringify(server)}`, { hint: 'give host[:port], e.g. berth login myreg.example.com:5000' });
  if (host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') return 'docker.io';
  return host;
}
