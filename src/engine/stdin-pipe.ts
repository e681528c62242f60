import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Readable } from 'node:stream';

/**
 * berthd's end of a container's stdin fifo, for one run.
 *
 * berth-monitor opens the fifo's read end and hands it to the container as fd 0; a reader
 * sees EOF as soon as no writer is left, so berthd holds the write end for the whole run
 * (opened after `runtime.create`, BEFORE `runtime.start`: the container must never see
 * an early EOF) and closes it when the run ends. Clients' stdin streams attached to the
 * container are piped in (all of them, like tmux); with StdinOnce the first one to end
 * closes the container's stdin, as `docker run -i` does.
 *
 * The write end is a non-blocking net.Socket: a container that does not read fills the
 * pipe and applies backpressure to the clients, never blocking one of libuv's threads.
 */
export class StdinPipe {
  private sock?: net.Socket;
  private readonly pending: Readable[] = [];
  private readonly sources = new Set<Readable>();
  private closed = false;

  constructor(
    private readonly fifo: string,
    private readonly once: boolean,
  ) {}

  /** Open the write end; the container (its read end) must exist already. */
  open(): void {
    if (this.sock || this.closed) return;
    // O_NONBLOCK: opening cannot hang even if the reader went away meanwhile (it fails instead).
    const fd = fs.openSync(this.fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    const sock = new net.Socket({ fd, readable: false, writable: true });
    sock.on('error', () => this.close()); // EPIPE: the container closed its stdin or exited
    this.sock = sock;
    for (const input of this.pending.splice(0)) this.attach(input);
  }

  /** Feed a client's stdin to the container (queued until `open`). */
  attach(input: Readable): void {
    if (this.closed) return;
    if (!this.sock) {
      this.pending.push(input);
      return;
    }
    if (input.readableEnded || input.destroyed) {
      if (this.once) this.close(); // a client whose input is over already
      return;
    }
    this.sources.add(input);
    input.pipe(this.sock, { end: false });
    const done = (): void => {
      if (!this.sources.delete(input)) return;
      input.unpipe(this.sock);
      if (this.once) this.close();
    };
    input.once('end', done);
    input.once('close', done);
    input.once('error', done);
  }

  /** Close the write end (what is queued is written first, briefly): the container reads EOF. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sources) if (this.sock) s.unpipe(this.sock);
    this.sources.clear();
    this.pending.length = 0;
    const sock = this.sock;
    if (!sock) return;
    if (sock.writableLength === 0 || sock.destroyed) {
      sock.destroy();
      return;
    }
    const t = setTimeout(() => sock.destroy(), 2000);
    t.unref();
    sock.once('drain', () => {
      clearTimeout(t);
      sock.destroy();
    });
  }
}
