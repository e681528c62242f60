import { Readable } from 'node:stream';
import { callerFileQuery, type CallerFile } from '../../volumes/shared/caller-file';
import { Transport } from './transport';
import type { SnapshotHooks, Volume, VolumeCreateBody, VolumePool, VolumeService, VolumeSnapshot } from '../volumes/service';

const enc = encodeURIComponent;

/** The VolumeService over the socket: the same interface the daemon serves in-process. */
export class RemoteVolumeService implements VolumeService {
  constructor(private t: Transport) {}

  /** The daemon's volume driver, from GET /info (Berth.VolumeDriver). */
  async driver(): Promise<string> {
    const info = await this.t.json<{ Berth?: { VolumeDriver?: string } }>('GET', '/info');
    return info.Berth?.VolumeDriver ?? 'local';
  }

  list(filters: Record<string, string[]> = {}): Promise<{ Volumes: Volume[]; Warnings: string[] }> {
    return this.t.json('GET', '/volumes', { query: { filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined } });
  }
  create(body: VolumeCreateBody = {}): Promise<Volume> {
    return this.t.json('POST', '/volumes/create', { body });
  }
  inspect(name: string): Promise<Volume> {
    return this.t.json('GET', `/volumes/${enc(name)}`);
  }
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    (await this.t.request('DELETE', `/volumes/${enc(name)}`, { query: { force: opts.force ? 1 : undefined } })).resume();
  }
  prune(filters: Record<string, string[]> = {}): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    // `all` is always sent: the contract prunes anonymous volumes unless all=true, while the
    // API's default depends on the version a client speaks.
    const f = { ...filters, all: filters.all?.length ? filters.all : ['false'] };
    return this.t.json('POST', '/volumes/prune', { query: { filters: JSON.stringify(f) } });
  }
  pool(): Promise<VolumePool | null> {
    return this.t.json('GET', '/berth/v1/volume-pool');
  }
  growPool(size: number): Promise<VolumePool> {
    return this.t.json('POST', '/berth/v1/volume-pool/grow', { query: { size } });
  }
  rename(name: string, newName: string): Promise<Volume> {
    return this.t.json('POST', `/berth/v1/volumes/${enc(name)}/rename`, { query: { name: newName } });
  }
  snapshot(name: string, snap?: string, opts: SnapshotHooks = {}): Promise<VolumeSnapshot> {
    return this.t.json('POST', `/berth/v1/volumes/${enc(name)}/snapshots`, { query: { name: snap, pre: opts.pre, post: opts.post } });
  }
  snapshots(name: string): Promise<VolumeSnapshot[]> {
    return this.t.json('GET', `/berth/v1/volumes/${enc(name)}/snapshots`);
  }
  async removeSnapshot(name: string, snap: string, opts: { force?: boolean } = {}): Promise<void> {
    (await this.t.request('DELETE', `/berth/v1/volumes/${enc(name)}/snapshots/${enc(snap)}`, { query: { force: opts.force ? '1' : undefined } })).resume();
  }
  async restore(name: string, snap: string): Promise<void> {
    (await this.t.request('POST', `/berth/v1/volumes/${enc(name)}/restore`, { query: { snapshot: snap } })).resume();
  }
  clone(name: string, snap: string | undefined, newName: string): Promise<Volume> {
    return this.t.json('POST', `/berth/v1/volumes/${enc(name)}/clone`, { query: { snapshot: snap, name: newName } });
  }
  async export(name: string, snap?: string, opts: { since?: string; to?: CallerFile } = {}): Promise<Readable> {
    const query = { snapshot: snap, since: opts.since };
    if (!opts.to) return this.t.request('GET', `/berth/v1/volumes/${enc(name)}/export`, { query });
    await this.t.json('GET', `/berth/v1/volumes/${enc(name)}/export`, { query: { ...query, ...callerFileQuery(opts.to) } });
    return Readable.from([]);
  }
  import(name: string, input: Readable, opts: { labels?: Record<string, string> } = {}): Promise<Volume> {
    const labels = opts.labels && Object.keys(opts.labels).length ? JSON.stringify(opts.labels) : undefined;
    return this.t.json('POST', `/berth/v1/volumes/${enc(name)}/import`, { body: input, query: { labels } });
  }
  async close(): Promise<void> {}
}
