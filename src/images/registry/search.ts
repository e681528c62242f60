import { InvalidArgumentError } from '../../../volumes/shared/errors';
import type { Credentials } from './auth';
import type { RegistrySession } from './client';
import { header } from './client';
import { readAll } from './transport';
import type { SearchResult } from './service';

/**
 * `docker search`: Docker Hub's search API for docker.io (index.docker.io/v1/search), and
 * for any other registry its `/v2/_catalog` (paged with `n` and Link), filtered by the
 * term as a substring. A catalog has no stars, descriptions or official marks: those are
 * 0, '' and false. The registry comes from the term, as Docker reads it
 * (`127.0.0.1:5000/app` searches 127.0.0.1:5000 for `app`).
 */

const FILTERS = ['is-official', 'is-automated', 'stars'];

export async function searchRegistry(
  open: (domain: string, auth?: Credentials) => RegistrySession,
  term: string,
  opts: { limit?: number; filters?: Record<string, string[]>; auth?: Credentials },
): Promise<SearchResult[]> {
  const limit = opts.limit ?? 25;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw new InvalidArgumentError(`invalid limit ${limit}: it must be between 1 and 100`, { hint: 'use --limit 1..100' });
  }
  const f = opts.filters ?? {};
  for (const k of Object.keys(f)) {
    if (!FILTERS.includes(k)) throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'filter on is-official, is-automated or stars' });
  }
  const stars = f.stars?.length ? Number(f.stars[0]) : 0;
  if (!Number.isFinite(stars)) throw new InvalidArgumentError(`invalid filter 'stars=${f.stars![0]}'`, { hint: 'stars takes a number, e.g. --filter stars=3' });
  const bool = (k: string) => (f[k]?.length ? ['true', '1'].includes(f[k][0]) : undefined);
  const official = bool('is-official');
  const automated = bool('is-automated');

  let domain = 'docker.io';
  let q = term;
  const slash = term.indexOf('/');
  if (slash > 0 && /[.:]|^localhost$/.test(term.slice(0, slash))) {
    domain = term.slice(0, slash);
    q = term.slice(slash + 1);
  }
  if (domain === 'docker.io' || domain === 'index.docker.io') {
    const s = open('index.docker.io', opts.auth);
    try {
      const res = await s.request('GET', `/v1/search?q=${encodeURIComponent(q)}&n=${limit}`, { scope: '', what: `search for ${q}` });
      const body = JSON.parse((await readAll(res)).toString('utf8')) as { results?: SearchResult[] };
      return filter(body.results ?? []);
    } finally {
      s.close();
    }
  }
  const s = open(domain, opts.auth);
  try {
    const names: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=1000';
    for (let page = 0; path && page < 100; page++) {
      const res = await s.request('GET', path, { scope: 'registry:catalog:*', what: 'the catalog' });
      const body = JSON.parse((await readAll(res)).toString('utf8')) as { repositories?: string[] };
      names.push(...(body.repositories ?? []));
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
      path = link?.[1];
    }
    const hits = names.filter((n) => n.includes(q)).map((n) => ({ name: `${domain}/${n}`, description: '', star_count: 0, is_official: false, is_automated: false }));
    return filter(hits);
  } finally {
    s.close();
  }

  function filter(rs: SearchResult[]): SearchResult[] {
    return rs
      .filter((r) => (r.star_count ?? 0) >= stars && (official === undefined || !!r.is_official === official) && (automated === undefined || !!r.is_automated === automated))
      .slice(0, limit);
  }
}
