import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  AlreadyExistsError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
} from '../../volumes/shared/errors';
import { Lifecycle } from '../../volumes/shared/lifecycle';
import { JsonStore } from '../../volumes/shared/atomic';
import type { Snapshotter } from '../../volumes/layers/snapshotter';
import { applyLayer } from '../../volumes/archive/apply';
import { packDir } from '../../volumes/archive/pack';
import { readArchive, type ArchiveFile } from './archive';
import type { CommitLayerSpec, LayerImportSpec } from './layer-spec';
import { EXTRACT_PREFIX, collectGarbage } from './gc';
import { EMPTY_DOC, findImage, matchLabel, matchReference, setTag, tagNameOf, tagsOf, type Doc, type ImageRecord, type LayerRecord } from './records';
import { buildBusybox, BUSYBOX_REF } from './busybox';
import { bootstrapImage } from './bootstrap';
import { MEDIA, applyChanges, chainIDs, goArch, goTime, isGzip, serializeConfig, ociLayerMediaType, type HistoryEntry, type ImageConfig } from './config';
import { ContentStore } from './content';
import { resolveArchive } from './load';
import {
  familiarTagged,
  idPrefix,
  parseReference,
  parseRepoTag,
  splitTagged,
} from './reference';
import { writeArchive, type Descriptor, type SaveImage } from './save';
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
import { drain, formatError, guard, tee, throttle } from './streams';
import { vendorImage } from './vendor';

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
 * writes the image record and its tags in ONE JsonStore update: that update is the commit
 * point. A crash before it leaves blobs, layers and extract snapshots that no image names;
 * `open` garbage-collects them. So after a crash no half image is listed, and the same
 * import simply runs again.
 *
 * Concurrency: garbage collection (gc.ts) never runs while an operation that creates or
 * reads blobs and layers (import, load, save) is in flight: it waits until the last one
 * ends. So an import never sees a blob or layer it is reusing disappear under it.
 *
 * Around it: reference.ts (names), records.ts (the metadata and lookups), archive.ts +
 * load.ts (reading archives), save.ts (writing them), config.ts (image configs, --change),
 * busybox.ts / vendor.ts / bootstrap.ts (base images, built through staging.ts).
 */

export interface ImageStoreOptions {
  root: string;
  snapshotter: Snapshotter;
  /** Scratch space for staging root filesystems (busybox, vendor, bootstrap). */
  tmpDir: string;
  /** The static busybox the `busybox` image is made from. */
  busyboxPath?: string;
}

export type { CommitLayerSpec, LayerImportSpec } from './layer-spec';

/** Who uses an image: container ids (the engine registers this with setInUse). */
export type ImageUsers = (imageId: string) => string[];

const LABEL_DIFF_ID = 'berth.image/diff-id';
const LABEL_BLOB = 'berth.image/blob';
const NOT_FOUND_HINT = 'list images with `berth images`; load, import or vendor the image first';

export class ImageStore implements ImageService {
  private readonly life = new Lifecycle('image store', 'open the image store again');
  private active = 0;
  private gcWanted = false;
  private gcRunning?: Promise<string[]>;
  private busyboxBuild?: Promise<void>;
  private readonly bootstraps = new Map<string, Promise<{ id: string; cached: boolean }>>();
  private readonly configs = new Map<string, ImageConfig>();
  private inUse?: ImageUsers;

  private constructor(
    readonly root: string,
    private readonly snapshotter: Snapshotter,
    readonly content: ContentStore,
    private readonly db: JsonStore<Doc>,
    private readonly tmpDir: string,
    private readonly busyboxPath: string,
  ) {}

  static async open(opts: ImageStoreOptions): Promise<ImageStore> {
    const root = path.resolve(opts.root);
    await fs.promises.mkdir(root, { recursive: true, mode: 0o700 });
    await fs.promises.mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
    const content = await ContentStore.open(path.join(root, 'content'));
    const db = await JsonStore.open<Doc>(path.join(root, 'images.json'), EMPTY_DOC);
    const store = new ImageStore(root, opts.snapshotter, content, db, path.resolve(opts.tmpDir), opts.busyboxPath ?? '/bin/busybox');
    // Whatever a crash left (extract snapshots, unreferenced layers and blobs) goes now.
    await store.gc();
    return store;
  }

  /** Twice is harmless; calls after it fail with FAILED_PRECONDITION. */
  close(): Promise<void> {
    return this.life.close();
  }

  /**
   * Register who uses images (the container engine): `remove` then refuses, with a
   * ConflictError naming a container, to delete an image a container was made from,
   * unless forced. Forcing is safe for the layers: a container's root is built on the
   * image's top layer, so garbage collection keeps them while the container exists.
   */
  setInUse(users: ImageUsers): void {
    this.inUse = users;
  }

  /**
   * `docker commit`: a new image made of image `parentImageId`'s layers plus one new layer
   * read from `input` (a layer tar, e.g. a container's upper dir packed with overlay
   * whiteouts), and the parent's config with `spec.config`, the history entry and the
   * new diff id appended. The tar is stored as it came and unpacked in the same pass, on
   * top of the parent's top layer; the image record is the commit point, as for import.
   */
  async commitImageLayer(parentImageId: string, input: Readable, spec: CommitLayerSpec): Promise<{ id: string }> {
    guard(input);
    try {
      return await this.commitImageLayerOp(parentImageId, input, spec);
    } catch (e) {
      await this.requestGc(); // what the failed commit made is garbage
      throw e;
    }
  }

  private commitImageLayerOp(parentImageId: string, input: Readable, spec: CommitLayerSpec): Promise<{ id: string }> {
    return this.op(async () => {
      try {
        const { rec: parent } = await this.lookup(parentImageId);
        const parentConfig = await this.config(parent);
        const layer = await this.addLayer(input, parent.layers);
        const now = goTime();
        // One history entry per layer below ours, so `history` can pair entries with layers.
        const history: HistoryEntry[] = parentConfig.history?.length
          ? [...parentConfig.history]
          : parent.layers.map(() => ({ created: parent.created, created_by: '' }));
        history.push({
          created: now,
          created_by: spec.createdBy,
          ...(spec.author ? { author: spec.author } : {}),
          ...(spec.comment ? { comment: spec.comment } : {}),
        });
        const config: ImageConfig = {
          ...parentConfig,
          created: now,
          config: spec.config,
          rootfs: { type: 'layers', diff_ids: [...parent.layers.map((l) => l.diffID), layer.diffID] },
          history,
        };
        delete config.author;
        delete config.comment;
        delete config.container;
        if (spec.author) config.author = spec.author;
        if (spec.comment) config.comment = spec.comment;
        const from = spec.container ? { container: spec.container, ...(spec.containerConfig ? { containerConfig: spec.containerConfig } : {}) } : {};
        return { id: await this.saveImage(config, [...parent.layers, layer], spec.names, from) };
      } catch (e) {
        drain(input);
        throw formatError(e, 'cannot commit the layer', "check the container's files and the space left on the data root");
      }
    });
  }

  /**
   * Store `input` as a blob and unpack it as a layer on top of `parents`, in one pass (the
   * input is split between the content store and applyLayer): the shared step of import
   * and commit. A layer that exists already is reused; on failure nothing is left but
   * garbage for the next gc.
   */
  private async addLayer(input: Readable, parents: LayerRecord[], onBytes?: (n: number) => void): Promise<LayerRecord> {
    const key = `${EXTRACT_PREFIX}${randomBytes(8).toString('hex')}`;
    let prepared = false;
    try {
      await this.snapshotter.prepare(key, parents[parents.length - 1]?.chainID ?? '');
      prepared = true;
      const upper = await this.snapshotter.upperDir(key);
      const t = tee(input);
      let first: unknown;
      const fail = (e: unknown) => {
        first ??= e;
        t.abort(e as Error);
        throw e;
      };
      const [blob, applied] = await Promise.allSettled([this.content.write(t.a, { onBytes }).catch(fail), applyLayer(t.b, upper).catch(fail)]);
      if (t.bytes() === 0) {
        throw new InvalidArgumentError('the input is empty, not a tar archive', { hint: 'give a root filesystem tarball (plain or gzip)' });
      }
      if (blob.status === 'rejected' || applied.status === 'rejected') throw first;
      const diffID = applied.value.diffID;
      const chainID = chainIDs([...parents.map((l) => l.diffID), diffID]).pop() as string;
      if (await this.hasLayer(chainID)) await this.snapshotter.remove(key);
      else await this.commitLayer(chainID, key, diffID, blob.value.digest);
      prepared = false;
      return {
        digest: blob.value.digest,
        mediaType: isGzip(t.head()) ? MEDIA.ociLayerGzip : MEDIA.ociLayer,
        size: blob.value.size,
        diffID,
        chainID,
        unpackedSize: (await this.snapshotter.usage(chainID)).size,
      };
    } finally {
      if (prepared) await this.snapshotter.remove(key).catch(() => undefined);
    }
  }

  /** Write the config as Go would (see serializeConfig: converters keep it, and so its id) and record the image and its names in one transaction. */
  private async saveImage(config: ImageConfig, layers: LayerRecord[], names: string[], from: Pick<ImageRecord, 'container' | 'containerConfig'> = {}): Promise<string> {
    const configText = serializeConfig(config);
    const rec = { ...(await this.makeRecord(Buffer.from(configText), JSON.parse(configText) as ImageConfig, layers)), ...from };
    await this.db.update((doc) => {
      doc.images[rec.id] = doc.images[rec.id] ?? rec;
      for (const n of names) setTag(doc, n, rec.id);
    });
    return rec.id;
  }

  // ---- queries ------------------------------------------------------------------------

  async list(opts: { all?: boolean; filters?: Record<string, string[]> } = {}): Promise<ImageSummary[]> {
    this.life.check();
    const doc = this.db.read();
    const filters = opts.filters ?? {};
    for (const k of Object.keys(filters)) {
      if (!['dangling', 'reference', 'label', 'before', 'since'].includes(k)) {
        throw new InvalidArgumentError(`invalid filter '${k}'`, { hint: 'filter on dangling, reference, label, before or since' });
      }
    }
    const before = filters.before?.length ? Date.parse(this.find(doc, filters.before[0]).created) : undefined;
    const since = filters.since?.length ? Date.parse(this.find(doc, filters.since[0]).created) : undefined;
    const out: ImageSummary[] = [];
    for (const rec of Object.values(doc.images)) {
      const tags = tagsOf(doc, rec.id);
      const config = await this.config(rec);
      const labels = config.config?.Labels ?? null;
      if (filters.dangling?.length) {
        const want = filters.dangling[0] === 'true' || filters.dangling[0] === '1';
        if (want !== (tags.length === 0)) continue;
      }
      if (filters.reference?.length && !filters.reference.some((pat) => tags.some((t) => matchReference(pat, t)))) continue;
      if (filters.label?.length && !filters.label.every((l) => matchLabel(l, labels))) continue;
      if (before !== undefined && !(Date.parse(rec.created) < before)) continue;
      if (since !== undefined && !(Date.parse(rec.created) > since)) continue;
      const size = sizeOf(rec);
      out.push({
        Id: rec.id,
        ParentId: '',
        RepoTags: tags.length ? tags : ['<none>:<none>'],
        RepoDigests: tags.length ? [] : ['<none>@<none>'],
        Created: unixSeconds(rec.created),
        Size: size,
        SharedSize: -1,
        VirtualSize: size,
        Labels: labels,
        Containers: -1,
      });
    }
    return out.sort((a, b) => b.Created - a.Created || a.Id.localeCompare(b.Id));
  }

  async inspect(ref: string): Promise<ImageInspect> {
    this.life.check();
    const { doc, rec } = await this.lookup(ref);
    const config = await this.config(rec);
    const size = sizeOf(rec);
    return {
      Id: rec.id,
      RepoTags: tagsOf(doc, rec.id),
      RepoDigests: [],
      Parent: '',
      Comment: config.comment ?? config.history?.[config.history.length - 1]?.comment ?? '',
      Created: config.created ?? rec.created,
      Container: rec.container ?? config.container ?? '',
      ...(rec.containerConfig ? { ContainerConfig: rec.containerConfig as ImageConfigFields } : {}),
      DockerVersion: config.docker_version ?? '',
      Author: config.author ?? '',
      Config: config.config ?? {},
      Architecture: config.architecture,
      Os: config.os,
      Size: size,
      VirtualSize: size,
      GraphDriver: { Name: 'overlay', Data: await this.graphDriverData(rec) },
      RootFS: { Type: 'layers', Layers: rec.layers.map((l) => l.diffID) },
      Metadata: { LastTagTime: rec.lastTagTime },
    };
  }

  async history(ref: string): Promise<HistoryItem[]> {
    this.life.check();
    const { doc, rec } = await this.lookup(ref);
    const config = await this.config(rec);
    const entries: HistoryEntry[] = config.history?.length
      ? config.history
      : rec.layers.map(() => ({ created: rec.created, created_by: '' }));
    const items: HistoryItem[] = [];
    let layer = 0;
    for (const h of entries) {
      const size = h.empty_layer ? 0 : rec.layers[layer++]?.unpackedSize ?? 0;
      items.push({
        Id: '<missing>',
        Created: h.created ? unixSeconds(h.created) : 0,
        CreatedBy: h.created_by ?? '',
        Tags: null,
        Size: size,
        Comment: h.comment ?? '',
      });
    }
    items.reverse();
    if (items.length) {
      const tags = tagsOf(doc, rec.id);
      items[0] = { ...items[0], Id: rec.id, Tags: tags.length ? tags : null };
    }
    return items;
  }

  async resolve(ref: string): Promise<ResolvedImage> {
    this.life.check();
    const { rec } = await this.lookup(ref);
    const config = await this.config(rec);
    return { id: rec.id, topLayer: rec.layers[rec.layers.length - 1]?.chainID ?? '', config: config.config ?? {} };
  }

  // ---- names --------------------------------------------------------------------------

  async tag(ref: string, repo: string, tag?: string): Promise<void> {
    this.life.check();
    const name = parseRepoTag(repo, tag);
    const tagged = familiarTagged(name);
    await this.lookup(ref); // makes busybox if that is what is asked for
    await this.db.update((doc) => {
      const rec = this.find(doc, ref);
      setTag(doc, tagged, rec.id);
    });
  }

  async remove(ref: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    this.life.check();
    const deleted: ImageRecord[] = [];
    const items = await this.db.update((doc) => {
      const out: DeleteItem[] = [];
      const byName = tagNameOf(doc, ref);
      if (byName) {
        const id = doc.tags[byName];
        delete doc.tags[byName];
        out.push({ Untagged: byName });
        if (tagsOf(doc, id).length === 0) {
          this.checkInUse(id, ref, opts.force);
          deleted.push(doc.images[id]);
          delete doc.images[id];
          out.push({ Deleted: id });
        }
        return out;
      }
      const rec = this.find(doc, ref);
      const tags = tagsOf(doc, rec.id);
      if (tags.length > 1 && !opts.force) {
        throw new ConflictError(
          `unable to delete ${shortId(rec.id)} (must be forced) - image is referenced in multiple repositories (${tags.join(', ')})`,
          { hint: `remove it by name (berth rmi ${tags[0]}) one name at a time, or use --force to remove every name and the image` },
        );
      }
      this.checkInUse(rec.id, ref, opts.force);
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
      for (const d of deleted) this.configs.delete(d.id);
      const removed = new Set(await this.requestGc());
      for (const d of deleted) {
        for (const l of [...d.layers].reverse()) if (removed.has(l.chainID)) items.push({ Deleted: l.chainID });
      }
    }
    return items;
  }

  // ---- import / load / save -----------------------------------------------------------

  async importRootfs(input: Readable, opts: ImportOptions): Promise<{ id: string }> {
    guard(input);
    this.life.check();
    let names: string[] = [];
    let config: ImageConfigFields;
    try {
      // Bad names and changes fail before a byte is read, so they leave nothing behind.
      if (opts.repo) names = [familiarTagged(parseRepoTag(opts.repo, opts.tag))];
      else if (opts.tag) throw new InvalidArgumentError('a tag needs a repository name', { hint: 'give repo:tag, e.g. myimage:v1' });
      config = applyChanges({}, opts.changes ?? []);
    } catch (e) {
      drain(input); // not destroy: an HTTP client still sending must get our reply
      throw e;
    }
    return this.importLayer(input, {
      names,
      config,
      createdBy: 'berth import',
      comment: opts.message || 'Imported from -',
      progress: opts.progress,
    });
  }

  /**
   * Make a one-layer image from a root filesystem tarball (plain or gzip): the shared path
   * of import, busybox, vendor and bootstrap. The tar is stored as it came and unpacked in
   * the same pass (the input is split between the content store and applyLayer).
   */
  async importLayer(input: Readable, spec: LayerImportSpec): Promise<{ id: string }> {
    guard(input);
    try {
      return await this.importLayerOp(input, spec);
    } catch (e) {
      // What the failed import made (a blob, a layer) is garbage: collect it now, unless
      // other imports run, in which case it goes when the last of them ends.
      await this.requestGc();
      throw e;
    }
  }

  private importLayerOp(input: Readable, spec: LayerImportSpec): Promise<{ id: string }> {
    return this.op(async () => {
      try {
        let done = 0;
        const progress = throttle(spec.progress);
        const layer = await this.addLayer(input, [], (n) => {
          done += n;
          progress({ status: 'Importing', current: done });
        });
        const now = goTime();
        const config: ImageConfig = {
          architecture: goArch(),
          os: 'linux',
          created: now,
          config: spec.config,
          rootfs: { type: 'layers', diff_ids: [layer.diffID] },
          history: [{ created: now, created_by: spec.createdBy, ...(spec.comment ? { comment: spec.comment } : {}) }],
        };
        const id = await this.saveImage(config, [layer], spec.names);
        spec.progress?.({ status: `Imported ${id}` });
        return { id };
      } catch (e) {
        drain(input);
        throw formatError(e, 'cannot import the root filesystem', 'give a root filesystem tarball (plain or gzip)');
      }
    });
  }

  /** importLayer of a directory's contents (packed deterministically). */
  async importDirectory(dir: string, spec: LayerImportSpec): Promise<{ id: string }> {
    const tar = packDir(dir);
    try {
      return await this.importLayer(tar, spec);
    } finally {
      tar.destroy(); // ours: after a failure there is no client waiting to be answered
    }
  }

  async load(input: Readable, opts: { progress?: Progress } = {}): Promise<{ loaded: string[] }> {
    guard(input);
    this.life.check();
    try {
      return await this.loadOp(input, opts);
    } finally {
      // Files of the archive no image uses (and, after a failure, everything this load
      // made) are garbage now: collected at once, or when the last running import ends.
      await this.requestGc();
    }
  }

  private loadOp(input: Readable, opts: { progress?: Progress }): Promise<{ loaded: string[] }> {
    return this.op(async () => {
      try {
        const index = await readArchive(input, this.content, { progress: throttle(opts.progress) });
        const pending = await resolveArchive(index);
        const records: Array<{ rec: ImageRecord; names: string[] }> = [];
        for (const img of pending) {
          const layers: LayerRecord[] = [];
          const chains = chainIDs(img.layers.map((l) => l.diffID));
          let parent = '';
          for (let i = 0; i < img.layers.length; i++) {
            const l = img.layers[i];
            await this.ensureBlob(l.file);
            opts.progress?.({ status: 'Unpacking layer', id: short(l.diffID), current: i + 1, total: img.layers.length });
            await this.unpack(l.file.digest, l.mediaType, l.diffID, chains[i], parent);
            parent = chains[i];
            layers.push({
              digest: l.file.digest,
              mediaType: l.mediaType,
              size: l.file.size,
              diffID: l.diffID,
              chainID: chains[i],
              unpackedSize: (await this.snapshotter.usage(chains[i])).size,
            });
          }
          await this.ensureBlob(img.configFile);
          let manifest: Descriptor | undefined;
          if (img.manifest) {
            await this.ensureBlob(img.manifest.file);
            manifest = { mediaType: img.manifest.mediaType, digest: img.manifest.file.digest, size: img.manifest.file.size };
          }
          const configBuf = await index.read(img.configFile.path);
          records.push({ rec: await this.makeRecord(configBuf, img.config, layers, manifest), names: img.names });
        }
        const loaded = await this.db.update((doc) => {
          const lines: string[] = [];
          for (const { rec, names } of records) {
            doc.images[rec.id] = doc.images[rec.id] ?? rec;
            for (const n of names) {
              const old = doc.tags[n];
              if (old && old !== rec.id) {
                lines.push(`The image ${n} already exists, renaming the old one with ID ${old} to empty string`);
              }
              setTag(doc, n, rec.id);
              lines.push(`Loaded image: ${n}`);
            }
            if (names.length === 0) lines.push(`Loaded image ID: ${rec.id}`);
          }
          return lines;
        });
        return { loaded };
      } catch (e) {
        drain(input);
        throw formatError(e, 'cannot load the image archive', 'give the output of `docker save`, `podman save` or an OCI image layout tarball');
      }
    });
  }

  async save(refs: string[], out: Writable): Promise<void> {
    this.life.check();
    if (refs.length === 0) throw new InvalidArgumentError('nothing to save', { hint: 'name at least one image' });
    for (const ref of refs) if (isBusyboxRef(ref)) await this.lookup(ref);
    const doc = this.db.read();
    const byId = new Map<string, SaveImage>();
    for (const ref of refs) {
      const { rec, names } = this.namesToSave(doc, ref);
      const img = byId.get(rec.id) ?? {
        id: rec.id,
        config: rec.config,
        manifest: rec.manifest,
        layers: rec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
        names: [],
      };
      for (const n of names) if (!img.names.includes(n)) img.names.push(n);
      byId.set(rec.id, img);
    }
    return this.op(() => writeArchive([...byId.values()], this.content, out));
  }

  // ---- base images --------------------------------------------------------------------

  async vendor(opts: VendorOptions): Promise<{ id: string }> {
    this.life.check();
    return vendorImage(opts, this.builderContext());
  }

  async bootstrap(opts: BootstrapOptions): Promise<{ id: string; cached: boolean }> {
    this.life.check();
    const ref = parseRepoTag(opts.ref);
    const name = familiarTagged(ref);
    const have = this.tryFind(this.db.read(), name);
    if (have) return { id: have.id, cached: true };
    // Two callers asking for the same suite share one debootstrap run.
    let p = this.bootstraps.get(name);
    if (!p) {
      p = bootstrapImage({ ...opts, ref: name }, this.builderContext()).finally(() => this.bootstraps.delete(name));
      this.bootstraps.set(name, p);
    }
    return p;
  }

  /** Make the busybox image unless it exists; concurrent callers share one build. */
  async ensureBusybox(): Promise<void> {
    if (this.tryFind(this.db.read(), BUSYBOX_REF)) return;
    this.busyboxBuild ??= buildBusybox(this.builderContext(), this.busyboxPath).then(
      () => {
        this.busyboxBuild = undefined;
      },
      (e) => {
        this.busyboxBuild = undefined;
        throw e;
      },
    );
    return this.busyboxBuild;
  }

  // ---- internals ----------------------------------------------------------------------

  private builderContext() {
    return {
      tmpDir: this.tmpDir,
      busyboxPath: this.busyboxPath,
      importDirectory: (dir: string, spec: LayerImportSpec) => this.importDirectory(dir, spec),
      exists: (ref: string) => this.tryFind(this.db.read(), ref)?.id,
    };
  }

  /**
   * Unpack one layer unless a snapshot with its chain id exists. A layer that exists is
   * trusted only if the blob is the one it was made from or provably has its diffID.
   */
  private async unpack(digest: string, mediaType: string, diffID: string, chainID: string, parent: string): Promise<void> {
    const existing = await this.snapshotter.stat(chainID).catch((e) => {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    });
    if (existing) {
      if (existing.labels[LABEL_BLOB] === digest) return;
      const actual = await this.diffIDOf(digest, mediaType);
      if (actual !== diffID) throw diffMismatch(digest, diffID, actual);
      return;
    }
    const key = `${EXTRACT_PREFIX}${randomBytes(8).toString('hex')}`;
    await this.snapshotter.prepare(key, parent);
    let keep = false;
    try {
      const applied = await applyLayer(await this.content.reader(digest), await this.snapshotter.upperDir(key));
      if (applied.diffID !== diffID) throw diffMismatch(digest, diffID, applied.diffID);
      await this.commitLayer(chainID, key, diffID, digest);
      keep = true;
    } finally {
      if (!keep) await this.snapshotter.remove(key).catch(() => undefined);
    }
  }

  /** Commit an extract snapshot as layer `chainID`; someone else committing it first is fine. */
  private async commitLayer(chainID: string, key: string, diffID: string, blob: string): Promise<void> {
    try {
      await this.snapshotter.commit(chainID, key, { labels: { [LABEL_DIFF_ID]: diffID, [LABEL_BLOB]: blob } });
    } catch (e) {
      if (!(e instanceof AlreadyExistsError)) throw e;
      await this.snapshotter.remove(key);
    }
  }

  private async hasLayer(chainID: string): Promise<boolean> {
    try {
      return (await this.snapshotter.stat(chainID)).kind === 'committed';
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /** sha256 of the uncompressed blob, without unpacking it. */
  private async diffIDOf(digest: string, mediaType: string): Promise<string> {
    if (!/gzip/.test(mediaType)) return digest;
    const hash = createHash('sha256');
    const src = (await this.content.reader(digest)).pipe(createGunzip());
    for await (const c of src) hash.update(c as Buffer);
    return `sha256:${hash.digest('hex')}`;
  }

  private async ensureBlob(f: ArchiveFile): Promise<void> {
    if (f.data && !(await this.content.has(f.digest))) await this.content.writeBuffer(f.data, { expected: f.digest });
  }

  /** Store the config (and a manifest, if none was given) and build the record. */
  private async makeRecord(configBuf: Buffer, config: ImageConfig, layers: LayerRecord[], manifest?: Descriptor): Promise<ImageRecord> {
    const cfg = await this.content.writeBuffer(configBuf);
    const configDesc: Descriptor = { mediaType: MEDIA.ociConfig, digest: cfg.digest, size: cfg.size };
    if (!manifest) {
      const m = {
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        config: configDesc,
        layers: layers.map((l) => ({ mediaType: ociLayerMediaType(l.mediaType), digest: l.digest, size: l.size })),
      };
      const info = await this.content.writeBuffer(JSON.stringify(m));
      manifest = { mediaType: MEDIA.ociManifest, digest: info.digest, size: info.size };
    }
    this.configs.set(cfg.digest, config);
    return {
      id: cfg.digest,
      config: configDesc,
      manifest,
      layers,
      created: config.created ?? new Date(0).toISOString(),
      lastTagTime: new Date().toISOString(),
    };
  }

  private async config(rec: ImageRecord): Promise<ImageConfig> {
    let c = this.configs.get(rec.id);
    if (!c) {
      c = JSON.parse((await this.content.readBuffer(rec.config.digest)).toString('utf8')) as ImageConfig;
      this.configs.set(rec.id, c);
    }
    return c;
  }

  private async graphDriverData(rec: ImageRecord): Promise<Record<string, string>> {
    try {
      const dirs: string[] = [];
      for (const l of rec.layers) dirs.push(await this.snapshotter.upperDir(l.chainID));
      dirs.reverse();
      if (dirs.length === 0) return {};
      return { UpperDir: dirs[0], ...(dirs.length > 1 ? { LowerDir: dirs.slice(1).join(':') } : {}) };
    } catch {
      return {};
    }
  }

  /** The image `ref` names and the names to write for it, as `docker save` picks them. */
  private namesToSave(doc: Doc, ref: string): { rec: ImageRecord; names: string[] } {
    const tagged = tagNameOf(doc, ref);
    if (tagged) return { rec: doc.images[doc.tags[tagged]], names: [tagged] };
    // A repository without a tag: every tag of it.
    try {
      const r = parseReference(ref);
      if (r.tag === undefined && r.digest === undefined) {
        const names = Object.keys(doc.tags).filter((t) => splitTagged(t).repo === r.repo);
        const ids = new Set(names.map((n) => doc.tags[n]));
        if (ids.size === 1) return { rec: doc.images[[...ids][0]], names };
        if (ids.size > 1) {
          throw new InvalidArgumentError(`${ref} names ${ids.size} different images`, { hint: 'save them by repo:tag, one name each' });
        }
      }
    } catch (e) {
      if (!(e instanceof InvalidArgumentError) || idPrefix(ref) === undefined) throw e;
    }
    return { rec: this.find(doc, ref), names: [] };
  }

  /**
   * The image `ref` names, with the document it was found in. `busybox` (busybox:latest)
   * always exists: it is made here on first use.
   */
  private async lookup(ref: string): Promise<{ doc: Doc; rec: ImageRecord }> {
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

  private find(doc: Doc, ref: string): ImageRecord {
    const rec = this.tryFind(doc, ref);
    if (!rec) throw notFound(ref);
    return rec;
  }

  private tryFind(doc: Doc, ref: string): ImageRecord | undefined {
    return findImage(doc, ref);
  }

  /** Run an operation that creates or reads blobs and layers: garbage collection waits for it. */
  private async op<T>(fn: () => Promise<T>): Promise<T> {
    this.life.check();
    while (this.gcRunning) await this.gcRunning.catch(() => undefined);
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      if (this.active === 0 && this.gcWanted) void this.requestGc();
    }
  }

  /**
   * Collect garbage now if no operation runs, else once the last one ends. Resolves to the
   * layers removed (empty when deferred).
   */
  private requestGc(): Promise<string[]> {
    this.gcWanted = true;
    if (this.active > 0 || this.life.closed) return Promise.resolve([]);
    // Wait for the collection that runs, then for the one its end starts for us (gcWanted).
    // Asking again from here would set gcWanted at every round: collections forever, and
    // every operation waiting in op() behind them.
    if (this.gcRunning) return this.gcRunning.then(() => this.gcRunning ?? []);
    this.gcWanted = false;
    const p = this.gc()
      .catch(() => [] as string[]) // best effort: the next open collects what is left
      .finally(() => {
        this.gcRunning = undefined;
        if (this.gcWanted && this.active === 0) void this.requestGc();
      });
    this.gcRunning = p;
    return p;
  }

  private gc(): Promise<string[]> {
    return collectGarbage(this.db.read(), this.snapshotter, this.content);
  }

  /** Deleting an image a container uses is a conflict unless forced (Docker's rmi). */
  private checkInUse(id: string, ref: string, force?: boolean): void {
    const users = force ? [] : (this.inUse?.(id) ?? []);
    if (users.length === 0) return;
    throw new ConflictError(
      `unable to remove image ${ref} (must be forced) - container ${users[0].slice(0, 12)} is using its referenced image ${shortId(id)}`,
      { hint: `remove the container first (berth rm ${users[0].slice(0, 12)}), or use --force` },
    );
  }
}

// ---- helpers ------------------------------------------------------------------------------





function isBusyboxRef(ref: string): boolean {
  try {
    const r = parseReference(ref);
    return !r.digest && r.repo === 'busybox' && (r.tag ?? 'latest') === 'latest';
  } catch {
    return false;
  }
}

function notFound(ref: string): NotFoundError {
  return new NotFoundError(`No such image: ${ref}`, { hint: NOT_FOUND_HINT });
}

function diffMismatch(digest: string, expected: string, actual: string): InvalidArgumentError {
  return new InvalidArgumentError(`layer ${digest} has diff id ${actual}, but the image config says ${expected}`, {
    hint: 'the archive is corrupt or its layers do not belong to its config; export it again',
  });
}

function sizeOf(rec: ImageRecord): number {
  return rec.layers.reduce((n, l) => n + l.unpackedSize, 0);
}

function unixSeconds(iso: string): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

function short(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}



