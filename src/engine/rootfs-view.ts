import * as fs from 'node:fs';
import { isMountPoint, mountAll, unmountAll } from '../../volumes/layers/mount';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import type { RootfsView } from './container-access';
import { snapshotKey } from './container-record';
import type { LiveContainer } from './live-container';

/**
 * A container's root filesystem for `fn`. Running (or paused): its own view through
 * /proc/PID/root, volumes, binds and tmpfs included, without holding its lock (a long
 * copy must not block `stop`). Otherwise: its snapshot, mounted for the call under the
 * lock (so a start waits) and unmounted after unless it was mounted already.
 */
export async function withRootfs<T>(c: LiveContainer, mountPoint: string, snapshotter: Snapshotter, fn: (v: RootfsView) => Promise<T>): Promise<T> {
  const running = await c.lock.run(async () => {
    const s = c.rec.State;
    return (s.Status === 'running' || s.Status === 'paused') && s.Pid > 0 ? s.Pid : 0;
  });
  if (running) return fn({ rec: c.rec, root: `/proc/${running}/root`, live: true });
  return c.lock.run(async () => {
    await fs.promises.mkdir(mountPoint, { recursive: true, mode: 0o755 });
    const mounted = await isMountPoint(mountPoint);
    if (!mounted) await mountAll(await snapshotter.mounts(snapshotKey(c.id)), mountPoint);
    try {
      return await fn({ rec: c.rec, root: mountPoint, live: false });
    } finally {
      if (!mounted) await unmountAll(mountPoint);
    }
  });
}
