import { ConflictError } from '../../volumes/shared/errors';
import { shortId, type ImageContext } from './context';
import { familiarTagged, parseRepoTag } from './reference';
import { setTag, tagNameOf, tagsOf, type Doc, type ImageRecord } from './records';
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
        const rec = doc.images[id];
        deleted.push(rec);
        delete doc.images[id];
        out.push({ Deleted: id });
        if (!opts.noprune) pruneParents(ctx, doc, rec, deleted, out);
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
    if (!opts.noprune) pruneParents(ctx, doc, rec, deleted, out);
    return out;
  });
  if (deleted.length) {
    for (const d of deleted) ctx.configs.delete(d.id);
    const removed = new Set(await ctx.gate.request());
    for (const d of deleted) {
      for (const l of [...d.layers].reverse()) {
        if (removed.delete(l.chainID)) items.push({ Deleted: l.chainID }); // once: pruned parents share layers
      }
    }
  }
  return items;
}

/**
 * After `rec` is deleted, its parents go too while they are untagged, parent of no other
 * image and used by no container (Docker's rmi without --no-prune): a built image takes
 * its build's intermediate images with it, and stops at the first one another build or a
 * tag still needs.
 */
function pruneParents(ctx: ImageContext, doc: Doc, rec: ImageRecord, deleted: ImageRecord[], out: DeleteItem[]): void {
  for (let p = rec.parent; p; ) {
    const parent: ImageRecord | undefined = doc.images[p];
    if (!parent || tagsOf(doc, p).length || Object.values(doc.images).some((i) => i.parent === p) || (ctx.inUse?.(p) ?? []).length) return;
    deleted.push(parent);
    delete doc.images[p];
    out.push({ Deleted: p });
    p = parent.parent;
  }
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
