/**
 * A file the caller opened, which berthd writes an archive into itself: `volume export -o
 * FILE` and `export -o FILE`. Streamed through the daemon, the CLI and two pipes, an
 * export ran at 0.15-0.2x of `tar -c` on a busy 2-core host (each 64 KiB hop waits for a
 * time slice); with tar writing straight into the file it runs at tar's own speed.
 *
 * The caller names its open file by process id and descriptor, and by the file's (dev,
 * ino). berthd opens /proc/PID/fd/FD (a path it builds from two integers, never one the
 * caller spells) and writes only if what it got is an empty regular file with exactly that
 * dev and ino: so a pid seen from another pid namespace, a reused pid or a wrong fd can
 * never make it write into some other file. The caller is root already (the socket is
 * root-only); this only spares the bytes a trip through the socket. Anything that does not
 * check out is FAILED_PRECONDITION, and the caller falls back to the stream.
 *
 *   const to = { pid: process.pid, fd, dev: String(st.dev), ino: String(st.ino) };
 *   const fd = openCallerFile(to);   // the daemon's own descriptor for the same file
 */
import * as fs from 'node:fs';
import { FailedPreconditionError, InvalidArgumentError } from './errors';

/** How a refusal's message starts, so a client can tell it apart and stream instead. */
export const CALLER_FILE_REFUSED = "cannot write into the caller's file";

export interface CallerFile {
  pid: number;
  fd: number;
  /** The file's st_dev and st_ino (decimal strings: they may not fit a double). */
  dev: string;
  ino: string;
}

/** Parse the four query parameters (`pid`, `fd`, `dev`, `ino`): all or none. */
export function callerFileOf(query: URLSearchParams): CallerFile | undefined {
  const keys = ['pid', 'fd', 'dev', 'ino'] as const;
  const given = keys.filter((k) => query.get(k) !== null);
  if (given.length === 0) return undefined;
  const bad = keys.find((k) => !/^[0-9]{1,20}$/.test(query.get(k) ?? ''));
  if (bad) {
    throw new InvalidArgumentError(`the output file is named by pid, fd, dev and ino together, as decimal numbers; ${bad} is ${JSON.stringify(query.get(bad))}`, {
      hint: 'give all four (the CLI does this for -o FILE), or none to get the archive as the response body',
    });
  }
  return { pid: Number(query.get('pid')), fd: Number(query.get('fd')), dev: query.get('dev')!, ino: query.get('ino')! };
}

/** The query parameters that name `f` (for the client). */
export function callerFileQuery(f: CallerFile): Record<string, string> {
  return { pid: String(f.pid), fd: String(f.fd), dev: f.dev, ino: f.ino };
}

/** Open the caller's file for writing, checked as above; the caller of this closes it. */
export function openCallerFile(f: CallerFile): number {
  const refuse = (why: string) =>
    new FailedPreconditionError(`${CALLER_FILE_REFUSED} (pid ${f.pid}, fd ${f.fd}): ${why}`, {
      hint: 'the client and berthd must run on the same host and see the same /proc; without -o the archive comes as a stream',
    });
  let fd: number;
  try {
    fd = fs.openSync(`/proc/${f.pid}/fd/${f.fd}`, fs.constants.O_WRONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw refuse((e as Error).message);
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw refuse('it is not a regular file');
    if (String(st.dev) !== f.dev || String(st.ino) !== f.ino) throw refuse('it is not the file the caller named (dev and ino differ)');
    if (st.size !== 0n) throw refuse('it is not empty');
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
