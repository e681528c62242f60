import type { Readable } from 'node:stream';
import { ConflictError } from '../../volumes/shared/errors';
import type { EngineContext } from './context';
import { checkReadable } from './log-drivers';
import { readLogs } from './logs';
import type { LogOptions, OutputChunk } from './service';
import { isUp } from './state';

/**
 * A container's output and input without a tty: `logs` and `attach` read its json-file
 * log (logs.ts); attach also joins its stdin. A tty container's terminal is tty-attach.ts.
 */

async function* chunks(entries: AsyncIterable<{ stream: 'stdout' | 'stderr'; log: Buffer; time: string }>): AsyncGenerator<OutputChunk> {
  for await (const e of entries) yield { stream: e.stream, data: e.log, time: e.time };
}

/**
 * The log as output chunks. Lazy, as the socket client's must be: a missing container or
 * an unreadable log is the first read's error, not the call's (the API route checks both
 * before it answers 200).
 */
export async function* logs(ctx: EngineContext, ref: string, opts: LogOptions): AsyncGenerator<OutputChunk> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  checkReadable(c.rec.HostConfig.LogConfig);
  const follow = !!opts.follow && isUp(c.rec);
  // Follow ends when the run does: the monitor has written the whole log by then.
  const stop = follow ? c.exited.next(opts.signal).then(() => undefined) : undefined;
  stop?.catch(() => undefined);
  const entries = readLogs(ctx.store.paths(c.id).log, {
    follow,
    tail: opts.tail,
    since: opts.since || undefined,
    until: opts.until || undefined,
    stdout: opts.stdout,
    stderr: opts.stderr,
    stop,
    signal: opts.signal,
  });
  yield* chunks(entries);
}

export interface AttachOptions {
  stdin?: Readable;
  stdout?: boolean;
  stderr?: boolean;
  logs?: boolean;
  stream?: boolean;
  signal?: AbortSignal;
}

export async function attach(ctx: EngineContext, ref: string, opts: AttachOptions): Promise<AsyncIterable<OutputChunk>> {
  ctx.checkOpen();
  const c = ctx.live(ref);
  if (c.rec.State.Status === 'paused') throw new ConflictError(`container ${c.id} is paused, unpause it first`, { hint: 'berth unpause it' });
  if (c.rec.State.Status === 'restarting') {
    throw new ConflictError(`container ${c.id} is restarting, wait until the container is running`, { hint: 'try again in a moment' });
  }
  if (opts.stdin && c.rec.Config.OpenStdin) {
    if (c.stdin) c.stdin.attach(opts.stdin);
    else if (!isUp(c.rec)) {
      // `docker run -i`: attach, then start. A client that leaves before the start is dropped.
      const input = opts.stdin;
      c.pendingStdin.push(input);
      opts.signal?.addEventListener('abort', () => {
        const i = c.pendingStdin.indexOf(input);
        if (i >= 0) c.pendingStdin.splice(i, 1);
      }, { once: true });
    }
  }
  if (opts.logs) checkReadable(c.rec.HostConfig.LogConfig);
  ctx.emit(c.rec, 'attach');
  const stream = opts.stream !== false;
  if (!opts.logs && !stream) return chunks((async function* () {})());
  // Live output is what is written from now on: an attach made before start sees the
  // whole run, and one made later does not replay history (unless `logs`).
  const since = opts.logs ? undefined : Date.now() / 1000;
  const ends = stream ? [c.exited.next(opts.signal), c.outputEnded.next(opts.signal)] : [];
  for (const e of ends) e.catch(() => undefined); // the loser of the race may reject on abort
  const stop = stream ? Promise.race(ends).then(() => undefined) : undefined;
  stop?.catch(() => undefined);
  return chunks(readLogs(ctx.store.paths(c.id).log, { follow: stream, since, stdout: opts.stdout, stderr: opts.stderr, stop, signal: opts.signal }));
}
