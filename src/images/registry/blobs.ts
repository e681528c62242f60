import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { UnavailableError } from '../../../volumes/shared/errors';
import type { ContentStore } from '../content';
import type { RegistrySession } from './client';
import { backoff, header } from './client';
import { corrupt, type Descriptor } from './manifest';
import { discard } from './transport';

/**
 * Blob downloads that survive being cut short. Bytes go to `content/partial/<hex>` as they
 * arrive; a later download of the same blob hashes what is there and asks the registry
 * for the rest with `Range: bytes=N-` (a registry that ignores Range answers 200, and we
 * start again). The whole is checked against the digest and size before it is adopted
 * into the content store; a blob that fails is deleted, partial file and all, so nothing
 * of it is kept. Docker starts every interrupted layer again from zero (moby#26146).
 */

export interface BlobFetch {
  /** Bytes already on disk when this download started (resumed). */
  resumedFrom: number;
  /** Bytes this download read from the network. */
  fetched: number;
  /** Every byte of the blob also went through the stream `tee` gave (a fresh download). */
  teed: boolean;
}

/**
 * Asked once, when a download starts from byte 0, for a stream to copy the blob's bytes
 * into as they arrive (a layer unpacks while it downloads). It is ended when the last
 * byte came, destroyed with the error if the download fails or is cancelled (the reader
 * sees the error when it reads, however late it starts); the digest is checked after it ended, so
 * whoever reads it commits nothing before this download's promise resolves. A reader that
 * stops (destroys it) is left behind; the download goes on and `teed` is false.
 */
export type Tee = () => Writable | undefined;

export async function fetchBlob(
  s: RegistrySession,
  repo: string,
  desc: Descriptor,
  content: ContentStore,
  onBytes: (done: number, total: number) => void,
  signal?: AbortSignal,
  tee?: Tee,
): Promise<BlobFetch> {
  // A connection reset (or a body cut short) mid-blob is tried again, with backoff, from
  // the bytes on disk; a corrupt blob or a cancelled pull is not.
  let fetched = 0;
  let resumedFrom: number | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetchBlobOnce(s, repo, desc, content, onBytes, signal, tee, (n) => (fetched += n));
      return { ...r, resumedFrom: resumedFrom ?? r.resumedFrom, fetched };
    } catch (e) {
      if (signal?.aborted || !(e instanceof CutShort) || attempt >= s.attempts) throw e instanceof CutShort ? e.error : e;
      resumedFrom ??= 0;
      tee = undefined; // the unpacker saw the bytes of the first attempt only: it unpacks from the store
      await backoff(s, attempt, signal);
    }
  }
}

/** A download the network ended early: worth another attempt. */
class CutShort {
  constructor(readonly error: UnavailableError) {}
}

async function fetchBlobOnce(
  s: RegistrySession,
  repo: string,
  desc: Descriptor,
  content: ContentStore,
  onBytes: (done: number, total: number) => void,
  signal: AbortSignal | undefined,
  tee: Tee | undefined,
  count: (n: number) => void,
): Promise<BlobFetch> {
  const file = content.partialPath(desc.digest);
  const hash = createHash('sha256');
  let have = 0;
  const st = await fs.promises.stat(file).catch(() => undefined);
  if (st && st.size > 0 && st.size < desc.size) {
    for await (const c of fs.createReadStream(file)) hash.update(c as Buffer);
    have = st.size;
  } else if (st) {
    await fs.promises.rm(file, { force: true }); // too long (or empty): not a prefix of this blob
  }
  const resumedFrom = have;
  const res = await s.request('GET', `/v2/${repo}/blobs/${desc.digest}`, {
    scope: `repository:${repo}:pull`,
    headers: have > 0 ? { Range: `bytes=${have}-` } : {},
    what: `blob ${desc.digest}`,
    signal,
  });
  if (have > 0 && (res.status !== 206 || !(header(res, 'content-range') ?? '').startsWith(`bytes ${have}-`))) {
    // No range support: the whole blob came; begin again.
    hash.destroy();
    return restart(res);
  }
  return stream(res, have, hash);

  async function restart(r: typeof res): Promise<BlobFetch> {
    await fs.promises.rm(file, { force: true });
    return stream(r, 0, createHash('sha256'));
  }

  async function stream(r: typeof res, start: number, h: ReturnType<typeof createHash>): Promise<BlobFetch> {
    const fh = await fs.promises.open(file, start > 0 ? 'a' : 'w', 0o600);
    let out = start === 0 ? tee?.() : undefined;
    // This download destroys `out` with its error when it fails or is cancelled; the
    // reader learns of it from its own reads (the stream is errored). Until the reader
    // starts reading (the unpacker still preparing its snapshot) nobody listens for
    // 'error', and an 'error' event nobody listens for ends the daemon: listen here.
    out?.on('error', () => undefined);
    const teeing = out !== undefined;
    let done = start;
    let fetched = 0;
    try {
      onBytes(done, desc.size);
      for await (const chunk of readCut(r.body, () => `the download of blob ${desc.digest} from ${s.domain} was cut off after ${done} of ${desc.size} bytes`)) {
        const buf = chunk as Buffer;
        if (done + buf.length > desc.size) {
          discard(r);
          throw await fail(`blob ${desc.digest} is longer than the ${desc.size} bytes its descriptor says`);
        }
        h.update(buf);
        // The file and the tee are written side by side; the slower sets the pace. A reader
        // that fails (a corrupt layer) is dropped, and the download goes on, so the digest
        // can tell a corrupt blob from a valid one that is not a layer.
        // A copy cut short by a cancelled pull drops the reader too (destroyed: the unpacker
        // stops and discards its snapshot), rather than leaving it waiting for bytes.
        const copied = out
          ? copyTo(out, buf, signal).catch((e) => {
              const dropped = out;
              out = undefined;
              if (!dropped?.destroyed) dropped?.destroy(e as Error);
            })
          : undefined;
        let off = 0;
        while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
        await copied;
        done += buf.length;
        fetched += buf.length;
        count(buf.length);
        onBytes(done, desc.size);
      }
      if (done !== desc.size) {
        // The connection ended early: keep what came, for the next attempt.
        throw new CutShort(
          new UnavailableError(`the download of blob ${desc.digest} from ${s.domain} ended after ${done} of ${desc.size} bytes`, {
            hint: 'pull again: the download resumes where it stopped',
          }),
        );
      }
      out?.end();
      await fh.sync();
    } catch (e) {
      out?.destroy(e instanceof CutShort ? e.error : (e as Error));
      throw e;
    } finally {
      await fh.close();
    }
    const got = `sha256:${h.digest('hex')}`;
    if (got !== desc.digest) {
      await fs.promises.rm(file, { force: true });
      throw corrupt(`blob ${desc.digest} of ${repo}`, got);
    }
    await content.adopt(file, desc.digest);
    return { resumedFrom, fetched, teed: teeing && out !== undefined };
  }

  async function fail(msg: string): Promise<UnavailableError> {
    await fs.promises.rm(file, { force: true });
    return new UnavailableError(msg, { hint: 'the registry holds corrupt data; nothing of it was kept' });
  }
}

/** The body's chunks; the connection failing mid-body (a reset) is CutShort, to try again. */
async function* readCut(body: AsyncIterable<unknown>, what: () => string): AsyncGenerator<unknown> {
  try {
    yield* body;
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new CutShort(new UnavailableError(`${what()}: ${(e as Error)?.message ?? e}`, { hint: 'pull again: the download resumes where it stopped' }));
  }
}

/** Write `buf` to `out`, waiting for room; a reader that gave up fails the download. */
async function copyTo(out: Writable, buf: Buffer, signal?: AbortSignal): Promise<void> {
  if (out.destroyed) throw out.errored ?? new UnavailableError('the layer being unpacked stopped reading', { hint: 'pull again' });
  if (out.write(buf)) return;
  const ac = new AbortController();
  const opts = { signal: signal ? AbortSignal.any([signal, ac.signal]) : ac.signal };
  try {
    await Promise.race([once(out, 'drain', opts), once(out, 'close', opts)]);
  } catch (e) {
    throw out.errored ?? e;
  } finally {
    ac.abort();
  }
  if (out.destroyed) throw out.errored ?? new UnavailableError('the layer being unpacked stopped reading', { hint: 'pull again' });
}

/**
 * A small blob (a config) read whole into memory and verified. A body cut short (the
 * connection reset or closed mid-body) is asked for again, with backoff, as layer blobs
 * are; a blob that does not verify is not.
 */
export async function fetchSmallBlob(s: RegistrySession, repo: string, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchSmallBlobOnce(s, repo, desc, signal);
    } catch (e) {
      if (signal?.aborted || !(e instanceof CutShort) || attempt >= s.attempts) throw e instanceof CutShort ? e.error : e;
      await backoff(s, attempt, signal);
    }
  }
}

async function fetchSmallBlobOnce(s: RegistrySession, repo: string, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  const res = await s.request('GET', `/v2/${repo}/blobs/${desc.digest}`, { scope: `repository:${repo}:pull`, what: `blob ${desc.digest}`, signal });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of readCut(res.body, () => `the download of blob ${desc.digest} from ${s.domain} was cut off after ${n} of ${desc.size} bytes`)) {
    n += (c as Buffer).length;
    if (n > 8 << 20) {
      res.body.destroy();
      throw new UnavailableError(`config blob ${desc.digest} of ${repo} is over 8 MiB`, { hint: 'the image in the registry is malformed' });
    }
    chunks.push(c as Buffer);
  }
  if (n < desc.size) {
    throw new CutShort(new UnavailableError(`the download of blob ${desc.digest} from ${s.domain} ended after ${n} of ${desc.size} bytes`, { hint: 'pull again' }));
  }
  const buf = Buffer.concat(chunks);
  const got = `sha256:${createHash('sha256').update(buf).digest('hex')}`;
  if (got !== desc.digest) throw corrupt(`blob ${desc.digest} of ${repo}`, got);
  return buf;
}
