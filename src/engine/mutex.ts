/**
 * A promise-chain mutex: `run(fn)` calls run one after another, in call order. The engine
 * keeps one per container so start, exit handling, pause and removal never interleave.
 * Not reentrant: a holder must not call `run` on the same mutex again.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}
