import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Router, type Ctx } from './router';
import { errorResponse } from './errors';
import { drainBody } from './http';
import { UnavailableError } from '../../volumes/shared/errors';

export interface Logger {
  info(msg: string): void;
  error(msg: string): void;
}

/**
 * The HTTP server on the unix socket: the only place that turns requests into handler
 * calls and thrown errors into responses (via the one table in errors.ts).
 * The socket lives in a 0700 directory and is itself 0600: only root reaches it.
 */
export class ApiServer {
  private server: http.Server;
  private sockets = new Set<import('node:net').Socket>();

  constructor(private router: Router, private log: Logger) {
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
    // Long uploads (import, load) must not be cut by Node's default request timeout.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
  }

  async listen(socketPath: string): Promise<void> {
    const dir = path.dirname(socketPath);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(dir, 0o700);
    // A socket file left by a daemon that died is stale (the root lock proved no daemon
    // runs on our root); one that answers belongs to another daemon and we must not steal it.
    if (fs.existsSync(socketPath)) {
      if (await answers(socketPath)) {
        throw new UnavailableError(`another daemon is listening on ${socketPath}`, { hint: 'stop it, or give this daemon its own --host unix:///PATH' });
      }
      await fs.promises.rm(socketPath, { force: true });
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
    try {
      const { handler, params } = this.router.match(req.method ?? 'GET', url.pathname);
      ctx = { req, res, params, query: url.searchParams, upgrade };
      await handler(ctx);
    } catch (e) {
      const { status, body } = errorResponse(e);
      if (status === 500) this.log.error(`${req.method} ${url.pathname}: ${(e as Error).stack ?? e}`);
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
      const cleanup = () => {
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
