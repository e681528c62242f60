import type { Lifecycle } from '../../volumes/shared/lifecycle';

/**
 * When the image store's garbage collection (gc.ts) may run: never while an operation
 * that creates or reads blobs and layers (import, commit, load, save) is in flight, so an
 * import never sees a blob or layer it is reusing disappear under it. A collection asked
 * for meanwhile runs once the last operation ends; operations wait for a running one.
 */
export class GcGate {
  private active = 0;
  private wanted = false;
  private running?: Promise<string[]>;

  /** `collect` removes what no image uses and resolves to the layers it removed. */
  constructor(
    private readonly life: Lifecycle,
    private readonly collect: () => Promise<string[]>,
  ) {}

  /** Run an operation that creates or reads blobs and layers: garbage collection waits for it. */
  async op<T>(fn: () => Promise<T>): Promise<T> {
    this.life.check();
    while (this.running) await this.running.catch(() => undefined);
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      if (this.active === 0 && this.wanted) void this.request();
    }
  }

  /**
   * Collect garbage now if no operation runs, else once the last one ends. Resolves to the
   * layers removed (empty when deferred).
   */
  request(): Promise<string[]> {
    this.wanted = true;
    if (this.active > 0 || this.life.closed) return Promise.resolve([]);
    // Wait for the collection that runs, then for the one its end starts for us (wanted).
    // Asking again from here would set `wanted` at every round: collections forever, and
    // every operation waiting in op() behind them.
    if (this.running) return this.running.then(() => this.running ?? []);
    this.wanted = false;
    const p = this.collect()
      .catch(() => [] as string[]) // best effort: the next open collects what is left
      .finally(() => {
        this.running = undefined;
        if (this.wanted && this.active === 0) void this.request();
      });
    this.running = p;
    return p;
  }
}
