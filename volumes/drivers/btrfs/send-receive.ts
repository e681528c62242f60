/**
 * `btrfs send` and `btrfs receive` (btrfs-progs; never a hand-rolled stream), for moving a
 * snapshot between btrfs hosts as a btrfs delta (src/volumes/btrfs-send-layer.ts).
 *
 * - **identity**: what a received copy of a subvolume is known by. A send stream names its
 *   subvolume (and its parent) by the subvolume's received UUID if it has one, else by its
 *   own UUID; `btrfs receive` sets that as the received UUID of what it makes, and finds an
 *   incremental stream's parent by it. So a chain received on one host continues there.
 * - **receive** is untrusted input: it runs with `--chroot` into a fresh, empty directory
 *   (a hostile stream's paths cannot leave it), stops at the first error
 *   (`--max-errors 1`) and after the first subvolume (`-e`); the caller then checks that
 *   exactly one read-only received subvolume came out, of the identity it expected, and
 *   its tree's fingerprint.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError } from '../../shared/errors';
import { tool, toolProcess, ToolError } from '../../shared/host-tool';
import { isSubvolume } from './subvolumes';

export interface SubvolumeIds {
  uuid: string;
  /** Set on a subvolume `btrfs receive` made: the identity of what was sent. */
  receivedUuid?: string;
  readonly: boolean;
}

/** The UUIDs and read-only flag of subvolume `dir` (`btrfs subvolume show`). */
export async function subvolumeIds(dir: string): Promise<SubvolumeIds> {
  const out = await tool('btrfs', ['subvolume', 'show', dir]);
  const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(\\S+)`, 'm').exec(out)?.[1];
  const uuid = field('UUID');
  if (!uuid) throw new ToolError(`btrfs subvolume show ${dir}`, 0, `no UUID in: ${out.slice(0, 500)}`);
  const received = field('Received UUID');
  const flags = /^\s*Flags:\s*(.*)$/m.exec(out)?.[1] ?? '';
  return { uuid, ...(received && received !== '-' ? { receivedUuid: received } : {}), readonly: /readonly/.test(flags) };
}

/** What a send stream of `dir` names it by (and a receive of it sets as its received UUID). */
export function identity(ids: SubvolumeIds): string {
  return ids.receivedUuid ?? ids.uuid;
}

/**
 * `btrfs send` of read-only subvolume `snap` (incremental from `parent`, read-only too): its
 * stream (which fails if send does), and its end. The tool's stdout is piped on at once, as
 * tar-tree.ts does: a child's stdout left unread until it exits can lose its end.
 */
export function sendStream(snap: string, parent?: string): { stdout: Readable; done: Promise<void>; kill(): void } {
  const p = toolProcess('btrfs', ['send', '-q', ...(parent ? ['-p', parent] : []), snap], {
    hint: 'btrfs send needs read-only snapshots on one filesystem; the snapshot and its parent must both still exist',
  });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  p.stdout.pipe(out, { end: false });
  p.done.then(
    () => out.end(),
    (e: unknown) => out.destroy(e as Error),
  );
  out.on('close', () => p.kill()); // the reader went away early
  return { stdout: out, done: p.done, kill: p.kill };
}

/**
 * Receive the send stream `input` into the empty directory `into` (under the data root):
 * the path of the one read-only received subvolume it made. A stream that fails, makes
 * nothing, or makes anything else is INVALID_ARGUMENT; what it made is left in `into` for
 * the caller to delete.
 */
export async function receiveStream(input: Readable, into: string): Promise<{ dir: string; ids: SubvolumeIds }> {
  const child = spawn('btrfs', ['receive', '--chroot', '--max-errors', '1', '-e', into], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-16 * 1024)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  child.stdin.on('error', () => undefined); // receive stopped early: its exit says why
  const fed = pipeline(input, child.stdin).catch((e: unknown) => e);
  const [code, feedError] = await Promise.all([exited, fed]);
  if (code !== 0) {
    const said = stderr.split('\n').filter((l) => l.trim() && !/^(Chroot to|At (subvol|snapshot)) /.test(l)).join('; ');
    throw new InvalidArgumentError(`btrfs receive refused the stream (exit ${code}): ${said.slice(-1000) || 'no message'}`, {
      hint: 'the btrfs send layer is damaged or its parent snapshot is not here; pull without it (a dir volume takes the portable changeset)',
    });
  }
  if (feedError && !(feedError instanceof Error && /EPIPE|premature/i.test(feedError.message))) throw feedError;
  const made = await fs.promises.readdir(into);
  const dir = made.length === 1 ? path.join(into, made[0]) : '';
  const st = dir ? await fs.promises.lstat(dir) : undefined;
  if (!st || !isSubvolume(st)) {
    throw new InvalidArgumentError(`btrfs receive made ${made.length === 1 ? 'something other than a subvolume' : `${made.length} entries`}, not one subvolume`, {
      hint: 'the btrfs send layer is damaged or hostile; pull it into a dir volume (portable changeset) or push again',
    });
  }
  const ids = await subvolumeIds(dir);
  if (!ids.readonly || !ids.receivedUuid) {
    throw new InvalidArgumentError('btrfs receive did not finish the subvolume (it is not read-only with a received UUID)', {
      hint: 'the btrfs send layer is truncated; push again',
    });
  }
  return { dir, ids };
}
