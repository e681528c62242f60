/**
 * Size checks on unpacking (issue 18): a gzip bomb sent to import, load or volume import
 * is stopped early — before the host's filesystem is full — with a typed error, and
 * nothing of it is left. The "host" is a small tmpfs the test mounts (so the real disk is
 * never at risk); the ratio cap runs on a second daemon with --max-decompression-ratio.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { TestDaemon, exec, listTree } from '../helpers/daemon';
import { mountsUnder } from '../helpers/mounts';

const MiB = 1024 * 1024;

let host: string;
let d: TestDaemon;
let capped: TestDaemon;
let work: string;
test.before(async () => {
  host = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-unpack-host-'));
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=512m,mode=0700', 'berth-test-host', host]);
  d = await TestDaemon.start({ root: host, args: ['--volume-driver', 'dir'] });
  capped = await TestDaemon.start({ args: ['--volume-driver', 'dir', '--max-decompression-ratio', '100'] });
  work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-bombs-'));
});
test.after.always(async () => {
  await d?.stop();
  await capped?.stop();
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
