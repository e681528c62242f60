/**
 * Volume snapshots through an OCI registry: push and pull with berth's own registry client
 * (src/images/registry: auth, blob upload, manifest put, resumable verified downloads).
 *
 * The artifact is one OCI 1.1 image manifest with `artifactType`
 * `application/vnd.berth.volume.snapshot.v1+json`, the empty config, and a **layer chain**:
 * layer 0 is the full tree of the first snapshot pushed (a plain volume export), every
 * later layer the changeset (volumes/archive/changeset.ts) from the snapshot before it to
 * the next one, all `application/vnd.oci.image.layer.v1.tar+gzip`. Each layer's annotations
 * name its snapshot (and its base); the manifest's name the volume, the newest snapshot,
 * its time, consistency and the volume's labels.
 *
 * Why a layer chain in one manifest rather than OCI 1.1 `subject` links: one GET gives the
 * whole history in order, so a pull needs no referrers API (distribution 2.8, which many
 * run, has none) and no walk of manifests; every registry and tool that reads image
 * manifests reads it (skopeo inspect, copy); and a later push is one new blob plus a
 * manifest, the older layers staying where they are ("Layer already exists"). The cost: a
 * tag names the chain from its first push, so an old chain grows until pushed afresh to
 * a new tag.
 *
 * Pull rebuilds the volume and one snapshot per layer: layer 0 is imported, then each
 * changeset applied on its base (the driver checks the base's fingerprint). Every blob is
 * verified against its digest as it is downloaded, and an interrupted download resumes
 * (blobs.ts). A volume that already holds the first snapshots of the chain fetches only
 * the layers after them.
 *
 * From a btrfs volume, each portable layer is followed by a `btrfs send` layer of the same
 * snapshot that a btrfs puller holding its parent receives instead (btrfs-send-layer.ts:
 * the fast path, and how the manifest relates the two). The chain is the portable layers.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { AlreadyExistsError, BerthError, InvalidArgumentError, NotFoundError, UnavailableError } from '../../volumes/shared/errors';
import type { VolumeDriver } from '../../volumes/drivers/driver';
import { ContentStore } from '../images/content';
import type { Reference } from '../images/reference';
import type { RegistrySession } from '../images/registry/client';
import { fetchBlob } from '../images/registry/blobs';
import { fetchManifest, type Descriptor } from '../images/registry/manifest';
import { pushBlob } from '../images/registry/push';
import type { RegistryMessage } from '../images/registry/service';
import { discard } from '../images/registry/transport';
import { canReceive, isSendLayer, receiveLayer, sendLayer, sendLayersOf } from './btrfs-send-layer';

export const ARTIFACT_TYPE = 'application/vnd.berth.volume.snapshot.v1+json';
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
const EMPTY = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };
/** The manifest's and layers' annotation keys. */
export const A = {
  volume: 'org.berth.volume.name',
  snapshot: 'org.berth.volume.snapshot',
  base: 'org.berth.volume.base',
  labels: 'org.berth.volume.labels',
  consistency: 'org.berth.volume.consistency',
  created: 'org.opencontainers.image.created',
};

export interface TransferContext {
  session: RegistrySession;
  driver: VolumeDriver;
  /** A directory of the transfer's own (under the data root): layer files and partial downloads. */
  work: string;
  chunkSize?: number;
  progress?: (m: RegistryMessage) => void;
  signal?: AbortSignal;
  /** Push a btrfs send layer beside each portable one from a btrfs volume (default true; btrfs-send-layer.ts). */
  btrfsSend?: boolean;
}

interface VolumeManifest {
  schemaVersion: 2;
  mediaType: string;
  artifactType: string;
  config: Descriptor & { data?: string };
  layers: Descriptor[];
  annotations: Record<string, string>;
}

export interface VolumePushResult {
  digest: string;
  /** Blob bytes uploaded by this push (blobs the registry held are not counted). */
  sent: number;
  /** Snapshots on the chain (portable layers). */
  layers: number;
}

/** Push snapshot `snap` of `volume` to `ref`: a full layer, or one changeset on the chain `ref` holds. */
export async function pushVolume(ctx: TransferContext, ref: Reference, volume: string, snap: string): Promise<VolumePushResult> {
  const say = ctx.progress ?? (() => undefined);
  if (ref.digest) throw new InvalidArgumentError('cannot push a volume to a digest reference', { hint: 'push by name and tag, e.g. myreg:5000/vols/data:v1' });
  const tag = ref.tag ?? 'latest';
  const snaps = await ctx.driver.snapshots(volume);
  const s = snaps.find((x) => x.name === snap);
  if (!s) throw new NotFoundError(`volume ${volume} has no snapshot ${snap}`, { hint: `list the snapshots of ${volume}, or take one (berth volume snapshot ${volume} ${snap})` });
  const prev = await existing(ctx, ref, tag);
  const last = prev?.annotations[A.volume] === volume ? prev.annotations[A.snapshot] : undefined;
  const chain = last !== undefined && snaps.some((x) => x.name === last) ? prev! : undefined;
  say({ status: `The push refers to repository [${ref.name}]` });
  if (chain && last === snap) {
    say({ status: `${tag}: snapshot ${snap} is already the newest pushed` });
    return { digest: chain.digest, sent: 0, layers: chain.layers.filter((l) => !isSendLayer(l)).length };
  }
  await fs.promises.mkdir(ctx.work, { recursive: true, mode: 0o700 });
  const layerFile = path.join(ctx.work, `layer-${process.pid}-${Date.now()}.tar.gz`);
  const sendFile = `${layerFile}.btrfs`;
  try {
    const source = chain ? await ctx.driver.exportChanges(volume, snap, last!) : await ctx.driver.export(volume, snap);
    const digest = await gzipTo(source, layerFile);
    const annotations: Record<string, string> = { [A.snapshot]: snap, [A.created]: s.created };
    if (chain) annotations[A.base] = last!;
    const layer: Descriptor = { mediaType: LAYER_TYPE, digest, size: (await fs.promises.stat(layerFile)).size, annotations };
    const configFile = path.join(ctx.work, `config-${process.pid}.json`);
    await fs.promises.writeFile(configFile, '{}');
    const id = digest.replace(/^sha256:/, '').slice(0, 12);
    say({ status: 'Preparing', progressDetail: {}, id });
    let sent = 0;
    const push = { session: ctx.session, chunkSize: ctx.chunkSize ?? 32 << 20 };
    const status = await pushBlob(push, ref.path, layer, layerFile, [], (done) => say({ status: 'Pushing', progressDetail: { current: done, total: layer.size }, id }), ctx.signal);
    if (status === 'Pushed') sent += layer.size;
    say({ status, progressDetail: {}, id });
    const added = [layer];
    const send = ctx.btrfsSend === false ? undefined : await sendLayer(ctx.driver, volume, snap, chain ? last : undefined, digest, annotations, sendFile, gzipTo);
    if (send) {
      const sid = short(send.digest);
      say({ status: 'Preparing', progressDetail: {}, id: sid });
      const st = await pushBlob(push, ref.path, send, sendFile, [], (done) => say({ status: 'Pushing', progressDetail: { current: done, total: send.size }, id: sid }), ctx.signal);
      if (st === 'Pushed') sent += send.size;
      say({ status: st, progressDetail: {}, id: sid });
      added.push(send);
    }
    if ((await pushBlob(push, ref.path, EMPTY, configFile, [], () => undefined, ctx.signal)) === 'Pushed') sent += EMPTY.size;
    const labels = (await ctx.driver.inspect(volume)).labels;
    const consistency = s.metadata.consistency;
    const manifest: VolumeManifest = {
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      artifactType: ARTIFACT_TYPE,
      config: { ...EMPTY, data: 'e30=' },
      layers: [...(chain?.layers ?? []), ...added],
      annotations: {
        [A.volume]: volume,
        [A.snapshot]: snap,
        [A.created]: s.created,
        [A.labels]: JSON.stringify(labels),
        ...(typeof consistency === 'string' ? { [A.consistency]: consistency } : {}),
      },
    };
    const body = Buffer.from(JSON.stringify(manifest));
    const res = await ctx.session.request('PUT', `/v2/${ref.path}/manifests/${tag}`, {
      scope: `repository:${ref.path}:pull,push`,
      headers: { 'Content-Type': MANIFEST_TYPE, 'Content-Length': String(body.length) },
      body,
      what: `manifest ${ref.repo}:${tag}`,
      signal: ctx.signal,
    });
    discard(res);
    const mdigest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    say({ status: `${tag}: digest: ${mdigest} size: ${body.length}` });
    say({ progressDetail: {}, aux: { Tag: tag, Digest: mdigest, Size: body.length, Sent: sent } });
    return { digest: mdigest, sent, layers: manifest.layers.filter((l) => !isSendLayer(l)).length };
  } finally {
    await fs.promises.rm(layerFile, { force: true });
    await fs.promises.rm(sendFile, { force: true });
  }
}

export interface VolumePullResult {
  volume: string;
  /** The snapshots this pull made, oldest first. */
  snapshots: string[];
  /** Blob bytes read from the network. */
  fetched: number;
  /** The snapshots among them made by `btrfs receive` of a send layer (the fast path). */
  received: string[];
}

/** Pull `ref` into volume `target` (default: the name it was pushed from). */
export async function pullVolume(ctx: TransferContext, ref: Reference, target?: string): Promise<VolumePullResult> {
  const say = ctx.progress ?? (() => undefined);
  const m = await fetchManifest(ctx.session, ref.path, ref.digest ?? ref.tag ?? 'latest', ctx.signal);
  const doc = m.doc as Partial<VolumeManifest>;
  if (doc.artifactType !== ARTIFACT_TYPE || !Array.isArray(doc.layers) || doc.layers.length === 0) {
    throw new InvalidArgumentError(`${ref.repo} is not a berth volume snapshot (artifactType ${JSON.stringify(doc.artifactType ?? null)})`, {
      hint: 'pull images with berth pull; volume pull takes what berth volume push wrote',
    });
  }
  const sends = sendLayersOf(doc.layers);
  const layers = doc.layers.filter((l) => !isSendLayer(l));
  const names = layers.map((l, i) => {
    const n = l.annotations?.[A.snapshot];
    if (!n || (i > 0 && l.annotations?.[A.base] !== layers[i - 1].annotations?.[A.snapshot])) {
      throw new InvalidArgumentError(`layer ${i} of ${ref.repo} does not continue the snapshot chain`, { hint: 'the artifact is damaged; push the volume again' });
    }
    return n;
  });
  const volume = target ?? doc.annotations?.[A.volume] ?? '';
  let start = 0;
  const have = await ctx.driver.inspect(volume).catch((e: unknown) => (e instanceof BerthError && e.code === 'NOT_FOUND' ? null : Promise.reject(e)));
  if (have) {
    const held = new Set((await ctx.driver.snapshots(volume)).map((s) => s.name));
    while (start < names.length && held.has(names[start])) start++;
    if (start === 0) {
      throw new AlreadyExistsError(`volume ${volume} exists and holds none of the snapshots of ${ref.repo}`, {
        hint: `pull into a new volume (berth volume pull ${ref.repo} NEWNAME), or remove ${volume} first`,
      });
    }
  }
  for (let i = 0; i < layers.length; i++) say({ status: i < start ? 'Already exists' : 'Pulling fs layer', progressDetail: {}, id: short(layers[i].digest) });
  const content = await ContentStore.open(ctx.work);
  let labels: Record<string, string> = {};
  try {
    labels = JSON.parse(doc.annotations?.[A.labels] ?? '{}') as Record<string, string>;
  } catch {
    labels = {};
  }
  let fetched = 0;
  const made: string[] = [];
  const received: string[] = [];
  const fetch = async (l: Descriptor, id: string) => {
    if (!(await content.has(l.digest))) {
      const r = await fetchBlob(ctx.session, ref.path, l, content, (done, total) => say({ status: 'Downloading', progressDetail: { current: done, total }, id }), ctx.signal);
      fetched += r.fetched;
    }
    say({ status: 'Download complete', progressDetail: {}, id });
  };
  for (let i = start; i < layers.length; i++) {
    const l = layers[i];
    const id = short(l.digest);
    const send = sends.get(l.digest);
    const base = i === 0 ? undefined : names[i - 1];
    if (await canReceive(ctx.driver, volume, base, send)) {
      await fetch(send!, id);
      const stream = fs.createReadStream(content.path(send!.digest)).pipe(createGunzip());
      const metadata = { pulled: { ref: `${ref.repo}@${m.digest}`, created: l.annotations?.[A.created] ?? '', via: 'btrfs receive' } };
      const ok = await receiveLayer(ctx.driver, volume, stream, send!, names[i], base, labels, metadata).then(
        () => true,
        (e: unknown) => {
          if (!(e instanceof BerthError) || (e.code !== 'INVALID_ARGUMENT' && e.code !== 'FAILED_PRECONDITION')) throw e;
          say({ status: `btrfs receive refused the send layer (${e.message}); pulling the portable layer`, progressDetail: {}, id });
          return false;
        },
      );
      stream.destroy();
      await fs.promises.rm(content.path(send!.digest), { force: true });
      if (ok) {
        made.push(names[i]);
        received.push(names[i]);
        say({ status: 'Pull complete (btrfs receive)', progressDetail: {}, id });
        continue;
      }
    }
    await fetch(l, id);
    const tar = fs.createReadStream(content.path(l.digest)).pipe(createGunzip());
    try {
      if (i === 0) {
        await ctx.driver.import(volume, tar, { labels });
        await ctx.driver.snapshot(volume, names[0], { metadata: { pulled: { ref: `${ref.repo}@${m.digest}`, created: l.annotations?.[A.created] ?? '' } } });
      } else {
        const s = await ctx.driver.applyChanges(volume, tar);
        if (s.name !== names[i]) throw new UnavailableError(`layer ${i} of ${ref.repo} made snapshot ${s.name}, not ${names[i]}`, { hint: 'the artifact is damaged; push the volume again' });
      }
    } finally {
      tar.destroy();
    }
    await fs.promises.rm(content.path(l.digest), { force: true });
    made.push(names[i]);
    say({ status: 'Pull complete', progressDetail: {}, id });
  }
  say({ status: `Digest: ${m.digest}` });
  say({ status: made.length ? `Status: Downloaded newer snapshots for ${volume}` : `Status: Volume ${volume} is up to date` });
  return { volume, snapshots: made, fetched, received };
}

/** The volume manifest `ref:tag` holds now, or undefined (none, or not a volume's). */
async function existing(ctx: TransferContext, ref: Reference, tag: string): Promise<(VolumeManifest & { digest: string }) | undefined> {
  try {
    const m = await fetchManifest(ctx.session, ref.path, tag, ctx.signal);
    const doc = m.doc as Partial<VolumeManifest>;
    if (doc.artifactType !== ARTIFACT_TYPE || !Array.isArray(doc.layers) || !doc.annotations) return undefined;
    return { ...(doc as VolumeManifest), digest: m.digest };
  } catch (e) {
    if (e instanceof BerthError && e.code === 'NOT_FOUND') return undefined;
    throw e;
  }
}

/** Gzip `source` into `file`; the gzip's sha256. */
async function gzipTo(source: Readable, file: string): Promise<string> {
  const h = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
  await pipeline(source, createGzip({ level: 1 }), tap, fs.createWriteStream(file, { mode: 0o600 }));
  return `sha256:${h.digest('hex')}`;
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
