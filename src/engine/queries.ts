import * as path from 'node:path';
import { ConflictError } from '../../volumes/shared/errors';
import { snapshotKey, type ContainerRecord } from './container-record';
import { message as errText, type EngineContext } from './context';
import { containerFilter } from './list-filter';
import type { ContainerInspect, ContainerSummary } from './service';
import { isActive, isUp } from './state';
import { top, type TopResult } from './top';
import { toInspect, toSummary } from './views';

/** What `ps`, `inspect` and `top` read; the shapes are views.ts. */

export interface ListOptions {
  all?: boolean;
  limit?: number;
  size?: boolean;
  filters?: Record<string, string[]>;
}

export async function list(ctx: EngineContext, opts: ListOptions = {}): Promise<ContainerSummary[]> {
  ctx.checkOpen();
  const keep = await containerFilter(opts.filters ?? {}, {
    resolveImage: (r) => ctx.opts.images.inspect(r).then((i) => i.Id, () => undefined),
    findContainer: (r) => ctx.store.find(r),
  });
  const limit = opts.limit && opts.limit > 0 ? opts.limit : 0;
  // One odd record must never fail a listing for everyone: it is left out, and logged.
  const kept = (r: ContainerRecord) => {
    try {
      return keep(r);
    } catch (e) {
      ctx.log(`container ${r.Id.slice(0, 12)} left out of a listing: ${errText(e)}`);
      return false;
    }
  };
  let recs = ctx.store.all().filter((r) => (opts.all || limit > 0 || isActive(r)) && kept(r));
  recs.sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created) || a.Id.localeCompare(b.Id));
  if (limit) recs = recs.slice(0, limit);
  const now = Date.now();
  const out: ContainerSummary[] = [];
  for (const r of recs) {
    let s: ContainerSummary;
    try {
      s = toSummary(r, now);
    } catch (e) {
      ctx.log(`container ${r.Id.slice(0, 12)} left out of a listing: ${errText(e)}`);
      continue;
    }
    if (opts.size) {
      s.SizeRw = await ctx.opts.snapshotter.usage(snapshotKey(r.Id)).then((u) => u.size, () => 0);
      s.SizeRootFs = s.SizeRw + (await ctx.opts.images.inspect(r.Image).then((i) => i.Size, () => 0));
    }
    out.push(s);
  }
  return out;
}

export async function inspect(ctx: EngineContext, ref: string): Promise<ContainerInspect> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  const p = ctx.store.paths(c.id);
  const graph: Record<string, string> = { MergedDir: p.rootfs };
  try {
    const key = snapshotKey(c.id);
    const upper = await ctx.opts.snapshotter.upperDir(key);
    graph.UpperDir = upper;
    graph.WorkDir = path.join(path.dirname(upper), 'work');
    for (const m of await ctx.opts.snapshotter.mounts(key)) {
      const lower = m.options.find((o) => o.startsWith('lowerdir='));
      if (lower) graph.LowerDir = lower.slice('lowerdir='.length);
    }
  } catch {
    // the snapshot is gone (being removed): show what we know
  }
  return toInspect(c.rec, p, graph, ctx.execs.ofContainer(c.id));
}

export async function topOf(ctx: EngineContext, ref: string, psArgs?: string): Promise<TopResult> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  if (!isUp(c.rec)) throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
  return top(ctx.runtimeFor(c.rec.Runtime), c.id, psArgs);
}
