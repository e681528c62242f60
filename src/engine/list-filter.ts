import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { ContainerRecord } from './container-record';
import { goDuration } from '../units';
import { HEALTH_FILTER_VALUES, healthFilterValue } from './health';

/**
 * Docker's `docker ps` filters (moby daemon/list.go). Values of one key are ORed, keys are
 * ANDed. id and name are regular expressions matched anywhere (as moby does, so a prefix
 * works); label is `k` or `k=v`; status one of Docker's states; health starting, healthy,
 * unhealthy or none; ancestor an image (its id,
 * or a name resolved by the image store); exited an exit code; before/since a container.
 */

const STATUSES = new Set(['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead']);
const KEYS = new Set(['id', 'name', 'status', 'label', 'ancestor', 'exited', 'before', 'since', 'is-task', 'health']);

export interface FilterContext {
  /** The image id a reference names, or undefined. */
  resolveImage(ref: string): Promise<string | undefined>;
  /** The container a reference names (throws NotFoundError). */
  findContainer(ref: string): ContainerRecord;
}

function regexMatch(pattern: string, s: string): boolean {
  try {
    return new RegExp(pattern).test(s);
  } catch {
    return s.includes(pattern);
  }
}

function labelMatch(want: string, labels: Record<string, string>): boolean {
  const eq = want.indexOf('=');
  if (eq < 0) return Object.hasOwn(labels, want);
  return labels[want.slice(0, eq)] === want.slice(eq + 1);
}

export async function containerFilter(filters: Record<string, string[]>, ctx: FilterContext): Promise<(rec: ContainerRecord) => boolean> {
  for (const k of Object.keys(filters)) {
    if (!KEYS.has(k)) throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: `filter on one of: ${[...KEYS].join(', ')}` });
  }
  const given = (k: string): string[] | undefined => (filters[k]?.length ? filters[k] : undefined);
  for (const s of given('status') ?? []) {
    if (!STATUSES.has(s)) throw new InvalidArgumentError(`invalid filter 'status=${s}'`, { hint: `use one of: ${[...STATUSES].join(', ')}` });
  }
  for (const h of given('health') ?? []) {
    if (!HEALTH_FILTER_VALUES.has(h)) throw new InvalidArgumentError(`Unrecognised filter value for health: ${h}`, { hint: `use one of: ${[...HEALTH_FILTER_VALUES].join(', ')}` });
  }
  const exited = given('exited')?.map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`invalid filter 'exited=${v}'`, { hint: 'give an exit code, e.g. exited=0' });
    return n;
  });
  let ancestors: Set<string> | undefined;
  const anc = given('ancestor');
  if (anc) {
    ancestors = new Set();
    for (const a of anc) {
      ancestors.add(a);
      const id = await ctx.resolveImage(a);
      if (id) ancestors.add(id);
    }
  }
  const before = given('before')?.map((r) => Date.parse(ctx.findContainer(r).Created));
  const sinceT = given('since')?.map((r) => Date.parse(ctx.findContainer(r).Created));
  const isTask = given('is-task');

  return (rec) => {
    const ids = given('id');
    if (ids && !ids.some((p) => regexMatch(p, rec.Id))) return false;
    const names = given('name');
    if (names && !names.some((p) => regexMatch(p, rec.Name) || regexMatch(p, rec.Name.slice(1)))) return false;
    const st = given('status');
    if (st && !st.includes(rec.State.Status)) return false;
    const health = given('health');
    if (health && !health.includes(healthFilterValue(rec))) return false;
    const labels = given('label');
    if (labels && !labels.every((l) => labelMatch(l, rec.Config.Labels ?? {}))) return false;
    if (ancestors) {
      const img = rec.Config.Image;
      const short = rec.Image.replace(/^sha256:/, '');
      const hit = ancestors.has(rec.Image) || ancestors.has(img) || ancestors.has(`${img}:latest`) ||
        [...ancestors].some((a) => /^(sha256:)?[0-9a-f]{4,64}$/.test(a) && short.startsWith(a.replace(/^sha256:/, '')));
      if (!hit) return false;
    }
    if (exited && !(rec.State.Status === 'exited' && exited.includes(rec.State.ExitCode))) return false;
    const created = Date.parse(rec.Created);
    if (before && !before.every((t) => created < t)) return false;
    if (sinceT && !sinceT.every((t) => created > t)) return false;
    if (isTask && isTask.includes('true')) return false;
    return true;
  };
}

/** Docker's `until`: a unix time, an RFC 3339 time, or a duration before now. In ms. */
export function parseUntil(v: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = goDuration(v);
  if (d !== undefined) return now - d;
  const t = Date.parse(v);
  if (Number.isFinite(t)) return t;
  throw new InvalidArgumentError(`invalid filter 'until=${v}'`, { hint: 'give a unix time, an RFC 3339 time, or a duration such as 24h' });
}

/** `docker container prune` filters: until, label, label!. */
export function pruneFilter(filters: Record<string, string[]>): (rec: ContainerRecord) => boolean {
  for (const k of Object.keys(filters)) {
    if (!['until', 'label', 'label!'].includes(k)) {
      throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'filter on until, label or label!' });
    }
  }
  const until = (filters.until ?? []).map((u) => parseUntil(u));
  return (rec) => {
    const created = Date.parse(rec.Created);
    if (!until.every((t) => created < t)) return false;
    const labels = rec.Config.Labels ?? {};
    if (!(filters.label ?? []).every((l) => labelMatch(l, labels))) return false;
    if ((filters['label!'] ?? []).some((l) => labelMatch(l, labels))) return false;
    return true;
  };
}
