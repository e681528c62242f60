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
import type { Readable } from 'node:stream';
import { applyLayer } from '../../archive/apply';
import { InvalidArgumentError } from '../../shared/errors';
import { tarTree } from '../../archive/tar-tree';

/**
 * A tar of `dir` (tarTree: GNU tar, pax format with user.* and security.capability
 * xattrs, sorted names, whole-second mtimes), so two exports of
 * the same tree are the same bytes, and so is the export of its import. The archive starts
 * with `./`, so the volume root keeps its owner and mode. `onClose` runs once the stream
 * is finished with, however it ends: the place to drop a private snapshot. With `fd`, tar
 * writes into that file and the stream carries nothing (ending once the file is written).
 */
export function exportTree(dir: string, onClose?: () => Promise<void>, fd?: number): Readable {
  return tarTree(dir, { rootEntry: true, xattrs: true, onClose, fd, hint: "tar's own message says which file of the volume it could not read; check that file's permissions and the disk" });
}

/**
 * Unpack an untrusted tar (plain or gzip) into the empty directory `dir`. A hostile or
 * broken tar is INVALID_ARGUMENT; the caller discards `dir` whole on any error. The size
 * checks (unpack-guard.ts) watch the filesystem of `spaceDir` (default `dir`).
 */
export async function importTree(input: Readable, dir: string, spaceDir?: string): Promise<void> {
  try {
    await applyLayer(input, dir, { whiteouts: 'plain', what: 'the volume archive', spaceDir, sparse: true });
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
