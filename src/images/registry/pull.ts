import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { FailedPreconditionError, UnavailableError } from '../../../volumes/shared/errors';
import { chainIDs, type ImageConfig } from '../config';
import { familiarTagged, type Reference } from '../reference';
import type { RegistrySession } from './client';
import { fetchBlob, fetchSmallBlob, type BlobFetch, type Tee } from './blobs';
import { checkImageManifest, fetchManifest, isIndex, parsePlatform, pickFromIndex, type Descriptor } from './manifest';
import type { PullOptions, PullResult, RegistryMessage } from './service';
import type { RegistrySink, UnpackedLayer, UnpackSpec } from './sink';

/**
 * One pull: manifest (through an index to this platform's entry), config, then the
 * layers: downloaded `concurrency` at a time (3, as Docker), each unpacked as soon as it
 * and the layers under it are in (each layer is its own snapshot, committed in order), and
 * the image recorded last, in one transaction (sink.ts). Layers whose blob and snapshot
 * are held are neither fetched nor unpacked ("Already exists"). A layer whose snapshot is
 * held under another blob (the same diff id, compressed differently) is neither unpacked
 * nor fetched again: a new image records the held blob in its place (held-layers.ts).
 *
 * Progress is Docker's JSON message stream, per layer (12 hex of the blob digest):
 * Pulling fs layer, Waiting, Downloading {current,total}, Verifying Checksum, Download
 * complete, Extracting {current,total}, Pull complete; then Digest and Status.
 */

export interface PullContext {
  session: RegistrySession;
  sink: RegistrySink;
  /** Downloads in flight, by digest: two pulls of one blob share one download. */
  inflight: Map<string, Promise<BlobFetch>>;
  concurrency: number;
  /** Bytes each pull needs free beyond its blobs and their unpacked size (tests set 0). */
  reserve?: number;
}

export async function pullImage(ctx: PullContext, ref: Reference, opts: PullOptions = {}): Promise<PullResult & { fetched: number }> {
  const say = opts.progress ?? (() => undefined);
  const { session, sink } = ctx;
  const want = parsePlatform(opts.platform);
  const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
  say({ status: `Pulling from ${ref.path}`, id: ref.digest ? ref.digest : tagOrDigest });
  const top = await fetchManifest(session, ref.path, tagOrDigest, opts.signal);
  const display = ref.digest ? `${ref.repo}@${ref.digest}` : familiarTagged({ repo: ref.repo, tag: tagOrDigest });
  const image = isIndex(top) ? await fetchManifest(session, ref.path, pickFromIndex(top, want, display).digest, opts.signal) : top;
  const { config: configDesc, layers } = checkImageManifest(image, display);
  const repoDigest = `${ref.repo}@${top.digest}`;
  const name = ref.digest ? undefined : familiarTagged({ repo: ref.repo, tag: tagOrDigest });

  const held = sink.find(name ?? repoDigest);
  if (held && held.id === configDesc.digest && held.repoDigests.includes(repoDigest) && (await sink.content.has(configDesc.digest))) {
    say({ status: `Digest: ${top.digest}` });
    say({ status: `Status: Image is up to date for ${display}` });
    return { id: held.id, digest: top.digest, updated: false, fetched: 0 };
  }

  // A config held already (the same image under another tag or compression) is not fetched.
  const configBuf = (await sink.content.has(configDesc.digest))
    ? Buffer.concat(await (await sink.content.reader(configDesc.digest)).toArray())
    : await fetchSmallBlob(session, ref.path, configDesc, opts.signal);
  const config = parseConfig(configBuf, display);
  if (config.rootfs.diff_ids.length !== layers.length) {
    throw new UnavailableError(`the config of ${display} lists ${config.rootfs.diff_ids.length} layers but its manifest ${layers.length}`, {
      hint: 'the image in the registry is malformed',
    });
  }
  if (!isIndex(top) && (config.os !== want.os || config.architecture !== want.architecture) && opts.platform) {
    throw new FailedPreconditionError(`${display} is ${config.os}/${config.architecture}, not the ${opts.platform} asked for`, {
      hint: 'pull it without --platform, or pick an image built for that platform',
    });
  }
  const chains = chainIDs(config.rootfs.diff_ids);

  return sink.hold(async () => {
    // Which layers must come over the network, and which are held already.
    // Held-ness is the config's: a layer is held when its chain (from rootfs.diff_ids) is,
    // whatever blob the registry holds it as; its blob is then not fetched. When the image
    // itself is held (the same config) the record berth has keeps its own blobs; a new
    // image records the blob of the same diff id berth holds (`heldAs`), which save and
    // push send in its place (held-layers.ts). Only a held layer with no such blob (its
    // images gone, its snapshot kept by a container) has its blob fetched.
    const imageHeld = sink.find(configDesc.digest)?.id === configDesc.digest && (await sink.content.has(configDesc.digest));
    const plan: Array<{ desc: Descriptor; fetch: boolean; unpack: boolean; id: string; heldAs?: Descriptor }> = [];
    for (let i = 0; i < layers.length; i++) {
      const haveLayer = await sink.hasLayer(chains[i]);
      const haveBlob = await sink.content.has(layers[i].digest);
      const heldAs = haveLayer && !haveBlob && !imageHeld ? await sink.heldBlob(chains[i], config.rootfs.diff_ids[i]) : undefined;
      plan.push({ desc: layers[i], fetch: !haveBlob && !(haveLayer && (imageHeld || heldAs)), unpack: !haveLayer, id: short(layers[i].digest), heldAs });
    }
    await checkSpace(sink.content.dir, plan.filter((p) => p.fetch || p.unpack).reduce((n, p) => n + p.desc.size * (p.fetch ? 3 : 2), 0) + (ctx.reserve ?? 64 << 20));
    for (const p of plan) say(p.fetch || p.unpack ? { status: 'Pulling fs layer', progressDetail: {}, id: p.id } : { status: 'Already exists', progressDetail: {}, id: p.id });

    let fetched = 0;
    const throttled = perId(say);
    const controller = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
    // The first layer with a blob downloads it; a later layer with the same blob waits for it.
    const firstFetch = new Map<string, number>();
    plan.forEach((p, i) => p.fetch && !firstFetch.has(p.desc.digest) && firstFetch.set(p.desc.digest, i));
    const jobs = plan.map((_, i) => i).filter((i) => plan[i].unpack || firstFetch.get(plan[i].desc.digest) === i);
    jobs.slice(ctx.concurrency).forEach((i) => plan[i].fetch && say({ status: 'Waiting', progressDetail: {}, id: plan[i].id }));
    const blobIn = new Map<string, Promise<unknown>>();
    const spec = (i: number): UnpackSpec => ({
      digest: plan[i].desc.digest,
      mediaType: plan[i].desc.mediaType,
      diffID: config.rootfs.diff_ids[i],
      chainID: chains[i],
      parent: i ? chains[i - 1] : '',
    });

    /** Layer i: its blob downloaded (unless held), and unpacked into a place of its own. */
    const job = async (i: number): Promise<UnpackedLayer | undefined> => {
      const p = plan[i];
      let extracting = false;
      let read = 0;
      const onUnpacked = (n: number) => {
        read += n;
        if (extracting) throttled({ status: 'Extracting', progressDetail: { current: read, total: p.desc.size }, id: p.id }, read >= p.desc.size);
      };
      if (p.fetch && firstFetch.get(p.desc.digest) === i) {
        // A fresh download is teed into the unpacker: the layer unpacks as it arrives.
        let teeing: Promise<UnpackedLayer> | undefined;
        const tee = p.unpack
          ? () => {
              const pass = new PassThrough({ highWaterMark: 1 << 20 });
              teeing = sink.unpackLayer(spec(i), pass, onUnpacked);
              teeing.catch(() => undefined);
              return pass;
            }
          : undefined;
        const downloading = download(ctx, ref.path, p.desc, signal, (done, total) => throttled({ status: 'Downloading', progressDetail: { current: done, total }, id: p.id }, done >= total), tee);
        blobIn.set(p.desc.digest, downloading);
        let teed = false;
        try {
          const r = await downloading;
          fetched += r.fetched;
          teed = r.teed;
        } catch (e) {
          // The digest did not verify, or the download failed: nothing of it is committed.
          await (await teeing?.catch(() => undefined))?.discard();
          throw e;
        }
        say({ status: 'Verifying Checksum', progressDetail: {}, id: p.id });
        say({ status: 'Download complete', progressDetail: {}, id: p.id });
        if (!p.unpack) {
          say({ status: 'Pull complete', progressDetail: {}, id: p.id });
          return undefined;
        }
        extracting = true;
        if (teeing && !teed) {
          // The download was retried from the middle: the unpacker missed bytes; start again from the store.
          await (await teeing.catch(() => undefined))?.discard();
          read = 0;
        } else if (teeing) {
          // Sent whatever the throttle says: a layer that unpacked as fast as it arrived has no
          // later Extracting message, and `docker pull` would show none for it.
          if (read > 0) throttled({ status: 'Extracting', progressDetail: { current: read, total: p.desc.size }, id: p.id }, true);
          return teeing;
        }
      } else if (p.fetch) {
        await blobIn.get(p.desc.digest);
      }
      extracting = true;
      return sink.unpackLayer(spec(i), undefined, onUnpacked);
    };

    const results = new Map<number, Promise<UnpackedLayer | undefined>>();
    const failures: unknown[] = [];
    const started: Array<() => void> = [];
    let running = 0;
    const startNext = (): void => {
      while (running < ctx.concurrency && started.length > 0) {
        running++;
        (started.shift() as () => void)();
      }
    };
    for (const i of jobs) {
      results.set(
        i,
        new Promise<UnpackedLayer | undefined>((resolve, reject) => {
          started.push(() => {
            const run = signal.aborted ? Promise.reject(signal.reason) : job(i);
            run.then(resolve, reject).finally(() => {
              running--;
              startNext();
            });
          });
        }),
      );
      results.get(i)?.catch((e) => {
        failures.push(e);
        controller.abort(e);
      });
    }
    startNext();
    // Commit in chain order, each layer as soon as it and the ones under it are in.
    try {
      for (let i = 0; i < plan.length; i++) {
        if (!plan[i].unpack) {
          await results.get(i);
          continue;
        }
        const u = await results.get(i);
        await u?.commit();
        say({ status: 'Pull complete', progressDetail: {}, id: plan[i].id });
      }
    } catch (e) {
      controller.abort(e);
      const settled = await Promise.allSettled(results.values());
      for (const r of settled) if (r.status === 'fulfilled') await r.value?.discard();
      throw failures[0] ?? e;
    }
    const id = await sink.recordPulled({
      config: configBuf,
      manifest: { bytes: image.bytes, mediaType: image.mediaType },
      layers: layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, diffID: config.rootfs.diff_ids[i], chainID: chains[i], heldAs: plan[i].heldAs })),
      name,
      repoDigest,
    });
    say({ status: `Digest: ${top.digest}` });
    say({ status: held?.id === id ? `Status: Image is up to date for ${display}` : `Status: Downloaded newer image for ${display}` });
    return { id, digest: top.digest, updated: held?.id !== id, fetched };
  });
}

/** One download per blob at a time, shared by every pull that wants it. */
function download(ctx: PullContext, repo: string, desc: Descriptor, signal: AbortSignal, onBytes: (done: number, total: number) => void, tee?: Tee): Promise<BlobFetch> {
  let p = ctx.inflight.get(desc.digest);
  if (!p) {
    p = fetchBlob(ctx.session, repo, desc, ctx.sink.content, onBytes, signal, tee).finally(() => ctx.inflight.delete(desc.digest));
    ctx.inflight.set(desc.digest, p);
    return p;
  }
  return p.then(() => ({ resumedFrom: desc.size, fetched: 0, teed: false }));
}

function parseConfig(buf: Buffer, name: string): ImageConfig {
  let c: ImageConfig;
  try {
    c = JSON.parse(buf.toString('utf8')) as ImageConfig;
  } catch {
    throw new UnavailableError(`the config of ${name} is not JSON`, { hint: 'the image in the registry is malformed' });
  }
  if (!c?.rootfs || !Array.isArray(c.rootfs.diff_ids) || c.rootfs.diff_ids.some((d) => !/^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new UnavailableError(`the config of ${name} has no valid rootfs.diff_ids`, { hint: 'the image in the registry is malformed' });
  }
  return c;
}

/** Refuse a pull the disk cannot hold, before a byte is fetched. */
async function checkSpace(dir: string, need: number): Promise<void> {
  const st = await fs.promises.statfs(dir);
  const free = st.bavail * st.bsize;
  if (free < need) {
    throw new FailedPreconditionError(`not enough free disk space for this pull: it needs about ${mb(need)}, ${dir} has ${mb(free)} free`, {
      hint: 'free space on the data root (berth image prune, berth system prune) and pull again',
    });
  }
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** At most one progress message per id per 100 ms; the last (final) one always. */
export function perId(say: (m: RegistryMessage) => void): (m: RegistryMessage, final: boolean) => void {
  const last = new Map<string, number>();
  return (m, final) => {
    const now = Date.now();
    const k = m.id ?? '';
    if (!final && now - (last.get(k) ?? 0) < 100) return;
    last.set(k, now);
    say(m);
  };
}
