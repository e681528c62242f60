import type { ContainerStore } from './container-store';
import type { ContainerService } from './service';
import type { ContainerHooks } from '../volumes/volumes';

/**
 * What the volume service asks of containers for a consistent snapshot: who uses a
 * volume, pause and unpause them, and run the --pre/--post hooks inside them (`exec`:
 * through the exec path, output collected).
 */
export function volumeHooks(store: ContainerStore, engine: Pick<ContainerService, 'pause' | 'unpause'>, exec: ContainerHooks['exec']): ContainerHooks {
  return {
    usersOf: (volume) =>
      store
        .all()
        .filter((r) => (r.Mounts ?? []).some((m) => m.Type === 'volume' && m.Name === volume))
        .map((r) => ({ id: r.Id, name: r.Name.slice(1), status: r.State.Status })),
    exists: (id) => store.get(id) !== undefined,
    pause: (id) => engine.pause(id),
    unpause: (id) => engine.unpause(id),
    exec,
  };
}
