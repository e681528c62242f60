import { Router, Ctx } from './router';
import { qbool, qfilters, qint, sendEmpty, sendJSON } from './http';
import { readJSON } from './json-body';
import { COMMIT_BODY, CREATE_BODY } from './schemas/create-body';
import { EXEC_CREATE_BODY, EXEC_START_BODY } from './schemas/bodies';
import { openRawStream, RawStream } from './hijack';
import { frame, STDERR, STDOUT } from './stdcopy';
import { errorResponse } from './errors';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { callerFileOf } from '../../volumes/shared/caller-file';
import type { ContainerService, CreateBody, ExecConfig, OutputChunk, TtyService, WaitCondition } from '../engine/service';
import { randomUUID } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import type { EventBus } from '../engine/events';
import { checkReadable } from '../engine/log-drivers';
import type { ImageService } from '../images/service';
import { checkCreatePlatform } from './create-platform';

const RAW_STREAM = 'application/vnd.docker.raw-stream';
const MUX_STREAM = 'application/vnd.docker.multiplexed-stream';

/** Docker's /containers, /exec, /commit and /events routes. */
export function containerRoutes(router: Router, engine: ContainerService & TtyService, events: EventBus, images: Pick<ImageService, 'inspect'>): void {
  const C = '/containers/([^/]+)';
  router.add('POST', /^\/containers\/create$/, async ({ req, res, query }) => {
    const body = await readJSON<CreateBody>(req, CREATE_BODY, {} as CreateBody);
    await checkCreatePlatform(images, body.Image, query.get('platform'));
    sendJSON(res, 201, await engine.create(body, query.get('name') || undefined));
  });

  // berth's extension: the rules `berth run --dry-run` prints.
  router.add('POST', /^\/berth\/v1\/network\/plan$/, async ({ req, res }) => {
    sendJSON(res, 200, await engine.networkPlan(await readJSON<CreateBody>(req, CREATE_BODY, {} as CreateBody)));
  });
  router.add('GET', /^\/containers\/json$/, async ({ res, query }) => {
    const limit = qint(query, 'limit', -1, 2 ** 31 - 1);
    sendJSON(res, 200, await engine.list({ all: qbool(query, 'all'), size: qbool(query, 'size'), limit, filters: qfilters(query) }));
  });
  router.add('POST', /^\/containers\/prune$/, async ({ res, query }) => sendJSON(res, 200, await engine.prune(qfilters(query))));
  router.add('GET', re(`${C}/json`), async ({ res, params }) => sendJSON(res, 200, await engine.inspect(params[0])));
  router.add('POST', re(`${C}/start`), async ({ res, params }) => sendEmpty(res, (await engine.start(params[0])) ? 204 : 304));
  router.add('POST', re(`${C}/stop`), async ({ res, params, query }) => {
    const changed = await engine.stop(params[0], { timeout: stopTimeout(query), signal: query.get('signal') || undefined });
    sendEmpty(res, changed ? 204 : 304);
  });
  router.add('POST', re(`${C}/restart`), async ({ res, params, query }) => {
    await engine.restart(params[0], { timeout: stopTimeout(query) });
    sendEmpty(res, 204);
  });
  router.add('POST', re(`${C}/kill`), async ({ res, params, query }) => {
    await engine.kill(params[0], query.get('signal') || undefined);
    sendEmpty(res, 204);
  });
  router.add('POST', re(`${C}/pause`), async ({ res, params }) => {
    await engine.pause(params[0]);
    sendEmpty(res, 204);
  });
  router.add('POST', re(`${C}/unpause`), async ({ res, params }) => {
    await engine.unpause(params[0]);
    sendEmpty(res, 204);
  });
  router.add('POST', re(`${C}/rename`), async ({ res, params, query }) => {
    const name = query.get('name');
    if (!name) throw new InvalidArgumentError('rename needs a new name', { hint: 'berth rename CONTAINER NEW_NAME' });
    await engine.rename(params[0], name);
    sendEmpty(res, 204);
  });
  router.add('GET', re(`${C}/top`), async ({ res, params, query }) => sendJSON(res, 200, await engine.top(params[0], query.get('ps_args') || undefined)));
  router.add('DELETE', re(C), async ({ res, params, query }) => {
    if (qbool(query, 'link')) {
      throw new InvalidArgumentError('removing a legacy link (link=1, `docker rm --link`) is not supported', {
        hint: 'remove or recreate the container that has the --link instead; user-defined networks resolve names without links',
      });
    }
    await engine.remove(params[0], { force: qbool(query, 'force'), volumes: qbool(query, 'v') });
    sendEmpty(res, 204);
  });

  router.add('POST', re(`${C}/wait`), async ({ req, res, params, query }) => {
    const condition = (query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) {
      throw new InvalidArgumentError(`unknown wait condition ${condition}`, { hint: 'use not-running, next-exit or removed' });
    }
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    // Validate first so an unknown container is a 404; then headers go out at once, as
    // Docker does, so the client knows the wait is registered before it starts the container.
    await engine.inspect(params[0]);
    const result = engine.wait(params[0], condition, ac.signal);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    void req;
    try {
      res.end(JSON.stringify(await result) + '\n');
    } catch (e) {
      res.end(JSON.stringify({ StatusCode: -1, Error: { Message: (e as Error).message } }) + '\n');
    }
  });

  router.add('GET', re(`${C}/logs`), async ({ res, params, query }) => {
    const info = await engine.inspect(params[0]);
    const stdout = qbool(query, 'stdout');
    const stderr = qbool(query, 'stderr');
    if (!stdout && !stderr) throw new InvalidArgumentError('you must choose at least one stream', { hint: 'pass stdout=1 and/or stderr=1' });
    // engine.logs fails only once read, after the 200: what can fail is checked first.
    checkReadable(info.HostConfig.LogConfig);
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    const tail = query.get('tail');
    const chunks = engine.logs(params[0], {
      follow: qbool(query, 'follow'),
      stdout,
      stderr,
      since: num(query.get('since')),
      until: num(query.get('until')),
      timestamps: qbool(query, 'timestamps'),
      // Docker: "all", or a number; a negative one means all (testcontainers sends tail=-1).
      tail: tail && tail !== 'all' && !/^\s*-\d+\s*$/.test(tail) ? qint(query, 'tail', 0, 2 ** 31 - 1) : undefined,
      signal: ac.signal,
    });
    res.writeHead(200, { 'Content-Type': info.Config.Tty ? RAW_STREAM : MUX_STREAM });
    res.flushHeaders();
    const ts = qbool(query, 'timestamps');
    for await (const c of chunks) {
      const data = ts ? Buffer.concat([Buffer.from(c.time + ' '), c.data]) : c.data;
      const ok = res.write(info.Config.Tty ? data : frame(c.stream === 'stderr' ? STDERR : STDOUT, data));
      if (!ok) await new Promise((r) => res.once('drain', r));
      if (ac.signal.aborted) break;
    }
    res.end();
  });

  router.add('POST', re(`${C}/attach`), async (ctx) => {
    const { params, query } = ctx;
    const info = await engine.inspect(params[0]);
    const wantStdin = qbool(query, 'stdin');
    // Only what was asked for is sent: a tty has one stream (stdout); stdout=0 means input only.
    const wantStdout = qbool(query, 'stdout');
    const stream = qbool(query, 'stream', true);
    if (info.Config.Tty && stream) {
      // A terminal: raw bytes both ways, the screen redrawn first (for a client that reads
      // it), detach keys watched here. Refusals (stopped, paused, bad keys or size) come
      // before the upgrade, as HTTP errors. The Berth-Attach-Id header names this client for
      // its own resizes (berth's extension).
      const clientId = randomUUID();
      const size = { rows: num(query.get('h')), cols: num(query.get('w')) };
      const checked = await engine.attachTtyCheck(params[0], query.get('detachKeys') || undefined, size);
      const raw = openRawStream(ctx, RAW_STREAM, { 'Berth-Attach-Id': clientId });
      const ac = new AbortController();
      void raw.closed.then(() => ac.abort());
      const client = wantStdout
        ? { write: (d: Buffer) => raw.write(d), backlog: () => raw.backlog(), close: () => raw.end(), drained: () => raw.drain() }
        : { write: () => true, backlog: () => 0, close: () => raw.end(), drained: () => Promise.resolve() };
      await inStream(raw, false, () =>
        engine.attachTty(params[0], { client, input: wantStdin ? raw.input : undefined, detachKeys: checked.detachKeys, size, clientId, signal: ac.signal }),
      );
      raw.end();
      return;
    }
    // From the log (a container without a tty, or a tty's log with stream=0). The engine's
    // refusals come before the upgrade; the client's input is joined once the stream is open.
    const ac = new AbortController();
    const stdin = wantStdin ? new PassThrough() : undefined;
    const output = await engine.attach(params[0], {
      stdin,
      stdout: wantStdout,
      stderr: qbool(query, 'stderr'),
      logs: qbool(query, 'logs'),
      stream,
      signal: ac.signal,
    });
    const raw = openRawStream(ctx, info.Config.Tty ? RAW_STREAM : MUX_STREAM);
    void raw.closed.then(() => ac.abort());
    if (stdin) raw.input.pipe(stdin);
    await inStream(raw, !info.Config.Tty, () => pump(output, raw, !!info.Config.Tty, ac.signal));
    raw.end();
  });

  router.add('POST', re(`${C}/exec`), async ({ req, res, params }) => {
    const body = await readJSON<ExecConfig>(req, EXEC_CREATE_BODY, {} as ExecConfig);
    sendJSON(res, 201, await engine.execCreate(params[0], body));
  });
  router.add('POST', /^\/exec\/([^/]+)\/start$/, async (ctx) => {
    const body = await readJSON<{ Detach?: boolean; Tty?: boolean }>(ctx.req, EXEC_START_BODY, {});
    const id = ctx.params[0];
    const info = await engine.execInspect(id);
    if (body.Detach) {
      void engine.execStart(id, {}).catch(() => undefined);
      return sendEmpty(ctx.res, 200);
    }
    // Framed by the start's Tty, as Docker frames it, whatever the exec was made with: a tty
    // exec started with Tty:false is multiplexed (its one stream as stdout), a pipe exec
    // started with Tty:true is raw.
    const framed = !body.Tty;
    const raw = openRawStream(ctx, framed ? MUX_STREAM : RAW_STREAM);
    const writer = (stream: 1 | 2) =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          raw.write(framed ? frame(stream, chunk) : chunk);
          cb();
        },
      });
    // A tty exec's client may detach (its keys): the stream ends, the process runs on.
    let detached!: () => void;
    const detach = new Promise<void>((resolve) => (detached = resolve));
    const run = engine.execStart(id, { stdin: info.OpenStdin ? raw.input : undefined, stdout: writer(STDOUT), stderr: writer(STDERR), onDetach: () => detached() });
    await inStream(raw, framed, () => Promise.race([run, detach]));
    run.catch(() => undefined);
    raw.end();
  });
  router.add('GET', /^\/exec\/([^/]+)\/json$/, async ({ res, params }) => sendJSON(res, 200, await engine.execInspect(params[0])));
  router.add('POST', /^\/exec\/([^/]+)\/resize$/, async ({ res, params, query }) => {
    await engine.execResize(params[0], num(query.get('h')) ?? 0, num(query.get('w')) ?? 0);
    sendEmpty(res, 200);
  });
  router.add('POST', re(`${C}/resize`), async ({ res, params, query }) => {
    await engine.resize(params[0], num(query.get('h')) ?? 0, num(query.get('w')) ?? 0, query.get('client') || undefined);
    sendEmpty(res, 200);
  });

  router.add('POST', /^\/commit$/, async ({ req, res, query }) => {
    const container = query.get('container');
    if (!container) throw new InvalidArgumentError('commit needs a container', { hint: 'berth commit CONTAINER [REPOSITORY[:TAG]]' });
    const config = await readJSON<Record<string, unknown>>(req, COMMIT_BODY, {});
    const out = await engine.commit(container, {
      repo: query.get('repo') || undefined,
      tag: query.get('tag') || undefined,
      comment: query.get('comment') || undefined,
      author: query.get('author') || undefined,
      changes: query.getAll('changes').filter(Boolean),
      pause: qbool(query, 'pause', true),
      config,
    });
    sendJSON(res, 201, out);
  });
  router.add('GET', re(`${C}/export`), async ({ res, params, query }) => {
    await engine.inspect(params[0]);
    const to = callerFileOf(query); // berth's CLI: berthd writes the tar into the caller's file
    if (to) {
      await engine.export(params[0], new PassThrough().resume(), to);
      return sendJSON(res, 200, {});
    }
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    await engine.export(params[0], res);
  });

  router.add('GET', /^\/events$/, async ({ res, query }) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    await new Promise<void>((resolve) => {
      const unsubscribe = events.subscribe(
        { since: num(query.get('since')), until: num(query.get('until')), filters: qfilters(query) },
        (e) => res.write(JSON.stringify(e) + '\n'),
        () => resolve(),
      );
      res.on('close', () => {
        unsubscribe();
        resolve();
      });
    });
    res.end();
  });
}

/**
 * Run `fn` on an open (hijacked) stream: an error now is told in the stream's own framing,
 * as Docker writes it ("<message>\r\n" on stdout), and the caller then closes the stream.
 * A JSON error body there would be read as a frame header and hang the client.
 */
async function inStream(raw: RawStream, framed: boolean, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const msg = Buffer.from(errorResponse(e).body.message + '\r\n');
    // Clients read the 101 through a buffered reader and then the raw socket (docker-py):
    // bytes that arrive with the 101 are lost to them. A process's output comes later by
    // nature; an error found at once is held back a moment so it arrives on its own.
    await new Promise((r) => setTimeout(r, 100));
    raw.write(framed ? frame(STDOUT, msg) : msg);
  }
}

async function pump(output: AsyncIterable<OutputChunk>, raw: RawStream, tty: boolean, signal: AbortSignal): Promise<void> {
  for await (const c of output) {
    if (signal.aborted) break;
    if (!raw.write(tty ? c.data : frame(c.stream === 'stderr' ? STDERR : STDOUT, c.data))) await raw.drain();
  }
}

function re(s: string): RegExp {
  return new RegExp(`^${s}$`);
}

/** `t` of stop and restart: whole seconds, as Docker's strconv.Atoi reads it; negative waits for ever. */
function stopTimeout(query: URLSearchParams): number | undefined {
  return qint(query, 't', -(2 ** 31), 2 ** 31 - 1);
}

function num(v: string | null): number | undefined {
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${v}`, { hint: 'pass a number' });
  return n;
}

void ({} as Ctx);
