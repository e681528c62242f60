/**
 * The btrfs fast path of volume push and pull (registry-transfer.ts): beside each portable
 * layer pushed from a btrfs volume, a `btrfs send` stream of the same snapshot, so a btrfs
 * host that holds the parent receives it with `btrfs receive` (sharing extents, no tar
 * walk) while every other host still pulls the portable layer.
 *
 * **How the manifest relates them.** The send layer sits in the same manifest right after
 * the portable layer it stands in for, with media type
 * `application/vnd.berth.volume.btrfs-send.v1+gzip` and the annotation
 * `org.berth.volume.btrfs.replaces` = that portable layer's digest. One manifest keeps the
 * layer chain's virtues (one GET gives everything, any registry stores it, skopeo copies
 * it whole); an OCI index of two manifests would need a second GET and a platform-like
 * selector that means nothing here. A puller walks the portable layers as the chain and,
 * for each, takes its send layer instead only when it can receive it; other send layers
 * are never fetched. The chain's validity never depends on a send layer.
 *
 * **Which streams.** The first snapshot pushed from a btrfs volume gets a full stream, each
 * later one `btrfs send -p PARENT SNAP` from the snapshot pushed before it. The full one is
 * what makes the fast path possible at all: `btrfs receive` finds an incremental stream's
 * parent by its received UUID, which only a subvolume made by `btrfs receive` carries, so
 * a chain that began from a tar can never continue by receive. It costs the first push a
 * second copy of the data (a receiving btrfs host fetches only one of the two);
 * `TransferContext.btrfsSend: false` pushes portable layers only.
 *
 * **When pull receives.** The target driver is btrfs, and for layer 0 the volume is new;
 * for a later layer the volume's base snapshot came by `btrfs receive` with the received
 * UUID the stream's parent has (`org.berth.volume.btrfs.parent`), and the volume has not
 * changed since it. The stream runs through btrfs-progs under the data root only, chrooted
 * into an empty directory (volumes/drivers/btrfs/send-receive.ts); its result must carry
 * the layer's received UUID and tree fingerprint (`org.berth.volume.fingerprint`, the
 * changeset fingerprint of the snapshot's tree) and is then swapped in as a changeset is.
 * Digests are verified as for every blob. If receive refuses the stream, the portable
 * layer is pulled instead.
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { SnapshotInfo, SnapshotMetadata, VolumeDriver } from '../../volumes/drivers/driver';
import type { Descriptor } from '../images/registry/manifest';

export const SEND_LAYER_TYPE = 'application/vnd.berth.volume.btrfs-send.v1+gzip';
const S = {
  replaces: 'org.berth.volume.btrfs.replaces',
  identity: 'org.berth.volume.btrfs.uuid',
  parent: 'org.berth.volume.btrfs.parent',
  fingerprint: 'org.berth.volume.fingerprint',
  baseFingerprint: 'org.berth.volume.base-fingerprint',
};

/** What a driver offers for the fast path (the btrfs driver, volumes/drivers/btrfs/btrfs.ts). */
interface SendReceive {
  sendSnapshot(
    name: string,
    snap: string,
    parent?: string,
  ): Promise<{ stream: Readable; done: Promise<void>; identity: string; fingerprint: string; parentIdentity?: string; parentFingerprint?: string }>;
  receivedIdentity(name: string, snap: string): Promise<string | undefined>;
  receiveSnapshot(
    name: string,
    input: Readable,
    opts: { snapshot: string; base?: string; parentIdentity?: string; baseFingerprint?: string; identity: string; fingerprint: string; labels?: Record<string, string>; metadata?: SnapshotMetadata },
  ): Promise<SnapshotInfo>;
}

function fast(d: VolumeDriver): (VolumeDriver & SendReceive) | undefined {
  const x = d as VolumeDriver & Partial<SendReceive>;
  return typeof x.sendSnapshot === 'function' && typeof x.receiveSnapshot === 'function' && typeof x.receivedIdentity === 'function' ? (x as VolumeDriver & SendReceive) : undefined;
}

export function isSendLayer(l: Descriptor): boolean {
  return l.mediaType === SEND_LAYER_TYPE;
}

/**
 * Write the send stream of `snap` (from `parent`, or full) compressed by `compress` into
 * `file`, if the driver can: the layer's descriptor fields (annotations, media type) beside
 * `annotations`, the portable layer's, or undefined for a driver without btrfs send.
 */
export async function sendLayer(
  driver: VolumeDriver,
  volume: string,
  snap: string,
  parent: string | undefined,
  replaces: string,
  annotations: Record<string, string>,
  file: string,
  compress: (source: Readable, file: string) => Promise<string>,
): Promise<Descriptor | undefined> {
  const d = fast(driver);
  if (!d) return undefined;
  const s = await d.sendSnapshot(volume, snap, parent);
  let digest: string;
  try {
    digest = await compress(s.stream, file);
    await s.done;
  } catch (e) {
    s.stream.destroy();
    throw e;
  }
  return {
    mediaType: SEND_LAYER_TYPE,
    digest,
    size: (await fs.promises.stat(file)).size,
    annotations: {
      ...annotations,
      [S.replaces]: replaces,
      [S.identity]: s.identity,
      [S.fingerprint]: s.fingerprint,
      ...(s.parentIdentity ? { [S.parent]: s.parentIdentity } : {}),
      ...(s.parentFingerprint ? { [S.baseFingerprint]: s.parentFingerprint } : {}),
    },
  };
}

/** The send layers of `layers`, by the digest of the portable layer each stands in for. */
export function sendLayersOf(layers: Descriptor[]): Map<string, Descriptor> {
  const m = new Map<string, Descriptor>();
  for (const l of layers) {
    const r = l.annotations?.[S.replaces];
    if (isSendLayer(l) && r) m.set(r, l);
  }
  return m;
}

/**
 * Whether `send` can be received into `volume` on `driver`: `base` undefined for the first
 * snapshot of a new volume, else the snapshot the volume holds that the stream continues.
 */
export async function canReceive(driver: VolumeDriver, volume: string, base: string | undefined, send: Descriptor | undefined): Promise<boolean> {
  const d = fast(driver);
  if (!d || !send || !send.annotations?.[S.identity] || !send.annotations[S.fingerprint]) return false;
  if (base === undefined) return !send.annotations[S.parent];
  const parent = send.annotations[S.parent];
  return !!parent && (await d.receivedIdentity(volume, base).catch(() => undefined)) === parent;
}

/** Receive the (decompressed) stream of `send` into `volume`, as snapshot `snap` on `base` (or a new volume). */
export async function receiveLayer(
  driver: VolumeDriver,
  volume: string,
  input: Readable,
  send: Descriptor,
  snap: string,
  base: string | undefined,
  labels: Record<string, string>,
  metadata: SnapshotMetadata,
): Promise<SnapshotInfo> {
  const d = fast(driver)!;
  const a = send.annotations ?? {};
  return d.receiveSnapshot(volume, input, {
    snapshot: snap,
    identity: a[S.identity] ?? '',
    fingerprint: a[S.fingerprint] ?? '',
    metadata,
    ...(base === undefined ? { labels } : { base, parentIdentity: a[S.parent], baseFingerprint: a[S.baseFingerprint] }),
  });
}
