import { requestVersion, Router, versionBefore } from './router';
import { API_VERSION } from '../version';
import { PassThrough } from 'node:stream';
import { drainBody, qbool, qfilters, sendEmpty, sendJSON } from './http';
import { readJSON } from './json-body';
import { VOLUME_CREATE_BODY } from './schemas/bodies';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { callerFileOf } from '../../volumes/shared/caller-file';
import type { VolumeCreateBody, VolumeService } from '../volumes/service';

/** Docker's /volumes routes and berth's /berth/v1/volumes extensions (snapshots, restore, clone, export, import). */
export function volumeRoutes(router: Router, volumes: VolumeService): void {
  router.add('GET', /^\/volumes$/, async ({ res, query }) => sendJSON(res, 200, await volumes.list(qfilters(query))));
  router.add('POST', /^\/volumes\/create$/, async ({ req, res }) => {
    const body = await readJSON<VolumeCreateBody>(req, VOLUME_CREATE_BODY, {});
    sendJSON(res, 201, await volumes.create(body));
  });
  router.add('POST', /^\/volumes\/prune$/, async ({ req, res, query }) => {
    const filters = qfilters(query);
    // API 1.42 made prune take anonymous volumes only unless all=true; a client speaking an
    // older version (the docker CLI negotiates 1.41 with berth) gets every unused volume, as
    // Docker 20.10 pruned them. berth's own client says `all` either way.
    const version = requestVersion(new URL(req.url ?? '/', 'http://berth').pathname) ?? API_VERSION;
    if (!filters.all && versionBefore(version, '1.42')) filters.all = ['true'];
    sendJSON(res, 200, await volumes.prune(filters));
  });
  router.add('GET', /^\/volumes\/([^/]+)$/, async ({ res, params }) => sendJSON(res, 200, await volumes.inspect(params[0])));
  router.add('DELETE', /^\/volumes\/([^/]+)$/, async ({ res, params, query }) => {
    await volumes.remove(params[0], { force: qbool(query, 'force') });
    sendEmpty(res, 204);
  });

  router.add('GET', /^\/berth\/v1\/volume-pool$/, async ({ res }) => sendJSON(res, 200, await volumes.pool()));
  router.add('POST', /^\/berth\/v1\/volume-pool\/grow$/, async ({ res, query }) => {
    const raw = required(query.get('size'), 'size', 'berth volume pool --grow SIZE');
    const size = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(size)) {
      throw new InvalidArgumentError(`invalid pool size ${JSON.stringify(raw)}`, { hint: 'give the new total size in bytes' });
    }
    sendJSON(res, 200, await volumes.growPool(size));
  });

  const V = '^/berth/v1/volumes/([^/]+)';
  router.add('POST', new RegExp(`${V}/rename$`), async ({ res, params, query }) => {
    sendJSON(res, 200, await volumes.rename(params[0], required(query.get('name'), 'name', 'berth volume rename OLD NEW')));
  });
  router.add('GET', new RegExp(`${V}/snapshots$`), async ({ res, params }) => sendJSON(res, 200, await volumes.snapshots(params[0])));
  router.add('POST', new RegExp(`${V}/snapshots$`), async ({ res, params, query }) => {
    sendJSON(res, 201, await volumes.snapshot(params[0], query.get('name') || undefined, { pre: query.get('pre') || undefined, post: query.get('post') || undefined }));
  });
  router.add('DELETE', new RegExp(`${V}/snapshots/([^/]+)$`), async ({ res, params, query }) => {
    await volumes.removeSnapshot(params[0], params[1], { force: qbool(query, 'force') });
    sendEmpty(res, 204);
  });
  router.add('POST', new RegExp(`${V}/restore$`), async ({ res, params, query }) => {
    await volumes.restore(params[0], required(query.get('snapshot'), 'snapshot', 'berth volume restore VOLUME SNAPSHOT'));
    sendEmpty(res, 204);
  });
  router.add('POST', new RegExp(`${V}/clone$`), async ({ res, params, query }) => {
    const name = required(query.get('name'), 'name', 'berth volume clone VOLUME[@SNAPSHOT] NEW');
    sendJSON(res, 201, await volumes.clone(params[0], query.get('snapshot') || undefined, name));
  });
  router.add('GET', new RegExp(`${V}/export$`), async ({ res, params, query }) => {
    // Open the stream before the 200 goes out, so a missing volume is a proper error status.
    const opts = { since: query.get('since') || undefined };
    const to = callerFileOf(query);
    if (to) {
      // berthd writes the tar into the caller's file itself; the answer comes when it is whole.
      await volumes.export(params[0], query.get('snapshot') || undefined, { ...opts, to });
      return sendJSON(res, 200, {});
    }
    const tar = await volumes.export(params[0], query.get('snapshot') || undefined, opts);
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    res.on('close', () => tar.destroy());
    tar.on('error', () => res.destroy());
    tar.pipe(res);
  });
  router.add('POST', new RegExp(`${V}/import$`), async ({ req, res, params, query }) => {
    // Through a pipe, never the request itself: an unpacker that gives up (a refused
    // archive, a bomb) would destroy the socket before the client read the error.
    const body = new PassThrough();
    req.once('error', (e) => body.destroy(e));
    req.once('close', () => req.readableEnded || body.destroy(new Error('the upload was cut short')));
    req.pipe(body);
    try {
      sendJSON(res, 201, await volumes.import(params[0], body, { labels: qlabels(query) }));
    } catch (e) {
      req.unpipe(body);
      body.destroy();
      if (!req.complete) await drainBody(req, 30_000); // the rest of the upload, so the client reads the error
      throw e;
    }
  });
}

/** `labels`: a JSON object of string values, as Docker's /build takes them. */
function qlabels(query: URLSearchParams): Record<string, string> | undefined {
  const raw = query.get('labels');
  if (!raw) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
    throw new InvalidArgumentError('labels must be a JSON object of strings', { hint: 'e.g. labels={"app":"db"}; the CLI takes --label app=db' });
  }
  return parsed as Record<string, string>;
}

function required(v: string | null, what: string, usage: string): string {
  if (!v) throw new InvalidArgumentError(`${what} is required`, { hint: usage });
  return v;
}
