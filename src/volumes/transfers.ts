import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { writeFileAtomic } from '../../volumes/shared/atomic';
import { checkName } from '../../volumes/drivers/names';
import { ContentStore } from '../images/content';
import { parseReference, type Reference } from '../images/reference';
import type { RegistrySession } from '../images/registry/client';
import { fetchManifest } from '../images/registry/manifest';
import type { Credentials, RegistryMessage } from '../images/registry/service';
import { A, ARTIFACT_TYPE, pullVolume, pushVolume } from './registry-transfer';
import type { Volumes } from './volumes';

/**
 * `berth volume push` and `volume pull` in the daemon: the volume service's rules (its gate,
 * consistent snapshots, who uses a volume) around the registry transfer of
 * registry-transfer.ts, over the daemon's own registry sessions (the image routes':
 * X-Registry-Auth, insecure registries and loopback, certs.d).
 *
 * Push without a snapshot named takes a fresh one first, exactly as `volume snapshot`
 * does (containers that use the volume frozen for the instant, `sync -f`): `push VOL`
 * ships what the volume holds now, never an older snapshot the user may have forgotten;
 * a push that fails removes the snapshot it took.
 *
 * Pull takes the target volume's gate for its whole run, so no container is made a user of
 * it meanwhile. An existing volume is refused CONFLICT while a running container uses it
 * (restore's rule: a stopped one mounts it afresh when it starts). A pull into a new volume
 * is all or nothing: a journal entry (`pulls/<volume>`) is written before the volume is
 * made and removed once it is whole; a pull that fails removes the volume, and a daemon
 * killed mid-pull removes it at its next start. Downloads live in `content/` under the
 * transfers' directory (not the daemon's tmp/, which every start empties), so a pull cut
 * short (the client went away, the connection dropped, berthd killed) resumes its blob
 * from the bytes on disk; a pull that succeeds, or fails for a reason another attempt
 * would not cure (a corrupt blob, a damaged chain), leaves nothing of its blobs.
 */

export interface VolumeTransferOptions {
  /** Docker's AuthConfig for the reference's registry; none = anonymous. Never logged. */
  auth?: Credentials;
  progress?: (m: RegistryMessage) => void;
  signal?: AbortSignal;
}

export interface VolumePushOutcome {
  /** The snapshot pushed (taken by this push when none was named). */
  snapshot: string;
  /** Whether this push took the snapshot. */
  taken: boolean;
  tag: string;
  digest: string;
  /** Blob bytes uploaded (layers the registry held already are not counted). */
  sent: number;
  /** Layers in the pushed chain. */
  layers: number;
}

export interface VolumePullOutcome {
  volume: string;
  /** The snapshots this pull added, oldest first (none: the volume was up to date). */
  snapshots: string[];
  /** Blob bytes read from the network. */
  fetched: number;
  /** The snapshots among `snapshots` made by btrfs receive of a send layer (the fast path). */
  received: string[];
  digest: string;
}

type SessionFactory = (domain: string, auth?: Credentials) => RegistrySession;

export class VolumeTransfers {
  private constructor(
    private readonly dir: string,
    private readonly volumes: Volumes,
    private readonly session: SessionFactory,
  ) {}

  /**
   * Open the transfers' directory (`<root>/volume-transfers`) and finish what a killed
   * daemon left: volumes a pull was making are removed, push layer files deleted.
   */
  static async open(dir: string, volumes: Volumes, session: SessionFactory): Promise<VolumeTransfers> {
    const t = new VolumeTransfers(dir, volumes, session);
    await fs.promises.mkdir(t.pulls, { recursive: true, mode: 0o700 });
    await fs.promises.rm(t.pushes, { recursive: true, force: true });
    for (const entry of await fs.promises.readdir(t.pulls)) {
      if (entry.startsWith('.')) continue; // writeFileAtomic's temp files
      await t.undoPull(entry);
    }
    return t;
  }

  private get pulls(): string {
    return path.join(this.dir, 'pulls');
  }
  private get pushes(): string {
    return path.join(this.dir, 'push');
  }
  private get content(): string {
    return path.join(this.dir, 'content');
  }

  /** Push `volume`'s snapshot `snap` (or a fresh one) to `refText`. */
  async push(volume: string, snap: string | undefined, refText: string, opts: VolumeTransferOptions = {}): Promise<VolumePushOutcome> {
    const ref = parseReference(refText);
    if (ref.digest) throw new InvalidArgumentError('cannot push a volume to a digest reference', { hint: 'push by name and tag, e.g. myreg:5000/vols/data:v1' });
    const d = await this.volumes.storage();
    await d.inspect(volume); // NOT_FOUND before anything is taken
    let taken = false;
    if (snap === undefined) {
      snap = (await this.volumes.snapshot(volume)).Name;
      taken = true;
      opts.progress?.({ status: `Took snapshot ${snap} of volume ${volume}` });
    }
    const s = this.session(ref.domain, opts.auth);
    try {
      const r = await pushVolume({ session: s, driver: d, work: this.pushes, progress: opts.progress, signal: opts.signal }, ref, volume, snap);
      return { snapshot: snap, taken, tag: ref.tag ?? 'latest', digest: r.digest, sent: r.sent, layers: r.layers };
    } catch (e) {
      if (taken) await this.volumes.removeSnapshot(volume, snap).catch(() => undefined); // best effort: it is a whole snapshot either way
      throw e;
    } finally {
      s.close();
    }
  }

  /** Pull `refText` into volume `name` (default: the volume it was pushed from). */
  async pull(refText: string, name: string | undefined, opts: VolumeTransferOptions = {}): Promise<VolumePullOutcome> {
    const given = parseReference(refText);
    if (name !== undefined) checkName(name, 'volume');
    const s = this.session(given.domain, opts.auth);
    try {
      const m = await fetchManifest(s, given.path, given.digest ?? given.tag ?? 'latest', opts.signal);
      const doc = m.doc as { artifactType?: string; layers?: { digest?: unknown }[]; annotations?: Record<string, string> };
      if (doc.artifactType !== ARTIFACT_TYPE) {
        throw new InvalidArgumentError(`${given.repo} is not a berth volume snapshot (artifactType ${JSON.stringify(doc.artifactType ?? null)})`, {
          hint: 'pull images with berth pull; volume pull takes what berth volume push wrote',
        });
      }
      const volume = name ?? checkName(doc.annotations?.[A.volume], 'volume');
      const digests = (doc.layers ?? []).map((l) => l.digest).filter((x): x is string => typeof x === 'string' && /^sha256:[0-9a-f]{64}$/.test(x));
      // The tag may move meanwhile: the pull reads the manifest checked here, by digest.
      const ref: Reference = { ...given, digest: m.digest };
      return await this.volumes.gate.run([volume], async () => {
        const d = await this.volumes.storage();
        const existed = await d.inspect(volume).then(
          () => true,
          (e: unknown) => (e instanceof NotFoundError ? false : Promise.reject(e)),
        );
        if (existed) this.volumes.refuseWhileRunning(volume, 'pull');
        else await writeFileAtomic(path.join(this.pulls, volume), JSON.stringify({ ref: `${given.repo}@${m.digest}`, started: new Date().toISOString() }) + '\n');
        try {
          const r = await pullVolume({ session: s, driver: d, work: this.content, progress: opts.progress, signal: opts.signal }, ref, volume);
          if (!existed) await fs.promises.rm(path.join(this.pulls, volume), { force: true });
          await this.dropBlobs(digests, false);
          return { volume: r.volume, snapshots: r.snapshots, fetched: r.fetched, received: r.received, digest: m.digest };
        } catch (e) {
          if (!existed) await this.undoPull(volume);
          await this.dropBlobs(digests, !resumable(e, opts.signal));
          throw e;
        }
      });
    } finally {
      s.close();
    }
  }

  /** Remove the volume a pull was making, then its journal entry (in that order: a crash between repeats it). */
  private async undoPull(volume: string): Promise<void> {
    const d = await this.volumes.storage();
    await d.remove(volume, { force: true }).catch((e: unknown) => (e instanceof NotFoundError ? undefined : Promise.reject(e)));
    await fs.promises.rm(path.join(this.pulls, volume), { force: true });
  }

  /** Whole blobs are only ever kept for the pull that fetched them; partial ones for the next attempt, unless `partials`. */
  private async dropBlobs(digests: string[], partials: boolean): Promise<void> {
    const c = await ContentStore.open(this.content);
    for (const dg of digests) {
      await fs.promises.rm(c.path(dg), { force: true });
      if (partials) await fs.promises.rm(c.partialPath(dg), { force: true });
    }
  }
}

/** A failure another attempt may cure, so a partial download is worth keeping: a cut connection, a cancelled pull. */
function resumable(e: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  if ((e as Error)?.name === 'AbortError') return true;
  // A corrupt blob is UNAVAILABLE too, but fetchBlob deletes its bytes itself.
  return e instanceof BerthError && e.code === 'UNAVAILABLE';
}
