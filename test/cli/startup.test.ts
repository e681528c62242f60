import test from 'ava';
import * as path from 'node:path';
import type { Command } from 'commander';
import { buildProgram, plainVerb } from '../../src/cli/main';
import { globalOptions, parseAnswer, quickCall } from '../../src/cli/quick';
import { runCommand } from '../helpers/proc';
import { BERTH, TestDaemon } from '../helpers/daemon';
import { BERTH_VERSION } from '../../src/version';

// The CLI's start-up shortcuts must not change what it does: a call builds only the command
// its verb names, and that command is the whole program's, flag for flag; `berth` runs the
// bundles `npm run build` makes, whose entry (quick.ts) answers a few plain calls alone and
// must answer them as the whole CLI does (one daemon for the file).

/** The whole CLI, bypassing quick.ts: the bundle it hands over to. */
const WHOLE = path.join(__dirname, '..', '..', 'src', 'cli', 'berth-bundle.js');

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start({ args: ['--volume-driver', 'dir'] });
});
test.after.always(async () => {
  await d?.stop();
});

/** `berth ARGS` (through quick.ts) and the whole CLI on `wholeArgs` (default the same). */
async function both(args: string[], wholeArgs = args) {
  const quick = await runCommand(BERTH, args, { env: d.env });
  const whole = await runCommand(process.execPath, [WHOLE, '--', ...wholeArgs], { env: d.env });
  return { quick, whole };
}

/** Every command under `c` (itself first) by its path, with its help text and options. */
function describe(c: Command, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  const name = prefix ? `${prefix} ${c.name()}` : c.name();
  const opts = c.options.map((o) => `${o.flags}|${String(o.defaultValue)}|${o.negate}|${o.mandatory}`).join('\n');
  out.set(name, `${c.helpInformation()}\n${c.aliases().join(',')}\n${opts}`);
  for (const sub of c.commands) for (const [k, v] of describe(sub, name)) out.set(k, v);
  return out;
}

test('a program built for one verb has that command exactly as the whole program has it, and nothing else', (t) => {
  const whole = buildProgram();
  const names = whole.commands.map((c) => c.name());
  t.true(names.length > 40, `${names.length} top-level commands`);
  for (const name of names) {
    const one = buildProgram(name);
    t.deepEqual(
      one.commands.map((c) => c.name()),
      [name],
      name,
    );
    t.deepEqual(describe(one.commands[0]), describe(whole.commands.find((c) => c.name() === name)!), name);
  }
  t.is(buildProgram('no-such-verb').commands.length, 0);
});

test('only a plain verb after the global options picks one command; anything else gets the whole program', (t) => {
  t.is(plainVerb(['version']), 'version');
  t.is(plainVerb(['-H', 'unix:///s', '--root', '/r', '--no-autostart', 'volume', 'snapshot', 'v']), 'volume');
  t.is(plainVerb(['--host=unix:///s', '--root=/r', '-Hunix:///t', 'ps', '-a']), 'ps');
  for (const args of [[], ['--help'], ['-h'], ['--version'], ['-v'], ['help', 'run'], ['--bogus', 'ps'], ['-H']]) t.is(plainVerb(args), undefined, args.join(' '));
});

test('quick.ts takes only the plain shapes of version, volume snapshot and volume clone', (t) => {
  t.deepEqual(globalOptions(['-H', 'unix:///a', '--root=/r', '--no-autostart', 'version']), { host: 'unix:///a', root: '/r', rest: ['version'] });
  t.deepEqual(globalOptions(['-Hunix:///b', '--host', 'unix:///c', 'ps']), { host: 'unix:///c', rest: ['ps'] });
  t.like(quickCall(['version']), { method: 'GET', path: '/version' });
  t.like(quickCall(['volume', 'snapshot', 'v']), { method: 'POST', path: '/berth/v1/volumes/v/snapshots' });
  t.like(quickCall(['volume', 'snapshot', 'v', 'a b']), { path: '/berth/v1/volumes/v/snapshots?name=a%20b' });
  t.like(quickCall(['volume', 'clone', 'v@s', 'n']), { path: '/berth/v1/volumes/v/clone?snapshot=s&name=n' });
  t.like(quickCall(['volume', 'clone', 'v', 'n']), { path: '/berth/v1/volumes/v/clone?name=n' });
  const whole = [
    ['version', '-f', 'json'],
    ['version', 'x'],
    ['volume', 'snapshot', 'v', '--pre', 'true'],
    ['volume', 'snapshot', 'rm', 'v', 's'],
    ['volume', 'snapshot', 'remove', 'v'],
    ['volume', 'snapshot', 'help'],
    ['volume', 'snapshot', 'v', 's', 'extra'],
    ['volume', 'snapshot', '--', 'v'],
    ['volume', 'clone', 'v'],
    ['volume', 'clone', 'v', '--help'],
    ['volume', 'ls'],
    ['ps'],
  ];
  for (const args of whole) t.is(quickCall(args), undefined, args.join(' '));
});

test('quick.ts reads an HTTP/1.1 answer chunked or by length, and refuses a cut or malformed one', (t) => {
  const chunked = parseAnswer(Buffer.from('HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'));
  t.deepEqual({ status: chunked.status, body: chunked.body.toString() }, { status: 201, body: '{"a":1}' });
  const sized = parseAnswer(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}'));
  t.deepEqual({ status: sized.status, body: sized.body.toString() }, { status: 404, body: '{}' });
  t.throws(() => parseAnswer(Buffer.from('')));
  t.throws(() => parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}')));
  t.throws(() => parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}')));
});

test('berth version, volume snapshot and volume clone print what the whole CLI prints, and refuse as it refuses', async (t) => {
  const v = await both(['version']);
  t.is(v.quick.code, 0, v.quick.stderr);
  t.is(v.quick.stdout, v.whole.stdout);
  t.regex(v.quick.stdout, /^Server: berth /);

  await d.volumes.create({ Name: 'quick-v' });
  const snap = await both(['volume', 'snapshot', 'quick-v', 'q1'], ['volume', 'snapshot', 'quick-v', 'w1']);
  t.deepEqual([snap.quick.code, snap.quick.stdout, snap.whole.stdout], [0, 'q1\n', 'w1\n']);
  const named = await runCommand(BERTH, ['volume', 'snapshot', 'quick-v'], { env: d.env });
  t.is(named.code, 0, named.stderr);
  t.true((await d.volumes.snapshots('quick-v')).some((s) => s.Name + '\n' === named.stdout), named.stdout);
  const again = await both(['volume', 'snapshot', 'quick-v', 'q1']);
  t.not(again.quick.code, 0);
  t.deepEqual(again.quick, again.whole);
  t.regex(again.quick.stderr, /^berth: .*\nhint: /);

  const clone = await both(['volume', 'clone', 'quick-v@q1', 'quick-c1'], ['volume', 'clone', 'quick-v', 'quick-c2']);
  t.deepEqual([clone.quick.code, clone.quick.stdout, clone.whole.stdout], [0, 'quick-c1\n', 'quick-c2\n']);
  t.is((await d.volumes.inspect('quick-c1')).Name, 'quick-c1');
  for (const args of [
    ['volume', 'clone', 'no-such-volume', 'quick-c3'],
    ['volume', 'clone', 'quick-v@no-such-snap', 'quick-c3'],
    ['volume', 'clone', 'quick-v', 'quick-c1'],
    ['volume', 'snapshot', 'no-such-volume'],
  ]) {
    const r = await both(args);
    t.not(r.quick.code, 0, args.join(' '));
    t.deepEqual(r.quick, r.whole, args.join(' '));
  }
});

test('with no daemon on the socket quick.ts hands over: the whole CLI says so (--no-autostart) as it always did', async (t) => {
  const args = ['--no-autostart', '-H', `unix://${path.join(d.root, 'nobody-here.sock')}`, 'version'];
  const r = await both(args);
  t.not(r.quick.code, 0);
  t.deepEqual(r.quick, r.whole);
  t.regex(r.quick.stderr, /no berth daemon answers/);
});

test('berth runs the bundled CLI: the version, the help, and an unknown verb as commander has them', async (t) => {
  t.regex(BERTH, /src\/cli\/berth$/);
  const v = await both(['--version']);
  t.is(v.quick.code, 0);
  t.is(v.quick.stdout, `${BERTH_VERSION}\n`);
  t.deepEqual(v.quick, v.whole);
  const help = await runCommand(BERTH, ['volume', 'snapshot', '--help']);
  t.is(help.code, 0);
  t.is(help.stdout, buildProgram().commands.find((c) => c.name() === 'volume')!.commands.find((c) => c.name() === 'snapshot')!.helpInformation());
  const typo = await runCommand(BERTH, ['--no-autostart', 'volumez']);
  t.not(typo.code, 0);
  t.regex(typo.stderr, /unknown command 'volumez'[\s\S]*Did you mean volume\?/);
  const flag = await runCommand(BERTH, ['--no-autostart', 'volume', 'clone', '--bogus', 'a', 'b']);
  t.not(flag.code, 0);
  t.regex(flag.stderr, /unknown option '--bogus'/);
});
