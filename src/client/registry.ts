import { Transport } from './transport';
import type { Credentials, LoginResult, PullOptions, PullResult, PushResult, RegistryMessage, RegistryService, SearchResult, TransferOptions } from '../images/registry/service';

const name = (ref: string) => encodeURIComponent(ref).replace(/%2F/gi, '/');

/** X-Registry-Auth for `auth` (Docker's AuthConfig as base64url JSON); none = anonymous. */
export function authHeader(auth?: Credentials): Record<string, string> {
  return auth ? { 'X-Registry-Auth': Buffer.from(JSON.stringify(auth)).toString('base64url') } : {};
}

/** The RegistryService over the socket: Docker's pull, push, /auth and search routes. */
export class RemoteRegistryService implements RegistryService {
  constructor(private t: Transport) {}

  async pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    const at = ref.indexOf('@');
    const colon = ref.lastIndexOf(':');
    let fromImage = ref;
    let tag: string | undefined;
    if (at >= 0) [fromImage, tag] = [ref.slice(0, at), ref.slice(at + 1)];
    else if (colon > ref.lastIndexOf('/')) [fromImage, tag] = [ref.slice(0, colon), ref.slice(colon + 1)];
    const res = await this.t.request('POST', '/images/create', { query: { fromImage, tag, platform: opts.platform }, headers: authHeader(opts.auth) });
    const msgs = await this.t.messages(res, (m) => opts.progress?.(m as RegistryMessage));
    const digest = msgs.map((m) => /^Digest: (\S+)/.exec(m.status ?? '')?.[1]).filter(Boolean).pop() ?? '';
    const updated = msgs.some((m) => /Downloaded newer image/.test(m.status ?? ''));
    return { id: '', digest, updated };
  }

  async push(ref: string, opts: TransferOptions = {}): Promise<PushResult> {
    const colon = ref.lastIndexOf(':');
    const [repo, tag] = colon > ref.lastIndexOf('/') ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, undefined];
    const res = await this.t.request('POST', `/images/${name(repo)}/push`, { query: { tag }, headers: authHeader(opts.auth) });
    const msgs = await this.t.messages(res, (m) => opts.progress?.(m as RegistryMessage));
    const aux = (msgs.find((m) => m.aux)?.aux ?? {}) as { Tag?: string; Digest?: string; Size?: number };
    return { tag: aux.Tag ?? '', digest: aux.Digest ?? '', size: aux.Size ?? 0 };
  }

  login(creds: Credentials): Promise<LoginResult> {
    return this.t.json('POST', '/auth', { body: creds });
  }

  search(term: string, opts: { limit?: number; filters?: Record<string, string[]>; auth?: Credentials } = {}): Promise<SearchResult[]> {
    return this.t.json('GET', '/images/search', {
      query: { term, limit: opts.limit, filters: opts.filters && Object.keys(opts.filters).length ? JSON.stringify(opts.filters) : undefined },
      headers: authHeader(opts.auth),
    });
  }
}
