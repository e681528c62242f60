import * as fs from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import { CALLER_FILE_REFUSED, type CallerFile } from '../../volumes/shared/caller-file';
import type * as CliProgress from 'cli-progress';

/**
 * A progress bar on stderr for long transfers (import, load, save, export). Only on a
 * terminal: scripts and logs get clean output.
 */
export function progressBar(label: string, total?: number): { tick(n: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { tick() {}, stop() {} };
  const cliProgress = require('cli-progress') as typeof CliProgress; // only on a terminal
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: total ? `${label} [{bar}] {percentage}% | {done}/{size}` : `${label} {done}`,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  let done = 0;
  const fmt = (n: number) => `${(n / 1e6).toFixed(1)}MB`;
  bar.start(total ?? 0, 0, { done: fmt(0), size: fmt(total ?? 0) });
  return {
    tick(n: number) {
      done += n;
      bar.update(done, { done: fmt(done) });
    },
    stop() {
      bar.stop();
    },
  };
}

/** Open FILE (or stdin for '-') as a stream that moves a progress bar as it is read. */
export function readWithProgress(file: string, label: string): { stream: Readable; done(): void } {
  const src = file === '-' ? process.stdin : fs.createReadStream(file);
  const total = file === '-' ? undefined : fs.statSync(file).size;
  const bar = progressBar(label, total);
  const counted = new PassThrough({ highWaterMark: 1 << 20 });
  src.on('data', (c: Buffer) => bar.tick(c.length));
  src.on('error', (e: Error) => counted.destroy(e));
  src.pipe(counted);
  return { stream: counted, done: () => bar.stop() };
}

/**
 * Write an archive the daemon streams (save, export) to FILE or, without one, to stdout,
 * with a progress bar. The file appears whole or not at all (temp name, then rename).
 */
export async function writeArchive(
  label: string,
  file: string | undefined,
  produce: (out: Writable) => Promise<void>,
  direct?: (to: CallerFile) => Promise<void>,
): Promise<void> {
  if (!file && process.stdout.isTTY) {
    throw new InvalidArgumentError('refusing to write an archive to a terminal', { hint: 'use -o FILE or redirect standard output' });
  }
  const tmp = file ? `${file}.berth-tmp-${process.pid}` : undefined;
  if (tmp && direct && (await writeDirect(label, tmp, direct))) return void fs.renameSync(tmp, file!);
  const bar = progressBar(label);
  const counter = new PassThrough();
  counter.on('data', (c: Buffer) => bar.tick(c.length));
  try {
    await Promise.all([produce(counter), pipeline(counter, tmp ? fs.createWriteStream(tmp) : process.stdout)]);
    if (tmp) fs.renameSync(tmp, file!);
  } catch (e) {
    if (tmp) fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    bar.stop();
  }
}

/**
 * Let berthd write the archive into `tmp` itself (volumes/shared/caller-file.ts): tar
 * straight into the file runs at disk speed, where the stream through the socket ran at
 * a fraction of it. False (and `tmp` gone) when berthd cannot reach the file (another pid
 * namespace or host): the caller streams instead. Any other failure is thrown.
 */
async function writeDirect(label: string, tmp: string, direct: (to: CallerFile) => Promise<void>): Promise<boolean> {
  const fd = fs.openSync(tmp, 'wx', 0o666);
  const st = fs.fstatSync(fd, { bigint: true });
  const bar = progressBar(label);
  let seen = 0;
  const tick = setInterval(() => {
    const size = fs.fstatSync(fd).size;
    bar.tick(size - seen);
    seen = size;
  }, 250);
  try {
    await direct({ pid: process.pid, fd, dev: String(st.dev), ino: String(st.ino) });
    return true;
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof FailedPreconditionError && e.message.startsWith(CALLER_FILE_REFUSED)) return false;
    throw e;
  } finally {
    clearInterval(tick);
    fs.closeSync(fd);
    bar.stop();
  }
}
