/**
 * One queue per key, in-process: `acquire(key)` resolves when every earlier holder of `key`
 * has released it, with the release function. Not reentrant. The volume locks (under the
 * cross-process lock file) and the volume service's gates both queue this way.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Whether anyone holds or waits for `key`. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  async acquire(key: string): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
