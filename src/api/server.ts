import * as http from 'node:http';
import * as fs from 'node:fs';
import { Router, type Ctx } from './router';
import { errorResponse } from './errors';
import { drainBody } from './http';
import { UnavailableError } from '../../volumes/shared/errors';
import { bodyWindowMs, isUpload, setBodyTimeout, uploads, watchBody } from './body-guard';
import { prepareSocketDir, removeStaleSocket } from './socket-dir';

export interface Logger {
  info(msg: string): void;
  error(msg: string): void;
}

/**
 * The HTTP server on the unix socket: the only place that turns requests into handler
 * calls and thrown errors into responses (via the one table in errors.ts).
 * The socket is 0600, in a directory berth made 0700 or one checked safe (socket-dir.ts).
 * Request bodies must keep coming (body-guard.ts); JSON bodies are bounded (json-body.ts).
 */
export class ApiServer {
  private server: http.Server;
  private sockets = new Set<import('node:net').Socket>();

  constructor(private router: Router, private log: Logger, opts: { bodyTimeoutSeconds?: number } = {}) {
    if (opts.bodyTimeoutSeconds !== undefined) setBodyTimeout(opts.bodyTimeoutSeconds);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    // Docker's attach and exec start upgrade the connection; route them like requests,
    // with a response bound to the socket so errors before the upgrade are plain HTTP.
    this.server.on('upgrade', (req: http.IncomingMessage, socket: import('node:net').Socket, head: Buffer) => {
      const res = new http.ServerResponse(req);
      res.assignSocket(socket);
      res.shouldKeepAlive = false;
      socket.on('error', () => undefined);
      // The request's own body (exec start's JSON) comes first on the socket: take exactly
      // Content-Length bytes of it, so they never reach the process as input.
      void upgradeBody(req, socket, head).then(
        (rest) => this.handle(req, res, { socket, head: rest }),
        () => socket.destroy(),
      );
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // Long uploads (import, load) must not be cut by Node's default request timeout; a body
    // that stops coming is cut by watchBody instead.
    this.server.requestTimeout = 0;
    // An idle kept-alive connection stays open longer than clients keep theirs (Node's agents
    // drop a free socket after 5 s; Go's docker CLI and dockerd never time idle ones out).
    // With Node's default 5 s the two timers raced: a client reusing a socket the daemon was
    // closing at that moment got EPIPE or ECONNRESET on a request berth never saw.
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 66_000;
  }

  async listen(socketPath: string): Promise<void> {
    await prepareSocketDir(socketPath);
    // A socket file left by a daemon that died is stale (the root lock proved no daemon
    // runs on our root); one that answers belongs to another daemon and we must not steal it.
    if (fs.existsSync(socketPath)) {
      if (await answers(socketPath)) {
        throw new UnavailableError(`another daemon is listening on ${socketPath}`, { hint: 'stop it, or give this daemon its own --host unix:///PATH' });
      }
      await removeStaleSocket(socketPath);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    await fs.promises.chmod(socketPath, 0o600);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // Streams such as `logs -f` or `events` never end by themselves.
      for (const s of this.sockets) s.destroy();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, upgrade?: { socket: import('node:net').Socket; head: Buffer }): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://berth');
    let ctx: Ctx | undefined;
    if (!upgrade) watchBody(req, req.socket);
    try {
      const { handler, params } = this.router.match(req.method ?? 'GET', url.pathname);
      ctx = { req, res, params, query: url.searchParams, upgrade };
      if (!upgrade && !req.complete && isUpload(req.method ?? 'GET', url.pathname, url.searchParams)) {
        const leave = await uploads.enter(req, (n) => this.log.info(`${req.method} ${url.pathname}: an upload waits for its turn (${n} waiting, ${uploads.busy} being read)`));
        // A client that went away while it waited: its turn is over before it began.
        if (req.destroyed || req.socket.destroyed) return leave();
        req.once('end', leave).once('close', leave);
        try {
          await handler(ctx);
        } finally {
          leave();
        }
      } else {
        await handler(ctx);
      }
    } catch (e) {
      const { status, body, ref } = errorResponse(e);
      if (status === 500) this.log.error(`${req.method} ${url.pathname}${ref ? ` (ref ${ref})` : ''}: ${(e as Error)?.stack ?? String(e)}`);
      if (ctx?.hijacked) {
        // A raw stream now (the routes report their errors in its own framing): just close it.
        upgrade?.socket.end();
        return;
      }
      if (res.headersSent) {
        // Mid-stream: Docker's in-band error message, then close.
        if (!res.writableEnded) res.end(JSON.stringify({ errorDetail: { message: body.message }, error: body.message, code: body.code, hint: body.hint }) + '\n');
        return;
      }
      // An upload refused before it was read (a bad name on import): read the rest first,
      // or the client, still writing, gets EPIPE instead of our answer.
      if (!upgrade && !req.complete) await drainBody(req, 30_000);
      const data = Buffer.from(JSON.stringify(body) + '\n');
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length });
      res.end(data);
    }
  }
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** Read an upgrade request's body (Content-Length bytes) off `head` and the socket; keep it for readJSON; return the rest. */
async function upgradeBody(req: http.IncomingMessage, socket: import('node:net').Socket, head: Buffer): Promise<Buffer> {
  const len = Number(req.headers['content-length'] ?? 0);
  if (!(len > 0)) return head;
  if (len > 1 << 20) throw new Error('upgrade request body too large');
  let buf = head;
  const deadline = Date.now() + 2 * bodyWindowMs();
  while (buf.length < len) {
    const chunk = await new Promise<Buffer>((resolve, reject) => {
      const onData = (d: Buffer) => {
        cleanup();
        resolve(d);
      };
      const onEnd = () => {
        cleanup();
        reject(new Error('connection closed in the request body'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error('request body not received in time'));
      }, Math.max(0, deadline - Date.now()));
      const cleanup = () => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
      };
      socket.on('data', onData);
      socket.once('end', onEnd);
      socket.once('close', onEnd);
    });
    buf = Buffer.concat([buf, chunk]);
  }
  socket.pause();
  (req as http.IncomingMessage & { upgradeBody?: Buffer }).upgradeBody = buf.subarray(0, len);
  return buf.subarray(len);
}
