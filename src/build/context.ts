import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import ignore from '@balena/dockerignore';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { applyLayer } from '../../volumes/archive/apply';
import { RootedTree } from '../../volumes/archive/rooted';

/**
 * The build context: the uploaded tar (plain or gzip), unpacked under the daemon's tmp
 * directory with a layer's checks (names cleaned, nothing through a symlink, `..` above
 * the root refused, device nodes dropped) and its size checks (unpack-guard.ts: the
 * host's free space, and the daemon's decompression ratio on the bytes as sent), then
 * filtered by its `.dockerignore` as Docker reads it (@balena/dockerignore, Docker's
 * matcher ported). The Dockerfile and the
 * .dockerignore itself always stay, as the docker CLI sends them even when excluded.
 *
 * Every later read of the context goes through a RootedTree, so a symlink in the context
 * is followed only inside it: `COPY link /` where link → /etc/passwd finds
 * <context>/etc/passwd or nothing, never the host's file.
 */

export interface BuildContext {
  /** The unpacked context (a private directory of ours). */
  dir: string;
  /** The Dockerfile's text. */
  dockerfile: string;
  /** The Dockerfile's name inside the context, as asked. */
  dockerfileName: string;
  /** Bytes of the uploaded (uncompressed) tar. */
  size: number;
  /** The context as a rooted tree; dispose() closes it. */
  tree(): RootedTree;
  dispose(): Promise<void>;
}

export async function receiveContext(input: Readable, tmpRoot: string, dockerfileName: string): Promise<BuildContext> {
  await fs.promises.mkdir(tmpRoot, { recursive: true, mode: 0o700 });
  const dir = await fs.promises.mkdtemp(path.join(tmpRoot, 'build-'));
  const dispose = () => fs.promises.rm(dir, { recursive: true, force: true });
  // Read through a pipe, not the request's own iterator: a refused context unpipes it, so the
  // API can drain the rest of the upload (resume) and the client reads the error on a
  // connection it can use again.
  const body = new PassThrough();
  input.once('error', (e) => body.destroy(e));
  input.once('close', () => input.readableEnded || body.destroy(new Error('the upload was cut short')));
  input.pipe(body);
  try {
    // The upload is gunzipped before it is padded: the ratio counts its bytes as sent.
    let sent = 0;
    const applied = await applyLayer(Readable.from(padded(body, (n) => (sent += n))), dir, { whiteouts: 'plain', what: 'the build context', compressedBytes: () => sent });
    const name = dockerfileName || 'Dockerfile';
    const dockerfile = readInside(dir, name);
    if (dockerfile === undefined) {
      throw new NotFoundError(`Cannot locate specified Dockerfile: ${name}`, { hint: 'put the Dockerfile in the context, or name it with -f (a path inside the context)' });
    }
    const ignoreText = readInside(dir, '.dockerignore');
    if (ignoreText !== undefined) applyIgnore(dir, ignoreText, [clean(name), '.dockerignore']);
    return {
      dir,
      dockerfile,
      dockerfileName: name,
      size: applied.size,
      tree: () => RootedTree.open(dir),
      dispose,
    };
  } catch (e) {
    input.unpipe(body);
    body.destroy();
    await dispose();
    throw e;
  }
}

/**
 * The upload as a plain tar that ends properly: the docker CLI's context with a Dockerfile
 * from outside it (-f ../Dockerfile) stops right after the last file's data, without the
 * padding and end-of-archive blocks, which moby's reader tolerates. Zero blocks are added
 * after a clean end of the body only (a broken upload fails the request instead).
 */
async function* padded(input: Readable, onBytes: (n: number) => void): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  if (first.done) return;
  onBytes(first.value.length);
  let src: AsyncIterable<Buffer> = (async function* () {
    yield first.value;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      onBytes(r.value.length);
      yield r.value;
    }
  })();
  if (first.value[0] === 0x1f && first.value[1] === 0x8b) src = Readable.from(src).pipe(createGunzip());
  let n = 0;
  for await (const c of src) {
    n += c.length;
    yield c;
  }
  yield Buffer.alloc((512 - (n % 512)) % 512 + 1024);
}

/** A file of the context, symlinks followed inside it; undefined when missing. */
function readInside(dir: string, name: string): string | undefined {
  const tree = RootedTree.open(dir);
  try {
    const loc = tree.resolve(name, { follow: true });
    if (!loc.st?.isFile() || !loc.name) return undefined;
    const fd = fs.openSync(`/proc/self/fd/${loc.parent.fd}/${loc.name}`, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      return fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  } finally {
    tree.dispose();
  }
}

function clean(p: string): string {
  return path.posix.normalize('/' + p).slice(1);
}

/** Remove what .dockerignore excludes (never `keep`), deepest first; a directory goes when it is excluded and nothing in it was kept. */
export function applyIgnore(dir: string, text: string, keep: string[]): void {
  let ig;
  try {
    ig = ignore().add(text);
  } catch (e) {
    throw new InvalidArgumentError(`cannot read .dockerignore: ${(e as Error).message}`, { hint: 'fix the pattern in .dockerignore' });
  }
  const walk = (rel: string): boolean => {
    // true when the entry at rel is gone
    const abs = path.join(dir, rel);
    const st = fs.lstatSync(abs);
    const ignored = rel !== '' && !keep.includes(rel) && ig.ignores(rel);
    if (st.isDirectory()) {
      let left = 0;
      for (const n of fs.readdirSync(abs)) if (!walk(rel ? `${rel}/${n}` : n)) left++;
      if (ignored && left === 0) {
        fs.rmdirSync(abs);
        return true;
      }
      return false;
    }
    if (ignored) {
      fs.unlinkSync(abs);
      return true;
    }
    return false;
  };
  walk('');
}
