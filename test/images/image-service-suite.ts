import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { ExecutionContext, TestFn } from 'ava';
import type { ImageService } from '../../src/images/service';

import { rejects } from '../helpers/errors';
import { makeTar, streamOf } from '../helpers/tar';

/**
 * The image service conformance suite: the same named cases against every ImageService —
 * the in-process image store and the socket client talking to a real daemon
 * (test/images/image-service.test.ts runs it both ways). It asserts error classes and
 * codes, never message text.
 *
 * The socket run shares one daemon between the cases, so each case names its images with
 * a repository of its own (`repo()`) and imports a rootfs holding its own id, so no two
 * cases share an image, and lists only through a `reference` filter.
 */
export function imageServiceSuite(test: TestFn, title: string, factory: (t: ExecutionContext) => Promise<ImageService>): void {
  const it = (name: string, fn: (t: ExecutionContext, svc: ImageService, c: Case) => Promise<void>): void => {
    test(`${title}: ${name}`, async (t) => fn(t, await factory(t), newCase()));
  };

  it('import makes a tagged image that list, inspect and history show', async (t, svc, c) => {
    const repo = c.repo('app');
    const { id } = await svc.importRootfs(streamOf(await c.rootfs()), { repo: `${repo}:v1`, changes: ['CMD ["sh"]', 'ENV A=b'], message: 'made by the suite' });
    t.regex(id, /^sha256:[0-9a-f]{64}$/);
    const listed = await svc.list({ filters: { reference: [repo] } });
    t.deepEqual(listed.map((i) => i.Id), [id]);
    t.deepEqual(listed[0].RepoTags, [`${repo}:v1`]);
    const img = await svc.inspect(`${repo}:v1`);
    t.like(img, { Id: id, RepoTags: [`${repo}:v1`], Os: 'linux', Comment: 'made by the suite' });
    t.deepEqual(img.Config.Cmd, ['sh']);
    t.true(img.Config.Env?.includes('A=b'));
    t.is(img.RootFS.Layers.length, 1);
    t.deepEqual(await svc.inspect(id), img, 'found by id too');
    const history = await svc.history(id);
    t.is(history[0].Id, id);
    t.true(history.some((h) => h.Comment === 'made by the suite'));
  });

  it('a missing image is NOT_FOUND and a bad name INVALID_ARGUMENT, everywhere', async (t, svc, c) => {
    const missing = c.repo('missing');
    await rejects(t, svc.inspect(missing), 'NOT_FOUND');
    await rejects(t, svc.history(missing), 'NOT_FOUND');
    await rejects(t, svc.tag(missing, c.repo('x')), 'NOT_FOUND');
    await rejects(t, svc.remove(missing), 'NOT_FOUND');
    await rejects(t, svc.inspect('Bad-Name'), 'INVALID_ARGUMENT');
    const repo = c.repo('app');
    await svc.importRootfs(streamOf(await c.rootfs()), { repo });
    await rejects(t, svc.tag(repo, 'Bad'), 'INVALID_ARGUMENT');
    await rejects(t, svc.importRootfs(streamOf(await c.rootfs()), { repo: 'UPPER' }), 'INVALID_ARGUMENT');
    await rejects(t, svc.list({ filters: { colour: ['blue'] } }), 'INVALID_ARGUMENT');
  });

  it('a rootfs that is not a tar is INVALID_ARGUMENT and leaves no image', async (t, svc, c) => {
    const repo = c.repo('broken');
    await rejects(t, svc.importRootfs(streamOf(Buffer.from('this is not a tar archive '.repeat(60))), { repo }), 'INVALID_ARGUMENT');
    await rejects(t, svc.inspect(repo), 'NOT_FOUND');
    t.deepEqual(await svc.list({ filters: { reference: [repo] } }), []);
  });

  it('tag adds names; remove untags, and deletes with the last name', async (t, svc, c) => {
    const one = c.repo('one');
    const two = c.repo('two');
    const { id } = await svc.importRootfs(streamOf(await c.rootfs()), { repo: one });
    await svc.tag(one, two, 'v2');
    t.deepEqual((await svc.inspect(id)).RepoTags.sort(), [`${one}:latest`, `${two}:v2`].sort());
    await rejects(t, svc.remove(id), 'CONFLICT', 'by id with two names, unless forced');
    t.deepEqual(await svc.remove(`${two}:v2`), [{ Untagged: `${two}:v2` }]);
    const last = await svc.remove(one);
    t.deepEqual(last.slice(0, 2), [{ Untagged: `${one}:latest` }, { Deleted: id }]);
    await rejects(t, svc.inspect(id), 'NOT_FOUND');
  });

  it('remove with force by id takes every name', async (t, svc, c) => {
    const a = c.repo('a');
    const { id } = await svc.importRootfs(streamOf(await c.rootfs()), { repo: a });
    await svc.tag(id, c.repo('b'));
    const out = await svc.remove(id, { force: true });
    t.deepEqual(out.filter((x) => x.Untagged).length, 2);
    t.true(out.some((x) => x.Deleted === id));
    await rejects(t, svc.inspect(a), 'NOT_FOUND');
  });

  it('save then load brings back the same image under its name', async (t, svc, c) => {
    const repo = c.repo('saved');
    const { id } = await svc.importRootfs(streamOf(await c.rootfs()), { repo: `${repo}:v1` });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (b: Buffer) => chunks.push(b));
    await svc.save([`${repo}:v1`], out);
    await svc.remove(`${repo}:v1`);
    await rejects(t, svc.inspect(id), 'NOT_FOUND');
    const { loaded } = await svc.load(streamOf(Buffer.concat(chunks)));
    t.true(loaded.some((l) => l.includes(`${repo}:v1`)), `loaded: ${loaded.join(', ')}`);
    t.is((await svc.inspect(`${repo}:v1`)).Id, id, 'the id survives save and load');
    await rejects(t, svc.save([c.repo('missing')], new PassThrough()), 'NOT_FOUND');
    await rejects(t, svc.load(streamOf(Buffer.from('not an image archive '.repeat(60)))), 'INVALID_ARGUMENT');
  });
}

interface Case {
  /** A repository name no other case uses. */
  repo(what: string): string;
  /** A small rootfs tar with a file naming this case, so its images are its own. */
  rootfs(): Promise<Buffer>;
}

function newCase(): Case {
  const id = randomBytes(4).toString('hex');
  return {
    repo: (what) => `suite-${id}/${what}`,
    rootfs: () =>
      makeTar([
        { name: 'etc/', type: 'directory' },
        { name: 'etc/case', data: id },
        { name: 'bin/', type: 'directory' },
        { name: 'bin/hello', data: '#!/bin/sh\necho hello\n', mode: 0o755 },
      ]),
  };
}
