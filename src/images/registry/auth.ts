import { UnauthenticatedError, UnavailableError } from '../../../volumes/shared/errors';
import { discard, readAll, type HttpTransport } from './transport';

/**
 * Registry authentication, the distribution spec's way (and Docker Hub's):
 *
 * 1. A request goes out with whatever we know (nothing, at first).
 * 2. A 401 carries `WWW-Authenticate`: `Basic realm=…` (send the credentials with each
 *    request) or `Bearer realm=…,service=…,scope=…` (get a token from the realm).
 * 3. A token comes from GET realm?service=…&scope=… (Basic auth with the credentials, or
 *    none: anonymous pulls get tokens too), or, given an identity token (OAuth refresh
 *    token), POST realm with grant_type=refresh_token. The answer carries `token` or
 *    `access_token`, and `expires_in` (60 s when absent) from `issued_at`.
 * 4. Tokens are cached per scope and fetched again shortly before they expire.
 *
 * Credentials are never put in an error message: errors name the registry and the user
 * at most.
 */

/** Docker's AuthConfig (what X-Registry-Auth carries, base64url JSON). */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth refresh token (from a login that returned one). */
  identitytoken?: string;
  /** A bearer token to use as is. */
  registrytoken?: string;
  serveraddress?: string;
  email?: string;
  auth?: string;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parse a WWW-Authenticate header (one challenge; the first when there are several). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]))) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme, params };
}

interface Token {
  value: string;
  expires: number;
}

export class Authorizer {
  private challenge?: Challenge;
  private readonly tokens = new Map<string, Promise<Token>>();

  constructor(
    private readonly http: HttpTransport,
    private readonly creds: Credentials | undefined,
  ) {}

  get hasCredentials(): boolean {
    return !!(this.creds && (this.creds.username || this.creds.identitytoken || this.creds.registrytoken));
  }

  /** Remember the registry's challenge (from a 401). Returns false if it says nothing new. */
  learn(header: string | undefined): boolean {
    const c = parseChallenge(header);
    if (!c) return false;
    const same = this.challenge && JSON.stringify(this.challenge) === JSON.stringify(c);
    this.challenge = c;
    return !same;
  }

  /** Forget the token for `scope` (the registry refused it: revoked, or expired early). */
  forget(scope: string): void {
    const c = this.challenge;
    if (c) this.tokens.delete(this.key(c, scope));
  }

  /** A bearer token for `scope` is cached (a 401 with it is worth one try with a fresh one). */
  hasToken(scope: string): boolean {
    const c = this.challenge;
    return !!c && c.scheme === 'bearer' && this.tokens.has(this.key(c, scope));
  }

  private key(c: Challenge, scope: string): string {
    return `${c.params.realm} ${c.params.service ?? ''} ${scope}`;
  }

  /** The Authorization header for a request needing `scope` (undefined: send none). */
  async header(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    if (this.creds?.registrytoken) return `Bearer ${this.creds.registrytoken}`;
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      if (!this.creds?.username) return undefined;
      return `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password ?? ''}`).toString('base64')}`;
    }
    const key = this.key(c, scope);
    let t = this.tokens.get(key);
    if (t) {
      const tok = await t.catch(() => undefined);
      if (!tok || tok.expires - 10_000 < Date.now()) t = undefined;
    }
    if (!t) {
      t = this.fetchToken(c, scope, signal);
      this.tokens.set(key, t);
      t.catch(() => this.tokens.delete(key));
    }
    return `Bearer ${(await t).value}`;
  }

  private async fetchToken(c: Challenge, scope: string, signal?: AbortSignal): Promise<Token> {
    const realm = c.params.realm;
    if (!realm || !/^https?:\/\//.test(realm)) {
      throw new UnavailableError(`registry ${this.http.endpoint.domain} asked for a token but gave no usable realm`, {
        hint: 'the registry is misconfigured (its auth.token.realm must be an http(s) URL)',
      });
    }
    const u = new URL(realm);
    const started = Date.now();
    let res;
    if (this.creds?.identitytoken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.creds.identitytoken, client_id: 'berth' });
      if (c.params.service) form.set('service', c.params.service);
      if (scope) form.set('scope', scope);
      res = await this.http.send({
        method: 'POST',
        url: u.toString(),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        signal,
      });
    } else {
      if (c.params.service) u.searchParams.set('service', c.params.service);
      for (const s of scope.split(' ').filter(Boolean)) u.searchParams.append('scope', s);
      if (this.creds?.username) u.searchParams.set('account', this.creds.username);
      const headers: Record<string, string> = {};
      if (this.creds?.username) headers.Authorization = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password ?? ''}`).toString('base64')}`;
      res = await this.http.send({ method: 'GET', url: u.toString(), headers, signal });
    }
    if (res.status === 401 || res.status === 403) {
      discard(res);
      throw unauthorized(this.http.endpoint.domain, this.creds?.username);
    }
    if (res.status !== 200) {
      discard(res);
      throw new UnavailableError(`the token server of ${this.http.endpoint.domain} answered ${res.status}`, {
        hint: 'try again later; if it persists, the registry\'s token service is down',
      });
    }
    let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      body = JSON.parse((await readAll(res, 1 << 20)).toString('utf8'));
    } catch {
      throw new UnavailableError(`the token server of ${this.http.endpoint.domain} sent no JSON`, { hint: 'the registry\'s token service misbehaves; try again later' });
    }
    const value = body.token || body.access_token;
    if (!value) throw new UnavailableError(`the token server of ${this.http.endpoint.domain} sent no token`, { hint: 'the registry\'s token service misbehaves; try again later' });
    const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
    const from = Number.isFinite(issued) && Math.abs(issued - started) < 3600_000 ? Math.min(issued, started) : started;
    const ttl = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { value, expires: from + ttl * 1000 };
  }
}

export function unauthorized(domain: string, user?: string): UnauthenticatedError {
  return new UnauthenticatedError(
    user ? `unauthorized: registry ${domain} refused the credentials of ${user}` : `unauthorized: registry ${domain} needs credentials`,
    { hint: `log in: berth login ${domain} (docker login ${domain})` },
  );
}
