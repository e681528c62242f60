import { KeyedQueue } from '../../volumes/shared/keyed-queue';

/**
 * The volume service's per-volume gate: a check of who uses a volume and the act that
 * depends on it happen under the volume's gate, and so do the engine's steps that make a
 * container a user of it. So a container created at the moment of `volume rm` or `restore`
 * is either seen by the check or made after the act (and finds the volume gone, or
 * restored); a container that starts during a snapshot waits for it.
 *
 * In-process and not reentrant: one daemon holds a data root (its berthd.pid), and a holder
 * never asks for a gate it holds. Several gates are taken in name order, so two holders of
 * overlapping sets cannot deadlock.
 */
export class VolumeGate {
  private readonly queue = new KeyedQueue();

  async run<T>(names: Iterable<string>, fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(names)].sort();
    const releases: (() => void)[] = [];
    try {
      for (const n of sorted) releases.push(await this.queue.acquire(n));
      return await fn();
    } finally {
      for (const r of releases.reverse()) r();
    }
  }
}
