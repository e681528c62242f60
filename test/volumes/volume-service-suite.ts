import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { ExecutionContext, TestFn } from 'ava';
import type { VolumeService } from '../../src/volumes/service';

import { rejects } from '../helpers/errors';
import { collect, makeTar } from '../helpers/tar';

/**
 * The volume service conformance suite: one set of named cases that every VolumeService
 * passes unchanged — the in-process service over a real driver, and the socket client
 * talking to a real daemon (test/volumes/volume-service.test.ts runs it both ways). It
 * asserts error classes and codes, never message text, so a client that maps an error to
 * another class fails here.
 *
 * `factory` gives the service for one case; the socket run shares one daemon between the
 * cases, so each case works on names of its own (`name()`) and scopes every list and prune
 * with its own label, and must not assume an empty service. The service runs as root on
 * this host, so a case may read and write a volume's files through its Mountpoint.
 */
export interface ServiceEnv {
  svc: VolumeService;
  /** The driver the service was opened with ('dir', 'btrfs'). */
  driver: string;
}

export function volumeServiceSuite(test: TestFn, title: string, factory: (t: ExecutionContext) => Promise<ServiceEnv>): void {
  const it = (name: string, fn: (t: ExecutionContext, env: ServiceEnv & Case) => Promise<void>): void => {
    test(`${title}: ${name}`, async (t) => fn(t, { ...(await factory(t)), ...newCase() }));
  };

  it('create, inspect, list and remove a volume, in Docker’s shapes', async (t, { svc, name, label, mine }) => {
    const n = name('v');
    const v = await svc.create({ Name: n, Labels: { ...label, app: 'db' } });
    t.like(v, { Name: n, Driver: 'local', Scope: 'local', Labels: { ...label, app: 'db' } });
    t.false(Number.isNaN(Date.parse(v.CreatedAt)));
    t.true((await fsp.stat(v.Mountpoint)).isDirectory(), 'the mountpoint is a directory on this host');
    t.deepEqual(await svc.inspect(n), v);
    const other = name('w');
    await svc.create({ Name: other, Labels: label });
    t.deepEqual(await mine(svc), [n, other].sort());
    t.deepEqual((await svc.list({ label: ['app=db'], name: [n] })).Volumes.map((x) => x.Name), [n]);
    await svc.remove(n);
    await rejects(t, svc.inspect(n), 'NOT_FOUND');
    await rejects(t, svc.remove(n), 'NOT_FOUND');
    await svc.remove(n, { force: true }); // Docker: rm -f of a missing volume is no error
    t.deepEqual(await mine(svc), [other]);
  });

  it('creating a volume that exists answers the existing one', async (t, { svc, name, label }) => {
    const n = name('v');
    const first = await svc.create({ Name: n, Labels: { ...label, first: '1' } });
    t.deepEqual(await svc.create({ Name: n, Labels: label }), first);
  });

  it('bad input is refused with a typed error and makes nothing', async (t, { svc, name, label, mine }) => {
    for (const bad of ['x', '.v', 'a/b', '..', 'v'.repeat(256)]) {
      await rejects(t, svc.create({ Name: bad, Labels: label }), 'INVALID_ARGUMENT', `create ${JSON.stringify(bad)}`);
    }
    await rejects(t, svc.create({ Name: name('v'), DriverOpts: { colour: 'blue' }, Labels: label }), 'INVALID_ARGUMENT');
    await rejects(t, svc.create({ Name: name('v'), DriverOpts: { size: 'big' }, Labels: label }), 'INVALID_ARGUMENT');
    await rejects(t, svc.list({ colour: ['blue'] }), 'INVALID_ARGUMENT');
    await rejects(t, svc.create({ Name: name('v'), Driver: 'no-such-driver', Labels: label }), 'NOT_FOUND', 'Docker: no such volume plugin');
    const n = name('v');
    await svc.create({ Name: n, Labels: label });
    await rejects(t, svc.snapshot(n, '../x'), 'INVALID_ARGUMENT');
    await rejects(t, svc.clone(n, undefined, 'a/b'), 'INVALID_ARGUMENT');
    await rejects(t, svc.rename(n, '.x'), 'INVALID_ARGUMENT');
    t.deepEqual(await mine(svc), [n], 'nothing half made');
  });

  it('a volume made without a name is anonymous; prune removes anonymous volumes, and named ones with all', async (t, { svc, name, label, mine }) => {
    const anon = await svc.create({ Labels: label });
    t.regex(anon.Name, /^[0-9a-f]{64}$/);
    t.true('com.docker.volume.anonymous' in anon.Labels);
    const named = name('v');
    await svc.create({ Name: named, Labels: label });
    const filters = { label: [labelFilter(label)] };
    t.deepEqual((await svc.prune(filters)).VolumesDeleted, [anon.Name]);
    t.deepEqual(await mine(svc), [named]);
    t.deepEqual((await svc.prune({ ...filters, all: ['true'] })).VolumesDeleted, [named]);
    t.deepEqual(await mine(svc), []);
  });

  it('snapshots are listed, named once, removed; restore brings the files back', async (t, { svc, name, label }) => {
    const n = name('v');
    const v = await svc.create({ Name: n, Labels: label });
    await fsp.writeFile(path.join(v.Mountpoint, 'f'), 'one');
    const s = await svc.snapshot(n, 's1');
    t.like(s, { Volume: n, Name: 's1' });
    t.is(s.Metadata.consistency, 'clean', 'no container used it');
    await rejects(t, svc.snapshot(n, 's1'), 'ALREADY_EXISTS');
    const auto = await svc.snapshot(n);
    t.truthy(auto.Name, 'a snapshot without a name gets one');
    t.deepEqual((await svc.snapshots(n)).map((x) => x.Name).sort(), [auto.Name, 's1'].sort());
    t.is((await svc.inspect(n)).Status?.Snapshots, 2);
    await fsp.writeFile(path.join(v.Mountpoint, 'f'), 'two');
    await svc.restore(n, 's1');
    t.is(await fsp.readFile(path.join(v.Mountpoint, 'f'), 'utf8'), 'one');
    await rejects(t, svc.restore(n, 'nope'), 'NOT_FOUND');
    await svc.removeSnapshot(n, auto.Name);
    await rejects(t, svc.removeSnapshot(n, auto.Name), 'NOT_FOUND');
    t.deepEqual((await svc.snapshots(n)).map((x) => x.Name), ['s1']);
    await rejects(t, svc.snapshot(name('missing'), 's9'), 'NOT_FOUND');
    await rejects(t, svc.snapshots(name('missing')), 'NOT_FOUND');
  });

  it('clone copies a volume or a snapshot of it under a new name, with its labels', async (t, { svc, name, label }) => {
    const n = name('v');
    const v = await svc.create({ Name: n, Labels: { ...label, app: 'db' } });
    await fsp.writeFile(path.join(v.Mountpoint, 'f'), 'one');
    await svc.snapshot(n, 's1');
    await fsp.writeFile(path.join(v.Mountpoint, 'f'), 'two');
    const fromSnap = await svc.clone(n, 's1', name('c1'));
    const live = await svc.clone(n, undefined, name('c2'));
    t.is(await fsp.readFile(path.join(fromSnap.Mountpoint, 'f'), 'utf8'), 'one');
    t.is(await fsp.readFile(path.join(live.Mountpoint, 'f'), 'utf8'), 'two');
    t.like(live.Labels, { app: 'db' });
    await rejects(t, svc.clone(n, undefined, live.Name), 'ALREADY_EXISTS');
    await rejects(t, svc.clone(n, 'nope', name('c3')), 'NOT_FOUND');
    await rejects(t, svc.clone(name('missing'), undefined, name('c4')), 'NOT_FOUND');
  });

  it('rename moves a volume with its files and labels; one with snapshots is a CONFLICT', async (t, { svc, name, label, mine }) => {
    const n = name('v');
    const v = await svc.create({ Name: n, Labels: { ...label, app: 'db' } });
    await fsp.writeFile(path.join(v.Mountpoint, 'f'), 'one');
    const to = name('renamed');
    const r = await svc.rename(n, to);
    t.like(r, { Name: to, Labels: { app: 'db' } });
    t.is(await fsp.readFile(path.join(r.Mountpoint, 'f'), 'utf8'), 'one');
    t.deepEqual(await mine(svc), [to]);
    await rejects(t, svc.inspect(n), 'NOT_FOUND');
    await svc.snapshot(to, 's1');
    await rejects(t, svc.rename(to, name('again')), 'CONFLICT');
    await rejects(t, svc.rename(name('missing'), name('x')), 'NOT_FOUND');
  });

  it('export and import round-trip the files, and import keeps the labels it is given', async (t, { svc, name, label }) => {
    const n = name('v');
    const v = await svc.create({ Name: n, Labels: label });
    await fsp.mkdir(path.join(v.Mountpoint, 'd'));
    await fsp.writeFile(path.join(v.Mountpoint, 'd', 'f'), 'one');
    await svc.snapshot(n, 's1');
    await fsp.writeFile(path.join(v.Mountpoint, 'd', 'f'), 'two');
    const tar = await collect(await svc.export(n, 's1'));
    const copy = await svc.import(name('copy'), streamOf(tar), { labels: { ...label, app: 'db' } });
    t.like(copy.Labels, { ...label, app: 'db' });
    t.like((await svc.inspect(copy.Name)).Labels, { app: 'db' });
    t.is(await fsp.readFile(path.join(copy.Mountpoint, 'd', 'f'), 'utf8'), 'one');
    const plain = await svc.import(name('plain'), streamOf(await makeTar([[{ name: 'hello', mode: 0o644 }, 'hi']])));
    t.is(await fsp.readFile(path.join(plain.Mountpoint, 'hello'), 'utf8'), 'hi');
    await svc.remove(plain.Name);
    await rejects(t, svc.import(copy.Name, streamOf(tar)), 'ALREADY_EXISTS');
    await rejects(t, svc.import(name('bad'), streamOf(Buffer.from('not a tar at all, not even close'.repeat(40)))), 'INVALID_ARGUMENT');
    await rejects(t, svc.export(name('missing')), 'NOT_FOUND');
    await rejects(t, svc.export(n, 'nope'), 'NOT_FOUND');
  });

  it('export --since writes a changeset that import applies on the base, with a deletion; a changed base is refused', async (t, { svc, name, label }) => {
    const n = name('v');
    const v = await svc.create({ Name: n, Labels: label });
    await fsp.writeFile(path.join(v.Mountpoint, 'stays'), 'same');
    await fsp.writeFile(path.join(v.Mountpoint, 'goes'), 'bye');
    await svc.snapshot(n, 's1');
    const copy = await svc.import(name('copy'), streamOf(await collect(await svc.export(n, 's1'))), { labels: label });
    await svc.snapshot(copy.Name, 's1');
    await fsp.rm(path.join(v.Mountpoint, 'goes'));
    await fsp.writeFile(path.join(v.Mountpoint, 'new'), 'hello');
    await svc.snapshot(n, 's2');
    await rejects(t, svc.export(n, undefined, { since: 's1' }), 'INVALID_ARGUMENT', '--since needs VOLUME@SNAPSHOT');
    const delta = await collect(await svc.export(n, 's2', { since: 's1' }));
    await rejects(t, svc.import(copy.Name, streamOf(delta), { labels: { a: 'b' } }), 'INVALID_ARGUMENT', 'labels with a changeset');
    await fsp.writeFile(path.join(copy.Mountpoint, 'local'), 'edit');
    await rejects(t, svc.import(copy.Name, streamOf(delta)), 'FAILED_PRECONDITION', 'the copy changed since s1');
    await fsp.rm(path.join(copy.Mountpoint, 'local'));
    const after = await svc.import(copy.Name, streamOf(delta));
    t.is(after.Name, copy.Name);
    t.deepEqual((await fsp.readdir(copy.Mountpoint)).sort(), ['new', 'stays']);
    t.is(await fsp.readFile(path.join(copy.Mountpoint, 'new'), 'utf8'), 'hello');
    t.deepEqual((await svc.snapshots(copy.Name)).map((s) => s.Name), ['s1', 's2']);
  });

  it('says which driver holds the volumes', async (t, { svc, driver, name, label }) => {
    t.is(await svc.driver(), driver);
    t.is((await svc.create({ Name: name('v'), Labels: label })).Status?.Driver, driver);
  });
}

interface Case {
  /** A volume name no other case uses. */
  name(what: string): string;
  /** This case's own label, on every volume it makes. */
  label: Record<string, string>;
  /** The names of this case's volumes, sorted. */
  mine(svc: VolumeService): Promise<string[]>;
}

function newCase(): Case {
  const id = randomBytes(4).toString('hex');
  const label = { 'test.case': id };
  return {
    name: (what) => `${what}-${id}`,
    label,
    mine: async (svc) => (await svc.list({ label: [labelFilter(label)] })).Volumes.map((v) => v.Name).sort(),
  };
}

function labelFilter(label: Record<string, string>): string {
  const [k, v] = Object.entries(label)[0];
  return `${k}=${v}`;
}

function streamOf(b: Buffer) {
  return Readable.from([b]);
}
