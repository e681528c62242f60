import { Router, Ctx } from './router';
import { drainBody, JSONMessageStream, qbool, qfilters, sendEmpty, sendJSON } from './http';
import { readJSON } from './json-body';
import { IMAGE_BOOTSTRAP_BODY, IMAGE_VENDOR_BODY } from './schemas/bodies';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import type { ImageService } from '../images/service';
import type { RegistryService } from '../images/registry/service';
import { isBusyboxRef } from '../images/busybox';
import { pullRoute } from './registry';

/** Docker's /images routes and berth's /berth/v1/images extensions. */
export function imageRoutes(router: Router, images: ImageService, registry?: RegistryService): void {
  router.add('GET', /^\/images\/json$/, async ({ res, query }) => {
    sendJSON(res, 200, await images.list({ all: qbool(query, 'all'), filters: qfilters(query) }));
  });

  router.add('POST', /^\/images\/create$/, async (ctx) => {
    const { query } = ctx;
    if (query.get('fromSrc') !== null) return importImage(ctx, images);
    const from = query.get('fromImage');
    if (!from) throw new InvalidArgumentError('fromImage or fromSrc is required', { hint: 'name an image to pull or use fromSrc=- to import' });
    const ref = query.get('tag') ? `${from}:${query.get('tag')}` : from;
    // The built-in busybox is made on the host, not pulled (it works with no registry at all).
    if (registry && !isBusyboxRef(ref)) return pullRoute(ctx, registry);
    const out = new JSONMessageStream(ctx.res);
    const r = await images.resolve(ref).catch((e) => {
      if (e instanceof NotFoundError) {
        throw new NotFoundError(`pull access denied for ${from}: this daemon has no registry client`, {
          hint: 'make the image locally: `berth load`, `berth import`, `berth image vendor` or `berth image bootstrap debian:bookworm`',
        });
      }
      throw e;
    });
    out.write({ status: `Status: Image is up to date for ${ref}` });
    out.write({ status: 'Digest: ' + r.id });
    out.end();
  });

  router.add('POST', /^\/images\/load$/, async ({ req, res }) => {
    const out = new JSONMessageStream(res);
    let loaded: string[];
    try {
      ({ loaded } = await images.load(req));
    } catch (e) {
      // Docker answers 200 and reports a bad archive in the stream (docker-py raises its
      // ImageLoadError on that); the rest of the upload is read first, so the client hears it.
      if (!req.complete) await drainBody(req, 30_000);
      return out.fail(e);
    }
    for (const line of loaded) out.write({ stream: line + '\n' });
    out.end();
  });

  const save = async ({ res, query }: Ctx, names: string[]) => {
    if (names.length === 0) throw new InvalidArgumentError('no image named to save', { hint: 'give one or more image names' });
    // Resolve every name before the 200 goes out, so a bad name is a proper error status.
    for (const n of names) await images.inspect(n);
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    await images.save(names, res);
    void query;
  };
  router.add('GET', /^\/images\/get$/, async (ctx) => save(ctx, ctx.query.getAll('names')));
  router.add('GET', /^\/images\/(.+)\/get$/, async (ctx) => save(ctx, [ctx.params[0]]));

  router.add('GET', /^\/images\/(.+)\/json$/, async ({ res, params }) => {
    sendJSON(res, 200, await images.inspect(params[0]));
  });
  router.add('GET', /^\/images\/(.+)\/history$/, async ({ res, params }) => {
    sendJSON(res, 200, await images.history(params[0]));
  });
  router.add('POST', /^\/images\/(.+)\/tag$/, async ({ res, params, query }) => {
    const repo = query.get('repo');
    if (!repo) throw new InvalidArgumentError('repo is required', { hint: 'berth tag SOURCE TARGET[:TAG]' });
    await images.tag(params[0], repo, query.get('tag') || undefined);
    sendEmpty(res, 201);
  });
  router.add('DELETE', /^\/images\/(.+)$/, async ({ res, params, query }) => {
    sendJSON(res, 200, await images.remove(params[0], { force: qbool(query, 'force'), noprune: qbool(query, 'noprune') }));
  });

  // berth's own: images made from the host without any registry.
  router.add('POST', /^\/berth\/v1\/images\/vendor$/, async ({ req, res }) => {
    const body = await readJSON<{ ref?: string; binaries?: string[]; cmd?: string[]; entrypoint?: string[] }>(req, IMAGE_VENDOR_BODY, {});
    if (!body.ref || !Array.isArray(body.binaries) || body.binaries.length === 0) {
      throw new InvalidArgumentError('vendor needs a name and at least one binary', { hint: 'berth image vendor NAME[:TAG] /usr/bin/BINARY...' });
    }
    const out = new JSONMessageStream(res);
    const { id } = await images.vendor({ ref: body.ref, binaries: body.binaries, cmd: body.cmd, entrypoint: body.entrypoint, progress: out.progress() });
    out.write({ aux: { ID: id } });
    out.end();
  });
  router.add('POST', /^\/berth\/v1\/images\/bootstrap$/, async ({ req, res }) => {
    const body = await readJSON<{ ref?: string; mirror?: string }>(req, IMAGE_BOOTSTRAP_BODY, {});
    if (!body.ref) throw new InvalidArgumentError('bootstrap needs an image name', { hint: 'berth image bootstrap debian:bookworm' });
    const out = new JSONMessageStream(res);
    const r = await images.bootstrap({ ref: body.ref, mirror: body.mirror, progress: out.progress() });
    out.write({ aux: { ID: r.id, Cached: r.cached } });
    out.end();
  });
}

async function importImage({ req, res, query }: Ctx, images: ImageService): Promise<void> {
  if (query.get('fromSrc') !== '-') {
    throw new InvalidArgumentError('berth imports from the request body only (fromSrc=-)', { hint: 'pass the tarball on stdin or as a file: berth import FILE NAME' });
  }
  const { id } = await images.importRootfs(req, {
    repo: query.get('repo') || undefined,
    tag: query.get('tag') || undefined,
    changes: query.getAll('changes'),
    message: query.get('message') || undefined,
  });
  sendJSON(res, 200, { status: id });
}
