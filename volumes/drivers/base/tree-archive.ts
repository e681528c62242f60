/**
 * Volume archives: a volume's files as a plain tar, and back. Out: GNU tar (a trusted tree,
 * streamed at disk speed). In: the layer code's `applyLayer`, which never writes outside
 * its directory, whatever an untrusted tar says.
 *
 * Two differences from layers. A volume archive is not an image layer, so `.wh.` names are
 * ordinary files both ways (GNU tar knows nothing of whiteouts; import applies with
 * `whiteouts: 'plain'`). And the volume root's own owner and mode matter (a database refuses a data dir with the wrong ones), so the tar starts with a
 * `./` entry carrying them, which applyLayer applies to the root.
 */
import { PassThrough, Readable } from 'node:stream';
import { applyLayer } from '../../archive/apply';
import { InvalidArgumentError } from '../../shared/errors';
import { toolProcess } from '../../shared/host-tool';

/**
 * A tar of `dir`, made by GNU tar: the export of a plain directory tree is exactly its job,
 * and it runs ~8x faster than packing in Node (measured: 0.12x of `tar -c` before). GNU
 * format, sorted names, whole-second mtimes: two exports of the same tree are the same
 * bytes, and so is the export of its import. The archive starts with `./`, so the volume root keeps its owner and mode. `onClose` runs
 * once the stream is finished with, however it ends (read to the end, failed, or destroyed
 * by its reader): the place to drop a private snapshot.
 */
export function exportTree(dir: string, onClose?: () => Promise<void>): Readable {
  const tar = toolProcess('tar', ['-C', dir, '--numeric-owner', '--format=gnu', '--sort=name', '--blocking-factor=128', '-cf', '-', '.'], {
    // 1 is GNU tar's "some files changed as we read them" (a live dir volume): the
    // archive is whole, as `docker cp` of a live container would be.
    okCodes: [1],
    hint: "tar's own message says which file of the volume it could not read; check that file's permissions and the disk",
  });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    void onClose?.().catch(() => undefined); // best effort; what is left is debris for the next open
  };
  tar.stdout.pipe(out, { end: false });
  tar.done.then(
    () => out.end(),
    (e: unknown) => out.destroy(e as Error),
  ).finally(close);
  out.on('close', () => {
    tar.kill(); // the reader went away early
    close();
  });
  return out;
}

/**
 * Unpack an untrusted tar (plain or gzip) into the empty directory `dir`. A hostile or
 * broken tar is INVALID_ARGUMENT; the caller discards `dir` whole on any error. The size
 * checks (unpack-guard.ts) watch the filesystem of `spaceDir` (default `dir`).
 */
export async function importTree(input: Readable, dir: string, spaceDir?: string): Promise<void> {
  try {
    await applyLayer(input, dir, { whiteouts: 'plain', what: 'the volume archive', spaceDir });
  } catch (e) {
    if (e instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(`volume archive rejected: ${e.message}`, {
        hint: 'the archive is malformed or hostile; import only a tar from `export` (or `tar -C DIR -cf - .`) from a source you trust',
        cause: e,
      });
    }
    throw e;
  }
}
