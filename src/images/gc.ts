import { ConflictError, NotFoundError } from '../../volumes/shared/errors';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import type { ContentStore } from './content';
import type { Doc } from './records';

/** Snapshot names the image store owns: layers ('sha256:<chainID>') and layers being unpacked. */
export const LAYER_PREFIX = 'sha256:';
export const EXTRACT_PREFIX = 'extract-';

/**
 * Remove what no image in `doc` uses: extract snapshots (an import that died), layers no
 * image names and nothing is built on (leaves first, so unused chains go whole), and
 * blobs. A layer with a child someone else owns (a container's root) stays; snapshots
 * with other names are never touched. Returns the layers removed.
 *
 * The caller makes sure no import runs meanwhile (it could be reusing what looks unused).
 * An extract snapshot that cannot be removed (a failing disk, a closing snapshotter) is
 * told to `left`, never dropped silently; it stays garbage for the next collection.
 */
export async function collectGarbage(
  doc: Doc,
  snapshotter: Snapshotter,
  content: ContentStore,
  left: (snapshot: string, err: unknown) => void = () => undefined,
): Promise<string[]> {
  const usedLayers = new Set<string>();
  const usedBlobs = new Set<string>();
  for (const rec of Object.values(doc.images)) {
    usedBlobs.add(rec.config.digest);
    usedBlobs.add(rec.manifest.digest);
    for (const l of rec.layers) {
      usedBlobs.add(l.digest);
      if (l.heldAs) usedBlobs.add(l.heldAs.digest);
      usedLayers.add(l.chainID);
    }
  }
  const snaps: Array<{ name: string; parent: string; kind: string }> = [];
  await snapshotter.walk((i) => {
    snaps.push({ name: i.name, parent: i.parent, kind: i.kind });
  });
  const gone = new Set<string>();
  for (const s of snaps) {
    if (s.name.startsWith(EXTRACT_PREFIX) && s.kind === 'active') {
      await snapshotter.remove(s.name).then(
        () => gone.add(s.name),
        (e) => (e instanceof NotFoundError ? gone.add(s.name) : left(s.name, e)),
      );
    }
  }
  const removed: string[] = [];
  const kept = new Set<string>();
  for (;;) {
    const live = snaps.filter((s) => !gone.has(s.name));
    const parents = new Set(live.map((s) => s.parent));
    const victims = live.filter(
      (s) =>
        s.name.startsWith(LAYER_PREFIX) && s.kind === 'committed' && !usedLayers.has(s.name) && !parents.has(s.name) && !kept.has(s.name),
    );
    if (victims.length === 0) break;
    for (const v of victims) {
      try {
        await snapshotter.remove(v.name);
        gone.add(v.name);
        removed.push(v.name);
      } catch (e) {
        if (e instanceof NotFoundError) gone.add(v.name);
        else if (e instanceof ConflictError) kept.add(v.name); // someone built on it meanwhile
        else throw e;
      }
    }
  }
  for (const d of await content.list()) if (!usedBlobs.has(d)) await content.delete(d);
  return removed;
}
