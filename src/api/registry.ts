import type { IncomingMessage } from 'node:http';
import { Router, Ctx } from './router';
import { JSONMessageStream, qfilters, qint, sendJSON } from './http';
import { readJSON } from './json-body';
import { AUTH_BODY } from './schemas/bodies';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { ImageService } from '../images/service';
import type { Credentials, RegistryMessage, RegistryService } from '../images/registry/service';

/**
 * Docker's registry routes: pull (POST /images/create?fromImage=), push, POST /auth
 * (`docker login`) and GET /images/search. Credentials come in the X-Registry-Auth header
 * (base64url JSON of Docker's AuthConfig) or, for /auth, the body; they are passed to the
 * registry client and never logged, echoed or stored by berthd.
 */
export function registryRoutes(router: Router, registry: RegistryService, images: ImageService): void {
  router.add('POST', /^\/images\/(.+)\/push$/, async (ctx) => {
    const { params, query } = ctx;
    const tag = query.get('tag') || undefined;
    const ref = tag ? `${params[0]}:${tag}` : params[0];
    await images.inspect(ref); // a missing image is a 404, before the stream starts
    const out = new JSONMessageStream(ctx.res);
    const signal = abortOnClose(ctx);
    try {
      await registry.push(ref, { auth: registryAuth(ctx.req), progress: forward(out), signal });
    } catch (e) {
      return out.fail(e);
    }
    out.end();
  });

  router.add('POST', /^\/auth$/, async ({ req, res }) => {
    const creds = await readJSON<Credentials>(req, AUTH_BODY, {});
    sendJSON(res, 200, await registry.login(creds));
  });

  router.add('GET', /^\/images\/search$/, async ({ req, res, query }) => {
    const term = query.get('term');
    if (!term) throw new InvalidArgumentError('term is required', { hint: 'berth search TERM' });
    const limit = qint(query, 'limit', 1, 100);
    sendJSON(res, 200, await registry.search(term, { limit, filters: qfilters(query), auth: registryAuth(req) }));
  });
}

/** POST /images/create?fromImage=NAME&tag=TAG|DIGEST&platform=: a pull, streamed as Docker streams it. */
export async function pullRoute(ctx: Ctx, registry: RegistryService): Promise<void> {
  const { query } = ctx;
  const from = query.get('fromImage')!;
  const tag = query.get('tag');
  const ref = tag ? (/^sha256:/.test(tag) ? `${from}@${tag}` : `${from}:${tag}`) : from;
  const out = new JSONMessageStream(ctx.res);
  try {
    await registry.pull(ref, { auth: registryAuth(ctx.req), platform: query.get('platform') || undefined, progress: forward(out), signal: abortOnClose(ctx) });
  } catch (e) {
    return out.fail(e);
  }
  out.end();
}

/** Docker's X-Registry-Auth: base64url (or plain base64) JSON AuthConfig; empty = anonymous. */
export function registryAuth(req: IncomingMessage): Credentials | undefined {
  const h = req.headers['x-registry-auth'];
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return undefined;
  let creds: Credentials;
  try {
    creds = JSON.parse(Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as Credentials;
  } catch {
    throw new InvalidArgumentError('X-Registry-Auth is not base64url-encoded JSON', { hint: 'send Docker\'s AuthConfig as base64url JSON (the docker CLI does this)' });
  }
  if (!creds || typeof creds !== 'object') return undefined;
  if (creds.auth && !creds.username) {
    const plain = Buffer.from(creds.auth, 'base64').toString('utf8');
    const i = plain.indexOf(':');
    if (i > 0) creds = { ...creds, username: plain.slice(0, i), password: plain.slice(i + 1) };
  }
  return creds.username || creds.identitytoken || creds.registrytoken ? creds : undefined;
}

function forward(out: JSONMessageStream): (m: RegistryMessage) => void {
  return (m) => out.write(m);
}

/** A client that hangs up (ctrl-C on docker pull) cancels the transfer; what came is kept for resume. */
export function abortOnClose(ctx: Ctx): AbortSignal {
  const c = new AbortController();
  ctx.res.on('close', () => {
    if (!ctx.res.writableFinished) c.abort(new Error('the client went away'));
  });
  return c.signal;
}
