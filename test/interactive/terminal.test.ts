import test, { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { TestDaemon, BERTH } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { Term } from './term';

/**
 * Interactive mode driven through real terminals: every client runs under a pty (node-pty)
 * and its output is read back as a screen (@xterm/headless), as a user would see it.
 */

const PROMPT = /\/ # $/m;
const LONG = 60_000;

async function daemon(t: ExecutionContext): Promise<TestDaemon> {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  return d;
}

function env(d: TestDaemon): NodeJS.ProcessEnv {
  return { ...d.env, TERM: 'xterm-256color', LANG: 'C.UTF-8' };
}

/** A terminal running `berth ARGS` directly (its pid is berth's node: the wrapper execs). */
function berthTerm(t: ExecutionContext, d: TestDaemon, args: string[], size: { cols?: number; rows?: number } = {}): Term {
  const term = new Term(BERTH, args, { ...size, env: env(d) });
  t.teardown(() => term.dispose());
  return term;
}

/** Type a line and wait for `expect` on the screen. */
async function typeLine(term: Term, line: string, expect: RegExp | string | ((s: string) => boolean), timeout = LONG): Promise<string> {
  term.write(line + '\r');
  return term.waitFor(expect, { timeout, what: `${String(expect)} after typing ${JSON.stringify(line)}` });
}

let seq = 0;
/** Ask the shell for `stty size` until it says `want` (a resize travels asynchronously). */
async function waitSize(term: Term, want: string): Promise<void> {
  let got = '';
  await eventually(
    async () => {
      const tag = `sz${++seq}`;
      term.write(`echo "${tag}:$(stty size):"\r`);
      const screen = await term.waitFor(new RegExp(`^${tag}:(\\d+ \\d+):`, 'm'), { timeout: LONG, what: `${tag} output` });
      got = new RegExp(`^${tag}:(\\d+ \\d+):`, 'm').exec(screen)![1];
      return got === want;
    },
    { timeout: LONG, interval: 200, message: `stty size to say ${want}` },
  ).catch((e: Error) => {
    throw new Error(`${e.message} (it said ${got || 'nothing'})`);
  });
}

async function state(d: TestDaemon, name: string): Promise<string> {
  const r = await d.berth(['inspect', '-f', '{{.State.Status}}', name]);
  return r.stdout.trim() || `(inspect failed: ${r.stderr.trim()})`;
}

/** The bytes the container's main process has read so far (rchar): it grows when the shell takes input. */
async function bytesRead(d: TestDaemon, name: string): Promise<number> {
  const pid = Number((await d.berth(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
  return Number(/^rchar: (\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
}

/** `berth run -dit --name NAME busybox sh`, ready. */
async function runBox(t: ExecutionContext, d: TestDaemon, name = 'box'): Promise<void> {
  const r = await d.berth(['run', '-dit', '--name', name, 'busybox', 'sh']);
  t.is(r.code, 0, r.stderr);
  await eventually(async () => (await state(d, name)) === 'running', { message: `${name} running` });
}

function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => execFile('curl', ['-s', ...args], (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code as number) ?? 1 : 0, stdout })));
}

test('run -it: a real tty, its size and resizes, vi, Ctrl-C, exit code, the terminal restored', async (t) => {
  const d = await daemon(t);
  const term = new Term('sh', ['-c', `${BERTH} run -it --rm --name tty1 busybox sh; echo "RC=$?"; stty -a; echo END-OF-SESSION`], { cols: 100, rows: 30, env: env(d) });
  t.teardown(() => term.dispose());
  await term.waitFor(PROMPT, { timeout: LONG, what: 'the shell prompt' });

  const tty = await typeLine(term, 'echo "tty:$(tty):"', /^tty:(.*):$/m);
  t.is(/^tty:(.*):$/m.exec(tty)![1], '/dev/pts/0', 'the container has its own pty, made inside it');

  await waitSize(term, '30 100');
  term.resize(120, 40);
  await waitSize(term, '40 120');
  term.resize(70, 20);
  await waitSize(term, '20 70');
  term.resize(100, 30);
  await waitSize(term, '30 100');

  // A full-screen program.
  term.write('clear\r');
  await term.waitFor((s) => !s.includes('sz'), { what: 'a cleared screen' });
  term.write('vi /tmp/x\r');
  await term.waitFor((s) => s.split('\n').filter((l) => l.startsWith('~')).length >= 10, { timeout: LONG, what: "vi's ~ lines" });
  term.write('ihello from vi');
  await term.waitFor(/^hello from vi/m, { what: 'the text typed in vi' });
  // vi reads ESC followed at once by more bytes as one key: wait for command mode first.
  term.write('\x1b');
  await term.waitFor(/^- \/tmp\/x/m, { what: "vi's command mode" });
  term.write(':wq\r');
  await term.waitFor((s) => !s.split('\n').some((l) => l.startsWith('~')) && PROMPT.test(s), { timeout: LONG, what: 'vi gone, the prompt back' });
  await typeLine(term, 'cat /tmp/x; echo "cat-$((40+2))"', /^hello from vi\ncat-42$/m);

  // Ctrl-C reaches the foreground process through the container's pty.
  term.write('sleep 100\r');
  await term.waitFor(/sleep 100$/m, { what: 'the sleep command echoed' });
  const sleeping = async (): Promise<boolean> => /\bsleep 100\b/.test((await d.berth(['exec', 'tty1', 'ps'])).stdout);
  await eventually(sleeping, { timeout: LONG, message: 'sleep 100 to run in the container' });
  term.write('\x03');
  // SIGINT killed it (sh says 128+2), long before its 100 s were up.
  await typeLine(term, 'echo "after-sleep-rc-$?"', /^after-sleep-rc-130$/m);
  t.false(await sleeping(), 'Ctrl-C ended sleep 100');

  term.write('exit 7\r');
  const end = await term.waitFor(/END-OF-SESSION/, { timeout: LONG, history: true, what: 'the shell after berth' });
  t.regex(end, /^RC=7$/m, 'berth run -it exits with the shell exit code');
  const stty = end.slice(end.lastIndexOf('RC=7'));
  for (const flag of ['icanon', 'echo', 'opost', 'isig', 'icrnl']) t.regex(stty, new RegExp(`(^|\\s)${flag}(\\s|$)`, 'm'), `${flag} is back on after berth exits:\n${stty}`);
  t.is((await d.berth(['ps', '-aq'])).stdout, '', '--rm removed it');
});

test('detach with ctrl-p ctrl-q leaves it running; attach again redraws the screen; --detach-keys', async (t) => {
  const d = await daemon(t);
  await runBox(t, d);

  const a = berthTerm(t, d, ['attach', 'box']);
  await a.waitFor(PROMPT, { timeout: LONG, what: 'the prompt, redrawn on attach' });
  await typeLine(a, 'echo "marker-$((100+1))"', /^marker-101$/m);
  a.write('\x10\x11');
  t.is(await a.waitExit(LONG), 0, 'detaching exits 0');
  t.is(await state(d, 'box'), 'running', 'the container runs on after a detach');
  const ps = await d.berth(['ps']);
  t.regex(ps.stdout, /\bbox\b/, ps.stdout);

  // A new client sees the screen as it is, before typing anything.
  const b = berthTerm(t, d, ['attach', 'box']);
  const redrawn = await b.waitFor(/^marker-101$/m, { timeout: LONG, what: 'marker-101 redrawn on attach' });
  t.regex(redrawn, /echo "marker-\$\(\(100\+1\)\)"/, 'the command line is redrawn too');
  await typeLine(b, 'echo "second-$((2*100))"', /^second-200$/m);
  b.write('\x10\x11');
  t.is(await b.waitExit(LONG), 0);
  t.is(await state(d, 'box'), 'running');

  // Other detach keys; the default ones are then ordinary input.
  const c = berthTerm(t, d, ['attach', '--detach-keys', 'ctrl-a,d', 'box']);
  await c.waitFor(/^second-200$/m, { timeout: LONG, what: 'the redrawn screen' });
  // (To the shell, ctrl-p recalls the last line and ctrl-c drops it.)
  c.write('\x10\x11');
  await c.waitFor(/^\/ # echo "second-\$\(\(2\*100\)\)"$/m, { what: 'ctrl-p passed to the shell (history)' });
  c.write('\x03');
  await typeLine(c, 'echo "third-$((3*100))"', /^third-300$/m);
  t.is(c.exitCode, undefined, 'ctrl-p ctrl-q does not detach with --detach-keys ctrl-a,d');
  c.write('\x01d');
  t.is(await c.waitExit(LONG), 0, 'ctrl-a d detaches');
  t.is(await state(d, 'box'), 'running');

  // And the session is still fine afterwards.
  const e = berthTerm(t, d, ['attach', 'box']);
  await e.waitFor(/^third-300$/m, { timeout: LONG, what: 'the redrawn screen' });
  await typeLine(e, 'echo "fourth-$((4*100))"', /^fourth-400$/m);
  e.write('\x10\x11');
  t.is(await e.waitExit(LONG), 0);
});

test('two clients: both see and type; the smallest size wins; a frozen client does not stall the container', async (t) => {
  const d = await daemon(t);
  await runBox(t, d);

  const a = berthTerm(t, d, ['attach', 'box'], { cols: 100, rows: 30 });
  await a.waitFor(PROMPT, { timeout: LONG, what: 'prompt in A' });
  const b = berthTerm(t, d, ['attach', 'box'], { cols: 80, rows: 20 });
  await b.waitFor(PROMPT, { timeout: LONG, what: 'prompt in B' });

  await typeLine(a, 'echo "from-a-$((1+2))"', /^from-a-3$/m);
  await b.waitFor(/^from-a-3$/m, { timeout: LONG, what: "A's output in B" });
  await typeLine(b, 'echo "from-b-$((2+2))"', /^from-b-4$/m);
  await a.waitFor(/^from-b-4$/m, { timeout: LONG, what: "B's output in A" });
  await a.waitFor(/echo "from-b-\$\(\(2\+2\)\)"/, { timeout: LONG, what: "B's typing echoed in A" });

  // tmux's rule: the smallest rows and the smallest columns.
  await waitSize(a, '20 80');
  b.resize(90, 25);
  await waitSize(a, '25 90');
  b.resize(120, 40);
  await waitSize(a, '30 100');
  b.resize(80, 20);
  await waitSize(a, '20 80');
  b.write('\x10\x11');
  t.is(await b.waitExit(LONG), 0, 'B detached');
  await waitSize(a, '30 100');

  // A frozen client: its backlog grows to 4 MiB, then it is skipped; A and the container go on.
  const frozen = berthTerm(t, d, ['attach', 'box'], { cols: 100, rows: 30 });
  await frozen.waitFor(PROMPT, { timeout: LONG, what: 'prompt in the client to freeze' });
  process.kill(frozen.pid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(frozen.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  });
  a.write('clear\r');
  await a.waitFor((s) => !s.includes('from-'), { what: 'a cleared screen' });
  // The claim is that A gets all of it while the frozen client holds nothing up; how fast is
  // the tty benchmark's business (npm run bench -- tty). The timeout only catches a hang.
  a.write('seq 1 1000000; echo "seq-$((3*3))-done"\r');
  await a.waitFor(/^999999\n1000000\nseq-9-done$/m, { timeout: 300_000, what: 'the end of the output in A' });
  await typeLine(a, 'echo "still-$((7*7))"', /^still-49$/m);
  t.is(await state(d, 'box'), 'running');

  process.kill(frozen.pid, 'SIGCONT');
  // It was skipped while more than 4 MiB behind (tmux): it got the start of the output,
  // not all ~8 MB of it, then, once drained, the screen as it is now, redrawn.
  await frozen.waitFor(/^still-49\n\/ # $/m, { timeout: LONG, what: 'the current screen redrawn in the resumed client' });
  t.true(frozen.written < 7_000_000, `the frozen client was skipped, not sent all the output (${frozen.written} characters)`);
  t.is(frozen.exitCode, undefined, 'the resumed client is still attached');
  await typeLine(frozen, 'echo "back-$((5*5))"', /^back-25$/m);
  await a.waitFor(/^back-25$/m, { timeout: LONG, what: "the resumed client's command output in A" });
  t.is(await state(d, 'box'), 'running');
  frozen.write('\x10\x11');
  t.is(await frozen.waitExit(LONG), 0);
  a.write('\x10\x11');
  t.is(await a.waitExit(LONG), 0);
});

test('exec -it: its own pty, its size, its exit code', async (t) => {
  const d = await daemon(t);
  await runBox(t, d);
  const main = await d.berth(['exec', 'box', 'readlink', '/proc/1/fd/0']);
  t.is(main.code, 0, main.stderr);
  t.regex(main.stdout.trim(), /^\/dev\/pts\/\d+$/);

  const e = berthTerm(t, d, ['exec', '-it', 'box', 'sh'], { cols: 90, rows: 25 });
  await e.waitFor(PROMPT, { timeout: LONG, what: 'the exec shell prompt' });
  const tty = await typeLine(e, 'echo "tty:$(tty):"', /^tty:(.*):$/m);
  const path = /^tty:(.*):$/m.exec(tty)![1];
  t.regex(path, /^\/dev\/pts\/\d+$/);
  t.not(path, main.stdout.trim(), "the exec has a pty of its own, not the container's");
  await waitSize(e, '25 90');
  e.resize(110, 35);
  await waitSize(e, '35 110');
  await typeLine(e, 'vi /tmp/y', (s: string) => s.split('\n').filter((l) => l.startsWith('~')).length >= 10 ? true : false);
  e.write('ioutput of exec');
  await e.waitFor(/^output of exec/m, { what: 'the text typed in vi' });
  e.write('\x1b');
  await e.waitFor(/^- \/tmp\/y/m, { what: "vi's command mode" });
  e.write(':wq\r');
  await e.waitFor((s) => !s.split('\n').some((l) => l.startsWith('~')) && PROMPT.test(s), { timeout: LONG, what: 'vi gone' });
  const r = await d.berth(['exec', 'box', 'cat', '/tmp/y']);
  t.is(r.stdout, 'output of exec\n');
  e.write('exit 3\r');
  t.is(await e.waitExit(LONG), 3, 'exec -it exits with the shell exit code');
  t.is(await state(d, 'box'), 'running', 'the container runs on');
});

test('logs of a tty container show what the session printed', async (t) => {
  const d = await daemon(t);
  await runBox(t, d);
  const a = berthTerm(t, d, ['attach', 'box']);
  await a.waitFor(PROMPT, { timeout: LONG, what: 'prompt' });
  await typeLine(a, 'echo "log-$((6*7))"', /^log-42$/m);
  a.write('\x10\x11');
  t.is(await a.waitExit(LONG), 0);
  const logs = await eventually(async () => {
    const r = await d.berth(['logs', 'box']);
    return r.stdout.includes('log-42\r\n') && r;
  }, { message: 'log-42 in berth logs' });
  t.is(logs.code, 0);
  t.regex(logs.stdout, /echo "log-\$\(\(6\*7\)\)"\r\n/, 'the echoed command line is logged too');
  t.regex(logs.stdout, /^log-42\r$/m);
});

test('bad input: stopped or unknown containers, bad detach keys, bad sizes, a client gone mid escape sequence', async (t) => {
  const d = await daemon(t);

  // Unknown container.
  const unknown = await d.berth(['attach', 'nosuchbox']);
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /nosuchbox/);
  t.regex(unknown.stderr, /^hint: /m);

  // A tty container that ran and exited (no stdin).
  const ran = await d.berth(['run', '-t', '--name', 'done', 'busybox', 'true']);
  t.is(ran.code, 0, ran.stderr);
  const stopped1 = berthTerm(t, d, ['attach', 'done']);
  const code1 = await stopped1.waitExit(LONG);
  t.not(code1, 0);
  t.regex(stopped1.raw, /stopped container/i);
  t.regex(stopped1.raw, /^hint: /m);

  // Bad detach keys: an error, and the terminal is not left raw.
  await runBox(t, d);
  const bad = new Term('sh', ['-c', `${BERTH} attach --detach-keys nonsense-key box; echo "RC=$?"; stty -a; echo END-OF-SESSION`], { env: env(d) });
  t.teardown(() => bad.dispose());
  const badOut = await bad.waitFor(/END-OF-SESSION/, { timeout: LONG, history: true, what: 'berth attach to fail' });
  t.regex(badOut, /detach keys/i);
  t.regex(badOut, /^hint: /m);
  t.regex(badOut, /^RC=[1-9]\d*$/m);
  t.regex(badOut, /(^|\s)icanon(\s|$)/m);
  t.regex(badOut, /(^|\s)echo(\s|$)/m);
  const badRun = await d.berth(['run', '-it', '--rm', '--detach-keys', 'nonsense-key', 'busybox', 'sh']);
  t.not(badRun.code, 0);
  t.regex(badRun.stderr, /detach keys/i);
  t.regex(badRun.stderr, /^hint: /m);
  const running = (await d.containers.list({})).flatMap((c) => c.Names);
  t.deepEqual(running, ['/box'], 'nothing else runs');
  t.is(await state(d, 'box'), 'running');

  // Bad window sizes.
  for (const q of ['h=0&w=0', 'h=99999&w=80', 'h=24&w=-1', 'h=abc&w=80']) {
    const r = await curl(['--unix-socket', d.socket, '-X', 'POST', '-w', '\n%{http_code}', `http://localhost/v1.41/containers/box/resize?${q}`]);
    const lines = r.stdout.trim().split('\n');
    t.is(lines[lines.length - 1], '400', `resize?${q}: ${r.stdout}`);
    t.regex(r.stdout, /"message":"[^"]*(size|number)/i, `resize?${q}: ${r.stdout}`);
  }
  const ok = await curl(['--unix-socket', d.socket, '-X', 'POST', '-w', '\n%{http_code}', 'http://localhost/v1.41/containers/box/resize?h=24&w=80']);
  t.regex(ok.stdout, /200$/, ok.stdout);

  // A client gone in the middle of an escape sequence.
  const x = berthTerm(t, d, ['attach', 'box']);
  await x.waitFor(PROMPT, { timeout: LONG, what: 'prompt' });
  await typeLine(x, 'echo "before-$((8*8))"', /^before-64\n\/ # $/m); // and the shell waits at its prompt
  const idle = await bytesRead(d, 'box');
  x.write('\x1b[');
  // Nothing shows on the screen (the shell waits for the rest), but the shell has read it.
  await eventually(async () => (await bytesRead(d, 'box')) >= idle + 2, { timeout: LONG, message: 'the shell to read the half escape sequence' });
  process.kill(x.pid, 'SIGKILL');
  await x.waitExit(LONG);
  // That the container lives on is proven below: a new client talks to the same shell.
  const y = berthTerm(t, d, ['attach', 'box']);
  await y.waitFor(/^before-64$/m, { timeout: LONG, what: 'the redrawn screen' });
  // The shell's line editor still holds the half sequence (berth passed it on as typed):
  // ctrl-c drops that line, as a user would.
  y.write('\x03');
  await typeLine(y, 'echo "after-$((9*9))"', /^after-81$/m);
  y.write('\x10\x11');
  t.is(await y.waitExit(LONG), 0);
  t.is(await state(d, 'box'), 'running', 'a client dying mid escape sequence did not end the container');
});

// berthd accepts an attach to an exited -i container (it waits for the next start, for
// `start -ai`); `berth attach` itself refuses a stopped container, with a hint.
test('bad input: berth attach to a stopped -dit container fails with a hint', async (t) => {
  const d = await daemon(t);
  await runBox(t, d, 'halted');
  const stop = await d.berth(['stop', '-t', '1', 'halted']);
  t.is(stop.code, 0, stop.stderr);
  const stopped2 = berthTerm(t, d, ['attach', 'halted']);
  const code2 = await stopped2.waitExit(20_000).catch(async (e) => {
    t.fail(`berth attach to a stopped -dit container did not exit: ${String(e).split('\n')[0]}`);
    return -1;
  });
  if (code2 !== -1) {
    t.not(code2, 0);
    t.regex(stopped2.raw, /stopped container/i);
    t.regex(stopped2.raw, /^hint: /m);
  }

});

// Bad detach keys are refused before anything is created.
test('bad input: run -it --rm with bad detach keys leaves no container behind', async (t) => {
  const d = await daemon(t);
  const badRun = await d.berth(['run', '-it', '--rm', '--detach-keys', 'nonsense-key', 'busybox', 'sh']);
  t.not(badRun.code, 0);
  const left = await d.containers.list({ all: true });
  t.deepEqual(left.map((c) => `${c.Names[0]} ${c.State}`), []);
});

test('a tty session survives a berthd SIGKILL and restart: the same shell, its screen redrawn on attach, still typing', async (t) => {
  const d = await daemon(t);
  await runBox(t, d, 'keep');
  const pid = (await d.berth(['inspect', '-f', '{{.State.Pid}}', 'keep'])).stdout.trim();

  const a = berthTerm(t, d, ['attach', 'keep']);
  await a.waitFor(PROMPT, { timeout: LONG, what: 'the prompt' });
  await typeLine(a, 'X=$((6*7)); echo "before-$X"', /^before-42$/m);
  a.write('\x10\x11');
  t.is(await a.waitExit(LONG), 0);

  await d.kill();
  await d.restart();

  t.is(await state(d, 'keep'), 'running');
  t.is((await d.berth(['inspect', '-f', '{{.State.Pid}}', 'keep'])).stdout.trim(), pid, 'the same shell, adopted');
  const b = berthTerm(t, d, ['attach', 'keep']);
  await b.waitFor(/^before-42$/m, { timeout: LONG, what: 'the screen from before the restart, redrawn' });
  await typeLine(b, 'echo "after-$X"', /^after-42$/m); // the shell's variable: the very same session
  b.write('\x10\x11');
  t.is(await b.waitExit(LONG), 0);
  t.is(await state(d, 'keep'), 'running');
});
