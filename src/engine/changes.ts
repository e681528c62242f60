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
 * a deletion; anything else is added if no image layer has the path, else modified. Mount
 * points (berth's own and the container's volumes) are hidden, and so are directories
 * that only hold them (unless the container changed the directory itself: its mode or
 * owner, or replaced it). The walk goes through fds: the container can rewrite the
 * directory meanwhile, never point the walk elsewhere.
 */
export async function readUpper(snapshotter: Pick<Snapshotter, 'mounts'>, rec: Pick<ContainerRecord, 'Id' | 'Mounts'>): Promise<UpperRead | undefined> {
  const mounts = await snapshotter.mounts(snapshotKey(rec.Id));
  const opt = (k: string) => mounts[0]?.options.find((o) => o.startsWith(k + '='))?.slice(k.length + 1);
  const upper = opt('upperdir') ?? (mounts[0]?.type === 'bind' ? mounts[0].source : undefined);
  if (!upper) return undefined;
  const lowers = (opt('lowerdir') ?? '').split(':').filter(Boolean);
  const skip = [...MOUNTED, ...(rec.Mounts ?? []).map((m) => m.Destination)];
  const isMount = (p: string) => skip.some((s) => p === s || p.startsWith(s + '/'));
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
  /** Returns whether anything under `dir` was reported. */
  const walk = (fd: number, dir: string): boolean => {
    let any = false;
    for (const name of fs.readdirSync(at(fd)).sort()) {
      const p = dir === '/' ? '/' + name : dir + '/' + name;
      if (isMount(p)) {
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
        const inner = child !== undefined ? walk(child, p) : false;
        if (child !== undefined) fs.closeSync(child);
        const same = below?.isDirectory() && below.mode === st.mode && below.uid === st.uid && below.gid === st.gid && !opaque.has(p.slice(1));
        // A directory of the image copied up only to hold mount points is no change.
        if (!same || inner) {
          changes.splice(at0, 0, { Path: p, Kind: below ? 0 : 1 });
          any = true;
        } else hidden.add(p.slice(1));
        continue;
      }
      changes.push({ Path: p, Kind: below ? 0 : 1 });
      any = true;
    }
    return any;
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
