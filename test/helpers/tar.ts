import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

/**
 * The suite's one tar builder (tar-stream, so a test controls every header field and every
 * hostile name byte). An entry is a header, with its data inline (`data`) or as a
 * `[header, data]` pair; mode, owner and mtime have fixed defaults, so the same entries
 * make the same bytes (and the same digests) every run.
 */
export type TarEntry = Partial<tar.Header> & { name: string; data?: string | Buffer };

/** A stable default mtime (2023-11-14): archives built twice are byte-identical. */
export const TAR_MTIME = new Date(1_700_000_000_000);

/** A tar archive of `entries` (gzip-compressed with `gzip: true`). */
export async function makeTar(entries: Array<TarEntry | [TarEntry, string | Buffer]>, opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const out = collect(pack as unknown as AsyncIterable<Buffer>);
  for (const e of entries) {
    const [{ data: inline, ...h }, data] = Array.isArray(e) ? [e[0], e[1]] : [e, undefined];
    const header = { mtime: TAR_MTIME, uid: 0, gid: 0, ...h } as tar.Header;
    await new Promise<void>((resolve, reject) => {
      if (header.type === undefined || header.type === 'file') pack.entry(header, data ?? inline ?? '', (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  const buf = await out;
  return opts.gzip ? gzipSync(buf) : buf;
}

/** Every byte of a stream, as one Buffer. */
export async function collect(s: AsyncIterable<Buffer | Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** A readable stream of one buffer (an upload body, an import source). */
export function streamOf(buf: Buffer): Readable {
  return Readable.from([buf]);
}
