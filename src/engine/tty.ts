import * as net from 'node:net';
import { Terminal } from '@xterm/headless';
import { SerializeAddon } from '@xterm/addon-serialize';

/**
 * One interactive container's terminal as berthd serves it. berth-monitor holds the pty
 * master (so the session survives berthd restarts) and speaks the attach protocol on a
 * unix socket: output bytes one way; input frames (0x00 LEN16 DATA) and resize frames
 * (0x01 ROWS16 COLS16) the other. berthd keeps one connection per container and:
 *
 * - feeds all output to a headless terminal emulator, so a client that attaches later is
 *   shown the screen as it is now (redrawn, like tmux), not a blank line;
 * - fans output out to every attached client; a client whose socket has more than
 *   MAX_BACKLOG bytes unsent is dropped, so a frozen client never stalls the container or
 *   the others (the monitor, too, drops berthd rather than block the pty);
 * - merges everyone's input;
 * - sizes the pty like tmux: the smallest rows and the smallest columns of the clients
 *   that told their size (a resize without a client applies to the newest client).
 */

export interface TtyClient {
  /** Send bytes; false when its buffer is full (the session checks `backlog`). */
  write(data: Buffer): boolean;
  /** Bytes queued and not yet sent. */
  backlog(): number;
  /** Drop the client (its connection is closed). */
  close(reason: string): void;
}

export interface Attached {
  readonly id: number;
  input(data: Buffer): void;
  resize(rows: number, cols: number): void;
  detach(): void;
}

const MAX_BACKLOG = 4 << 20;
const MAX_FRAME = 0xffff;

export class TtySession {
  private sock?: net.Socket;
  private readonly term: Terminal;
  private readonly serializer = new SerializeAddon();
  private readonly clients = new Map<number, { client: TtyClient; rows?: number; cols?: number }>();
  private nextId = 1;
  private size: { rows: number; cols: number };
  private closed = false;

  constructor(
    private readonly attachSocket: string,
    size: { rows?: number; cols?: number } = {},
    private readonly log: (m: string) => void = () => undefined,
  ) {
    this.size = { rows: size.rows || 24, cols: size.cols || 80 };
    this.term = new Terminal({ rows: this.size.rows, cols: this.size.cols, scrollback: 1000, allowProposedApi: true });
    this.term.loadAddon(this.serializer);
  }

  /** Connect to the monitor (at start, and again when berthd adopts a running container). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.attachSocket);
      sock.once('connect', () => {
        sock.removeListener('error', reject);
        sock.on('error', (e) => this.log(`tty: ${e.message}`));
        this.sock = sock;
        resolve();
      });
      sock.once('error', reject);
      sock.on('data', (d: Buffer) => this.output(d));
      sock.on('close', () => {
        if (this.sock === sock) this.sock = undefined;
      });
    });
  }

  /** Replay past output (the log's tail after a daemon restart) into the screen state. */
  prime(data: Buffer): void {
    this.term.write(data);
  }

  /** The escape sequences that redraw the current screen on a fresh terminal. */
  screen(): Promise<Buffer> {
    // Writes are applied asynchronously by xterm: wait for the ones queued so far.
    return new Promise((resolve) => this.term.write('', () => resolve(Buffer.from('\x1b[H\x1b[2J' + this.serializer.serialize({ scrollback: 0 }), 'utf8'))));
  }

  attach(client: TtyClient, size?: { rows?: number; cols?: number }): Attached {
    const id = this.nextId++;
    this.clients.set(id, { client, rows: size?.rows || undefined, cols: size?.cols || undefined });
    this.fit();
    return {
      id,
      input: (data) => this.input(data),
      resize: (rows, cols) => {
        const c = this.clients.get(id);
        if (!c) return;
        c.rows = rows;
        c.cols = cols;
        this.fit();
      },
      detach: () => {
        this.clients.delete(id);
        this.fit();
      },
    };
  }

  /** A resize from a client berthd cannot tell apart (Docker's /resize): the newest client's size, or the pty's when none is attached. */
  resizeNewest(rows: number, cols: number): void {
    const ids = [...this.clients.keys()];
    const newest = ids.length ? this.clients.get(ids[ids.length - 1]) : undefined;
    if (newest) {
      newest.rows = rows;
      newest.cols = cols;
      this.fit();
    } else this.apply(rows, cols);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Clients are not closed here: each attach ends when the run's exit is recorded, so a
    // client that then asks for the exit code gets the real one.
    this.clients.clear();
    this.sock?.destroy();
    this.term.dispose();
  }

  private output(data: Buffer): void {
    this.term.write(data);
    for (const [id, c] of this.clients) {
      if (c.client.backlog() > MAX_BACKLOG) {
        this.clients.delete(id);
        c.client.close('the client did not keep up with the output');
        this.fit();
        continue;
      }
      c.client.write(data);
    }
  }

  private input(data: Buffer): void {
    const sock = this.sock;
    if (!sock || data.length === 0) return;
    for (let i = 0; i < data.length; i += MAX_FRAME) {
      const part = data.subarray(i, i + MAX_FRAME);
      const head = Buffer.from([0, part.length >> 8, part.length & 255]);
      sock.write(Buffer.concat([head, part]));
    }
  }

  /** tmux's rule: the smallest rows and the smallest columns among clients that gave a size. */
  private fit(): void {
    const sized = [...this.clients.values()].filter((c) => c.rows && c.cols);
    if (sized.length === 0) return;
    this.apply(Math.min(...sized.map((c) => c.rows!)), Math.min(...sized.map((c) => c.cols!)));
  }

  private apply(rows: number, cols: number): void {
    if (rows === this.size.rows && cols === this.size.cols) return;
    this.size = { rows, cols };
    this.term.resize(cols, rows);
    this.sock?.write(Buffer.from([1, rows >> 8, rows & 255, cols >> 8, cols & 255]));
  }
}

/** Docker's limits for a window size: 1-10000 each way. */
export function checkSize(rows: number, cols: number): string | undefined {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || rows > 10000 || cols > 10000) {
    return `invalid window size ${rows}x${cols}`;
  }
  return undefined;
}
