import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { TestDaemon, CLI, useDaemon } from '../helpers/daemon';
import { eventually, sleep } from '../helpers/eventually';
import { releaseRoot } from '../helpers/leaks';
import { Transport } from '../../src/client/transport';
import { runCommand } from '../helpers/proc';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// The tests that neither stop, kill nor restart berthd share this daemon; the others start their own.
let shared: TestDaemon;
test.before(async () => {
  shared = await TestDaemon.start();
});
test.after.always(() => shared?.stop());

test('a second daemon on the same root exits with UNAVAILABLE naming the first', async (t) => {
  const { d } = useDaemon(t, shared);
  const r = await runCommand(process.execPath, [CLI, 'daemon', '--root', d.root, '--host', `unix://${d.root}/other.sock`]);
  t.not(r.code, 0);
  t.regex(r.stderr, /^berth: /m);
  t.true(r.stderr.includes(String(d.child!.pid)), r.stderr);
  t.regex(r.stderr, /^hint: /m);
  t.false(fs.existsSync(`${d.root}/other.sock`));
  t.true(await d.transport.ping(), 'the first daemon still answers');
});

test('the socket is root-only: 0700 directory, 0600 socket', async (t) => {
  const { d } = useDaemon(t, shared);
  t.is(fs.statSync(path.dirname(d.socket)).mode & 0o777, 0o700);
  t.is(fs.statSync(d.socket).mode & 0o777, 0o600);
});

test('an idle kept-alive connection outlives a client\'s own 5 s keep-alive: reusing it never races the daemon closing it', async (t) => {
  const { d } = useDaemon(t, shared);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const ping = () =>
    new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
      const req = http.get({ socketPath: d.socket, path: '/_ping', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      });
      req.on('error', reject);
    });
  t.deepEqual(await ping(), { status: 200, reused: false });
  // Idle past Node's default server keep-alive (5 s), which closed the socket under the
  // client: the idle time is the stimulus here, not a wait for a result.
  await sleep(6_000);
  t.deepEqual(await ping(), { status: 200, reused: true }, 'the idle connection was still open');
});

// Own daemon: this test SIGTERMs berthd and starts it again.
test('SIGTERM shuts the daemon down cleanly and releases the root', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  t.is(await d.terminate(), 0);
  t.false(fs.existsSync(d.socket), 'socket removed');
  t.false(fs.existsSync(path.join(d.root, 'berthd.lock')), 'lock released');
  await d.restart();
  t.true(await d.transport.ping());
});

// Own daemon: this test SIGKILLs berthd and starts it again.
test('a daemon killed with SIGKILL restarts at once on the same root', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const lock = path.join(d.root, 'berthd.pid');
  const killed = d.child!.pid!;
  await d.kill();
  // The dead daemon's lock is still there: the restart must take it over. A lock whose holder
  // looks alive is only waited for and then refused (UNAVAILABLE), never taken, so a restart
  // that succeeds and holds the lock went through the dead-holder takeover, not a timeout.
  const holder = () => fs.readFileSync(lock, 'utf8').split('\n')[0];
  t.is(holder(), String(killed), 'the killed daemon left its lock');
  await d.restart(); // its own 60 s limit only catches a hang
  t.is(holder(), String(d.child!.pid), 'the restarted daemon holds the lock');
  t.not(d.child!.pid, killed);
  t.true(await d.transport.ping());
});

test("the test worker and its daemons run on the project's Node (package.json's node dependency), not the machine's", async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../package.json'), 'utf8'));
  const major = /\d+/.exec(pkg.dependencies.node)![0];
  t.is(process.versions.node.split('.')[0], major, `the worker runs ${process.execPath} ${process.version}`);
  const { d } = useDaemon(t, shared);
  t.is(fs.readlinkSync(`/proc/${d.child!.pid}/exe`), fs.realpathSync(process.execPath));
});

test('_ping answers with and without the /v1.NN prefix and carries API-Version', async (t) => {
  const { d } = useDaemon(t, shared);
  for (const p of ['/_ping', '/v1.41/_ping', '/v1.24/_ping']) {
    const r = await runCommand('curl', ['-si', '--unix-socket', d.socket, `http://x${p}`]);
    t.regex(r.stdout, /^HTTP\/1\.1 200/);
    t.regex(r.stdout, /api-version: 1\.41/i);
  }
  const r = await runCommand('curl', ['-s', '--unix-socket', d.socket, 'http://x/nope']);
  t.is(JSON.parse(r.stdout).code, 'NOT_FOUND');
});

test('any berth command starts a daemon when none answers, with its log in the data root', async (t) => {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-auto-'));
  const socket = path.join(root, 'run', 'b.sock');
  t.teardown(async () => {
    const pid = Number.parseInt(fs.readFileSync(path.join(root, 'berthd.pid'), 'utf8'), 10);
    process.kill(pid, 'SIGTERM');
    await eventually(() => !alive(pid), { timeout: 60_000, message: `the autostarted berthd ${pid} to exit` });
    let net = {};
    try {
      net = JSON.parse(fs.readFileSync(path.join(root, 'network.json'), 'utf8'));
    } catch {
      // it never set its network up
    }
    await releaseRoot(`the autostarted daemon's ${root}`, { root, ...net });
  });
  const r = await runCommand(process.execPath, [CLI, '--root', root, '-H', `unix://${socket}`, 'images', '--format', 'json']);
  t.is(r.code, 0, r.stderr);
  t.true(fs.existsSync(path.join(root, 'berthd.log')));
  t.true(await new Transport(socket).ping());
});

test('--no-autostart fails with UNAVAILABLE and a hint when no daemon answers', async (t) => {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-noauto-'));
  t.teardown(() => fs.promises.rm(root, { recursive: true, force: true }));
  const r = await runCommand(process.execPath, [CLI, '--root', root, '-H', `unix://${root}/none.sock`, '--no-autostart', 'images']);
  t.is(r.code, 1);
  t.regex(r.stderr, /^berth: no berth daemon answers/m);
  t.regex(r.stderr, /^hint: /m);
});

test('a TCP host is refused: no listener without TLS', async (t) => {
  const r = await runCommand(process.execPath, [CLI, '-H', 'tcp://127.0.0.1:2375', '--no-autostart', 'images']);
  t.is(r.code, 1);
  t.regex(r.stderr, /unix socket only/);
});

void spawn;
