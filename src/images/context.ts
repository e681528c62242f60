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

  constructor(
    readonly root: string,
    readonly snapshotter: Snapshotter,
    readonly content: ContentStore,
    readonly db: JsonStore<Doc>,
    readonly tmpDir: string,
    readonly busyboxPath: string,
  ) {
    this.gate = new GcGate(this.life, () => this.gc());
  }

  /** Remove whatever no image uses (gc.ts); only through the gate, or before any operation. */
  gc(): Promise<string[]> {
    return collectGarbage(this.db.read(), this.snapshotter, this.content);
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
