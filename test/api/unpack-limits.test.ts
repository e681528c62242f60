/**
 * Size checks on unpacking (issue 18): a bomb sent to import, load, volume import, pull, a
 * build's context or a Dockerfile's ADD of a local tar is stopped early — before the host's
 * filesystem is full, or once it expands past the daemon's ratio — with a typed error, and
 * nothing of it is left. The "host" is a small tmpfs the test mounts (so the real disk is
 * never at risk); the ratio cap runs on a second daemon with --max-decompression-ratio.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { createGzip, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { TestDaemon, exec, listTree } from '../helpers/daemon';
import { mountsUnder } from '../helpers/mounts';
import { eventually } from '../helpers/eventually';
import { runCommand } from '../helpers/proc';
import { TestRegistry } from '../helpers/registry';
import { RemoteRegistryService } from '../../src/client/registry';

const MiB = 1024 * 1024;

let host: string;
let d: TestDaemon;
let capped: TestDaemon;
let work: string;
let reg: TestRegistry;
test.before(async () => {
  host = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-unpack-host-'));
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=512m,mode=0700', 'berth-test-host', host]);
  [d, capped, reg] = await Promise.all([
    // No preloaded image: the tests assert the roots hold no image but what they made.
    TestDaemon.start({ root: host, args: ['--volume-driver', 'dir'], images: [] }),
    TestDaemon.start({ args: ['--volume-driver', 'dir', '--max-decompression-ratio', '100'], images: [] }),
    TestRegistry.start(),
  ]);
  work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-bombs-'));
});
test.after.always(async () => {
  await d?.stop();
  await capped?.stop();
  await reg?.stop();
  await exec('umount', [host]).catch(() => undefined);
  await fs.promises.rm(host, { recursive: true, force: true });
  await fs.promises.rm(work, { recursive: true, force: true });
});

/** A gzip'd tar of `files` files of zeros, `each` bytes apiece (name → size), written to a file. */
async function bomb(name: string, files: Array<[string, number]>): Promise<string> {
  const file = path.join(work, name);
  const pack = tar.pack();
  const done = pipeline(pack, createGzip({ level: 9 }), fs.createWriteStream(file));
  const zeros = Buffer.alloc(MiB);
  for (const [n, size] of files) {
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry({ name: n, size, type: 'file', mode: 0o644 }, (e) => (e ? reject(e) : resolve()));
      (async () => {
        for (let left = size; left > 0; left -= MiB) {
          if (!entry.write(left >= MiB ? zeros : zeros.subarray(0, left))) await new Promise<void>((r) => entry.once('drain', () => r()));
        }
        entry.end(Buffer.alloc(0));
      })().catch(reject);
    });
  }
  pack.finalize();
  await done;
  return file;
}

/**
 * The head of a gzip'd tar whose first entry declares `size` bytes: its header and 1 MiB of
 * them, then the stream simply ends (a sender cut short). Enough for a check that must
 * refuse the entry at its header.
 */
async function declaring(name: string, entry: string, size: number): Promise<string> {
  const file = path.join(work, name);
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  pack.entry({ name: entry, size, type: 'file', mode: 0o644 }).write(Buffer.alloc(MiB));
  await new Promise((r) => setImmediate(r));
  fs.writeFileSync(file, gzipSync(Buffer.concat(chunks)));
  return file;
}

/** What an aborted unpack could leave: blobs, snapshots, ingest or temp files, half volumes, mounts. */
function leftovers(root: string): string[] {
  const files = listTree(root).filter(
    (p) => /\/blobs\/sha256\/./.test(p) || /(^|\/)snapshots\/./.test(p) || /(^|\/)ingest\/./.test(p) || /^tmp\/./.test(p) || /(^|\/)(new|rm)-/.test(p) || /^volumes\/.+\/data\//.test(p),
  );
  return [...files, ...mountsUnder(path.join(root, 'containers'))];
}

function hostFree(): number {
  const st = fs.statfsSync(host);
  return st.bavail * st.bsize;
}

/** Run `fn`, and the least the host had free meanwhile. */
async function leastFreeDuring<T>(fn: () => Promise<T>): Promise<{ result: T; least: number }> {
  let least = hostFree();
  const watch = setInterval(() => (least = Math.min(least, hostFree())), 20);
  try {
    return { result: await fn(), least };
  } finally {
    clearInterval(watch);
  }
}

test.serial('an import whose stream expands past what the host can hold is stopped before the host fills, and nothing is left', async (t) => {
  // 640 MiB of zeros in 8 MiB files (no one header is too big): only the stream's growth shows it.
  const file = await bomb('many.tar.gz', Array.from({ length: 80 }, (_, i) => [`f${i}`, 8 * MiB] as [string, number]));
  t.true(fs.statSync(file).size < 4 * MiB, 'a small gzip');
  const before = hostFree();
  const { result: err, least } = await leastFreeDuring(() => t.throwsAsync(d.images.importRootfs(fs.createReadStream(file), { repo: 'bomb:1' })));
  // Stopped with the host's reserve (64 MiB on 512 MiB) still free, not when it ran out.
  t.true(least > 32 * MiB, `the host kept ${least} bytes free`);
  t.is((err as { code?: string }).code, 'FAILED_PRECONDITION', err?.message);
  t.deepEqual(await d.images.list({ all: true }), []);
  t.deepEqual(leftovers(d.root), []);
  t.true(hostFree() >= before - 8 * MiB, `the host got its space back: ${before} -> ${hostFree()}`);
  // The daemon goes on: a small import works.
  const ok = await bomb('small.tar.gz', [['a', MiB]]);
  t.truthy((await d.images.importRootfs(fs.createReadStream(ok), { repo: 'small:1' })).id);
  await d.images.remove('small:1');
});

test.serial('a size a tar header declares past the host\'s room is refused before it is written: load and volume import', async (t) => {
  const huge = await declaring('huge.tar.gz', 'blobs/sha256/' + 'a'.repeat(64), 600 * MiB);
  const before = hostFree();
  const { result: load, least } = await leastFreeDuring(() => t.throwsAsync(d.images.load(fs.createReadStream(huge))));
  t.is((load as { code?: string }).code, 'FAILED_PRECONDITION', load?.message);
  const { result: vol, least: least2 } = await leastFreeDuring(() => t.throwsAsync(d.volumes.import('bombed', fs.createReadStream(huge))));
  t.is((vol as { code?: string }).code, 'FAILED_PRECONDITION', vol?.message);
  t.true(Math.min(least, least2) >= before - 8 * MiB, 'nothing of the declared file was written');
  await t.throwsAsync(d.volumes.inspect('bombed'), { code: 'NOT_FOUND' });
  t.deepEqual(leftovers(d.root), []);
  t.true(hostFree() >= before - 8 * MiB);
});

test.serial('with --max-decompression-ratio, a bomb is refused once it expands past the ratio, early', async (t) => {
  const file = await bomb('ratio.tar.gz', [['z', 256 * MiB]]);
  const err = await t.throwsAsync(capped.images.importRootfs(Readable.from(fs.createReadStream(file)), { repo: 'ratio:1' }));
  t.is((err as { code?: string }).code, 'INVALID_ARGUMENT', err?.message);
  t.deepEqual(await capped.images.list({ all: true }), []);
  t.deepEqual(leftovers(capped.root), []);
  // An ordinary archive passes the same cap.
  const ok = await bomb('fine.tar.gz', [['a', 64 * 1024]]);
  t.truthy((await capped.images.importRootfs(fs.createReadStream(ok), { repo: 'fine:1' })).id);
});

// ---- bombs of any size, made cheaply ------------------------------------------------------

const ENTRY = 8 * MiB;
/** Entries in a bomb: 512 × 8 MiB = 4 GiB of tar once unpacked. */
const ENTRIES = 512;

/** The 512-byte tar header of a file `name` of ENTRY bytes. */
async function header(name: string): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name, size: ENTRY, type: 'file', mode: 0o644 }, Buffer.alloc(ENTRY));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).subarray(0, 512);
}

const compressors = {
  gzip: (b: Buffer) => gzipSync(b, { level: 9 }),
  bzip2: (b: Buffer) => execFileSync('bzip2', ['-c', '-9'], { input: b, maxBuffer: 64 * MiB }),
  xz: (b: Buffer) => execFileSync('xz', ['-c', '-6'], { input: b, maxBuffer: 64 * MiB }),
};

/**
 * A compressed tar of ENTRIES files of ENTRY zeros each, all named `name` (each overwrites
 * the one before, so on disk it never grows much: only the ratio can tell it), 4 GiB once
 * unpacked. One entry is compressed once and repeated: gzip, bzip2 and xz all read
 * concatenated members as one stream. No header declares more than 8 MiB.
 */
async function ratioBomb(format: keyof typeof compressors, name = 'z'): Promise<Buffer> {
  const z = compressors[format];
  const member = z(Buffer.concat([await header(name), Buffer.alloc(ENTRY)]));
  return Buffer.concat([...Array<Buffer>(ENTRIES).fill(member), z(Buffer.alloc(1024))]);
}

/** Bytes berthd wrote (write(2) and the like, to any file, pipe or socket) so far. */
function written(dd: TestDaemon): number {
  const io = fs.readFileSync(`/proc/${dd.child!.pid}/io`, 'utf8');
  return Number(/^wchar: (\d+)$/m.exec(io)![1]);
}

/** berthd's child processes now (a decompressor left running would show here). */
function children(dd: TestDaemon): string[] {
  const out: string[] = [];
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && Number(m[2]) === dd.child!.pid) out.push(m[1]);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Everything under the data root, but the daemon's own log and state that any request may touch. */
function tree(dd: TestDaemon): string[] {
  return listTree(dd.root).filter((p) => p !== 'test-daemon.log');
}

/**
 * Run a bomb through `fn` and check it was stopped early and left nothing: berthd wrote
 * less than `bound` bytes for it, no file under the data root is new, nothing new is
 * mounted, no container is left, and no decompressor still runs.
 */
async function stoppedEarly<T>(t: import('ava').ExecutionContext, dd: TestDaemon, fn: () => Promise<T>, bound = 128 * MiB, kept: string[] = []): Promise<T> {
  const before = new Set(tree(dd));
  const mounts = mountsUnder(dd.root);
  const w0 = written(dd);
  const result = await fn();
  const w = written(dd) - w0;
  t.true(w < bound, `berthd wrote ${w} bytes for a 4 GiB bomb`);
  t.deepEqual(tree(dd).filter((p) => !before.has(p) && !kept.includes(p)), [], 'nothing new under the data root');
  t.deepEqual(mountsUnder(dd.root), mounts, 'nothing new mounted');
  t.deepEqual(await dd.containers.list({ all: true }), [], 'no build container left');
  await eventually(() => t.deepEqual(children(dd).filter((c) => /xz|bzip2|gzip/.test(c)), [], 'no decompressor left'));
  return result;
}

/** POST /build with `body` as the context; the JSON stream's lines. */
function buildApi(dd: TestDaemon, body: Buffer): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: dd.socket, method: 'POST', path: '/v1.41/build?rm=1&forcerm=1', headers: { 'Content-Type': 'application/x-tar', 'Content-Length': body.length } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(text.split('\n').filter(Boolean).map((l) => JSON.parse(l))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The uncompressed tar of a context directory's files. */
async function contextTar(files: Record<string, Buffer | string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, typeof body === 'string' ? Buffer.from(body) : body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const docker = (dd: TestDaemon, args: string[], input?: Buffer) => runCommand('docker', args, { env: { ...dd.env, DOCKER_BUILDKIT: '0' }, input });

test.serial('a build context bomb is refused past the ratio, through docker build and through the API, early and leaving nothing', async (t) => {
  const bomb = await ratioBomb('gzip');
  t.true(bomb.length < 8 * MiB, `a ${bomb.length}-byte gzip that unpacks to 4 GiB`);
  // The docker CLI sends a context read from stdin as it is (here: gzip).
  const cli = await stoppedEarly(t, capped, () => docker(capped, ['build', '-q', '-'], bomb));
  t.not(cli.code, 0, cli.stdout);
  t.false(cli.stdout.includes('sha256:'), 'no image was built');
  const lines = await stoppedEarly(t, capped, () => buildApi(capped, bomb));
  const err = lines.find((l) => l.error);
  t.is(err?.code, 'INVALID_ARGUMENT', JSON.stringify(lines));
  t.truthy(err?.hint);
  t.deepEqual((await capped.images.list()).filter((i) => !i.RepoTags.includes('fine:1')), [], 'no image');
});

test.serial('ADD of a local tar bomb (gzip, bzip2, xz) is refused past the ratio, early, with no layer, container or decompressor left', async (t) => {
  await capped.images.inspect('busybox'); // made on first use: before the trees are compared
  for (const format of ['gzip', 'bzip2', 'xz'] as const) {
    const file = `bomb.tar.${format === 'gzip' ? 'gz' : format === 'bzip2' ? 'bz2' : 'xz'}`;
    const context = await contextTar({ Dockerfile: `FROM busybox\nADD ${file} /unpacked/\n`, [file]: await ratioBomb(format) });
    const imagesBefore = (await capped.images.list({ all: true })).map((i) => i.Id);
    const lines = await stoppedEarly(t, capped, () => buildApi(capped, context));
    const err = lines.find((l) => l.error);
    t.is(err?.code, 'INVALID_ARGUMENT', `${format}: ${JSON.stringify(lines)}`);
    t.truthy(err?.hint);
    t.deepEqual((await capped.images.list({ all: true })).map((i) => i.Id), imagesBefore, `${format}: no step image`);
  }
  // The same build with a small archive works.
  const fine = await contextTar({ Dockerfile: 'FROM busybox\nADD small.tar.gz /unpacked/\n', 'small.tar.gz': gzipSync(Buffer.concat([await header('small'), Buffer.alloc(ENTRY), Buffer.alloc(1024)])) });
  const ok = await buildApi(capped, fine);
  t.truthy(ok.find((l) => (l.aux as { ID?: string } | undefined)?.ID), JSON.stringify(ok.filter((l) => l.error)));
});

test.serial('a build context or an ADD that would fill the host is stopped before it does, and nothing is left', async (t) => {
  // 640 MiB in 8 MiB files on the 512 MiB host: only the stream's growth shows it.
  const file = await bomb('many.tar.gz', Array.from({ length: 80 }, (_, i) => [`f${i}`, 8 * MiB] as [string, number]));
  const gz = fs.readFileSync(file);
  await d.images.inspect('busybox');
  const before = hostFree();
  const { result: ctx, least } = await leastFreeDuring(() => stoppedEarly(t, d, () => buildApi(d, gz), 600 * MiB));
  t.is(ctx.find((l) => l.error)?.code, 'FAILED_PRECONDITION', JSON.stringify(ctx));
  t.true(least > 32 * MiB, `the host kept ${least} bytes free`);
  const context = await contextTar({ Dockerfile: 'FROM busybox\nADD many.tar.gz /unpacked/\n', 'many.tar.gz': gz });
  const { result: add, least: least2 } = await leastFreeDuring(() => stoppedEarly(t, d, () => buildApi(d, context), 600 * MiB));
  t.is(add.find((l) => l.error)?.code, 'FAILED_PRECONDITION', JSON.stringify(add));
  t.true(least2 > 32 * MiB, `the host kept ${least2} bytes free`);
  t.true(hostFree() >= before - 8 * MiB, `the host got its space back: ${before} -> ${hostFree()}`);
});

test.serial('load, volume import and pull of a bomb past the ratio are refused early, and nothing is left', async (t) => {
  const bomb = await ratioBomb('gzip');
  // The volume store makes its directories on first use: before the trees are compared.
  await capped.volumes.create({ Name: 'warm' });
  await capped.volumes.remove('warm');
  const load = await stoppedEarly(t, capped, () => t.throwsAsync(capped.images.load(Readable.from([bomb]))));
  t.is((load as { code?: string }).code, 'INVALID_ARGUMENT', load?.message);
  const vol = await stoppedEarly(t, capped, () => t.throwsAsync(capped.volumes.import('bombed', Readable.from([bomb]))));
  t.is((vol as { code?: string }).code, 'INVALID_ARGUMENT', vol?.message);
  await t.throwsAsync(capped.volumes.inspect('bombed'), { code: 'NOT_FOUND' });

  // A registry image whose one layer is the bomb.
  const layer = await reg.putBlob('bomb/app', bomb);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] } }));
  const cfg = await reg.putBlob('bomb/app', config);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }] };
  const res = await fetch(`http://${reg.host}/v2/bomb/app/manifests/v1`, { method: 'PUT', body: JSON.stringify(manifest), headers: { 'Content-Type': manifest.mediaType } });
  t.is(res.status, 201);
  const images = (await capped.images.list({ all: true })).map((i) => i.Id);
  // berthd's write count for a pull is larger than the unpack's (about 200 MB here for a
  // 4 MB blob, the unpack stopped at 16 MiB): the bound is still a twentieth of the bomb.
  // The downloaded (compressed) blob stays in the content store until the next garbage
  // collection, as a pull keeps what it fetched; nothing of its unpacking is left.
  const blob = `images/content/blobs/sha256/${layer.digest.slice(7)}`;
  const pull = await stoppedEarly(t, capped, () => t.throwsAsync(new RemoteRegistryService(capped.transport).pull(`${reg.host}/bomb/app:v1`, {})), 512 * MiB, [blob]);
  t.is((pull as { code?: string }).code, 'INVALID_ARGUMENT', pull?.message);
  t.deepEqual((await capped.images.list({ all: true })).map((i) => i.Id), images);
});
