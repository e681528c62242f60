import test from 'ava';
import { PassThrough, Writable } from 'node:stream';
import * as tar from 'tar-stream';
import type { Readable } from 'node:stream';
import { collectOutput, engineEnv } from './env';
import { eventually } from '../helpers/eventually';

async function tarNames(input: Readable): Promise<string[]> {
  const names: string[] = [];
  const extract = tar.extract();
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (h, stream, next) => {
      names.push(h.name);
      stream.on('end', next);
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    input.on('error', reject);
    input.pipe(extract);
  });
  return names;
}

test('commit makes an image whose new layer holds a created file and a whiteout for a deleted one', async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'echo new > /created; rm /etc/group; echo changed; sleep 1000'], Env: ['A=1'] });
  await eventually(async () => (await collectOutput(env.engine.logs(id, { stdout: true }))).stdout === 'changed\n', { message: 'the container to make its changes' });
  const { Id: image } = await env.engine.commit(id, { repo: 'snap', tag: 'v1', comment: 'a note', author: 'me', changes: ['CMD ["cat", "/created"]'] });
  t.is((await env.inspect(id)).State.Status, 'running', 'unpaused after the commit');
  const info = await env.images.inspect('snap:v1');
  t.is(info.Id, image);
  t.is(info.RootFS.Layers.length, 2);
  t.deepEqual(info.Config.Cmd, ['cat', '/created']);
  t.true(info.Config.Env?.includes('A=1'));
  t.is(info.Author, 'me');
  t.is(info.Comment, 'a note');
  const layer = info.RootFS.Layers[1]; // uncompressed: blob digest = diff id
  const names = await tarNames(await env.images.content.reader(layer));
  t.true(names.includes('created'));
  t.true(names.includes('etc/.wh.group'));
  t.false(names.some((n) => n.startsWith('bin/')), 'only the changes');
  const history = await env.images.history('snap:v1');
  t.is(history.length, 2);
  t.true(env.seen.some((e) => e.id === id && e.Action === 'commit' && e.Actor.Attributes.imageID === image));
  // A container from the new image sees the change.
  const child = await env.run({ Image: 'snap:v1', Cmd: ['sh', '-c', 'cat /created; ls /etc/group || echo nogroup'] });
  await env.engine.wait(child);
  t.is((await collectOutput(env.engine.logs(child, { stdout: true }))).stdout, 'new\nnogroup\n');
});

test("export writes the container's filesystem as a tar", async (t) => {
  const env = await engineEnv(t);
  const id = await env.run({ Cmd: ['sh', '-c', 'echo x > /exported'] });
  await env.engine.wait(id);
  const out = new PassThrough();
  const names = tarNames(out);
  await env.engine.export(id, out);
  const all = await names;
  t.true(all.includes('exported'));
  t.true(all.includes('bin/busybox'));
  t.true(env.seen.some((e) => e.id === id && e.Action === 'export'));
  // and of a running one
  const run = await env.run({ Cmd: ['sleep', '1000'] });
  const chunks: Buffer[] = [];
  await env.engine.export(run, new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) }));
  t.true(Buffer.concat(chunks).length > 1024);
});

test('rmi of an image a container uses is a CONFLICT until the container is gone', async (t) => {
  const env = await engineEnv(t);
  const { Id } = await env.engine.create({ Image: 'busybox', Cmd: ['true'] });
  await env.images.tag('busybox', 'other', 'tag');
  t.deepEqual(await env.images.remove('other:tag'), [{ Untagged: 'other:tag' }], 'untagging one of several names is fine');
  await t.throwsAsync(env.images.remove('busybox'), { code: 'CONFLICT' });
  await t.throwsAsync(env.images.remove((await env.inspect(Id)).Image), { code: 'CONFLICT' });
  await env.engine.remove(Id);
  const removed = await env.images.remove('busybox');
  t.true(removed.some((r) => r.Deleted));
});
