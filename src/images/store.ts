import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { JsonStore } from '../../volumes/shared/atomic';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import { BaseImages } from './base-images';
import { history, inspect, list, resolve } from './catalog';
import { ContentStore } from './content';
import { ImageContext, type ImageUsers } from './context';
import { commitImageConfig, commitImageLayer, importDirectory, importLayer, importRootfs } from './ingest';
import type { CommitLayerSpec, ConfigCommitSpec, LayerImportSpec } from './layer-spec';
import { remove, tag } from './names';
import { EMPTY_DOC, type Doc } from './records';
import type {
  BootstrapOptions,
  DeleteItem,
  HistoryItem,
  ImageConfigFields,
  ImageInspect,
  ImageService,
  ImageSummary,
  ImportOptions,
  Progress,
  ResolvedImage,
  VendorOptions,
} from './service';
import { load, save } from './transfer';
import { registrySink } from './registry-sink';
import { historyCacheHit, type HistoryHit } from './cache-from';
import type { RegistrySink } from './registry/sink';

/**
 * The image store: containerd's model in small. A content store keeps blobs (layer tars
 * exactly as they came, image configs, manifests); the snapshotter keeps unpacked layers,
 * each a committed snapshot named by its OCI chain id and shared by every image that has
 * it; a JsonStore (`images.json`) keeps the images and their tags.
 *
 * Layout under `root`:
 *   images.json            { images: {<id>: ImageRecord}, tags: {'busybox:latest': <id>} }
 *   content/blobs/sha256/  blobs (see content.ts)
 *   content/ingest/        blobs being written
 * Snapshots live in the snapshotter: layers are 'sha256:<chainID>', layers being unpacked
 * 'extract-<random>'. Any other snapshot belongs to someone else (containers) and is never
 * touched here.
 *
 * Crash safety: an import or load first writes blobs and commits layers, and only then
 * writes the image record and its tags in ONE JsonStore update (record-writer.ts): that
 * update is the commit point. A crash before it leaves blobs, layers and extract
 * snapshots that no image names; `open` garbage-collects them. So after a crash no half
 * image is listed, and the same import simply runs again.
 *
 * This is the store's front: it opens it and delegates every call to the room that does
 * that job —
 *
 *   catalog.ts       list, inspect, history, resolve   names.ts        tag, rmi
 *   ingest.ts        import, commit (one new layer)    transfer.ts     load, save
 *   base-images.ts   busybox, vendor, bootstrap        layers.ts       unpack a layer
 *   record-writer.ts the commit point                  gc-gate.ts      when gc may run
 *   registry-sink.ts what the registry client (registry/: pull, push) may do here
 *
 * and context.ts holds what they share. Around them: reference.ts (names), records.ts
 * (the metadata and lookups), archive.ts + load.ts (reading archives), save.ts (writing
 * them), config.ts (image configs, --change), gc.ts (what is garbage), busybox.ts /
 * vendor.ts / bootstrap.ts (the builders, through staging.ts). New capabilities get a
 * room of their own, not code here.
 */

export interface ImageStoreOptions {
  root: string;
  snapshotter: Snapshotter;
  /** Scratch space for staging root filesystems (busybox, vendor, bootstrap). */
  tmpDir: string;
  /** The static busybox the `busybox` image is made from. */
  busyboxPath?: string;
  /** Where the store reports what it could not clean up (default: stderr). */
  log?: (msg: string) => void;
}

export type { CommitLayerSpec, ConfigCommitSpec, LayerImportSpec } from './layer-spec';
export type { ImageUsers } from './context';

export class ImageStore implements ImageService {
  private readonly base: BaseImages;

  private constructor(private readonly ctx: ImageContext) {
    this.base = new BaseImages(ctx);
    ctx.ensureBusybox = () => this.base.ensureBusybox();
  }

  static async open(opts: ImageStoreOptions): Promise<ImageStore> {
    const root = path.resolve(opts.root);
    await fs.promises.mkdir(root, { recursive: true, mode: 0o700 });
    await fs.promises.mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
    const content = await ContentStore.open(path.join(root, 'content'));
    const db = await JsonStore.open<Doc>(path.join(root, 'images.json'), EMPTY_DOC);
    const ctx = new ImageContext(root, opts.snapshotter, content, db, path.resolve(opts.tmpDir), opts.busyboxPath ?? '/bin/busybox', opts.log);
    // Whatever a crash left (extract snapshots, unreferenced layers and blobs) goes now.
    await ctx.gc();
    return new ImageStore(ctx);
  }

  get root(): string {
    return this.ctx.root;
  }

  get content(): ContentStore {
    return this.ctx.content;
  }

  /** Twice is harmless; calls after it fail with FAILED_PRECONDITION. */
  close(): Promise<void> {
    return this.ctx.life.close();
  }

  /**
   * Register who uses images (the container engine): `remove` then refuses, with a
   * ConflictError naming a container, to delete an image a container was made from,
   * unless forced. Forcing is safe for the layers: a container's root is built on the
   * image's top layer, so garbage collection keeps them while the container exists.
   */
  setInUse(users: ImageUsers): void {
    this.ctx.inUse = users;
  }

  list(opts: { all?: boolean; filters?: Record<string, string[]> } = {}): Promise<ImageSummary[]> {
    return list(this.ctx, opts);
  }

  inspect(ref: string): Promise<ImageInspect> {
    return inspect(this.ctx, ref);
  }

  history(ref: string): Promise<HistoryItem[]> {
    return history(this.ctx, ref);
  }

  resolve(ref: string): Promise<ResolvedImage> {
    return resolve(this.ctx, ref);
  }

  tag(ref: string, repo: string, tagName?: string): Promise<void> {
    return tag(this.ctx, ref, repo, tagName);
  }

  remove(ref: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    return remove(this.ctx, ref, opts);
  }

  importRootfs(input: Readable, opts: ImportOptions): Promise<{ id: string }> {
    return importRootfs(this.ctx, input, opts);
  }

  importLayer(input: Readable, spec: LayerImportSpec): Promise<{ id: string }> {
    return importLayer(this.ctx, input, spec);
  }

  importDirectory(dir: string, spec: LayerImportSpec): Promise<{ id: string }> {
    return importDirectory(this.ctx, dir, spec);
  }

  commitImageLayer(parentImageId: string, input: Readable, spec: CommitLayerSpec): Promise<{ id: string }> {
    return commitImageLayer(this.ctx, parentImageId, input, spec);
  }

  /** The classic builder's metadata steps: the parent's layers (none: scratch) with a new config. */
  commitImageConfig(parentImageId: string | null, spec: ConfigCommitSpec): Promise<{ id: string }> {
    return commitImageConfig(this.ctx, parentImageId, spec);
  }

  /** The classic builder's --cache-from hit by history on images without a parent chain here (cache-from.ts). */
  historyCacheHit(parentImageId: string | null, sources: string[], createdBy: string, config: ImageConfigFields): Promise<HistoryHit | undefined> {
    return historyCacheHit(this.ctx, parentImageId, sources, createdBy, config);
  }

  load(input: Readable, opts: { progress?: Progress } = {}): Promise<{ loaded: string[] }> {
    return load(this.ctx, input, opts);
  }

  save(refs: string[], out: Writable): Promise<void> {
    return save(this.ctx, refs, out);
  }

  vendor(opts: VendorOptions): Promise<{ id: string }> {
    return this.base.vendor(opts);
  }

  bootstrap(opts: BootstrapOptions): Promise<{ id: string; cached: boolean }> {
    return this.base.bootstrap(opts);
  }

  /** Make the busybox image unless it exists; concurrent callers share one build. */
  /** The store as the registry client sees it (registry-sink.ts). */
  registrySink(): RegistrySink {
    return registrySink(this.ctx);
  }

  ensureBusybox(): Promise<void> {
    return this.base.ensureBusybox();
  }
}
