import * as net from 'node:net';

/** The first wait before connecting again after a loss; doubled each time up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 30_000;

/**
 * berthd's line to a container's monitor: a connection to its watch socket (monitor.c,
 * "Watch socket"), which the monitor holds and never writes to, so it ends when the
 * monitor's process does. `onLost` is called at once when it ends or cannot be made (a
 * killed monitor's socket refuses connections; a dead one's /proc/PID/cwd is gone), for
 * a monitor this berthd started and for one it adopted after a restart alike: the caller
 * then looks (the exit record, else a dead monitor: exit-watch.ts). Until closed, the
 * link connects again after each loss, waiting longer each time, so a live monitor is
 * watched again and a monitor without the socket (started by an older berth) costs a
 * connect every 30 s; the exit watch's slow poll still covers that one.
 */
export class MonitorLink {
  private sock?: net.Socket;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private delay = RETRY_MIN_MS;

  constructor(
    private readonly socketPath: string,
    private readonly onLost: () => void,
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const sock = net.connect(this.socketPath);
    this.sock = sock;
    let since = 0;
    sock.unref(); // never what keeps berthd running
    sock.on('connect', () => (since = Date.now()));
    sock.on('data', () => undefined); // the monitor sends nothing; discard if it ever does
    sock.on('error', () => undefined); // 'close' follows
    sock.on('close', () => {
      if (this.sock !== sock || this.closed) return;
      this.sock = undefined;
      if (since && Date.now() - since >= RETRY_MAX_MS) this.delay = RETRY_MIN_MS; // it held a good while
      this.onLost();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.connect();
      }, this.delay);
      this.timer.unref();
      this.delay = Math.min(this.delay * 2, RETRY_MAX_MS);
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.sock?.destroy();
    this.sock = undefined;
  }
}
