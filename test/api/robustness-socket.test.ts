/**
 * The socket's directory (issue 18): berth never changes a directory it did not make
 * (`--host unix:///tmp/x.sock` once made /tmp 0700). It makes its own 0700, uses a safe
 * existing one as it is, and refuses an unsafe one before it sets anything up.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, TestDaemon, testNetwork } from '../helpers/daemon';
import { runCommand } from '../helpers/proc';

async function tempRoot(): Promise<string> {
  return fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-sock-'));
}

/** Start `berth daemon` with its socket in `dir`; it must refuse, and quickly (before any network or store). */
async function refusedIn(t: import('ava').ExecutionContext, root: string, dir: string): Promise<void> {
  const r = await runCommand(process.execPath, [CLI, 'daemon', '--root', path.join(root, 'data'), '--host', `unix://${path.join(dir, 'berth.sock')}`, ...testNetwork(root)], { timeout: 120_000 });
  t.not(r.code, 0);
  t.regex(r.stderr, /hint: /, 'the refusal carries a hint');
  t.false(fs.existsSync(path.join(dir, 'berth.sock')));
  t.false(fs.existsSync(path.join(root, 'data', 'network.json')), 'nothing was set up');
}

test('a world-writable socket directory without the sticky bit is refused and left unchanged', async (t) => {
  const root = await tempRoot();
  const dir = path.join(root, 'open');
  await fs.promises.mkdir(dir);
  await fs.promises.chmod(dir, 0o777);
  try {
    await refusedIn(t, root, dir);
    t.is(fs.statSync(dir).mode & 0o7777, 0o777);
  } finally {
    await fs.promises.rm(root, { recursive: true, force: true });
  }
});

test("a socket directory owned by another user is refused and left unchanged", async (t) => {
  const root = await tempRoot();
  const dir = path.join(root, 'theirs');
  await fs.promises.mkdir(dir, { mode: 0o755 });
  await fs.promises.chown(dir, 4242, 4242);
  try {
    await refusedIn(t, root, dir);
    const st = fs.statSync(dir);
    t.is(st.uid, 4242);
    t.is(st.mode & 0o7777, 0o755);
  } finally {
    await fs.promises.rm(root, { recursive: true, force: true });
  }
});

test('a sticky world-writable directory (like /tmp) is used as it is; a missing one is made 0700', async (t) => {
  const root = await tempRoot();
  await fs.promises.mkdir(path.join(root, 'run'));
  await fs.promises.chmod(path.join(root, 'run'), 0o1777);
  const d = await TestDaemon.start({ root });
  try {
    t.is(fs.statSync(path.join(root, 'run')).mode & 0o7777, 0o1777, 'the directory was not changed');
    t.is(fs.statSync(d.socket).mode & 0o777, 0o600);
  } finally {
    await d.stop();
  }
  const fresh = await TestDaemon.start();
  try {
    t.is(fs.statSync(path.dirname(fresh.socket)).mode & 0o7777, 0o700, 'the directory berth made is 0700');
  } finally {
    await fresh.stop();
  }
});

test('a file that is not a socket at the --host path is not deleted', async (t) => {
  const root = await tempRoot();
  const dir = path.join(root, 'run');
  await fs.promises.mkdir(dir, { mode: 0o700 });
  await fs.promises.writeFile(path.join(dir, 'berth.sock'), 'precious');
  try {
    const r = await runCommand(process.execPath, [CLI, 'daemon', '--root', path.join(root, 'data'), '--host', `unix://${path.join(dir, 'berth.sock')}`, ...testNetwork(root)], { timeout: 120_000 });
    t.not(r.code, 0);
    t.is(fs.readFileSync(path.join(dir, 'berth.sock'), 'utf8'), 'precious');
  } finally {
    await fs.promises.rm(root, { recursive: true, force: true });
  }
});
