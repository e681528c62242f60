import * as net from 'node:net';
import { Terminal } from '@xterm/headless';
import { SerializeAddon } from '@xterm/addon-serialize';
import type { TtyClient } from './service';

/**
 * One interactive container's terminal as berthd serves it. berth-monitor holds the pty
 * master (so the session survives berthd restarts) and speaks the attach protocol on a
 * unix socket: output bytes one way; input frames (0x00 LEN16 DATA) and resize frames
 * (0x01 ROWS16 COLS16) the other. berthd keeps one connection per container and:
 *
 * - feeds all output to a headless terminal emulator, so a client that attaches later is
 *   shown the screen as it is now (redrawn, like tmux), not a blank line;
 * - fans output out to every attached client; a client whose socket has more than
 *   MAX_BACKLOG bytes unsent is skipped (like tmux): it gets nothing more until it has
 *   drained, and then the whole screen, redrawn. A frozen client never stalls the
 *   container or the others, and costs no more memory than its backlog (the monitor, for
 *   its part, drops berthd rather than block the pty);
 * - merges everyone's input;
 * - sizes the pty like tmux: the smallest rows and the smallest columns of the clients
 *   that told their size (a resize without a client applies to the newest client).
 */

export type { TtyClient } from './service';

export interface Attached {
  readonly id: number;
  input(data: Buffer): void;
  resize(rows: number, cols: number): void;
  detach(): void;
}

const MAX_BACKLOG = 4 << 20;
const MAX_FRAME = 0xffff;
/** Output kept raw for rebuilding the screen when the emulator falls behind. */
const RECENT = 1 << 20;
/** Output handed to the emulator and not yet parsed, beyond which it stops being fed. */
const MAX_PARSE_BACKLOG = 2 << 20;

export class TtySession {
  private sock?: net.Socket;
  private readonly term: Terminal;
  private readonly serializer = new SerializeAddon();
  private readonly clients = new Map<number, { client: TtyClient; rows?: number; cols?: number; lagging?: boolean }>();
  private nextId = 1;
  private size: { rows: number; cols: number };
  private closed = false;
  /** The last RECENT bytes of output, raw. */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  /** Bytes given to the emulator and not parsed yet; over MAX_PARSE_BACKLOG the screen goes stale. */
  private parsing = 0;
  private stale = false;
  /** Output was lost between the monitor and us: rebuild from the log, not from `recent`. */
  private gap = false;

  constructor(
    private readonly attachSocket: string,
    size: { rows?: number; cols?: number } = {},
    private readonly log: (m: string) => void = () => undefined,
    /** The output as logged (its tail): the truth to rebuild the screen from after a gap. */
    private readonly logTail?: () => Promise<Buffer>,
  ) {
    this.size = { rows: size.rows || 24, cols: size.cols || 80 };
    this.term = new Terminal({ rows: this.size.rows, cols: this.size.cols, scrollback: 1000, allowProposedApi: true });
    this.term.loadAddon(this.serializer);
  }

  /**
   * Connect to the monitor (at start, and again when berthd adopts a running container).
   * Should the monitor drop us (we fell 4 MiB behind), connect again at once: input and
   * resizes must keep working; the output in between is lost to clients (it is in the log).
   */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.attachSocket);
      sock.once('connect', () => {
        sock.removeListener('error', reject);
        sock.on('error', (e) => this.log(`tty: ${e.message}`));
        this.sock = sock;
        // Our size, again: the monitor does not know who we are.
        sock.write(resizeFrame(this.size.rows, this.size.cols));
        resolve();
      });
      sock.once('error', reject);
      sock.on('data', (d: Buffer) => this.output(d));
      sock.on('close', () => {
        if (this.sock !== sock) return;
        this.sock = undefined;
        if (this.closed) return;
        this.log('the monitor dropped berthd (it fell behind the output); reconnecting');
        // Output was lost in between: the screen is rebuilt from the log, and every client
        // is sent it, so nobody is left with a torn screen.
        this.gap = true;
        // After the run the socket is gone and this fails quietly; the session closes on exit.
        setTimeout(() => void this.connect().then(() => this.redrawAll(), () => undefined), 10);
      });
    });
  }

  /** Replay past output (the log's tail after a daemon restart) into the screen state. */
  prime(data: Buffer): void {
    this.remember(data);
    this.feed(data);
  }

  /**
   * The escape sequences that redraw the current screen on a fresh terminal. If the
   * emulator fell behind a burst, it is rebuilt from the recent output first.
   */
  async screen(): Promise<Buffer> {
    if (this.gap && this.logTail) {
      this.gap = false;
      this.stale = false;
      const tail = await this.logTail().catch(() => Buffer.concat(this.recent));
      this.term.reset();
      this.feed(tail);
    } else if (this.stale) {
      this.stale = false;
      this.term.reset();
      this.feed(Buffer.concat(this.recent));
    }
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
    this.remember(data);
    // Parsing is the expensive part: during a burst stop feeding the emulator (it would
    // starve the socket and the monitor would drop us) and rebuild it when asked.
    if (this.stale || this.parsing > MAX_PARSE_BACKLOG) this.stale = true;
    else this.feed(data);
    for (const c of this.clients.values()) {
      if (c.lagging) continue;
      if (c.client.backlog() > MAX_BACKLOG) {
        c.lagging = true;
        void c.client.drained().then(async () => {
          if (this.closed) return;
          const screen = await this.screen();
          if (c.lagging) c.client.write(screen);
          c.lagging = false;
        });
        continue;
      }
      c.client.write(data);
    }
  }

  private async redrawAll(): Promise<void> {
    if (this.clients.size === 0) return;
    const screen = await this.screen();
    for (const c of this.clients.values()) if (!c.lagging) c.client.write(screen);
  }

  private feed(data: Buffer): void {
    this.parsing += data.length;
    this.term.write(data, () => (this.parsing -= data.length));
  }

  private remember(data: Buffer): void {
    this.recent.push(data);
    this.recentBytes += data.length;
    while (this.recentBytes - this.recent[0].length >= RECENT) this.recentBytes -= this.recent.shift()!.length;
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
    this.sock?.write(resizeFrame(rows, cols));
  }
}

/** The attach protocol's resize frame: 0x01 ROWS16 COLS16 (monitor.c's header). */
function resizeFrame(rows: number, cols: number): Buffer {
  return Buffer.from([1, rows >> 8, rows & 255, cols >> 8, cols & 255]);
}
