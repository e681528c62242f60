import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { JsonStore } from '../../volumes/shared/atomic';

/**
 * The classic builder's cache: a step hits when it has the same parent image and the same
 * instruction, and (COPY/ADD) the same content checksum of its sources, and (RUN) the same
 * build args. Kept as `build-cache.json` beside the images (key → image id, and each built
 * image's parent for --cache-from); an entry whose image is gone is a miss.
 *
 * With --cache-from, a hit is a step image with the same key on the chain of one of the
 * given images (the image or its ancestors built here), as moby's imageCache takes hits
 * from its sources only.
 */

interface Doc {
  version: 1;
  steps: Record<string, string>;
  parents: Record<string, string>;
  /** Each step image's key (for --cache-from: the step on a source's chain with the wanted key). */
  keys?: Record<string, string>;
}

export class BuildCache {
  private constructor(private readonly db: JsonStore<Doc>) {}

  static async open(dir: string): Promise<BuildCache> {
    return new BuildCache(await JsonStore.open<Doc>(path.join(dir, 'build-cache.json'), { version: 1, steps: {}, parents: {} }));
  }

  static key(parent: string | null, instruction: string, extra = ''): string {
    return createHash('sha256').update(`${parent ?? 'scratch'}\n${instruction}\n${extra}`).digest('hex');
  }

  /**
   * The image cached for `key`, if `exists` still says it is there and --cache-from allows
   * it: with `sources` (the cache-from images' ids), only an image on one of their chains.
   */
  async probe(key: string, exists: (id: string) => Promise<boolean>, sources?: string[]): Promise<string | undefined> {
    const doc = this.db.read();
    if (sources) {
      // The step image with this key on one of the sources' chains (a later build of the
      // same step elsewhere may have taken the key's latest entry).
      for (const src of sources) {
        for (let cur: string | undefined = src, n = 0; cur && n < 10_000; cur = doc.parents[cur], n++) {
          if (doc.keys?.[cur] === key && (await exists(cur))) return cur;
        }
      }
      return undefined;
    }
    const id = doc.steps[key];
    if (!id || !(await exists(id))) return undefined;
    return id;
  }

  async record(key: string, id: string, parent: string | null): Promise<void> {
    await this.db.update((doc) => {
      doc.steps[key] = id;
      (doc.keys ??= {})[id] = key;
      if (parent) doc.parents[id] = parent;
    });
  }

  /** Forget entries whose images are gone (called after a build). */
  async prune(exists: (id: string) => boolean): Promise<void> {
    const doc = this.db.read();
    const dead = Object.entries(doc.steps).filter(([, id]) => !exists(id));
    const deadIds = Object.keys(doc.keys ?? {}).filter((id) => !exists(id));
    if (dead.length === 0 && deadIds.length === 0) return;
    await this.db.update((d) => {
      for (const [k, id] of dead) {
        delete d.steps[k];
        delete d.parents[id];
      }
      for (const id of deadIds) {
        delete d.keys?.[id];
        delete d.parents[id];
      }
    });
  }
}
