/**
 * Reading a container's log: Docker's json-file format, as the per-container monitor
 * (src/runtime/monitor/monitor.c) writes it. Serves `docker logs` and the output side of
 * `docker attach` / `docker run`.
 *
 * Words
 *   log file   `<log>`, the file the monitor appends to. One JSON object per line:
 *              {"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}
 *   entry      one such line. A line of output longer than 16 KiB is several entries,
 *              all but the last without a trailing \n in `log`; entries are handed on
 *              as written, never joined.
 *   rotation   when `<log>` passes its max size the monitor renames `<log>.{N-2}` ->
 *              `<log>.{N-1}`, ..., `<log>` -> `<log>.1` and starts a new `<log>`. A
 *              rotated file is finished: the monitor closed it before renaming it.
 *              With one file (N <= 1) it truncates `<log>` in place instead.
 *
 * Order and time
 *   Entries come oldest first: the rotated files from the highest number down, then
 *   `<log>`. Entry times are taken to be non-decreasing (the monitor stamps each entry
 *   as it writes it), so reading stops at the first entry after `until`, and a `tail`
 *   read backwards stops at the first entry before `since`.
 *
 * Following
 *   With `follow`, the reader keeps the current file open and reads what is appended,
 *   woken by fs.watch on the directory and, because watch is not reliable everywhere
 *   (network filesystems, inotify limits), by a poll every 250 ms. It tells a rotation
 *   by the inode at `<log>` no longer being the one it holds open: it then reads its
 *   file to the end (finished, so nothing more comes), then every rotated file newer
 *   than it, then the new `<log>`, so no entry is lost or read twice, even across
 *   several rotations between two looks. A truncation in place (N <= 1) restarts at 0;
 *   entries written just before it may be missed, as with Docker.
 *
 * Example
 *   for await (const e of readLogs(log, { follow: true, tail: 10, stop: exited })) {
 *     res.write(frame(e.stream === 'stdout' ? STDOUT : STDERR, e.log));
 *   }
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** The output bytes of this entry (UTF-8; invalid input bytes were written as U+FFFD). */
  log: Buffer;
  /** RFC 3339 with nanoseconds, as written: "2026-11-28T06:00:00.123456789Z". */
  time: string;
}

export interface ReadLogsOptions {
  /** Keep reading what is appended until `stop` resolves, `signal` aborts or `until` passes. */
  follow?: boolean;
  /** Only the last `tail` matching entries (counted after the stream and time filters)
   *  of what is there now; then, when following, everything new. undefined or < 0: all. */
  tail?: number;
  /** Unix seconds (fractional ok): only entries at or after this time. */
  since?: number;
  /** Unix seconds (fractional ok): only entries at or before this time. When following,
   *  reading ends once an entry past it is seen or the clock passes it. */
  until?: number;
  /** Which streams. Neither given: both. Otherwise each as given (undefined = false). */
  stdout?: boolean;
  stderr?: boolean;
  /** When following: once this resolves, read everything written up to then and end. */
  stop?: Promise<void>;
  /** Ends the iteration quietly (no error) at the next entry or wake-up. */
  signal?: AbortSignal;
}

/**
 * The entries of the json-file log `file` and its rotated files, oldest first.
 * A missing file yields nothing; when following, the reader waits for it to appear.
 * Malformed lines (bad JSON, unknown stream, no parsable time) are skipped.
 * Bad options throw InvalidArgumentError at the call, not at the first `next()`.
 */
export function readLogs(file: string, opts: ReadLogsOptions = {}): AsyncIterable<LogEntry> {
  checkNumber('tail', opts.tail);
  checkNumber('since', opts.since);
  checkNumber('until', opts.until);
  return generate(file, opts);
}

function checkNumber(name: string, v: number | undefined): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) {
    throw new InvalidArgumentError(`invalid ${name} value ${String(v)}`, {
      hint: name === 'tail' ? 'give a number of lines, or leave it out for all' : 'give unix seconds, e.g. 1764309600.5',
    });
  }
}

/** Bytes read at a time, forwards or backwards. */
const CHUNK = 64 * 1024;
/** A json-file line is at most ~100 KiB (16 KiB of output, each byte escaped to at most
 *  6); anything longer without a newline is corruption and is skipped, not buffered. */
const MAX_LINE = 1024 * 1024;
const POLL_MS = 250;

// ---- entries ------------------------------------------------------------------------

interface Parsed {
  entry: LogEntry;
  /** Unix seconds. */
  t: number;
}

const TIME_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

/** Unix seconds of an RFC 3339 time, keeping the fraction Date.parse would cut to ms. */
export function parseLogTime(s: string): number {
  const m = TIME_RE.exec(s);
  if (!m) return NaN;
  return Date.parse(m[1] + m[3]) / 1000 + (m[2] ? Number('0' + m[2]) : 0);
}

function parseLine(line: Buffer): Parsed | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { log, stream, time } = v as Record<string, unknown>;
  if (typeof log !== 'string' || typeof time !== 'string') return undefined;
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const t = parseLogTime(time);
  if (Number.isNaN(t)) return undefined;
  return { entry: { stream, log: Buffer.from(log, 'utf8'), time }, t };
}

type Verdict = 'keep' | 'skip' | 'before' | 'after';

class EntryFilter {
  private readonly stdout: boolean;
  private readonly stderr: boolean;
  constructor(private readonly opts: ReadLogsOptions) {
    const neither = opts.stdout === undefined && opts.stderr === undefined;
    this.stdout = neither || opts.stdout === true;
    this.stderr = neither || opts.stderr === true;
  }
  /** 'before' / 'after': outside the time window (reading in that direction can stop). */
  judge(p: Parsed): Verdict {
    if (this.opts.since !== undefined && p.t < this.opts.since) return 'before';
    if (this.opts.until !== undefined && p.t > this.opts.until) return 'after';
    return (p.entry.stream === 'stdout' ? this.stdout : this.stderr) ? 'keep' : 'skip';
  }
}

// ---- files --------------------------------------------------------------------------

interface Opened {
  fh: fs.promises.FileHandle;
  /** dev:ino, to tell one file from another across renames. */
  key: string;
}

function keyOf(st: fs.Stats): string {
  return `${st.dev}:${st.ino}`;
}

/** Every handle opened by one read, so an early `break` or an error closes them all. */
class Handles {
  private readonly open = new Set<fs.promises.FileHandle>();
  add(o: Opened): Opened {
    this.open.add(o.fh);
    return o;
  }
  async close(o: Opened | undefined): Promise<void> {
    if (!o || !this.open.delete(o.fh)) return;
    await o.fh.close().catch(() => undefined);
  }
  async closeAll(): Promise<void> {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((fh) => fh.close().catch(() => undefined)));
  }
}

async function statKey(file: string): Promise<string | undefined> {
  try {
    return keyOf(await fs.promises.stat(file));
  } catch {
    return undefined;
  }
}

/** The highest N with a `<file>.N` in the directory (0 if none). */
async function highestRotation(file: string): Promise<number> {
  const base = path.basename(file) + '.';
  let names: string[];
  try {
    names = await fs.promises.readdir(path.dirname(file));
  } catch {
    return 0;
  }
  let max = 0;
  for (const n of names) {
    if (!n.startsWith(base)) continue;
    const rest = n.slice(base.length);
    if (/^[1-9]\d*$/.test(rest)) max = Math.max(max, Number(rest));
  }
  return max;
}

/**
 * Open `<file>`, `<file>.1`, `<file>.2`, ... newest first, stopping before the file whose
 * key is `stopAt` (the one a follower already holds). Files only ever move to higher
 * numbers, and we walk upwards, so a rotation racing this walk can show us a file twice
 * (dropped by its key) but never out of order.
 */
async function openChain(file: string, handles: Handles, stopAt?: string): Promise<Opened[]> {
  const max = await highestRotation(file);
  const out: Opened[] = [];
  const seen = new Set<string>();
  for (let i = 0; i <= max; i++) {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(i === 0 ? file : `${file}.${i}`, 'r');
    } catch {
      continue; // not there (yet, or any more): a rotation is moving it
    }
    const key = keyOf(await fh.stat());
    if (seen.has(key) || key === stopAt) {
      await fh.close();
      if (key === stopAt) break;
      continue;
    }
    seen.add(key);
    out.push(handles.add({ fh, key }));
  }
  return out;
}

// ---- reading lines ------------------------------------------------------------------

/** Reads lines forwards from `pos`, keeping an unfinished last line for the next read. */
class LineReader {
  private rest: Buffer[] = [];
  private restLen = 0;
  /** Inside a line longer than MAX_LINE: drop bytes up to the next newline. */
  private skipping = false;

  constructor(
    readonly file: Opened,
    public pos = 0,
  ) {}

  /** The complete lines between `pos` and the end of the file as it is now. */
  async *lines(): AsyncGenerator<Buffer> {
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const { bytesRead } = await this.file.fh.read(buf, 0, CHUNK, this.pos);
      if (bytesRead === 0) return;
      this.pos += bytesRead;
      yield* this.split(buf.subarray(0, bytesRead));
    }
  }

  private *split(chunk: Buffer): Generator<Buffer> {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      let line = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.restLen) {
        line = Buffer.concat([...this.rest, line]);
        this.rest = [];
        this.restLen = 0;
      }
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      if (line.length) yield line;
    }
    if (start < chunk.length && !this.skipping) {
      this.rest.push(chunk.subarray(start));
      this.restLen += chunk.length - start;
      if (this.restLen > MAX_LINE) {
        this.rest = [];
        this.restLen = 0;
        this.skipping = true;
      }
    }
  }

  /** The unfinished last line, if any (at the end of a finished file, or when stopping). */
  takeRest(): Buffer | undefined {
    const r = this.restLen && !this.skipping ? Buffer.concat(this.rest) : undefined;
    this.rest = [];
    this.restLen = 0;
    this.skipping = false;
    return r;
  }

  /** A file truncated in place (one-file rotation) shrinks under us: start again at 0. */
  async checkTruncated(): Promise<void> {
    const { size } = await this.file.fh.stat();
    if (size < this.pos) {
      this.pos = 0;
      this.takeRest();
    }
  }
}

async function readAt(fh: fs.promises.FileHandle, buf: Buffer, pos: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** The lines of fh[0, end), last first. Whatever follows the last newline counts as a line. */
async function* linesBackward(fh: fs.promises.FileHandle, end: number): AsyncGenerator<Buffer> {
  let pos = end;
  let carry: Buffer = Buffer.alloc(0); // the tail of a line whose start we have not reached
  let oversized = false; // carry outgrew MAX_LINE and was dropped; skip up to the next newline
  while (pos > 0) {
    const n = Math.min(CHUNK, pos);
    pos -= n;
    const chunk = Buffer.allocUnsafe(n);
    const got = await readAt(fh, chunk, pos);
    if (got < n) chunk.fill(0x0a, got); // the file shrank (truncated): treat the gap as empty lines
    const buf = carry.length ? Buffer.concat([chunk, carry]) : chunk;
    let segEnd = buf.length;
    let i = segEnd > 0 ? buf.lastIndexOf(0x0a, segEnd - 1) : -1;
    while (i >= 0) {
      const line = buf.subarray(i + 1, segEnd);
      if (oversized) oversized = false;
      else if (line.length) yield line;
      segEnd = i;
      i = i > 0 ? buf.lastIndexOf(0x0a, i - 1) : -1; // a negative offset would count from the end
    }
    carry = buf.subarray(0, segEnd);
    if (carry.length > MAX_LINE) {
      carry = Buffer.alloc(0);
      oversized = true;
    }
  }
  if (carry.length && !oversized) yield carry;
}

/** The offset just past the last newline in fh[0, size): where a follower picks up. */
async function lastLineEnd(fh: fs.promises.FileHandle, size: number): Promise<number> {
  let pos = size;
  while (pos > 0) {
    const n = Math.min(CHUNK, pos);
    pos -= n;
    const buf = Buffer.allocUnsafe(n);
    await readAt(fh, buf, pos);
    const i = buf.lastIndexOf(0x0a);
    if (i >= 0) return pos + i + 1;
  }
  return 0;
}

// ---- waking a follower --------------------------------------------------------------

/** Wakes a follower on a directory change, every POLL_MS, on stop, on abort, at `until`. */
class Waker {
  stopped = false;
  aborted = false;
  private pending = false;
  private waiter?: () => void;
  private watcher?: fs.FSWatcher;
  private untilTimer?: NodeJS.Timeout;
  private readonly onAbort = (): void => {
    this.aborted = true;
    this.wake();
  };

  constructor(
    file: string,
    private readonly opts: ReadLogsOptions,
  ) {
    try {
      this.watcher = fs.watch(path.dirname(file), { persistent: false }, () => this.wake());
      this.watcher.on('error', () => this.closeWatcher()); // e.g. the directory was removed: poll on
    } catch {
      // no directory yet, or no inotify watches left: the poll still finds new lines
    }
    const stop = (): void => {
      this.stopped = true;
      this.wake();
    };
    opts.stop?.then(stop, stop);
    if (opts.until !== undefined) {
      this.untilTimer = setTimeout(stop, Math.max(0, opts.until * 1000 - Date.now()));
    }
    if (opts.signal?.aborted) this.aborted = true;
    else opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w();
    else this.pending = true;
  }

  /** Until something may have changed (at most POLL_MS). */
  wait(): Promise<void> {
    if (this.pending || this.stopped || this.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve();
      }, POLL_MS);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  close(): void {
    this.closeWatcher();
    if (this.untilTimer) clearTimeout(this.untilTimer);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.wake();
  }
}

// ---- the reader ---------------------------------------------------------------------

/** Thrown inside the generator to end it quietly (an entry past `until`, or abort). */
const END = Symbol('end');

async function* generate(file: string, opts: ReadLogsOptions): AsyncGenerator<LogEntry> {
  const filter = new EntryFilter(opts);
  const handles = new Handles();
  const waker = opts.follow ? new Waker(file, opts) : undefined;
  const aborted = (): boolean => waker?.aborted ?? opts.signal?.aborted ?? false;

  /** The kept entries among `lines`; throws END past `until` or on abort. */
  async function* entries(lines: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<LogEntry> {
    for await (const line of lines) {
      if (aborted()) throw END;
      const p = parseLine(line);
      if (!p) continue;
      const v = filter.judge(p);
      if (v === 'after') throw END;
      if (v === 'keep') yield p.entry;
    }
  }

  /** A finished file, whole, then closed. */
  async function* whole(o: Opened): AsyncGenerator<LogEntry> {
    const r = new LineReader(o);
    yield* entries(r.lines());
    const rest = r.takeRest();
    if (rest) yield* entries([rest]);
    await handles.close(o);
  }

  /** A rotated file wholly before `since` need not be read: its last entry says so. */
  async function before(o: Opened): Promise<boolean> {
    if (opts.since === undefined) return false;
    for await (const line of linesBackward(o.fh, (await o.fh.stat()).size)) {
      const p = parseLine(line);
      if (p) return p.t < opts.since;
    }
    return true; // nothing parsable in it
  }

  try {
    const files = await openChain(file, handles); // newest first
    let cur: Opened | undefined = files[0];
    let reader: LineReader | undefined;

    if (opts.tail !== undefined && opts.tail >= 0) {
      const n = Math.floor(opts.tail);
      let start = 0;
      const kept: LogEntry[] = [];
      if (cur) {
        const size = (await cur.fh.stat()).size;
        // A follower leaves a half-written last line to the follow loop.
        start = opts.follow ? await lastLineEnd(cur.fh, size) : size;
      }
      collect: for (let i = 0; i < files.length && kept.length < n; i++) {
        for await (const line of linesBackward(files[i].fh, i === 0 ? start : (await files[i].fh.stat()).size)) {
          const p = parseLine(line);
          if (!p) continue;
          const v = filter.judge(p);
          if (v === 'before') break collect;
          if (v !== 'keep') continue;
          kept.push(p.entry);
          if (kept.length >= n) break collect;
        }
      }
      for (const o of files.slice(1)) await handles.close(o);
      for (let i = kept.length - 1; i >= 0; i--) {
        if (aborted()) return;
        yield kept[i];
      }
      if (!opts.follow) return;
      if (cur) reader = new LineReader(cur, start);
    } else {
      for (const o of files.slice(1).reverse()) {
        if (await before(o)) await handles.close(o);
        else yield* whole(o);
      }
      if (cur && !opts.follow) {
        yield* whole(cur);
        return;
      }
      if (cur) reader = new LineReader(cur);
    }
    if (!waker) return;

    // Following. `final` is read before draining: once stop has resolved, one more full
    // drain (and rotation check) sees everything written before it.
    for (;;) {
      if (waker.aborted) return;
      const final = waker.stopped;
      if (reader) {
        await reader.checkTruncated();
        yield* entries(reader.lines());
      }
      const now = await statKey(file);
      // Rotated: `cur` is finished (the monitor closed it before the rename). Read its
      // end, then the rotated files newer than it, oldest first, then the new log. (None
      // opened: it moved again under us, or cannot be read; look again after a wait.)
      const newer: Opened[] = now !== undefined && now !== cur?.key ? await openChain(file, handles, cur?.key) : [];
      if (newer.length > 0) {
        if (reader) {
          yield* entries(reader.lines());
          const rest = reader.takeRest();
          if (rest) yield* entries([rest]);
          await handles.close(cur);
        }
        for (const o of newer.slice(1).reverse()) yield* whole(o);
        reader = new LineReader(newer[0]);
        cur = newer[0];
        continue;
      }
      if (final) {
        const rest = reader?.takeRest();
        if (rest) yield* entries([rest]);
        return;
      }
      await waker.wait();
    }
  } catch (e) {
    if (e !== END) throw e;
  } finally {
    waker?.close();
    await handles.closeAll();
  }
}
