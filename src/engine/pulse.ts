/**
 * A broadcast of "it happened": everyone waiting when `fire(v)` is called gets `v`;
 * later waiters wait for the next `fire`. The engine has one per container for each of
 * "the current run ended" and "the container was removed".
 */
export class Pulse<T> {
  private waiters = new Set<(v: T) => void>();

  /** The value of the next `fire`; rejects if `signal` aborts first. */
  next(signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const done = (v: T): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const onAbort = (): void => {
        this.waiters.delete(done);
        reject(abortError(signal as AbortSignal));
      };
      this.waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  fire(v: T): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w(v);
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
