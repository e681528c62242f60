import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { JsonStore } from '../../volumes/shared/atomic';

/**
 * The classic builder's cache: a step hits when it has the same parent image and the same
 * instruction, and (COPY/ADD) the same content checksum of its sources, and (RUN) the same
 * build args. Kept as `build-cache.json` beside the images (key → image id, and each built
 * image's parent for --cache-from); an entry whose image is gone is a miss.
 *
 * With --cache-from, a hit counts only when the image it names is one of the given images
 * or one of their ancestors in the build chain, as moby's imageCache does for its sources.
 */

interface Doc {
  version: 1;
  steps: Record<string, string>;
  parents: Record<string, string>;
}

export class BuildCache {
  private constructor(private readonly db: JsonStore<Doc>) {}

  static async open(dir: string): Promise<BuildCache> {
    return new BuildCache(await JsonStore.open<Doc>(path.join(dir, 'build-cache.json'), { version: 1, steps: {}, parents: {} }));
  }

  static key(parent: string | null, instruction: string, extra = ''): string {
    return createHash('sha256').update(`${parent ?? 'scratch'}\n${instruction}\n${extra}`).digest('hex');
  }

  /** The image cached for `key`, if `exists` still says it is there and --cache-from allows it. */
  async probe(key: string, exists: (id: string) => Promise<boolean>, cacheFrom?: string[]): Promise<string | undefined> {
    const id = this.db.read().steps[key];
    if (!id || !(await exists(id))) return undefined;
    if (cacheFrom && cacheFrom.length && !cacheFrom.some((src) => this.isAncestorOrSelf(id, src))) return undefined;
    return id;
  }

  async record(key: string, id: string, parent: string | null): Promise<void> {
    await this.db.update((doc) => {
      doc.steps[key] = id;
      if (parent) doc.parents[id] = parent;
    });
  }

  /** Forget entries whose images are gone (called after a build). */
  async prune(exists: (id: string) => boolean): Promise<void> {
    const doc = this.db.read();
    const dead = Object.entries(doc.steps).filter(([, id]) => !exists(id));
    if (dead.length === 0) return;
    await this.db.update((d) => {
      for (const [k, id] of dead) {
        delete d.steps[k];
        delete d.parents[id];
      }
    });
  }

  private isAncestorOrSelf(id: string, of: string): boolean {
    const parents = this.db.read().parents;
    for (let cur: string | undefined = of, n = 0; cur && n < 10_000; cur = parents[cur], n++) if (cur === id) return true;
    return false;
  }
}
