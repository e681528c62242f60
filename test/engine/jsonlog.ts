/**
 * Writing json-file logs by hand, as the monitor (src/runtime/monitor/monitor.c) does,
 * so the log tests control every byte, every rotation and every partial write.
 */
import type { ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LogEntry } from '../../src/engine/logs';

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

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise with its resolve, for `stop`. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
