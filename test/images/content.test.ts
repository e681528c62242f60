import test from 'ava';
import { digest } from '../helpers/digest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { ContentStore } from '../../src/images/content';
import { eventually } from '../helpers/eventually';

async function tempStore(t: { teardown(fn: () => Promise<void>): void }): Promise<{ dir: string; cs: ContentStore }> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-content-'));
  t.teardown(() => fs.promises.rm(dir, { recursive: true, force: true }));
  return { dir, cs: await ContentStore.open(dir) };
}

test('a written blob is stored under its digest and reads back the same', async (t) => {
  const { cs } = await tempStore(t);
  const data = Buffer.from('hello blob');
  const info = await cs.write(Readable.from([data.subarray(0, 4), data.subarray(4)]));
  t.deepEqual(info, { digest: digest(data), size: data.length });
  t.true(await cs.has(info.digest));
  t.deepEqual(await cs.readBuffer(info.digest), data);
  t.is((await cs.info(info.digest)).size, data.length);
  const chunks: Buffer[] = [];
  for await (const c of await cs.reader(info.digest)) chunks.push(c as Buffer);
  t.deepEqual(Buffer.concat(chunks), data);
  t.deepEqual(await cs.list(), [info.digest]);
  t.deepEqual(await cs.ingests(), []);
});

test('a blob that does not match its expected digest is refused and leaves nothing', async (t) => {
  const { cs } = await tempStore(t);
  await t.throwsAsync(cs.writeBuffer('abc', { expected: digest('abd') }), { instanceOf: InvalidArgumentError });
  t.deepEqual(await cs.list(), []);
  t.deepEqual(await cs.ingests(), []);
});

test('writing a blob that exists keeps one copy', async (t) => {
  const { cs } = await tempStore(t);
  const a = await cs.writeBuffer('same');
  const b = await cs.writeBuffer('same', { expected: a.digest });
  t.deepEqual(a, b);
  t.deepEqual(await cs.list(), [a.digest]);
  t.deepEqual(await cs.ingests(), []);
});

test('a failing input stream leaves no blob and no ingest file', async (t) => {
  const { cs } = await tempStore(t);
  const input = new PassThrough();
  const p = cs.write(input);
  input.write(Buffer.alloc(1000, 1));
  // It fails midway for real: the ingest file is open when the input breaks.
  await eventually(async () => (await cs.ingests()).length === 1, { message: 'the ingest file to exist' });
  input.destroy(new Error('connection reset'));
  await t.throwsAsync(p, { message: 'connection reset' });
  t.deepEqual(await cs.list(), []);
  t.deepEqual(await cs.ingests(), []);
});

test('an input that fails while the ingest file opens is an error of the write, not an uncaught one', async (t) => {
  const { cs } = await tempStore(t);
  const input = new PassThrough();
  const p = cs.write(input);
  input.destroy(new Error('client gone')); // before the write's file is open: nothing reads the stream yet
  await t.throwsAsync(p, { message: 'client gone' });
  t.deepEqual(await cs.ingests(), []);
});

test('ingest files a crash left are removed on open', async (t) => {
  const { dir, cs } = await tempStore(t);
  await fs.promises.writeFile(path.join(dir, 'ingest', 'half-written'), 'partial');
  t.deepEqual(await cs.ingests(), ['half-written']);
  const again = await ContentStore.open(dir);
  t.deepEqual(await again.ingests(), []);
});

test('missing blobs are NotFound; bad digests are InvalidArgument', async (t) => {
  const { cs } = await tempStore(t);
  await t.throwsAsync(cs.info(digest('nope')), { instanceOf: NotFoundError });
  await t.throwsAsync(cs.reader(digest('nope')), { instanceOf: NotFoundError });
  t.throws(() => cs.path('sha256:../../etc/passwd'), { instanceOf: InvalidArgumentError });
  await cs.delete(digest('nope')); // idempotent
  t.pass();
});
