import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { packDir } from '../../volumes/archive/pack';
import { tarTree } from '../../volumes/archive/tar-tree';
import { openCallerFile, type CallerFile } from '../../volumes/shared/caller-file';
import { isMountPoint, mountAll, unmountAll } from '../../volumes/layers/mount';
import { applyChanges } from '../images/config';
import { familiarTagged, parseRepoTag } from '../images/reference';
import type { ImageConfigFields } from '../images/service';
import { readUpper } from './changes';
import { commitConfig } from './commit-config';
import { snapshotKey } from './container-record';
import { message, type EngineContext } from './context';

/**
 * The container's filesystem seen from outside: commit (its changes as an image layer)
 * and export (its whole root as a tar). The archive endpoints (GET/PUT/HEAD
 * /containers/{id}/archive) belong here too.
 */

export interface CommitOptions {
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  changes?: string[];
  pause?: boolean;
  config?: Partial<ImageConfigFields>;
  /** The builder's: `config` is the image's whole config, not merged over the container's. */
  replaceConfig?: boolean;
  /** The builder's: the history entry's created_by (default: the container's command). */
  createdBy?: string;
}

export async function commit(ctx: EngineContext, ref: string, opts: CommitOptions): Promise<{ Id: string }> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  let names: string[] = [];
  if (opts.repo) names = [familiarTagged(parseRepoTag(opts.repo, opts.tag))];
  else if (opts.tag) throw new InvalidArgumentError('a tag needs a repository name', { hint: 'give repo:tag, e.g. myimage:v1' });
  const config = applyChanges(opts.replaceConfig ? structuredClone((opts.config ?? {}) as ImageConfigFields) : commitConfig(c.rec, opts.config ?? {}), opts.changes ?? []);
  const rt = ctx.runtimeFor(c.rec.Runtime);
  const { id } = await c.lock.run(async () => {
    const pause = opts.pause !== false && c.rec.State.Status === 'running';
    if (pause) await rt.pause(c.id); // a consistent snapshot of the files
    try {
      // berth's mount points (the /etc files, /proc, /sys, /dev, volumes) are left out, as
      // Docker's init layer keeps them out of a commit.
      const hidden = (await readUpper(ctx.opts.snapshotter, c.rec))?.hidden ?? new Set<string>();
      const tar = packDir(await ctx.opts.snapshotter.upperDir(snapshotKey(c.id)), { overlayWhiteouts: true, skip: (rel) => hidden.has(rel) });
      try {
        return await ctx.opts.images.commitImageLayer(c.rec.Image, tar, {
          names,
          config,
          createdBy: opts.createdBy ?? [c.rec.Path, ...c.rec.Args].join(' '),
          comment: opts.comment,
          author: opts.author,
          container: c.id,
          containerConfig: c.rec.Config,
        });
      } finally {
        tar.destroy();
      }
    } finally {
      if (pause) await rt.resume(c.id).catch((e) => ctx.log(`${c.id}: unpause after commit: ${message(e)}`));
    }
  });
  ctx.emit(c.rec, 'commit', { comment: opts.comment ?? '', imageID: id, imageRef: names[0] ?? '' });
  return { Id: id };
}

/** The container's root as a tar into `out`, or (with `to`) written by tar into the caller's file. */
export async function exportRootfs(ctx: EngineContext, ref: string, out: Writable, to?: CallerFile): Promise<void> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  const fd = to ? openCallerFile(to) : undefined;
  try {
    await c.lock.run(async () => {
      const p = ctx.store.paths(c.id);
      const mounted = await isMountPoint(p.rootfs);
      if (!mounted) await mountAll(await ctx.opts.snapshotter.mounts(snapshotKey(c.id)), p.rootfs);
      try {
        await pipeline(tarTree(p.rootfs, { rootEntry: false, fd, hint: "tar's own message says which file of the container it could not read" }), out);
      } finally {
        if (!mounted) await unmountAll(p.rootfs);
      }
    });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  ctx.emit(c.rec, 'export');
}
