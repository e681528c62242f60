import { Router, type Ctx } from './router';
import { JSONMessageStream } from './http';
import { abortOnClose, registryAuth } from './registry';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { VolumeTransfers } from '../volumes/transfers';

/**
 * berth's volume push and pull (src/volumes/transfers.ts), streamed as Docker streams an
 * image push or pull (per-layer status and progressDetail; a failure after the 200 is an
 * errorDetail message at the end). Credentials come in X-Registry-Auth exactly as for
 * image push and pull, and go no further than the registry session.
 *
 *   POST /berth/v1/volumes/{name}/push?ref=REF[&snapshot=SNAP]
 *        without snapshot, a fresh snapshot is taken (as POST .../snapshots takes one);
 *        last message: aux {Tag, Digest, Sent, Snapshot, Taken, Layers}
 *   POST /berth/v1/volumes/pull?ref=REF[&name=VOLUME]
 *        last message: aux {Volume, Snapshots, Fetched, Received, Digest}
 */
export function volumeTransferRoutes(router: Router, transfers: VolumeTransfers): void {
  router.add('POST', /^\/berth\/v1\/volumes\/pull$/, async (ctx) => {
    const q = params(ctx, ['ref', 'name'], 'berth volume pull REF [VOLUME]');
    const auth = registryAuth(ctx.req);
    const out = new JSONMessageStream(ctx.res);
    try {
      const r = await transfers.pull(q.ref!, q.name, { auth, progress: (m) => out.write(m), signal: abortOnClose(ctx) });
      out.write({ progressDetail: {}, aux: { Volume: r.volume, Snapshots: r.snapshots, Fetched: r.fetched, Received: r.received, Digest: r.digest } });
    } catch (e) {
      if (!out.headersSent) throw e; // refused before anything streamed: a proper status (404, 409, 400)
      return out.fail(e);
    }
    out.end();
  });

  router.add('POST', /^\/berth\/v1\/volumes\/([^/]+)\/push$/, async (ctx) => {
    const q = params(ctx, ['ref', 'snapshot'], 'berth volume push VOLUME[@SNAPSHOT] REF');
    const auth = registryAuth(ctx.req);
    const out = new JSONMessageStream(ctx.res);
    try {
      const r = await transfers.push(ctx.params[0], q.snapshot, q.ref!, {
        auth,
        // pushVolume's own last aux (Tag, Digest, Size, Sent) is completed with the snapshot and layer count below.
        progress: (m) => (m.aux ? undefined : out.write(m)),
        signal: abortOnClose(ctx),
      });
      out.write({ progressDetail: {}, aux: { Tag: r.tag, Digest: r.digest, Sent: r.sent, Snapshot: r.snapshot, Taken: r.taken, Layers: r.layers } });
    } catch (e) {
      if (!out.headersSent) throw e; // refused before anything streamed: a proper status (404, 409, 400)
      return out.fail(e);
    }
    out.end();
  });
}

/** The route's query: `ref` is required, the others optional, anything else refused by name. */
function params(ctx: Ctx, known: string[], usage: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of ctx.query) {
    if (!known.includes(k)) throw new InvalidArgumentError(`unknown query parameter ${JSON.stringify(k)}`, { hint: `this route takes ${known.join(', ')} (${usage})` });
    if (ctx.query.getAll(k).length > 1) throw new InvalidArgumentError(`query parameter ${k} given more than once`, { hint: usage });
    out[k] = v === '' ? undefined : v;
  }
  if (!out.ref) throw new InvalidArgumentError('ref is required', { hint: usage });
  return out;
}
