import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import type { Change } from '../engine/changes';
import type { DiskUsage } from '../engine/disk-usage';
import type { StatsSample } from '../engine/stats';
import type { UpdateBody } from '../engine/update';
import type { DeleteItem } from '../images/service';
import { Transport } from './transport';

const id = encodeURIComponent;

/** stats, update, changes, system df and image prune over the socket. */
export class RemoteContainerTools {
  constructor(private t: Transport) {}

  /** One sample with CPU deltas (Docker's stream=false: about a second). */
  stats(ref: string): Promise<StatsSample> {
    return this.t.json('GET', `/containers/${id(ref)}/stats`, { query: { stream: 0 } });
  }

  /** Samples every second until `signal` aborts. */
  async *streamStats(ref: string, signal: AbortSignal): AsyncGenerator<StatsSample> {
    const res: IncomingMessage = await this.t.request('GET', `/containers/${id(ref)}/stats`, { query: { stream: 1 } });
    signal.addEventListener('abort', () => res.destroy());
    try {
      for await (const line of createInterface({ input: res })) if (line.trim()) yield JSON.parse(line) as StatsSample;
    } catch (e) {
      if (!signal.aborted) throw e;
    }
  }

  update(ref: string, body: UpdateBody): Promise<{ Warnings: string[] }> {
    return this.t.json('POST', `/containers/${id(ref)}/update`, { body });
  }

  changes(ref: string): Promise<Change[] | null> {
    return this.t.json('GET', `/containers/${id(ref)}/changes`);
  }

  df(): Promise<DiskUsage> {
    return this.t.json('GET', '/system/df');
  }

  pruneImages(filters: Record<string, string[]> = {}): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }> {
    return this.t.json('POST', '/images/prune', { query: { filters: JSON.stringify(filters) } });
  }
}
