import { Transport } from './transport';
import { authHeader } from './registry';
import type { RegistryMessage } from '../images/registry/service';
import type { VolumePullOutcome, VolumePushOutcome, VolumeTransferOptions } from '../volumes/transfers';

/**
 * Volume push and pull over the socket (POST /berth/v1/volumes/{name}/push and
 * /berth/v1/volumes/pull): the same calls and answers as the in-process VolumeTransfers.
 * Credentials go in X-Registry-Auth, as for image push and pull.
 */
export class RemoteVolumeTransfers {
  constructor(private t: Transport) {}

  async push(volume: string, snap: string | undefined, ref: string, opts: Omit<VolumeTransferOptions, 'signal'> = {}): Promise<VolumePushOutcome> {
    const res = await this.t.request('POST', `/berth/v1/volumes/${encodeURIComponent(volume)}/push`, { query: { ref, snapshot: snap }, headers: authHeader(opts.auth) });
    const msgs = await this.t.messages(res, (m) => (m.aux ? undefined : opts.progress?.(m as RegistryMessage)));
    const aux = (msgs.filter((m) => m.aux).pop()?.aux ?? {}) as { Tag?: string; Digest?: string; Sent?: number; Snapshot?: string; Taken?: boolean; Layers?: number };
    return { tag: aux.Tag ?? '', digest: aux.Digest ?? '', sent: aux.Sent ?? 0, snapshot: aux.Snapshot ?? '', taken: !!aux.Taken, layers: aux.Layers ?? 0 };
  }

  async pull(ref: string, volume?: string, opts: Omit<VolumeTransferOptions, 'signal'> = {}): Promise<VolumePullOutcome> {
    const res = await this.t.request('POST', '/berth/v1/volumes/pull', { query: { ref, name: volume }, headers: authHeader(opts.auth) });
    const msgs = await this.t.messages(res, (m) => (m.aux ? undefined : opts.progress?.(m as RegistryMessage)));
    const aux = (msgs.filter((m) => m.aux).pop()?.aux ?? {}) as { Volume?: string; Snapshots?: string[]; Fetched?: number; Received?: string[]; Digest?: string };
    return { volume: aux.Volume ?? '', snapshots: aux.Snapshots ?? [], fetched: aux.Fetched ?? 0, received: aux.Received ?? [], digest: aux.Digest ?? '' };
  }
}
