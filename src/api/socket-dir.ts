import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError } from '../../volumes/shared/errors';

/**
 * The directory the API socket lives in. berth never changes a directory it did not make:
 * `--host unix:///tmp/x.sock` once turned /tmp into 0700. A directory berth makes is 0700
 * (only root reaches the socket, as Docker's /run/docker is); an existing one is used as it
 * is when it is safe, and refused when another user could swap the socket under us:
 * world-writable without the sticky bit, or owned by someone other than us or root.
 *
 * Returns true when berth made the directory.
 */
export async function prepareSocketDir(socketPath: string): Promise<boolean> {
  const dir = path.dirname(socketPath);
  const st = await fs.promises.stat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(dir, 0o700); // ours, just made: the umask may have taken bits, never added any
    return true;
  }
  checkSocketDir(dir, st);
  const there = await fs.promises.lstat(socketPath).catch(() => undefined);
  if (there && !there.isSocket()) throw notASocket(socketPath);
  return false;
}

export function checkSocketDir(dir: string, st: fs.Stats): void {
  if (!st.isDirectory()) {
    throw new FailedPreconditionError(`the socket's directory ${dir} is not a directory`, { hint: 'give --host unix:///PATH a path in a directory, or in one berth may make' });
  }
  const me = process.geteuid?.() ?? 0;
  if (st.uid !== me && st.uid !== 0) {
    throw new FailedPreconditionError(`the socket's directory ${dir} belongs to uid ${st.uid}, not to this daemon's user or root`, {
      hint: `another user could replace the socket there; give --host a path in a directory of your own (berth makes a missing one, 0700), e.g. unix:///run/berth/berth.sock`,
    });
  }
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0) {
    throw new FailedPreconditionError(`the socket's directory ${dir} is world-writable without the sticky bit`, {
      hint: `anyone could replace the socket there; give --host a path in a directory of your own (berth makes a missing one, 0700), or chmod +t ${dir}`,
    });
  }
}

/** A stale socket file may be removed; anything else at the path is not berth's to delete. */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  const st = await fs.promises.lstat(socketPath).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw notASocket(socketPath);
  await fs.promises.rm(socketPath, { force: true });
}

function notASocket(socketPath: string): FailedPreconditionError {
  return new FailedPreconditionError(`${socketPath} exists and is not a socket`, { hint: 'give --host a path where nothing is, or move the file away' });
}
