import type { ContainerAccess } from './container-access';
import type { EngineContext } from './context';
import { withRootfs } from './rootfs-view';

/**
 * The engine's side of container-access.ts: what it lends the side modules (archive,
 * stats, update, changes, disk usage), made from its context. The state machine stays
 * with the engine: a side module changes a record only under `locked`, and saves it.
 */
export function lendAccess(ctx: EngineContext): ContainerAccess {
  return {
    record: (ref) => ctx.store.find(ref),
    all: () => ctx.store.all(),
    paths: (id) => ctx.store.paths(id),
    cgroupsPath: (id) => ctx.cgroupsPath(id),
    locked: (ref, fn) => {
      const c = ctx.live(ref);
      return c.lock.run(() => fn(c.rec));
    },
    save: (rec) => ctx.save(rec),
    withRootfs: (ref, fn) => withRootfs(ctx.live(ref), ctx.store.paths(ctx.live(ref).id).rootfs, ctx.opts.snapshotter, fn),
    runtimeFor: (rec) => ctx.runtimeFor(rec.Runtime),
    emit: (rec, action, extra) => ctx.emit(rec, action, extra),
    snapshotter: ctx.opts.snapshotter,
    volumes: ctx.opts.volumes,
  };
}
