import { PassThrough, type Duplex, type Readable } from 'node:stream';
import type { Ctx } from './router';

/**
 * Docker's "hijacked" streams (attach, exec start): the client sends `Upgrade: tcp`, the
 * daemon answers `101 UPGRADED` and the connection becomes a raw two-way byte stream.
 * Clients that do not upgrade get a plain 200 response body instead (output only).
 */
export interface RawStream {
  /** Bytes to the client. */
  write(data: Buffer): boolean;
  /** Bytes from the client (its stdin); ends when the client half-closes. */
  input: Readable;
  /** Resolves when the client hung up before we ended. */
  closed: Promise<void>;
  end(): void;
  /** Wait for the client to drain (backpressure). */
  drain(): Promise<void>;
  /** Bytes written and not yet sent to the client. */
  backlog(): number;
}

export function openRawStream(ctx: Ctx, contentType = 'application/vnd.docker.raw-stream', headers: Record<string, string> = {}): RawStream {
  if (ctx.upgrade) {
    const { socket, head } = ctx.upgrade;
    ctx.res.detachSocket(socket);
    ctx.hijacked = true;
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n${extra}\r\n`);
    if (head.length) socket.unshift(head);
    return duplexStream(socket);
  }
  ctx.res.writeHead(200, { 'Content-Type': contentType, ...headers });
  ctx.res.flushHeaders();
  const closed = new Promise<void>((resolve) => ctx.res.on('close', () => resolve()));
  return {
    write: (d) => ctx.res.write(d),
    input: ctx.req,
    closed,
    end: () => ctx.res.end(),
    drain: () => new Promise((r) => (ctx.res.writableNeedDrain ? ctx.res.once('drain', () => r()) : r())),
    backlog: () => ctx.res.writableLength,
  };
}

function duplexStream(socket: Duplex): RawStream {
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  // The client's bytes are buffered here until the route reads them (it may await before
  // it does), whatever state the upgrade left the socket in.
  const input = new PassThrough();
  socket.pipe(input);
  return {
    write: (d) => (socket.destroyed ? false : socket.write(d)),
    input,
    closed,
    end: () => socket.end(),
    drain: () => new Promise((r) => (socket.writableNeedDrain ? socket.once('drain', () => r()) : r())),
    backlog: () => socket.writableLength,
  };
}
