import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { openEnv, readTree, mountImage, sampleRootfs, snapshotNames, type Env } from './helpers';
import { goArch } from '../../src/images/config';
import { digest } from '../helpers/digest';
import { makeTar, streamOf } from '../helpers/tar';
import { eventually } from '../helpers/eventually';

/** Everything the store holds: to show that a failed import left nothing behind. */
async function contents(env: Env) {
  return {
    images: (await env.store.list()).map((i) => i.Id),
    snapshots: await snapshotNames(env),
    blobs: await env.store.content.list(),
    ingest: await env.store.content.ingests(),
    tmp: await fs.promises.readdir(path.join(env.root, 'tmp')),
  };
}

const EMPTY = { images: [], snapshots: [], blobs: [], ingest: [], tmp: [] };

test('an imported tarball is listed and inspected with its diff_id and config', async (t) => {
  const env = await openEnv(t);
  const tarball = await sampleRootfs();
  const { id } = await env.store.importRootfs(streamOf(tarball), { repo: 'sample', tag: 'v1' });
  t.regex(id, /^sha256:[0-9a-f]{64}$/);

  const list = await env.store.list();
  t.is(list.length, 1);
  t.is(list[0].Id, id);
  t.deepEqual(list[0].RepoTags, ['sample:v1']);
  t.true(list[0].Size > 0);

  const img = await env.store.inspect('sample:v1');
  t.is(img.Id, id);
  t.deepEqual(img.RootFS, { Type: 'layers', Layers: [digest(tarball)] }); // uncompressed: diffID = sha256 of the tar
  t.is(img.Os, 'linux');
  t.is(img.Architecture, goArch());
  t.true(Date.parse(img.Created) > Date.now() - 60_000);

  // The image id is the digest of the stored config, and the config is what we expect.
  const config = JSON.parse((await env.store.content.readBuffer(id)).toString());
  t.is(digest(await env.store.content.readBuffer(id)), id);
  t.deepEqual(config.rootfs, { type: 'layers', diff_ids: [digest(tarball)] });
  t.is(config.history[0].created_by, 'berth import');

  // Lookups by id, short id and sha256: prefix find the same image.
  t.is((await env.store.inspect(id)).Id, id);
  t.is((await env.store.inspect(id.slice(7, 19))).Id, id);
  t.is((await env.store.inspect(id.slice(0, 19))).Id, id);
  await t.throwsAsync(env.store.inspect('sample'), { instanceOf: NotFoundError }); // sample:latest does not exist

  // The layer is a committed snapshot named by its chain id, and unpacked right.
  t.deepEqual(await snapshotNames(env), [digest(tarball)]);
  const root = await mountImage(t, env, id);
  const tree = await readTree(root);
  t.is(tree['etc/hostname'].sha256, digest('sample\n'));
  t.is(tree['bin/tool'].mode, 0o755);
  t.is(tree['data'].mode, 0o700);
  t.is(tree['data/link'].target, '../etc/hostname');
});

test('a gzip tarball imports to the same diff_id as the plain one, stored as it came', async (t) => {
  const env = await openEnv(t);
  const plain = await sampleRootfs();
  const gz = gzipSync(plain);
  const { id } = await env.store.importRootfs(streamOf(gz), { repo: 'gz' });
  const img = await env.store.inspect('gz');
  t.is(img.Id, id);
  t.deepEqual(img.RootFS.Layers, [digest(plain)]);
  t.true(await env.store.content.has(digest(gz))); // the original gzip blob is kept
});

test('import --change sets the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL)', async (t) => {
  const env = await openEnv(t);
  await env.store.importRootfs(streamOf(await sampleRootfs()), {
    repo: 'changed:latest',
    changes: [
      'CMD ["/bin/tool", "--serve"]',
      'ENTRYPOINT /bin/sh -c',
      'ENV A=1 B="x y"',
      'WORKDIR /data',
      'USER nobody',
      'EXPOSE 8080/tcp 53/udp',
      'LABEL maintainer=berth version=1',
      'VOLUME ["/data"]',
      'STOPSIGNAL SIGINT',
    ],
    message: 'from a test',
  });
  const img = await env.store.inspect('changed');
  t.deepEqual(img.Config.Cmd, ['/bin/tool', '--serve']);
  t.deepEqual(img.Config.Entrypoint, ['/bin/sh', '-c', '/bin/sh -c']);
  t.deepEqual(img.Config.Env, ['A=1', 'B=x y']);
  t.is(img.Config.WorkingDir, '/data');
  t.is(img.Config.User, 'nobody');
  t.deepEqual(img.Config.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
  t.deepEqual(img.Config.Labels, { maintainer: 'berth', version: '1' });
  t.deepEqual(img.Config.Volumes, { '/data': {} });
  t.is(img.Config.StopSignal, 'SIGINT');
  t.is(img.Comment, 'from a test');
  const [summary] = await env.store.list({ filters: { label: ['maintainer=berth'] } });
  t.deepEqual(summary.Labels, { maintainer: 'berth', version: '1' });
  t.is((await env.store.list({ filters: { label: ['maintainer=nobody'] } })).length, 0);
});

test('an import with a bad name or a bad change is refused before reading, leaving nothing', async (t) => {
  const env = await openEnv(t);
  for (const repo of ['UPPER', 'a/../b', '-x', `ok:${'t'.repeat(129)}`]) {
    const input = streamOf(await sampleRootfs());
    const e = await t.throwsAsync(env.store.importRootfs(input, { repo }), { instanceOf: InvalidArgumentError }, repo);
    t.truthy(e?.hint);
  }
  await t.throwsAsync(env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'ok', changes: ['RUN rm -rf /'] }), {
    instanceOf: InvalidArgumentError,
  });
  t.deepEqual(await contents(env), EMPTY);
});

test('a non-tar, empty or truncated import fails with InvalidArgument and leaves nothing listed', async (t) => {
  const env = await openEnv(t);
  const good = await sampleRootfs();
  const bigger = await makeTar([{ name: 'big', data: Buffer.alloc(200_000, 7) }, { name: 'after', data: 'x' }]);
  const inputs: Record<string, Buffer> = {
    'not a tar': Buffer.from('this is not a tar archive, just some text that goes on for a while\n'.repeat(20)),
    empty: Buffer.alloc(0),
    'truncated tar': bigger.subarray(0, 100_000),
    'truncated gzip': gzipSync(good).subarray(0, 60),
  };
  for (const [what, data] of Object.entries(inputs)) {
    const e = await t.throwsAsync(env.store.importRootfs(streamOf(data), { repo: 'broken' }), { instanceOf: InvalidArgumentError }, what);
    t.truthy(e?.hint, what);
  }
  t.deepEqual(await contents(env), EMPTY);
  // And the store still works.
  await env.store.importRootfs(streamOf(good), { repo: 'fine' });
  t.is((await env.store.list()).length, 1);
});

test('an input stream that errors midway fails the import and leaves nothing', async (t) => {
  const env = await openEnv(t);
  const input = new PassThrough();
  const p = env.store.importRootfs(input, { repo: 'cut' });
  input.write((await makeTar([{ name: 'big', data: Buffer.alloc(300_000, 1) }])).subarray(0, 150_000));
  // Midway for real: the import has begun extracting (its snapshot exists) when the input fails.
  await eventually(async () => (await snapshotNames(env)).some((n) => n.startsWith('extract-')), { message: 'the import to start extracting' });
  input.destroy(new Error('client went away'));
  await t.throwsAsync(p);
  t.deepEqual(await contents(env), EMPTY);
});

test('an untagged import is listed as <none>:<none> and found by id', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), {});
  const [img] = await env.store.list();
  t.deepEqual(img.RepoTags, ['<none>:<none>']);
  t.deepEqual(img.RepoDigests, ['<none>@<none>']);
  t.is((await env.store.list({ filters: { dangling: ['true'] } })).length, 1);
  t.is((await env.store.list({ filters: { dangling: ['false'] } })).length, 0);
  t.deepEqual((await env.store.inspect(id)).RepoTags, []);
});

test('tag adds names; rmi by name untags and deletes only when no name is left', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'one' });
  await env.store.tag('one', 'two');
  await env.store.tag(id, 'localhost:5000/three', 'v3');
  t.deepEqual((await env.store.inspect(id)).RepoTags, ['localhost:5000/three:v3', 'one:latest', 'two:latest']);
  t.deepEqual((await env.store.list({ filters: { reference: ['tw*'] } })).map((i) => i.Id), [id]);
  t.deepEqual(await env.store.list({ filters: { reference: ['nothing*'] } }), []);
  await t.throwsAsync(env.store.tag('one', 'Bad'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(env.store.tag('missing', 'x'), { instanceOf: NotFoundError });

  // By id with several names: refused unless forced.
  const conflict = await t.throwsAsync(env.store.remove(id), { instanceOf: ConflictError });
  t.truthy(conflict?.hint);
  t.deepEqual(await env.store.remove(id.slice(7, 19), { force: false }).catch((e) => e.code), 'CONFLICT');

  t.deepEqual(await env.store.remove('two'), [{ Untagged: 'two:latest' }]);
  t.deepEqual(await env.store.remove('localhost:5000/three:v3'), [{ Untagged: 'localhost:5000/three:v3' }]);
  t.is((await env.store.list()).length, 1);
  const last = await env.store.remove('one:latest');
  t.deepEqual(last.slice(0, 2), [{ Untagged: 'one:latest' }, { Deleted: id }]);
  t.deepEqual(last.slice(2), [{ Deleted: digest(await sampleRootfs()) }]); // its layer went too
  t.deepEqual(await env.store.list(), []);
  t.deepEqual(await snapshotNames(env), []);
  t.deepEqual(await env.store.content.list(), []);
  await t.throwsAsync(env.store.remove('one'), { instanceOf: NotFoundError });
});

test('rmi --force by id removes every name and the image', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'a' });
  await env.store.tag(id, 'b');
  const out = await env.store.remove(id, { force: true });
  t.deepEqual(out.slice(0, 3), [{ Untagged: 'a:latest' }, { Untagged: 'b:latest' }, { Deleted: id }]);
  t.deepEqual(await env.store.list(), []);
});

test('rmi by id of an image with one name untags and deletes it', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'solo' });
  const out = await env.store.remove(id);
  t.deepEqual(out.slice(0, 2), [{ Untagged: 'solo:latest' }, { Deleted: id }]);
});

test('a layer shared by two images stays until the last image goes', async (t) => {
  const env = await openEnv(t);
  const tarball = await sampleRootfs();
  const a = await env.store.importRootfs(streamOf(tarball), { repo: 'a', changes: ['CMD ["a"]'] });
  const b = await env.store.importRootfs(streamOf(tarball), { repo: 'b', changes: ['CMD ["b"]'] });
  t.not(a.id, b.id);
  t.deepEqual(await snapshotNames(env), [digest(tarball)]);
  await env.store.remove('a');
  t.deepEqual(await snapshotNames(env), [digest(tarball)]);
  t.true(await env.store.content.has(digest(tarball)));
  await env.store.remove('b');
  t.deepEqual(await snapshotNames(env), []);
});

test('rmi keeps a layer that has a snapshot someone else built on it', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'used' });
  const { topLayer } = await env.store.resolve('used');
  await env.snapshotter.prepare('ctr-test', topLayer); // a container's root, owned by the engine
  const out = await env.store.remove('used');
  t.deepEqual(out, [{ Untagged: 'used:latest' }, { Deleted: id }]);
  t.deepEqual(await snapshotNames(env), ['ctr-test', topLayer].sort());
  // Reopening (garbage collection on start) keeps it too, and never touches ctr-test.
  await env.reopen();
  t.deepEqual(await snapshotNames(env), ['ctr-test', topLayer].sort());
  await env.snapshotter.remove('ctr-test');
  await env.reopen();
  t.deepEqual(await snapshotNames(env), []);
});

test('history lists the config history newest first, the top entry carrying the id', async (t) => {
  const env = await openEnv(t);
  const { id } = await env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'h', message: 'hello' });
  const h = await env.store.history('h');
  t.is(h.length, 1);
  t.is(h[0].Id, id);
  t.deepEqual(h[0].Tags, ['h:latest']);
  t.is(h[0].CreatedBy, 'berth import');
  t.is(h[0].Comment, 'hello');
  t.true(h[0].Size > 0);
});

test('resolve gives the id, top layer and config; unknown names are NotFound with a hint', async (t) => {
  const env = await openEnv(t);
  const tarball = await sampleRootfs();
  const { id } = await env.store.importRootfs(streamOf(tarball), { repo: 'r', changes: ['CMD ["x"]'] });
  const r = await env.store.resolve('r');
  t.deepEqual(r, { id, topLayer: digest(tarball), config: { Cmd: ['x'] } });
  const e = await t.throwsAsync(env.store.resolve('nope'), { instanceOf: NotFoundError });
  t.truthy(e?.hint);
  await t.throwsAsync(env.store.resolve('Nope'), { instanceOf: InvalidArgumentError });
});

test('rmi during a running import: collection waits for it, and a layer the import reuses survives', async (t) => {
  const env = await openEnv(t);
  const shared = await sampleRootfs();
  const other = await makeTar([{ name: 'only-in-other', data: 'x' }]);
  await env.store.importRootfs(streamOf(shared), { repo: 'old' });
  await env.store.importRootfs(streamOf(other), { repo: 'other' });

  const input = new PassThrough();
  const running = env.store.importRootfs(input, { repo: 'new' });
  input.write(shared.subarray(0, 512));
  await eventually(async () => (await snapshotNames(env)).some((n) => n.startsWith('extract-')), { message: 'the import to start' });
  await env.store.remove('old');
  await env.store.remove('other');
  // Nothing is collected while the import runs: it may be about to reuse any of it.
  t.true((await snapshotNames(env)).includes(digest(shared)));
  t.true((await snapshotNames(env)).includes(digest(other)));

  input.end(shared.subarray(512));
  await running;
  // Collected once the import ended: the unused layer went, the reused one stayed.
  await eventually(async () => !(await snapshotNames(env)).includes(digest(other)), { message: 'the deferred collection' });
  t.deepEqual(await snapshotNames(env), [digest(shared)]);
  t.true(await env.store.content.has(digest(shared)));
  await env.reopen();
  t.deepEqual((await env.store.inspect('new')).RootFS.Layers, [digest(shared)]);
  t.deepEqual(await snapshotNames(env), [digest(shared)]);
});

test('garbage collections asked for while one runs end: imports and removes after concurrent failures still run', async (t) => {
  // The bug: a collection asked for while one ran asked again when that one ended, so each
  // round wanted another, and every later operation waited behind them for ever.
  const env = await openEnv(t);
  const broken = Buffer.from('this is not a tar archive '.repeat(60));
  for (let round = 0; round < 3; round++) {
    const failures = Array.from({ length: 6 }, (_, i) => env.store.importRootfs(streamOf(broken), { repo: `broken${round}-${i}` }).catch((e: { code?: string }) => e.code));
    t.deepEqual(await Promise.all(failures), Array(6).fill('INVALID_ARGUMENT'));
  }
  const hang = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 60_000).unref());
  const done = env.store.importRootfs(streamOf(await sampleRootfs()), { repo: 'after' }).then(() => 'imported' as const);
  t.is(await Promise.race([done, hang]), 'imported');
  const removed = env.store.remove('after').then(() => 'removed' as const);
  t.is(await Promise.race([removed, hang]), 'removed');
});
