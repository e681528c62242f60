import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { FIXTURES, openEnv, removeRoot, snapshotNames, type Env } from './helpers';
import { digest } from '../helpers/digest';
import { atFault, faultEnv } from '../helpers/fault';
import { makeTar, streamOf } from '../helpers/tar';

const CHILD = path.join(__dirname, 'crash-child.js');

interface Child {
  proc: ChildProcess;
  ready: Promise<void>;
  exited: Promise<void>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

function startChild(args: string[], env?: NodeJS.ProcessEnv): Child {
  const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) resolve();
    });
    void exited.then(() => reject(new Error(`crash child exited before it was ready: ${out}${err}`)));
  });
  ready.catch(() => undefined);
  proc.stdin!.on('error', () => undefined); // it dies with our data in the pipe
  return { proc, ready, exited, stderr: () => err };
}

async function kill(c: Child): Promise<void> {
  c.proc.kill('SIGKILL');
  await c.exited;
}

async function tempRoot(t: ExecutionContext): Promise<string> {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-crash-'));
  t.teardown(() => removeRoot(root));
  return root;
}

interface Debris {
  images: number;
  layers: number;
  extract: number;
  ingest: number;
}

/** What a crash left on disk. */
async function debris(root: string): Promise<Debris> {
  const read = async (f: string) => JSON.parse(await fs.promises.readFile(f, 'utf8').catch(() => '{}'));
  const snaps = Object.keys((await read(path.join(root, 'layers', 'metadata.json'))).snapshots ?? {});
  const images = Object.keys((await read(path.join(root, 'images', 'images.json'))).images ?? {});
  const ingest = await fs.promises.readdir(path.join(root, 'images', 'content', 'ingest')).catch(() => []);
  return {
    images: images.length,
    layers: snaps.filter((s) => s.startsWith('sha256:')).length,
    extract: snaps.filter((s) => s.startsWith('extract-')).length,
    ingest: ingest.length,
  };
}

/** After a crash and a reopen: nothing half-made anywhere. */
async function assertClean(t: ExecutionContext, env: Env): Promise<void> {
  t.deepEqual(await env.store.list(), []);
  t.deepEqual(await snapshotNames(env), []);
  t.deepEqual(await env.store.content.list(), []);
  t.deepEqual(await env.store.content.ingests(), []);
}

test('SIGKILL mid-import leaves no half image; after reopening the same import succeeds', async (t) => {
  const root = await tempRoot(t);
  const tarball = await makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/a', data: 'a\n' },
    { name: 'big1', data: Buffer.alloc(3 << 20, 1) },
    { name: 'big2', data: Buffer.alloc(3 << 20, 2) },
  ]);
  const child = startChild([root, 'import']);
  child.proc.stdin!.write(tarball.subarray(0, 4 << 20)); // more than half, and then nothing
  await child.ready;
  await kill(child);

  // The crash really left debris: an ingest file and an extract snapshot.
  t.true((await fs.promises.readdir(path.join(root, 'images', 'content', 'ingest'))).length > 0);
  const meta = JSON.parse(await fs.promises.readFile(path.join(root, 'layers', 'metadata.json'), 'utf8'));
  t.true(Object.keys(meta.snapshots).some((k) => k.startsWith('extract-')));

  const env = await openEnv(t, root);
  await assertClean(t, env);
  const { id } = await env.store.importRootfs(streamOf(tarball), { repo: 'crash:1' });
  t.deepEqual((await env.store.inspect('crash:1')).RootFS.Layers, [digest(tarball)]);
  t.is((await env.store.list())[0].Id, id);
});

test('SIGKILL mid-load leaves nothing; after reopening the same load succeeds', async (t) => {
  const root = await tempRoot(t);
  const archive = gunzipSync(await fs.promises.readFile(path.join(FIXTURES, 'whiteouts.tar.gz')));
  const child = startChild([root, 'load']);
  child.proc.stdin!.write(archive.subarray(0, 1_500_000)); // inside the first (2 MB) layer
  await child.ready;
  await kill(child);
  t.true((await fs.promises.readdir(path.join(root, 'images', 'content', 'ingest'))).length > 0);

  const env = await openEnv(t, root);
  await assertClean(t, env);
  const { loaded } = await env.store.load(streamOf(archive));
  t.deepEqual(loaded, ['Loaded image: localhost/whiteouts:latest']);
});

/** Each step of a load, what it has on disk when the process dies there, and whether the image is then whole. */
const LOAD_STEPS = [
  { step: 'content.blob.synced', whole: false, left: (d: Debris) => d.ingest > 0 },
  { step: 'image.layer.applied', whole: false, left: (d: Debris) => d.extract > 0 },
  { step: 'image.before-record', whole: false, left: (d: Debris) => d.layers === 3 && d.images === 0 },
  { step: 'image.load.recorded', whole: true, left: (d: Debris) => d.layers === 3 && d.images === 1 },
];

test('SIGKILL at each step of a load leaves either the whole image or nothing', async (t) => {
  const file = path.join(FIXTURES, 'whiteouts.tar.gz');
  for (const { step, whole, left } of LOAD_STEPS) {
    const root = await tempRoot(t);
    const child = startChild([root, 'load-file', file], faultEnv(step));
    await atFault(child.stderr, step);
    const d = await debris(root);
    t.log(`killed at ${step}: ${JSON.stringify(d)}`);
    t.true(left(d), `the load really was at ${step}: ${JSON.stringify(d)}`);
    await kill(child);

    const env = await openEnv(t, root);
    t.deepEqual(await env.store.content.ingests(), [], step);
    const snaps = await snapshotNames(env);
    t.false(snaps.some((s) => s.startsWith('extract-')), step);
    const images = await env.store.list();
    if (whole) {
      t.is(images.length, 1, step);
      const img = await env.store.inspect(images[0].Id);
      t.is(snaps.length, 3, step);
      t.is(img.RootFS.Layers.length, 3);
      t.is((await env.store.content.list()).length, 5); // 3 layers, config, manifest
    } else {
      t.deepEqual(images, [], step);
      t.deepEqual(snaps, [], step);
      t.deepEqual(await env.store.content.list(), [], step);
    }
    // Either way the load now succeeds.
    await env.store.load(fs.createReadStream(file));
    t.is((await env.store.list()).length, 1);
    await env.store.close();
    await env.snapshotter.close();
  }
});
