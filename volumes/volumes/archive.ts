/**
 * Volume archives: a volume's files as a plain tar, and back. Both ends reuse the layer
 * code, which already solved the hard parts: `packDir` (deterministic, streamed, with
 * hardlinks) and `applyLayer` (never writes outside its directory, whatever the tar says).
 *
 * Two differences from layers. A volume archive is not an image layer, so `.wh.` names are
 * ordinary files both ways (packDir never invents whiteouts without `overlayWhiteouts`;
 * import applies with `whiteouts: 'plain'`). And the volume root's own owner and mode
 * matter (a database refuses a data dir with the wrong ones), so the tar starts with a
 * `./` entry carrying them, which applyLayer applies to the root.
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { applyLayer } from '../archive/apply';
import { packDir } from '../archive/pack';
import { InvalidArgumentError } from '../errors';

const END_OF_TAR = 1024;
const MAX_USTAR_ID = 0o777777;

/**
 * A tar of `dir`. `onClose` runs once the stream is finished with, however it ends (read
 * to the end, failed, or destroyed by its reader): the place to drop a private snapshot.
 */
export function exportTree(dir: string, onClose?: () => Promise<void>): Readable {
  async function* bytes(): AsyncGenerator<Buffer> {
    try {
      yield await rootEntry(dir);
      yield* packDir(dir) as AsyncIterable<Buffer>;
    } finally {
      await onClose?.().catch(() => undefined); // cleanup is best effort; what is left is debris for the next open
    }
  }
  return Readable.from(bytes(), { objectMode: false });
}

/** The `./` entry: the root directory's mode, owner and mtime, as tar bytes without the end-of-archive blocks. */
async function rootEntry(dir: string): Promise<Buffer> {
  const st = fs.lstatSync(dir);
  const big = st.uid > MAX_USTAR_ID || st.gid > MAX_USTAR_ID;
  const pack = tar.pack();
  pack.entry({
    name: './',
    type: 'directory',
    mode: st.mode, // the full st_mode, never 0 (tar-stream would replace 0 by its default)
    uid: big ? 0 : st.uid,
    gid: big ? 0 : st.gid,
    mtime: new Date(Math.floor(st.mtimeMs)),
    ...(big ? { pax: { uid: String(st.uid), gid: String(st.gid) } } : {}),
  });
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  const all = Buffer.concat(chunks);
  return all.subarray(0, all.length - END_OF_TAR);
}

/**
 * Unpack an untrusted tar (plain or gzip) into the empty directory `dir`. A hostile or
 * broken tar is INVALID_ARGUMENT; the caller discards `dir` whole on any error.
 */
export async function importTree(input: Readable, dir: string): Promise<void> {
  try {
    await applyLayer(input, dir, { whiteouts: 'plain' });
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
