import { ConflictError } from '../../volumes/shared/errors';
import { shortId, type ImageContext } from './context';
import { familiarTagged, parseRepoTag } from './reference';
import { setTag, tagNameOf, tagsOf, type ImageRecord } from './records';
import type { DeleteItem } from './service';

/**
 * An image's names: `tag`, and `rmi` (untag, and delete the image once its last name goes,
 * unless a container uses it). What a removal leaves unused goes through the gc gate.
 */

export async function tag(ctx: ImageContext, ref: string, repo: string, tagName?: string): Promise<void> {
  ctx.life.check();
  const name = parseRepoTag(repo, tagName);
  const tagged = familiarTagged(name);
  await ctx.lookup(ref); // makes busybox if that is what is asked for
  await ctx.db.update((doc) => {
    const rec = ctx.find(doc, ref);
    setTag(doc, tagged, rec.id);
  });
}

export async function remove(ctx: ImageContext, ref: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
  ctx.life.check();
  const deleted: ImageRecord[] = [];
  const items = await ctx.db.update((doc) => {
    const out: DeleteItem[] = [];
    const byName = tagNameOf(doc, ref);
    if (byName) {
      const id = doc.tags[byName];
      delete doc.tags[byName];
      out.push({ Untagged: byName });
      if (tagsOf(doc, id).length === 0) {
        checkInUse(ctx, id, ref, opts.force);
        deleted.push(doc.images[id]);
        delete doc.images[id];
        out.push({ Deleted: id });
      }
      return out;
    }
    const rec = ctx.find(doc, ref);
    const tags = tagsOf(doc, rec.id);
    if (tags.length > 1 && !opts.force) {
      throw new ConflictError(
        `unable to delete ${shortId(rec.id)} (must be forced) - image is referenced in multiple repositories (${tags.join(', ')})`,
        { hint: `remove it by name (berth rmi ${tags[0]}) one name at a time, or use --force to remove every name and the image` },
      );
    }
    checkInUse(ctx, rec.id, ref, opts.force);
    for (const t of tags) {
      delete doc.tags[t];
      out.push({ Untagged: t });
    }
    deleted.push(rec);
    delete doc.images[rec.id];
    out.push({ Deleted: rec.id });
    return out;
  });
  if (deleted.length) {
    for (const d of deleted) ctx.configs.delete(d.id);
    const removed = new Set(await ctx.gate.request());
    for (const d of deleted) {
      for (const l of [...d.layers].reverse()) if (removed.has(l.chainID)) items.push({ Deleted: l.chainID });
    }
  }
  return items;
}

/** Deleting an image a container uses is a conflict unless forced (Docker's rmi). */
function checkInUse(ctx: ImageContext, id: string, ref: string, force?: boolean): void {
  const users = force ? [] : (ctx.inUse?.(id) ?? []);
  if (users.length === 0) return;
  throw new ConflictError(
    `unable to remove image ${ref} (must be forced) - container ${users[0].slice(0, 12)} is using its referenced image ${shortId(id)}`,
    { hint: `remove the container first (berth rm ${users[0].slice(0, 12)}), or use --force` },
  );
}
