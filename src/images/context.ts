import { NotFoundError } from '../../volumes/shared/errors';
import { Lifecycle } from '../../volumes/shared/lifecycle';
import type { JsonStore } from '../../volumes/shared/atomic';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import { isBusyboxRef } from './busybox';
import type { ImageConfig } from './config';
import type { ContentStore } from './content';
import { collectGarbage } from './gc';
import { GcGate } from './gc-gate';
import { findImage, type Doc, type ImageRecord } from './records';

/** Who uses an image: container ids (the engine registers this with setInUse). */
export type ImageUsers = (imageId: string) => string[];

const NOT_FOUND_HINT = 'list images with `berth images`; load, import or vendor the image first';

/**
 * What every room of the image store shares: the metadata (`db`), the content store, the
 * snapshotter, the lifecycle, the gc gate, the config cache, and the lookups they all
 * use. The rooms (catalog.ts, names.ts, ingest.ts, layers.ts, transfer.ts,
 * base-images.ts) take one of these; store.ts makes it and delegates.
 */
export class ImageContext {
  readonly life = new Lifecycle('image store', 'open the image store again');
  readonly gate: GcGate;
  /** Parsed image configs by image id (configs never change; removal drops them). */
  readonly configs = new Map<string, ImageConfig>();
  /** Who uses images (setInUse); remove refuses to delete those unless forced. */
  inUse?: ImageUsers;
  /** Makes the busybox image (base-images.ts); lookups of `busybox` call it on first use. */
  ensureBusybox: () => Promise<void> = async () => undefined;

  /** The next collection asked for because one could not remove an extract snapshot. */
  private retry?: { timer?: NodeJS.Timeout; delay: number };

  constructor(
    readonly root: string,
    readonly snapshotter: Snapshotter,
    readonly content: ContentStore,
    readonly db: JsonStore<Doc>,
    readonly tmpDir: string,
    readonly busyboxPath: string,
    /** Where the store reports what it could not clean up (the daemon's log). */
    readonly log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`),
  ) {
    this.gate = new GcGate(this.life, () => this.gc());
  }

  /**
   * Remove whatever no image uses (gc.ts); only through the gate, or before any operation.
   * An extract snapshot it cannot remove is logged and tried again by a collection of its
   * own, after 5 s and then twice as long each time (at most 5 min), until one succeeds.
   */
  async gc(): Promise<string[]> {
    let left = 0;
    const removed = await collectGarbage(this.db.read(), this.snapshotter, this.content, (name, e) => {
      left++;
      this.log(`image store: cannot remove snapshot ${name} of an unpack that did not finish: ${e instanceof Error ? e.message : String(e)}; garbage collection tries again`);
    });
    if (left > 0) this.collectLater();
    else if (this.retry) {
      clearTimeout(this.retry.timer);
      this.retry = undefined;
    }
    return removed;
  }

  /**
   * An extract snapshot could not be removed (layers.ts, gc): ask for a collection later.
   * It runs through the gate, so never under an operation.
   */
  collectLater(): void {
    if (this.life.closed || this.retry?.timer) return; // one at a time
    const delay = Math.min((this.retry?.delay ?? 2500) * 2, 300_000);
    const timer = setTimeout(() => {
      this.retry = { delay };
      void this.gate.request(); // nothing once the store is closed: the next open collects
    }, delay);
    timer.unref();
    this.retry = { timer, delay };
  }

  /**
   * The image `ref` names, with the document it was found in. `busybox` (busybox:latest)
   * always exists: it is made on first use.
   */
  async lookup(ref: string): Promise<{ doc: Doc; rec: ImageRecord }> {
    let doc = this.db.read();
    let rec = findImage(doc, ref);
    if (!rec && isBusyboxRef(ref)) {
      await this.ensureBusybox();
      doc = this.db.read();
      rec = findImage(doc, ref);
    }
    if (!rec) throw notFound(ref);
    return { doc, rec };
  }

  find(doc: Doc, ref: string): ImageRecord {
    const rec = findImage(doc, ref);
    if (!rec) throw notFound(ref);
    return rec;
  }

  /** The image's config, read from its blob once. */
  async config(rec: ImageRecord): Promise<ImageConfig> {
    let c = this.configs.get(rec.id);
    if (!c) {
      c = JSON.parse((await this.content.readBuffer(rec.config.digest)).toString('utf8')) as ImageConfig;
      this.configs.set(rec.id, c);
    }
    return c;
  }
}

export function notFound(ref: string): NotFoundError {
  return new NotFoundError(`No such image: ${ref}`, { hint: NOT_FOUND_HINT });
}

/** The 12 hex digits Docker shows of a digest or id. */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
