import test from 'ava';
import * as pty from 'node-pty';
import { Terminal } from '@xterm/headless';
import { TestDaemon, useDaemon, type DaemonShare } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

/**
 * The real docker CLI against berthd in a real terminal: the CLI runs under node-pty (so
 * it sees a tty, puts it in raw mode, sends SIGWINCH resizes) and what it prints is fed to
 * a headless xterm, whose screen the tests read. Every wait polls the screen (or the exit)
 * with a deadline; nothing relies on a fixed sleep.
 */

class Screen {
  readonly p: pty.IPty;
  readonly term: Terminal;
  /** Everything the CLI printed, raw (for failure messages). */
  raw = '';
  readonly exited: Promise<{ exitCode: number; signal?: number }>;
  exit?: { exitCode: number; signal?: number };

  constructor(args: string[], env: NodeJS.ProcessEnv, readonly cols = 100, readonly rows = 30) {
    this.term = new Terminal({ cols, rows, scrollback: 1000, allowProposedApi: true });
    this.p = pty.spawn('docker', args, { name: 'xterm-256color', cols, rows, env: env as { [k: string]: string }, cwd: '/' });
    this.p.onData((d) => {
      this.raw += d;
      this.term.write(d);
    });
    this.exited = new Promise((resolve) =>
      this.p.onExit((e) => {
        this.exit = e;
        resolve(e);
      }),
    );
  }

  /** The screen's text (scrollback included), once xterm has applied everything written so far. */
  text(): Promise<string> {
    return new Promise((resolve) =>
      this.term.write('', () => {
        const b = this.term.buffer.active;
        const lines: string[] = [];
        for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
        resolve(lines.join('\n'));
      }),
    );
  }

  /** Poll the screen until `re` matches; the match, or an error showing the screen. */
  async waitFor(re: RegExp, timeout = 60_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const m = (await this.text()).match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} on the screen:\n${await this.text()}\n--- raw: ${JSON.stringify(this.raw.slice(-2000))}`);
      if (this.exit) throw new Error(`docker exited (${JSON.stringify(this.exit)}) before ${re} showed:\n${await this.text()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Type a command, then wait for the marker its output must contain (marker split in the command so the echo of the typing does not match). */
  async run(cmd: string, re: RegExp, timeout?: number): Promise<RegExpMatchArray> {
    this.p.write(cmd + '\r');
    return this.waitFor(re, timeout);
  }

  async waitExit(timeout = 60_000): Promise<{ exitCode: number; signal?: number }> {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), timeout)))]);
    clearTimeout(t);
    if (!r) throw new Error(`docker did not exit in ${timeout} ms:\n${await this.text()}`);
    return r;
  }

  kill(): void {
    if (!this.exit) {
      try {
        this.p.kill('SIGKILL');
      } catch {
        /* gone already */
      }
    }
    this.term.dispose();
  }
}

/** `sh` output markers: `echo A""B` prints AB while the typed line shows A""B. */
const mark = (a: string, b: string) => ({ cmd: `echo ${a}""${b}`, re: new RegExp(`^${a}${b}$`, 'm') });

// One daemon for every test here (none restarts or kills it); each names its containers
// with its own tag (useDaemon), so they run side by side and each is leak-checked.
let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(() => d?.stop());

/** This test's share of the daemon; the screens it opens are killed at its end. */
function share(t: import('ava').ExecutionContext): DaemonShare & { screens: Screen[] } {
  const screens: Screen[] = [];
  const s = useDaemon(t, d);
  // Registered after useDaemon's: ava runs teardowns last-first, so the screens go before the containers.
  t.teardown(() => {
    for (const x of screens) x.kill();
  });
  return Object.assign(s, { screens });
}

function screen(sh: { screens: Screen[] }, args: string[], cols?: number, rows?: number): Screen {
  const s = new Screen(args, d.env, cols, rows);
  sh.screens.push(s);
  return s;
}

/** As `docker run -dit --name <name> busybox sh`, through the API: a tty, stdin kept open, detached. */
async function box(name: string): Promise<void> {
  await d.containers.create({ Image: 'busybox', Cmd: ['sh'], Tty: true, OpenStdin: true, StdinOnce: false, AttachStdin: false, AttachStdout: false, AttachStderr: false }, name);
  await d.containers.start(name);
}

test('docker run -it --rm busybox sh: a pty, its size, a resize, the exit code', async (t) => {
  const sh = share(t);
  const name = sh.name('it');
  const s = screen(sh, ['run', '-it', '--rm', '--name', name, 'busybox', 'sh'], 100, 30);
  await s.waitFor(/[#$] $/m, 60_000);
  const tty = await s.run('tty; ' + mark('T', 'DONE').cmd, /^(\/dev\/\S+)\s*\n\s*TDONE$/m);
  t.is(tty[1], '/dev/pts/0');
  const size = await s.run('stty size; ' + mark('S', '1').cmd, /^(\d+ \d+)\s*\n\s*S1$/m);
  t.is(size[1], '30 100');
  // Resize the terminal: docker gets SIGWINCH and posts /resize; poll until the pty follows.
  s.p.resize(120, 40);
  s.term.resize(120, 40);
  let i = 0;
  await eventually(
    async () => {
      i++;
      return (await s.run(`stty size; ${mark('R', String(i)).cmd}`, new RegExp(`^(\\d+ \\d+)\\s*\\n\\s*R${i}$`, 'm')))[1] === '40 120';
    },
    { timeout: 60_000, interval: 100, message: 'stty size to say 40 120 after resizing the terminal to 120x40' },
  );
  s.p.write('exit 7\r');
  const e = await s.waitExit();
  t.is(e.exitCode, 7, await s.text());
  // --rm: the container goes away.
  await eventually(async () => (await d.containers.list({ all: true, filters: { name: [name] } })).length === 0, { message: 'the --rm container to be removed' });
});

test('docker attach shows the current screen; ctrl-p ctrl-q detaches and the container keeps running', async (t) => {
  const sh = share(t);
  const name = sh.name('box');
  await box(name);

  // (2) first attach: the prompt is redrawn without typing (the screen is replayed).
  const a1 = screen(sh, ['attach', name], 100, 30);
  await a1.waitFor(/[#$] $/m, 60_000);
  await a1.run('echo m""1', /^m1$/m);
  a1.p.write('\x10'); // ctrl-p
  a1.p.write('\x11'); // ctrl-q
  const e1 = await a1.waitExit();
  // As against Docker: the CLI says "read escape sequence" and exits 1 (containerd/nerdctl#3571 records Docker's 1).
  const tail = (await a1.text()).trimEnd().split('\n').slice(-2);
  t.is(e1.exitCode, 1, `docker attach exits 1 after a detach, as with Docker; screen tail: ${JSON.stringify(tail)}`);
  t.regex(tail.join('\n'), /read escape sequence/, 'the CLI saw the detach keys, not a dropped connection');
  t.true((await d.containers.inspect(name)).State.Running, 'the container still runs after the detach');

  // A second attach shows m1 without typing anything.
  const a2 = screen(sh, ['attach', name], 100, 30);
  await t.notThrowsAsync(a2.waitFor(/^m1$/m, 60_000), 'm1 shown by the second attach without typing');
  a2.p.write('\x10\x11');
  t.is((await a2.waitExit()).exitCode, 1, 'the second attach detaches too');
  t.true((await d.containers.inspect(name)).State.Running, 'the container still runs after the second detach');
});

test('docker exec -it box sh: a pty, its size, the exit code', async (t) => {
  const sh = share(t);
  const name = sh.name('box');
  await box(name);
  const x = screen(sh, ['exec', '-it', name, 'sh'], 90, 25);
  await x.waitFor(/[#$] $/m, 60_000);
  const tty = await x.run('tty; ' + mark('X', 'T').cmd, /^(\S+)\s*\n\s*XT$/m);
  t.regex(tty[1], /^\/dev\/pts\/\d+$/);
  const size = await x.run('stty size; ' + mark('X', 'S').cmd, /^(\d+ \d+)\s*\n\s*XS$/m);
  t.is(size[1], '25 90', 'stty size in exec -it matches the terminal (docker sends it by POST /exec/{id}/resize right after the start)');
  // A resize once the exec runs does reach its pty.
  x.p.resize(110, 35);
  x.term.resize(110, 35);
  let i = 0;
  await eventually(
    async () => {
      i++;
      return (await x.run(`stty size; ${mark('Y', String(i)).cmd}`, new RegExp(`^(\\d+ \\d+)\\s*\\n\\s*Y${i}$`, 'm')))[1] === '35 110';
    },
    { timeout: 60_000, interval: 100, message: 'stty size to say 35 110 after resizing the terminal during exec -it' },
  );
  x.p.write('exit 3\r');
  const ex = await x.waitExit();
  t.is(ex.exitCode, 3, await x.text());
});

test('echo hi | docker exec -i box cat prints hi (the exec start body is not stdin)', async (t) => {
  const sh = share(t);
  const name = sh.name('box');
  await box(name);
  const cat = await d.docker(['exec', '-i', name, 'cat'], { input: 'hi\n' });
  t.is(cat.code, 0, cat.stderr);
  t.is(cat.stdout, 'hi\n');
  t.true((await d.containers.inspect(name)).State.Running, 'the container still runs after the exec');
});
