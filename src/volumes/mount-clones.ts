import { createHash } from 'node:crypto';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { isValidName, MAX_NAME_BYTES } from '../../volumes/drivers/names';
import type { SnapshotInfo, VolumeDriver, VolumeInfo } from '../../volumes/drivers/driver';
import { ANONYMOUS_LABEL } from './anonymous';

/**
 * Clone on mount: `-v VOL@SNAP:/path` (and `--mount source=VOL@SNAP`, compose's volume
 * string, the API's Binds and Mounts) gives the container a fresh writable clone of
 * snapshot SNAP of volume VOL, made at create. `VOL@` means the volume's latest snapshot.
 *
 * The clone is an ordinary volume with three labels: `berth.clone-of=VOL@SNAP` (what it
 * was made from, shown by `volume ls`), `berth.clone-for=<container id>` (whose it is) and,
 * when the user asked to keep it, `berth.clone-keep=true`. The engine removes an unkept clone
 * with its container; the volume service removes unkept clones whose container does not
 * exist (a crash between the clone and the container's record) when it opens; a source
 * volume or snapshot with clones is CONFLICT to remove unless forced.
 */
export const CLONE_OF_LABEL = 'berth.clone-of';
export const CLONE_FOR_LABEL = 'berth.clone-for';
export const CLONE_KEEP_LABEL = 'berth.clone-keep';

/** `VOL@SNAP`; `snapshot` undefined means the latest. */
export interface SnapshotRef {
  volume: string;
  snapshot?: string;
}

const REF_HINT = 'use VOLUME@SNAPSHOT (or VOLUME@ for its latest snapshot): two names from [a-zA-Z0-9_.-], each starting with a letter or digit, and one @ between them';

/**
 * A volume source that names a snapshot (`VOL@SNAP`, `VOL@`), or undefined for a plain
 * name. `@` is only ever the separator: anything else around it is INVALID_ARGUMENT.
 */
export function parseSnapshotRef(source: string): SnapshotRef | undefined {
  const at = source.indexOf('@');
  if (at < 0) return undefined;
  const volume = source.slice(0, at);
  const snapshot = source.slice(at + 1);
  if (!isValidName(volume) || (snapshot !== '' && !isValidName(snapshot))) {
    const shown = source.length > 80 ? source.slice(0, 80) + '…' : source;
    throw new InvalidArgumentError(`invalid volume snapshot reference ${JSON.stringify(shown)}`, { hint: REF_HINT });
  }
  return { volume, snapshot: snapshot || undefined };
}

export function refString(r: SnapshotRef): string {
  return `${r.volume}@${r.snapshot ?? ''}`;
}

/**
 * The clone's name: `VOL.SNAP.<first 12 hex of the container id>` (readable in `volume ls`),
 * `.N` for a second mount of one snapshot in one container; a digest stands in for the
 * source when that would be over the name limit.
 */
export function cloneName(ref: Required<SnapshotRef>, containerId: string, index: number): string {
  const tail = `${containerId.slice(0, 12)}${index ? `.${index}` : ''}`;
  const name = `${ref.volume}.${ref.snapshot}.${tail}`;
  if (Buffer.byteLength(name) <= MAX_NAME_BYTES) return name;
  return `clone.${createHash('sha256').update(refString(ref)).digest('hex').slice(0, 16)}.${tail}`;
}

/** The snapshot a ref names, or the volume's newest; NOT_FOUND with the snapshots there are. */
export async function resolveSnapshot(driver: VolumeDriver, ref: SnapshotRef): Promise<SnapshotInfo> {
  await driver.inspect(ref.volume); // NOT_FOUND for a missing volume, in the driver's words
  const snaps = await driver.snapshots(ref.volume);
  if (ref.snapshot === undefined) {
    const latest = [...snaps].sort((a, b) => a.created.localeCompare(b.created)).pop();
    if (latest) return latest;
    throw new NotFoundError(`volume ${ref.volume} has no snapshots to clone`, { hint: `take one first: berth volume snapshot ${ref.volume} NAME` });
  }
  const s = snaps.find((x) => x.name === ref.snapshot);
  if (s) return s;
  throw new NotFoundError(`no such snapshot: ${refString(ref)}`, {
    hint: snaps.length
      ? `snapshots of ${ref.volume}: ${snaps.map((x) => x.name).join(', ')}`
      : `volume ${ref.volume} has no snapshots; take one: berth volume snapshot ${ref.volume} ${ref.snapshot}`,
  });
}

/**
 * A fresh clone of `ref` for container `owner` (`index`: which mount of it in that
 * container). The source's labels come along, without the anonymous mark.
 */
export async function cloneForMount(
  driver: VolumeDriver,
  ref: SnapshotRef,
  owner: string,
  opts: { index: number; keep: boolean; labels?: Record<string, string> },
): Promise<VolumeInfo> {
  const snap = await resolveSnapshot(driver, ref);
  const src = await driver.inspect(ref.volume);
  const full = { volume: ref.volume, snapshot: snap.name };
  const labels: Record<string, string> = { ...src.labels, ...(opts.labels ?? {}) };
  delete labels[ANONYMOUS_LABEL];
  delete labels[CLONE_KEEP_LABEL];
  labels[CLONE_OF_LABEL] = refString(full);
  labels[CLONE_FOR_LABEL] = owner;
  if (opts.keep) labels[CLONE_KEEP_LABEL] = 'true';
  return driver.clone(ref.volume, snap.name, cloneName(full, owner, opts.index), { labels });
}

/** The clones made on mount of `volume` (of any snapshot), or of `volume@snap`. */
export function clonesOf(all: VolumeInfo[], volume: string, snap?: string): string[] {
  return all
    .filter((v) => {
      const of = v.labels[CLONE_OF_LABEL];
      if (of === undefined) return false;
      return snap === undefined ? of.startsWith(`${volume}@`) : of === `${volume}@${snap}`;
    })
    .map((v) => v.name);
}

/** CONFLICT naming the clones, unless there are none. */
export function refuseWithClones(what: string, clones: string[]): void {
  if (!clones.length) return;
  const shown = clones.slice(0, 10).join(', ') + (clones.length > 10 ? `, … (${clones.length} in all)` : '');
  throw new ConflictError(`${what} has clones made on mount: ${shown}`, {
    hint: 'remove the containers that use them (or the kept clones: berth volume rm NAME), or force the removal (the clones stay, as independent volumes)',
  });
}

/** Unkept clones whose container does not exist: what a crash between clone and create leaves. */
export function orphanClones(all: VolumeInfo[], containerExists: (id: string) => boolean): string[] {
  return all
    .filter((v) => {
      const owner = v.labels[CLONE_FOR_LABEL];
      return owner !== undefined && v.labels[CLONE_KEEP_LABEL] !== 'true' && !containerExists(owner);
    })
    .map((v) => v.name);
}
