import * as pty from 'node-pty';
import { Terminal } from '@xterm/headless';
import { eventually, EventuallyTimeout } from '../helpers/eventually';

/**
 * A real terminal for tests: a pty (node-pty) running a command, its output interpreted by
 * a headless xterm so a test reads the screen a user would see. Everything waits by polling
 * the screen with `eventually`, never by fixed sleeps.
 */
export class Term {
  readonly p: pty.IPty;
  readonly xterm: Terminal;
  /** What the program wrote, as text (the first MB of it: bulk output tests write megabytes). */
  raw = '';
  /** How many characters the program wrote in all. */
  written = 0;
  exitCode?: number;
  readonly exited: Promise<number>;
  private pending: Promise<void> = Promise.resolve();

  constructor(file: string, args: string[], opts: { cols?: number; rows?: number; env: NodeJS.ProcessEnv; cwd?: string }) {
    const cols = opts.cols ?? 100;
    const rows = opts.rows ?? 30;
    this.xterm = new Terminal({ cols, rows, scrollback: 5000, allowProposedApi: true });
    this.p = pty.spawn(file, args, { name: 'xterm-256color', cols, rows, env: opts.env as { [k: string]: string }, cwd: opts.cwd ?? '/' });
    this.p.onData((d) => {
      this.written += d.length;
      if (this.raw.length < 1_000_000) this.raw += d;
      this.pending = new Promise((resolve) => this.xterm.write(d, resolve));
    });
    this.exited = new Promise((resolve) =>
      this.p.onExit(({ exitCode }) => {
        this.exitCode = exitCode;
        resolve(exitCode);
      }),
    );
  }

  get pid(): number {
    return this.p.pid;
  }

  write(s: string): void {
    this.p.write(s);
  }

  /** Resize the terminal (the program gets SIGWINCH) and our view of it. */
  resize(cols: number, rows: number): void {
    this.p.resize(cols, rows);
    this.xterm.resize(cols, rows);
  }

  /** The visible screen, one string per row (trailing blanks trimmed). */
  async screen(): Promise<string[]> {
    await this.pending;
    await new Promise<void>((r) => this.xterm.write('', r));
    const b = this.xterm.buffer.active;
    const out: string[] = [];
    for (let y = 0; y < this.xterm.rows; y++) out.push(b.getLine(b.baseY + y)?.translateToString(true) ?? '');
    return out;
  }

  /** Scrollback and screen together, as one text. */
  async history(): Promise<string> {
    await this.pending;
    await new Promise<void>((r) => this.xterm.write('', r));
    const b = this.xterm.buffer.active;
    const out: string[] = [];
    for (let y = 0; y < b.length; y++) out.push(b.getLine(y)?.translateToString(true) ?? '');
    return out.join('\n');
  }

  /** Poll the screen until `test` matches it; throws with the screen on timeout. */
  async waitFor(test: RegExp | string | ((screen: string) => boolean), opts: { timeout?: number; what?: string; history?: boolean } = {}): Promise<string> {
    const timeout = opts.timeout ?? 30_000;
    const match = typeof test === 'function' ? test : typeof test === 'string' ? (s: string) => s.includes(test) : (s: string) => test.test(s);
    let text = '';
    try {
      return await eventually(
        async () => {
          text = opts.history ? await this.history() : (await this.screen()).join('\n');
          return match(text) && text;
        },
        { timeout, message: opts.what ?? String(test) },
      );
    } catch (e) {
      if (!(e instanceof EventuallyTimeout)) throw e;
      throw new Error(`timed out after ${timeout} ms waiting for ${opts.what ?? String(test)}; the screen:\n${text}\n(exit code: ${this.exitCode})`);
    }
  }

  /** Wait for the program to exit; throws on timeout. */
  async waitExit(timeout = 30_000): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(async () => reject(new Error(`program did not exit within ${timeout} ms; screen:\n${(await this.screen()).join('\n')}`)), timeout);
    });
    try {
      return await Promise.race([this.exited, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kill the program if it still runs (SIGKILL; resumes it first if it was stopped). */
  kill(): void {
    if (this.exitCode !== undefined) return;
    try {
      process.kill(this.p.pid, 'SIGCONT');
      process.kill(this.p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }

  dispose(): void {
    this.kill();
    this.xterm.dispose();
  }
}
