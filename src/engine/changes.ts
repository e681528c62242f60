import fs, { constants as C } from 'node:fs';
import * as path from 'node:path';
import { at, lstatAt } from '../../volumes/archive/rooted';
import { findXattr } from '../../volumes/archive/tools';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import type { ContainerAccess } from './container-access';
import { snapshotKey, type ContainerRecord } from './container-record';

/** Docker's change kinds: 0 modified, 1 added, 2 deleted. */
export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

/** Paths berth mounts over (or creates for mounts) in every container: not the container's changes. */
const MOUNTED = ['/proc', '/sys', '/dev', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];

/** What the upper directory holds against the image, and what berth's mounts left in it. */
export interface UpperRead {
  changes: Change[];
  /**
   * Upper paths (relative, no leading /) that are no change of the container's: mount
   * points and what is under them, and directories of the image copied up only to hold
   * them. Docker keeps these in a container's init layer, so neither `docker diff` nor
   * commit sees them; berth leaves them out of both.
   */
  hidden: Set<string>;
}

/**
 * A container's overlay upper directory read as changes against its image. A whiteout is
 * a deletion; anything else is added if no image layer has the path, else modified.
 * berth's own mount points (/proc, /sys, /dev, the /etc files: Docker's init layer) are
 * hidden, with directories made only to hold them; the container's volume and bind mount
 * points are hidden where the image has the path, and added (empty, their contents
 * hidden) where it did not, as Docker makes them in the container's layer; directories of
 * the image copied up only to hold mount points are hidden unless the container changed
 * the directory itself (its mode or owner, or replaced it). The walk goes through fds: the
 * container can rewrite the directory meanwhile, never point the walk elsewhere.
 */
export async function readUpper(snapshotter: Pick<Snapshotter, 'mounts'>, rec: Pick<ContainerRecord, 'Id' | 'Mounts'>): Promise<UpperRead | undefined> {
  const mounts = await snapshotter.mounts(snapshotKey(rec.Id));
  const opt = (k: string) => mounts[0]?.options.find((o) => o.startsWith(k + '='))?.slice(k.length + 1);
  const upper = opt('upperdir') ?? (mounts[0]?.type === 'bind' ? mounts[0].source : undefined);
  if (!upper) return undefined;
  const lowers = (opt('lowerdir') ?? '').split(':').filter(Boolean);
  const points = (rec.Mounts ?? []).map((m) => m.Destination);
  const under = (list: string[], p: string) => list.some((s) => p === s || p.startsWith(s + '/'));
  const lowerOf = (p: string) => {
    for (const l of lowers) {
      const st = fs.lstatSync(path.join(l, p), { throwIfNoEntry: false });
      if (st) return st;
    }
    return undefined;
  };
  const opaque = mounts[0]?.type === 'overlay' ? await findXattr(upper, 'trusted.overlay.opaque', 'y') : new Set<string>();

  const changes: Change[] = [];
  const hidden = new Set<string>();
  /**
   * What was under `dir`: `any` when something was reported, `initOnly` when it held
   * something and all of it was berth's own mounts (Docker's init layer: /etc for the /etc
   * stubs of an image without one).
   */
  const walk = (fd: number, dir: string): { any: boolean; initOnly: boolean } => {
    let any = false;
    let initOnly = true;
    let held = false;
    for (const name of fs.readdirSync(at(fd)).sort()) {
      const p = dir === '/' ? '/' + name : dir + '/' + name;
      held = true;
      if (under(MOUNTED, p)) {
        hidden.add(p.slice(1));
        continue;
      }
      initOnly = false;
      if (points.includes(p) && !lowerOf(p)) {
        // A volume or bind mount point the image did not have: made in the container's
        // own layer, so Docker shows it (A) and a commit keeps it, empty.
        changes.push({ Path: p, Kind: 1 });
        any = true;
        const st = lstatAt(fd, name);
        if (st?.isDirectory()) for (const kid of fs.readdirSync(at(fd, name))) hidden.add(`${p.slice(1)}/${kid}`);
        continue;
      }
      if (under(points, p)) {
        hidden.add(p.slice(1));
        continue;
      }
      const st = lstatAt(fd, name);
      if (!st) continue;
      if (st.isCharacterDevice() && st.rdev === 0) {
        changes.push({ Path: p, Kind: 2 });
        any = true;
        continue;
      }
      const below = lowerOf(p);
      if (st.isDirectory()) {
        const at0 = changes.length;
        let child: number | undefined;
        try {
          child = fs.openSync(at(fd, name), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
        } catch {
          child = undefined;
        }
        const inner = child !== undefined ? walk(child, p) : { any: false, initOnly: false };
        if (child !== undefined) fs.closeSync(child);
        const same = below?.isDirectory() && below.mode === st.mode && below.uid === st.uid && below.gid === st.gid && !opaque.has(p.slice(1));
        // A directory of the image copied up only to hold mount points is no change, and
        // neither is one made only for berth's own mounts (Docker's init layer has those).
        if ((same || (!below && inner.initOnly)) && !inner.any) hidden.add(p.slice(1));
        else {
          changes.splice(at0, 0, { Path: p, Kind: below ? 0 : 1 });
          any = true;
        }
        continue;
      }
      changes.push({ Path: p, Kind: below ? 0 : 1 });
      any = true;
    }
    return { any, initOnly: held && initOnly };
  };
  const fd = fs.openSync(upper, C.O_RDONLY | C.O_DIRECTORY);
  try {
    walk(fd, '/');
  } finally {
    fs.closeSync(fd);
  }
  return { changes, hidden };
}

/** GET /containers/{id}/changes (`docker diff`): readUpper's changes. */
export class ContainerChanges {
  constructor(private readonly access: ContainerAccess) {}

  async changes(ref: string): Promise<Change[]> {
    const rec = this.access.record(ref);
    return (await readUpper(this.access.snapshotter, rec))?.changes ?? [];
  }
}
