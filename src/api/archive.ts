import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Router } from './router';
import { qbool, sendEmpty } from './http';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { ContainerArchive, PathStat } from '../engine/archive';

const STAT_HEADER = 'X-Docker-Container-Path-Stat';

/** Docker's header: the stat as base64 JSON. */
export function encodeStat(s: PathStat): string {
  return Buffer.from(JSON.stringify(s)).toString('base64');
}

/** HEAD, GET and PUT /containers/{id}/archive (docker cp, docker-py, testcontainers). */
export function archiveRoutes(router: Router, archive: ContainerArchive): void {
  const A = /^\/containers\/([^/]+)\/archive$/;
  const pathOf = (q: URLSearchParams) => {
    const p = q.get('path');
    if (!p) throw new InvalidArgumentError('the path parameter is required', { hint: 'pass ?path=/dir/in/the/container' });
    return p;
  };
  router.add('HEAD', A, async ({ res, params, query }) => {
    const st = await archive.stat(params[0], pathOf(query));
    res.writeHead(200, { [STAT_HEADER]: encodeStat(st), 'Content-Type': 'application/json', 'Content-Length': 0 });
    res.end();
  });
  router.add('GET', A, async ({ res, params, query }) => {
    await archive.get(params[0], pathOf(query), (st) => {
      res.writeHead(200, { [STAT_HEADER]: encodeStat(st), 'Content-Type': 'application/x-tar' });
      return res;
    });
  });
  router.add('PUT', A, async ({ req, res, params, query }) => {
    try {
      const { tar, sent } = await decompressed(req);
      await archive.put(params[0], pathOf(query), tar, {
        noOverwriteDirNonDir: qbool(query, 'noOverwriteDirNonDir'),
        copyUIDGID: qbool(query, 'copyUIDGID'),
        unpack: { what: 'the archive', compressedBytes: sent },
      });
    } catch (e) {
      // Read the rest of the upload, so the client gets the error rather than EPIPE.
      req.unpipe();
      req.resume();
      await new Promise((r) => (req.readableEnded ? r(undefined) : req.once('end', r).once('close', r)));
      throw e;
    }
    sendEmpty(res, 200);
  });
}

/** Docker takes a plain or gzip tar here; the first bytes say which. `sent`: the bytes read of the upload (for a gzip, the size checks' ratio). */
async function decompressed(input: Readable): Promise<{ tar: Readable; sent?: () => number }> {
  const first: Buffer | null = await new Promise((resolve, reject) => {
    const onReadable = () => {
      const c = input.read() as Buffer | null;
      if (c === null && !input.readableEnded) return;
      cleanup();
      resolve(c);
    };
    const onEnd = () => (cleanup(), resolve(null));
    const onError = (e: Error) => (cleanup(), reject(e));
    const cleanup = () => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
    };
    input.on('readable', onReadable);
    input.on('end', onEnd);
    input.on('error', onError);
  });
  const out = new PassThrough();
  if (first) out.write(first);
  const gz = !!first && first[0] === 0x1f && first[1] === 0x8b;
  input.on('error', (e) => out.destroy(e));
  input.pipe(out);
  if (!gz) return { tar: out };
  let sent = first?.length ?? 0;
  input.on('data', (c: Buffer) => (sent += c.length));
  const g = createGunzip();
  out.on('error', (e) => g.destroy(e));
  return { tar: out.pipe(g), sent: () => sent };
}
