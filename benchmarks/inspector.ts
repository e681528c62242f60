import * as fs from 'node:fs';

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/**
 * A benchmark's window into a daemon started with `--inspect=127.0.0.1:0`: force a full
 * garbage collection and read `process.memoryUsage()` inside it, or write a heap snapshot,
 * through the V8 inspector protocol (Node's own WebSocket client; no daemon code involved).
 * Used by the soak to tell memory berthd holds from garbage V8 has not yet given back.
 */
export class Inspector {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, (params: Record<string, unknown>) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (m) => {
      const msg = JSON.parse(String(m.data)) as { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { message: string } };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result ?? {});
      } else if (msg.method) {
        this.listeners.get(msg.method)?.(msg.params ?? {});
      }
    });
  }

  /** Connects to the inspector whose "Debugger listening on ws://…" line is in `logFile`. */
  static async fromLog(logFile: string): Promise<Inspector> {
    let url: string | undefined;
    for (let i = 0; i < 100 && !url; i++) {
      url = /Debugger listening on (ws:\/\/\S+)/.exec(fs.readFileSync(logFile, 'utf8'))?.[1];
      if (!url) await new Promise((r) => setTimeout(r, 50));
    }
    if (!url) throw new Error(`no inspector address in ${logFile}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`cannot connect to the inspector at ${url}`)), { once: true });
    });
    return new Inspector(ws);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** A full GC, then the daemon's own `process.memoryUsage()` in MB. */
  async collectAndMeasure(): Promise<MemoryUsage> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    return this.measure();
  }

  /** The daemon's own `process.memoryUsage()` in MB, as it is (no GC). */
  async measure(): Promise<MemoryUsage> {
    const r = await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    const m = JSON.parse(String((r.result as { value: string }).value)) as Record<string, number>;
    const mb = (n: number) => n / 1024 / 1024;
    return { rss: mb(m.rss), heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) };
  }

  /** Writes a heap snapshot (loadable in Chrome DevTools' Memory tab) to `file`. */
  async heapSnapshot(file: string): Promise<void> {
    const out = fs.openSync(file, 'w');
    this.listeners.set('HeapProfiler.addHeapSnapshotChunk', (p) => fs.writeSync(out, String(p.chunk)));
    try {
      await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      this.listeners.delete('HeapProfiler.addHeapSnapshotChunk');
      fs.closeSync(out);
    }
  }

  close(): void {
    this.ws.close();
  }
}
