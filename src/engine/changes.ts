import fs, { constants as C } from 'node:fs';
import * as path from 'node:path';
import { at, lstatAt } from '../../volumes/archive/rooted';
import type { ContainerAccess } from './container-access';
import { snapshotKey } from './container-record';

/** Docker's change kinds: 0 modified, 1 added, 2 deleted. */
export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

/** Paths berth mounts over (or creates for mounts) in every container: not the container's changes. */
const MOUNTED = ['/proc', '/sys', '/dev', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];

/**
 * GET /containers/{id}/changes (`docker diff`): the container's overlay upper directory
 * read as changes against its image. A whiteout is a deletion; anything else is added if
 * no image layer has the path, else modified. Mount points (berth's own and the
 * container's volumes) are left out, and so are directories that only hold them, as
 * Docker's init layer hides them. The upper directory is walked through fds: the
 * container can rewrite it meanwhile, never point the walk elsewhere.
 */
export class ContainerChanges {
  constructor(private readonly access: ContainerAccess) {}

  async changes(ref: string): Promise<Change[]> {
    const rec = this.access.record(ref);
    const mounts = await this.access.snapshotter.mounts(snapshotKey(rec.Id));
    const opt = (k: string) => mounts[0]?.options.find((o) => o.startsWith(k + '='))?.slice(k.length + 1);
    const upper = opt('upperdir') ?? (mounts[0]?.type === 'bind' ? mounts[0].source : undefined);
    if (!upper) return [];
    const lowers = (opt('lowerdir') ?? '').split(':').filter(Boolean);
    const skip = [...MOUNTED, ...(rec.Mounts ?? []).map((m) => m.Destination)];
    const hidden = (p: string) => skip.some((s) => p === s || p.startsWith(s + '/'));
    const inLower = (p: string) => lowers.some((l) => !!fs.lstatSync(path.join(l, p), { throwIfNoEntry: false }));

    const out: Change[] = [];
    /** Returns whether anything under `dir` was reported. */
    const walk = (fd: number, dir: string): boolean => {
      let any = false;
      for (const name of fs.readdirSync(at(fd)).sort()) {
        const p = dir === '/' ? '/' + name : dir + '/' + name;
        if (hidden(p)) continue;
        const st = lstatAt(fd, name);
        if (!st) continue;
        if (st.isCharacterDevice() && st.rdev === 0) {
          out.push({ Path: p, Kind: 2 });
          any = true;
          continue;
        }
        const existed = inLower(p);
        if (st.isDirectory()) {
          const at0 = out.length;
          let child: number | undefined;
          try {
            child = fs.openSync(at(fd, name), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
          } catch {
            child = undefined;
          }
          const inner = child !== undefined ? walk(child, p) : false;
          if (child !== undefined) fs.closeSync(child);
          // A directory of the image copied up only to hold mount points is no change.
          if (!existed || inner) {
            out.splice(at0, 0, { Path: p, Kind: existed ? 0 : 1 });
            any = true;
          }
          continue;
        }
        out.push({ Path: p, Kind: existed ? 0 : 1 });
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
    return out;
  }
}
