import { spawnSync } from 'node:child_process';
import type { Socket } from 'node:net';
import type { CliContext } from './context';

/**
 * The client side of an interactive terminal (`berth run -it`, `attach`, `exec -it`): the
 * caller's terminal goes into raw mode (and is restored on every way out: the stream
 * ending, an error, a signal, process exit), keystrokes go to berthd as they are typed
 * (berthd watches for the detach keys), output is written as it comes, and every window
 * resize (SIGWINCH) is sent on. Without a terminal on stdin it just streams.
 */

export interface TerminalStream {
  socket: Socket;
  /** Tell berthd our window size. */
  resize(rows: number, cols: number): Promise<void>;
}

export function windowSize(): { rows?: number; cols?: number } {
  // A terminal that does not know its size (0x0, e.g. script(1)'s) has none to tell.
  if (!process.stdout.isTTY || !(process.stdout.rows > 0) || !(process.stdout.columns > 0)) return {};
  return { rows: process.stdout.rows, cols: process.stdout.columns };
}

/** Attach to a tty container's terminal. */
export async function attachTerminal(ctx: CliContext, id: string, o: { stdin: boolean; detachKeys?: string }): Promise<TerminalStream> {
  const { rows, cols } = windowSize();
  const { socket, headers } = await ctx.transport.hijackWithHeaders('POST', `/containers/${encodeURIComponent(id)}/attach`, {
    query: { stream: 1, stdin: o.stdin ? 1 : 0, stdout: 1, stderr: 1, detachKeys: o.detachKeys, h: rows, w: cols },
  });
  const client = headers['berth-attach-id'];
  return {
    socket,
    resize: async (r, c) => {
      const res = await ctx.transport.request('POST', `/containers/${encodeURIComponent(id)}/resize`, { query: { h: r, w: c, client: typeof client === 'string' ? client : undefined } });
      res.resume();
    },
  };
}

/** Run the session until the stream ends; the terminal is raw meanwhile and restored after. */
export async function runTerminal(t: TerminalStream, o: { stdin: boolean; afterAttach?: () => Promise<void> }): Promise<void> {
  const stdin = process.stdin;
  const raw = o.stdin && stdin.isTTY;
  const restore = () => {
    if (!raw || !stdin.isTTY) return;
    stdin.setRawMode(false);
    opost(true);
  };
  process.once('exit', restore);
  const onResize = () => {
    const { rows, cols } = windowSize();
    if (rows && cols) void t.resize(rows, cols).catch(() => undefined);
  };
  const onData = (d: Buffer) => t.socket.write(d);
  try {
    if (raw) {
      stdin.setRawMode(true);
      // libuv's raw mode keeps output processing (\n -> \r\n); the container's pty does
      // that already, so turn it off as a real raw mode (cfmakeraw, docker's) does.
      opost(false);
    }
    if (o.stdin) {
      stdin.on('data', onData);
      stdin.resume();
    }
    process.stdout.on('resize', onResize);
    const ended = new Promise<void>((resolve) => {
      t.socket.on('close', () => resolve());
      t.socket.on('end', () => resolve()); // berthd ended it: the run is over or we detached
      t.socket.on('error', () => resolve());
    });
    t.socket.on('data', (d: Buffer) => process.stdout.write(d));
    if (o.afterAttach) await o.afterAttach();
    await ended;
    t.socket.destroy();
  } finally {
    stdin.off('data', onData);
    if (o.stdin) stdin.pause();
    process.stdout.off('resize', onResize);
    restore();
    process.off('exit', restore);
  }
}

/**
 * Output post-processing of the terminal on stdin, on or off (`stty [-]opost`). Not through
 * the host-tool runner, which is asynchronous: this runs in the process's exit handler, on
 * our own terminal (stdin inherited), and a failure only leaves the setting as it was.
 */
function opost(on: boolean): void {
  spawnSync('stty', [on ? 'opost' : '-opost'], { stdio: ['inherit', 'ignore', 'ignore'] });
}
