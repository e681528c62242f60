/**
 * Writing json-file logs by hand, as the monitor (src/runtime/monitor/monitor.c) does,
 * so the log tests control every byte, every rotation and every partial write.
 */
import type { ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LogEntry } from '../../src/engine/logs';
import { eventually } from '../helpers/eventually';

/** RFC 3339 with nanoseconds for unix seconds `s` (+ `nanos`), as the monitor writes it. */
export function ts(s: number, nanos = 0): string {
  const whole = Math.floor(s);
  const ns = Math.round((s - whole) * 1e9) + nanos;
  return new Date(whole * 1000).toISOString().slice(0, 19) + '.' + String(ns).padStart(9, '0') + 'Z';
}

/** One json-file line. */
export function line(stream: 'stdout' | 'stderr', log: string, time: string): string {
  return JSON.stringify({ log, stream, time }) + '\n';
}

/** A fresh directory with the path of a log file in it (not created). */
export function tmpLog(t: ExecutionContext): { dir: string; log: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, log: path.join(dir, 'ctr-json.log') };
}

/** Append stdout lines `texts` (each gets a \n) at consecutive seconds from `t0`. */
export function appendLines(file: string, texts: string[], t0 = 1_800_000_000, stream: 'stdout' | 'stderr' = 'stdout'): void {
  fs.appendFileSync(file, texts.map((x, i) => line(stream, x + '\n', ts(t0 + i))).join(''));
}

/** The monitor's rotation: log.{n-1} -> log.n, ..., log -> log.1 (a new log starts on the next write). */
export function rotate(file: string, maxFiles: number): void {
  for (let i = maxFiles - 1; i > 1; i--) {
    if (fs.existsSync(`${file}.${i - 1}`)) fs.renameSync(`${file}.${i - 1}`, `${file}.${i}`);
  }
  fs.renameSync(file, `${file}.1`);
}

export async function collect(it: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** The text of each entry, without its trailing newline. */
export function texts(entries: LogEntry[]): string[] {
  return entries.map((e) => e.log.toString('utf8').replace(/\n$/, ''));
}

// ---- seeing what a follower has looked at ---------------------------------------------
//
// "The follower is waiting" or "the follower has seen the half line" cannot be shown by a
// sleep (too short on a loaded machine, and the test then passes without the interleaving it
// names). A follower in this process reads with FileHandle.read at explicit offsets and looks
// for a missing log with fs.promises.stat, so the log tests watch exactly those calls: a read
// that found nothing at offset N means the follower has read everything up to N and is about to
// wait; a stat that found no file means it is waiting for the file.

/** Per real path: the offset of the last read that found the end of the file. */
const endsFound = new Map<string, number>();
/** Per path: how many stats found no file. */
const missesFound = new Map<string, number>();
let watching: Promise<void> | undefined;

type ReadFn = (this: fs.promises.FileHandle, ...args: unknown[]) => Promise<fs.promises.FileReadResult<NodeJS.ArrayBufferView>>;

/** Start watching this process's log reads (once; idempotent). Call before starting the follower. */
export function watchFollowers(): Promise<void> {
  watching ??= (async () => {
    const probe = await fs.promises.open(__filename, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: ReadFn };
    await probe.close();
    const read = proto.read;
    proto.read = async function (this: fs.promises.FileHandle, ...args: unknown[]) {
      const r = await read.apply(this, args);
      const at = args[3];
      if (r.bytesRead === 0 && typeof at === 'number') {
        try {
          endsFound.set(fs.readlinkSync(`/proc/self/fd/${this.fd}`), at);
        } catch {
          // closed meanwhile: not a follower's look
        }
      }
      return r;
    };
    const stat = fs.promises.stat;
    fs.promises.stat = (async (file: fs.PathLike, ...rest: []) => {
      try {
        return await stat(file, ...rest);
      } catch (e) {
        const key = String(file);
        missesFound.set(key, (missesFound.get(key) ?? 0) + 1);
        throw e;
      }
    }) as typeof fs.promises.stat;
  })();
  return watching;
}

/** Wait until a follower has read `file` up to `offset` (default: its size now) and found nothing more. */
export async function followerAtEnd(file: string, offset = fs.statSync(file).size): Promise<void> {
  const real = fs.realpathSync(file);
  await eventually(() => endsFound.get(real) === offset, { message: `a follower to read ${file} up to ${offset} and find its end` });
}

/** Wait until a follower has looked for the missing `file` (and so waits for it). */
export async function followerMissed(file: string): Promise<void> {
  await eventually(() => (missesFound.get(file) ?? 0) > 0, { message: `a follower to look for the missing ${file}` });
}

/** A promise with its resolve, for `stop`. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
