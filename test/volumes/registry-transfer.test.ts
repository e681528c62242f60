/**
 * Volume snapshots pushed to and pulled from a real registry (Debian's docker-registry on
 * loopback, test/helpers/registry.ts), through src/volumes/registry-transfer.ts over two
 * dir drivers on two roots: the first push sends the full tree, a later one only a
 * changeset layer; skopeo reads the artifact; a pull rebuilds the volume with its
 * snapshots, a second pull fetches only the new layer; a corrupted blob is refused. And a
 * 1 GiB volume pushed from a dir driver and pulled into a btrfs one: 1 MiB of pages
 * rewritten inside its big file makes a second push of under 3 MiB (the file travels as its
 * changed blocks), and the pulled tree is the same, xattrs, holes and hardlinks included.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { BtrfsDriver } from '../../volumes/drivers/btrfs/btrfs';
import { DirDriver } from '../../volumes/drivers/dir/dir';
import { parseReference } from '../../src/images/reference';
import { ARTIFACT_TYPE, pullVolume, pushVolume } from '../../src/volumes/registry-transfer';
import type { RegistryMessage } from '../../src/images/registry/service';
import { describeTree } from '../archive/helpers';
import { MiB, random, writeFile } from './helpers';
import { transferHarness } from './transfer-harness';

const exec = promisify(execFile);


test('volume push sends a full layer then one small changeset layer; pull rebuilds the volume and its snapshots, then fetches only the new layer', async (t) => {
  const { tmp, reg, ctxOf } = await transferHarness(t);
  const open = async (name: string) => {
    const d = await DirDriver.open(path.join(tmp, name));
    const messages: RegistryMessage[] = [];
    return { d, ctx: ctxOf(d, name, (m) => messages.push(m)), messages };
  };
  const a = await open('a');
  const b = await open('b');
  const ref = parseReference(`${reg.host}/vols/data:latest`);

  const mp = (await a.d.create('data', { labels: { app: 'db' } })).mountpoint;
  await writeFile(mp, 'big.bin', random(4 * MiB));
  await writeFile(mp, 'conf/app.conf', 'v1\n');
  await writeFile(mp, 'old.log', 'to be deleted');
  await fsp.symlink('conf/app.conf', path.join(mp, 'link'));
  await fsp.link(path.join(mp, 'conf/app.conf'), path.join(mp, 'hard'));
  await fsp.chown(path.join(mp, 'conf/app.conf'), 999, 998);
  await a.d.snapshot('data', 's1', { metadata: { consistency: 'crash' } });
  const first = await pushVolume(a.ctx, ref, 'data', 's1');
  t.true(first.sent > 4 * MiB, `the first push sends the whole tree (${first.sent} bytes)`);
  t.is(first.layers, 1);
  t.true(a.messages.some((m) => m.status === 'Pushed'), 'progress in Docker\'s JSON form');

  const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/vols/data:latest`])).stdout);
  t.is(raw.artifactType, ARTIFACT_TYPE);
  t.is(raw.annotations['org.berth.volume.snapshot'], 's1');
  t.is(raw.annotations['org.berth.volume.consistency'], 'crash');
  t.is(raw.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  // skopeo copies it whole (checking every digest) into an OCI layout.
  await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/vols/data:latest`, `oci:${path.join(tmp, 'layout')}:s1`]);
  t.true(fs.existsSync(path.join(tmp, 'layout', 'blobs', 'sha256', raw.layers[0].digest.slice(7))), 'skopeo copied the layer blob');

  await writeFile(mp, 'conf/app.conf', 'v2, changed\n');
  await fsp.rm(path.join(mp, 'old.log'));
  await writeFile(mp, 'new.txt', 'added');
  await a.d.snapshot('data', 's2');
  const second = await pushVolume(a.ctx, ref, 'data', 's2');
  t.is(second.layers, 2, 'one layer added to the chain');
  t.true(second.sent < 64 * 1024, `the second push sends only the changes (${second.sent} bytes against ${first.sent})`);
  t.log(`first push ${first.sent} bytes, second push ${second.sent} bytes`);

  const pulled = await pullVolume(b.ctx, ref);
  t.deepEqual(pulled.snapshots, ['s1', 's2']);
  t.deepEqual((await b.d.snapshots('data')).map((s) => s.name), ['s1', 's2']);
  const copy = await b.d.inspect('data');
  t.like(copy.labels, { app: 'db' });
  t.deepEqual(await describeTree(copy.mountpoint), await describeTree(mp), 'the pulled volume equals the pushed snapshot, deletion included');

  await writeFile(mp, 'new.txt', 'added, then changed');
  await a.d.snapshot('data', 's3');
  await pushVolume(a.ctx, ref, 'data', 's3');
  const again = await pullVolume(b.ctx, ref);
  t.deepEqual(again.snapshots, ['s3'], 'a volume holding the parent gets only the new snapshot');
  t.true(again.fetched < 64 * 1024, `and fetches only the new layer (${again.fetched} bytes)`);
  t.is(await fsp.readFile(path.join(copy.mountpoint, 'new.txt'), 'utf8'), 'added, then changed');

  await b.d.create('other');
  await t.throwsAsync(pullVolume(b.ctx, ref, 'other'), { code: 'ALREADY_EXISTS' }, 'an unrelated existing volume is never overwritten');

  // A corrupted blob in the registry is refused, and no volume is left half made.
  fs.writeFileSync(reg.blobPath(raw.layers[0].digest), 'corrupt');
  await t.throwsAsync(pullVolume(b.ctx, ref, 'fresh'));
  await t.throwsAsync(b.d.inspect('fresh'), { code: 'NOT_FOUND' });
});

/**
 * Every entry under `root`: mode (with type), owner, whole-second mtime, link count, size, data
 * hash (streamed: files here are 1 GiB), link target, user xattrs. The same string for two
 * trees means the same tree.
 */
async function treeOf(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await fsp.readdir(path.join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = await fsp.lstat(p);
      // A directory's size and link count are the filesystem's own (ext4 and btrfs differ).
      let v = `${r} ${st.mode.toString(8)} ${st.uid}:${st.gid} t${Math.floor(st.mtimeMs / 1000)}`;
      if (!st.isDirectory()) v += ` n${st.nlink} s${st.size}`;
      if (st.isFile()) {
        const h = createHash('sha256');
        for await (const c of fs.createReadStream(p, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
        v += ' ' + h.digest('hex');
      }
      if (st.isSymbolicLink()) v += ' -> ' + (await fsp.readlink(p));
      lines.push(v);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  const x = (await exec('getfattr', ['-R', '-P', '-h', '-d', '-e', 'hex', '-m', '^user\\.', '.'], { cwd: root })).stdout;
  const perFile = x.split('\n\n').map((b) => b.trim()).filter(Boolean).sort(); // getfattr walks in readdir order
  return [...lines, ...perFile].join('\n');
}

test('a 1 GiB volume with 1 MiB of pages rewritten in its big file pushes under 3 MiB the second time; pulled into btrfs it is the same tree, xattrs, holes and hardlinks included', async (t) => {
  const { tmp, reg, ctxOf } = await transferHarness(t);
  const a = ctxOf(await DirDriver.open(path.join(tmp, 'a')), 'a');
  const b = ctxOf(await BtrfsDriver.open(path.join(tmp, 'b'), { poolSize: 2048 * MiB }), 'b');
  const ref = parseReference(`${reg.host}/vols/big:latest`);

  // The big file: 1 GiB, 16 MiB of it random data in 64 runs, holes between (written in a
  // second, and its whole-file form still gzips to over 16 MiB).
  const mp = (await a.driver.create('big')).mountpoint;
  const db = path.join(mp, 'pgdata/base/1/16384');
  await fsp.mkdir(path.dirname(db), { recursive: true });
  let fd = fs.openSync(db, 'w');
  for (let k = 0; k < 64; k++) fs.writeSync(fd, random(256 * 1024), 0, 256 * 1024, k * 16 * MiB);
  fs.ftruncateSync(fd, 1024 * MiB);
  fs.closeSync(fd);
  await writeFile(mp, 'conf/tagged', 'tagged');
  await exec('setfattr', ['-n', 'user.checksum', '-v', 'abc123', path.join(mp, 'conf/tagged')]);
  await fsp.link(path.join(mp, 'conf/tagged'), path.join(mp, 'conf/tagged-too'));
  await fsp.symlink('tagged', path.join(mp, 'conf/sym'));
  await fsp.chown(path.join(mp, 'conf'), 999, 999);
  await writeFile(mp, 'gone/old.wal', random(64 * 1024));
  await a.driver.snapshot('big', 's1');
  const first = await pushVolume(a, ref, 'big', 's1');

  // 128 pages of 8 KiB (1 MiB) rewritten in place, PostgreSQL-style, and a directory deleted.
  fd = fs.openSync(db, 'r+');
  for (let i = 0; i < 128; i++) fs.writeSync(fd, random(8192), 0, 8192, ((i * 1021) % 131072) * 8192);
  fs.closeSync(fd);
  await fsp.rm(path.join(mp, 'gone'), { recursive: true });
  await a.driver.snapshot('big', 's2');
  const second = await pushVolume(a, ref, 'big', 's2');
  t.log(`1 GiB volume: first push ${first.sent} bytes, second push after 1 MiB of pages changed ${second.sent} bytes`);
  t.true(second.sent < 3 * MiB, `the second push sends ${second.sent} bytes, under 3 MiB`);

  const pulled = await pullVolume(b, ref, 'copy');
  t.deepEqual(pulled.snapshots, ['s1', 's2']);
  const copy = (await b.driver.inspect('copy')).mountpoint;
  t.false(fs.existsSync(path.join(copy, 'gone')), 'the deletion arrived');
  t.is(await treeOf(copy), await treeOf(mp), 'the same tree: data, modes, owners, mtimes, links, xattrs');
  const blocks = fs.statSync(path.join(copy, 'pgdata/base/1/16384')).blocks * 512;
  t.true(blocks < 64 * MiB, `the big file stays sparse (${blocks} bytes allocated of 1 GiB)`);
});
