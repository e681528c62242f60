import type { Readable } from 'node:stream';
import { ConflictError, InvalidArgumentError } from '../../volumes/shared/errors';
import { DEFAULT_DETACH_KEYS, DetachWatcher, parseDetachKeys } from './detach-keys';
import type { LiveContainer } from './live-container';
import type { Attached, TtyClient } from './tty';

/**
 * Clients attached to tty containers (the engine's attach for `-t` containers): checks,
 * the detach keys, resizes addressed to one client (the API names each client with the
 * Berth-Attach-Id it answers the upgrade with). The session itself is tty.ts.
 */

export interface TtyAttachOptions {
  client: TtyClient;
  input?: Readable;
  detachKeys?: string;
  size?: { rows?: number; cols?: number };
  clientId?: string;
  signal?: AbortSignal;
}

const SIZE_HINT = 'rows and columns are whole numbers from 1 to 10000';

function isUp(c: LiveContainer): boolean {
  return c.rec.State.Status === 'running' || c.rec.State.Status === 'paused';
}

/** A window size from an API call (Docker's limits: 1-10000 each way), or a typed error. */
export function checkWindow(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || rows > 10000 || cols > 10000) {
    throw new InvalidArgumentError(`invalid window size ${rows}x${cols}`, { hint: SIZE_HINT });
  }
}

export class TtyAttachments {
  private readonly byClient = new Map<string, { container: string; attached: Attached }>();

  /** `emit(c, action)`: the container's attach/detach events. */
  constructor(private readonly emit: (c: LiveContainer, action: string) => void) {}

  /** What can be refused before the stream opens (so it is an HTTP error); the detach keys to use. */
  check(c: LiveContainer, detachKeys?: string, size?: { rows?: number; cols?: number }): { detachKeys: string } {
    if (!c.rec.Config.Tty) throw new InvalidArgumentError(`container ${c.id} has no terminal`, { hint: 'attach without a tty, or create the container with -t' });
    const keys = detachKeys || DEFAULT_DETACH_KEYS;
    parseDetachKeys(keys);
    if (size && (size.rows !== undefined || size.cols !== undefined)) checkWindow(size.rows ?? 0, size.cols ?? 0);
    // A created container, or an exited one with stdin (`start -ai`), is attached before its start.
    if (!isUp(c) && c.rec.State.Status !== 'created' && !(c.rec.Config.OpenStdin && c.rec.State.Status === 'exited')) {
      throw new ConflictError('You cannot attach to a stopped container, start it first', { hint: `berth start ${c.rec.Name.slice(1)}` });
    }
    if (c.rec.State.Status === 'paused') throw new ConflictError(`container ${c.id} is paused, unpause it first`, { hint: 'berth unpause it' });
    return { detachKeys: keys };
  }

  /**
   * Serve one client: its output (the current screen first, redrawn, unless the run has
   * not started yet), its input typed into the terminal. Resolves when it detaches with
   * the detach keys, its input or connection ends, or the run ends. A client attached
   * before the start (docker run -it) waits for it, so it misses none of the output.
   */
  async attach(c: LiveContainer, opts: TtyAttachOptions): Promise<'detached' | 'ended'> {
    const keys = parseDetachKeys(this.check(c, opts.detachKeys, opts.size).detachKeys);
    let fresh = false;
    if (!c.tty) {
      if (isUp(c)) throw new ConflictError(`the terminal of container ${c.id} is not available`, { hint: 'see the daemon log; restart the container' });
      await c.started.next(opts.signal);
      fresh = true;
    }
    const session = c.tty;
    if (!session) throw new ConflictError(`container ${c.id} is not running`, { hint: 'start it first' });
    this.emit(c, 'attach');
    if (!fresh) opts.client.write(await session.screen());
    return new Promise((resolve) => {
      const att = session.attach(opts.client, opts.size);
      if (opts.clientId) this.byClient.set(opts.clientId, { container: c.id, attached: att });
      const watcher = new DetachWatcher(keys);
      let done = false;
      const finish = (how: 'detached' | 'ended') => {
        if (done) return;
        done = true;
        att.detach();
        if (opts.clientId) this.byClient.delete(opts.clientId);
        opts.input?.removeListener('data', onData);
        if (how === 'detached') this.emit(c, 'detach');
        resolve(how);
      };
      const onData = (d: Buffer) => {
        const { pass, detach } = watcher.feed(d);
        if (pass.length) att.input(pass);
        if (detach) finish('detached');
      };
      opts.input?.on('data', onData);
      opts.input?.once('end', () => finish('ended'));
      opts.signal?.addEventListener('abort', () => finish('ended'), { once: true });
      void c.exited.next(opts.signal).then(() => finish('ended'), () => finish('ended'));
    });
  }

  /** Docker's /containers/{id}/resize: for one attached client (`clientId`) or, unnamed, the newest. */
  resize(c: LiveContainer, rows: number, cols: number, clientId?: string): void {
    checkWindow(rows, cols);
    if (!c.rec.Config.Tty) throw new InvalidArgumentError(`container ${c.id} has no terminal`, { hint: 'only a container made with -t has a window size' });
    if (!isUp(c) || !c.tty) throw new ConflictError(`Container ${c.id} is not running`, { hint: 'start it first' });
    const known = clientId ? this.byClient.get(clientId) : undefined;
    if (known && known.container === c.id) known.attached.resize(rows, cols);
    else c.tty.resizeNewest(rows, cols);
  }
}
