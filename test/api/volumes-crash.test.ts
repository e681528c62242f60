import test, { ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { TestDaemon, listTree, exec } from '../helpers/daemon';
import type { RemoteVolumeService } from '../../src/client/volumes';
import { crashAt } from '../helpers/fault';
import { eventually } from '../helpers/eventually';
import { sha256 } from '../helpers/digest';

/**
 * Crash safety of volumes through the daemon: SIGKILL berthd at each named step (fault
 * points, volumes/shared/fault.ts) of creating, snapshotting, cloning, restoring or
 * importing a volume, check that the step's debris was on disk, start it again on the
 * same root, and check that
 * every volume and snapshot it lists is whole (the files written before the crash are
 * byte for byte there), that nothing half made is listed or left on disk, and that the
 * same operation then succeeds.
 */

type Tree = Record<string, string>;

/** relative path → sha256 of every regular file under dir (symlinks by target). */
function tree(dir: string): Tree {
  const out: Tree = {};
  for (const rel of listTree(dir)) {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    if (st.isFile()) out[rel] = sha256(fs.readFileSync(p));
    else if (st.isSymbolicLink()) out[rel] = 'link:' + fs.readlinkSync(p);
  }
  return out;
}

/** Fill a volume's mountpoint with random files (`mb` MiB in all), flushed to disk. */
async function fill(mountpoint: string, mb: number, tag: string): Promise<Tree> {
  fs.mkdirSync(path.join(mountpoint, 'sub'), { recursive: true });
  for (let i = 0; i < Math.max(1, Math.ceil(mb / 4)); i++) {
    await exec('dd', ['if=/dev/urandom', `of=${path.join(mountpoint, 'sub', `${tag}-${i}`)}`, 'bs=1M', `count=${Math.min(4, mb)}`, 'status=none']);
  }
  fs.writeFileSync(path.join(mountpoint, `${tag}.txt`), `written before the crash: ${tag}\n`);
  await exec('sync', ['-f', mountpoint]);
  return tree(mountpoint);
}

/** What a crashed volume operation could leave on disk: staged or half-deleted data. */
function leftovers(root: string): string[] {
  return listTree(path.join(root, 'volumes')).filter(
    (p) =>
      /(^|\/)staging\/(new|rm|export)-[^/]*$/.test(p) || /(^|\/)volumes\/[^/]+\/(new|rm)-[^/]*$/.test(p) || /(^|\/)volumes\/[^/]+\/snapshots\/\.(new|rm)-[^/]*$/.test(p),
  );
}

class Vols {
  readonly v: RemoteVolumeService;
  constructor(readonly d: TestDaemon) {
    this.v = d.volumes;
  }
  async names(): Promise<string[]> {
    return (await this.v.list()).Volumes.map((x) => x.Name).sort();
  }
  async mountpoint(name: string): Promise<string> {
    return (await this.v.inspect(name)).Mountpoint;
  }
  async snaps(name: string): Promise<string[]> {
    return (await this.v.snapshots(name)).map((s) => s.Name).sort();
  }
  /** The files of name@snap, seen through a clone made now (then removed). */
  async snapTree(name: string, snap: string): Promise<Tree> {
    const probe = `probe-${Date.now()}`;
    const c = await this.v.clone(name, snap, probe);
    const t = tree(c.Mountpoint);
    await this.v.remove(probe, { force: true });
    return t;
  }
}

/** Paths under the volume driver's directories (the btrfs pool is mounted among them). */
function onDisk(d: TestDaemon): string[] {
  return listTree(path.join(d.root, 'volumes'));
}

/** Wait until the volume lock of `name` a killed daemon held is stale (no longer refreshed for 10 s), so a start would take it. */
async function lockStale(d: TestDaemon, name: string): Promise<void> {
  const key = sha256(name).slice(0, 32);
  const lock = onDisk(d).find((p) => p.endsWith(`locks/${key}.lock`));
  if (!lock) return; // released
  const file = path.join(d.root, 'volumes', lock);
  await eventually(() => !fs.existsSync(file) || Date.now() - fs.statSync(file).mtimeMs > 11_000, { message: `the lock of ${name} to go stale`, timeout: 60_000, interval: 250 });
}

/** Whether some path on disk matches `re`, for "the crash left this debris" checks. */
function has(d: TestDaemon, re: RegExp): boolean {
  return onDisk(d).some((p) => re.test(p));
}

/** Everything listed is whole: no staging names, and each snapshot list reads. */
async function assertConsistent(t: ExecutionContext, vols: Vols, allowed: string[]): Promise<void> {
  const names = await vols.names();
  for (const n of names) {
    t.false(/^(new|rm)-/.test(n), `half-made volume listed: ${n}`);
    t.true(allowed.includes(n), `unexpected volume ${n} (allowed ${allowed.join(', ')})`);
    for (const s of await vols.snaps(n)) t.false(/^\.?(new|rm)-/.test(s), `half-made snapshot listed: ${n}@${s}`);
  }
}

/**
 * Once the operation ran again, nothing the crash left is on disk any more. (Not right
 * after the restart: a crashed holder's volume lock looks held until it is stale, 10 s,
 * and until then the debris waits for the next operation on that volume.)
 */
function assertNoDebris(t: ExecutionContext, d: TestDaemon): void {
  t.deepEqual(leftovers(d.root), [], 'what the crash left was cleaned up');
}

/** The two steps of building a volume (create, clone, import) and what each leaves on disk for `name`. */
const BUILD_STEPS = [
  { step: 'volume.build.filled', debris: () => /(^|\/)staging\/new-[^/]+\/_data$/ },
  { step: 'volume.build.renamed', debris: (name: string) => new RegExp(`(^|/)volumes/${name}/_data$`) },
];

/** The name a test gives the volume it crashes at `step`. */
const at = (prefix: string, step: string): string => `${prefix}-${step.split('.').pop()}`;

for (const driver of ['dir', 'btrfs'] as const) {
  const start = () => TestDaemon.start({ args: ['--volume-driver', driver] });

  test(`${driver}: SIGKILL during volume create, then create succeeds`, async (t) => {
    const d = await start();
    t.teardown(() => d.stop());
    const vols = new Vols(d);
    await vols.v.create({ Name: 'before' });
    for (const { step, debris } of BUILD_STEPS) {
      const name = at('c', step);
      await crashAt(d, step, () => d.volumes.create({ Name: name, Labels: { n: name } }), () => {
        t.true(has(d, debris(name)), `${step}: the crash left the half-made volume on disk`);
      });
      await assertConsistent(t, vols, ['before', ...BUILD_STEPS.map((s) => at('c', s.step))]);
      t.false((await vols.names()).includes(name), `${step}: a volume with no record is not listed`);
      t.true((await vols.names()).includes('before'), 'a volume made before the crash survives');
      const v = await vols.v.create({ Name: name, Labels: { n: name } });
      t.is(v.Labels.n, name);
      t.deepEqual(tree(v.Mountpoint), {});
      assertNoDebris(t, d);
    }
    const info = await vols.v.inspect('before');
    t.is((info.Status as { Driver: string }).Driver, driver);
  });

  test(`${driver}: SIGKILL during snapshot and clone leaves whole snapshots and clones`, async (t) => {
    const d = await start();
    t.teardown(() => d.stop());
    const vols = new Vols(d);
    await vols.v.create({ Name: 'src' });
    const data = await fill(await vols.mountpoint('src'), 24, 'base');
    t.is((await vols.v.snapshot('src', 'base')).Name, 'base');

    // Snapshot: the copy is made (dir: .new-*, btrfs: in place) and no record names it.
    const copy = /(^|\/)volumes\/src\/snapshots\/(\.new-[^/]+|s1)$/;
    await crashAt(d, 'volume.snapshot.copied', () => d.volumes.snapshot('src', 's1'), () => {
      t.true(has(d, copy), 'the crash left the unrecorded snapshot copy');
    });
    await assertConsistent(t, vols, ['src']);
    t.deepEqual(tree(await vols.mountpoint('src')), data, 'the volume is intact');
    t.deepEqual(await vols.snaps('src'), ['base'], 'the unrecorded snapshot is not listed');
    t.is((await vols.v.snapshot('src', 's1')).Name, 's1', 'the same snapshot then succeeds');
    t.false(has(d, /(^|\/)volumes\/src\/snapshots\/\.new-[^/]+$/), 'and the copy the crash left is gone');
    t.deepEqual(await vols.snapTree('src', 's1'), data);

    // Clone of a snapshot, at each step of building the new volume.
    for (const { step, debris } of BUILD_STEPS) {
      const clone = at('k', step);
      await crashAt(d, step, () => d.volumes.clone('src', 'base', clone), () => {
        t.true(has(d, debris(clone)), `${step}: the crash left the half-made clone on disk`);
      });
      await assertConsistent(t, vols, ['src', ...BUILD_STEPS.map((s) => at('k', s.step))]);
      t.false((await vols.names()).includes(clone), `${step}: the unrecorded clone is not listed`);
      t.is((await vols.v.clone('src', 'base', clone)).Name, clone, 'the same clone then succeeds');
      t.deepEqual(tree(await vols.mountpoint(clone)), data, `${clone} is whole`);
      assertNoDebris(t, d);
    }
    t.deepEqual(await vols.snaps('src'), ['base', 's1']);
    t.deepEqual(await vols.snapTree('src', 'base'), data, 'the source snapshot is untouched');
  });

  test(`${driver}: SIGKILL during restore leaves the old files or the snapshot's, never a mix`, async (t) => {
    const d = await start();
    t.teardown(() => d.stop());
    const vols = new Vols(d);
    await vols.v.create({ Name: 'db' });
    const mp = await vols.mountpoint('db');
    const old = await fill(mp, 24, 'old');
    await vols.v.snapshot('db', 'old');
    fs.rmSync(path.join(mp, 'sub'), { recursive: true });
    fs.rmSync(path.join(mp, 'old.txt'));
    const now = await fill(mp, 8, 'now');
    await vols.v.snapshot('db', 'new');

    // The copy is whole but no journal names it: restart drops it and db keeps its files.
    await crashAt(d, 'volume.restore.staged', () => d.volumes.restore('db', 'old'), () => {
      t.true(has(d, /(^|\/)volumes\/db\/new-[^/]+$/), 'the crash left the staged copy');
    });
    await assertConsistent(t, vols, ['db']);
    t.deepEqual(await vols.snaps('db'), ['new', 'old'], 'both snapshots survive');
    t.deepEqual(tree(mp), now, 'a restore that never reached its journal left the files as they were');
    t.is(await vols.mountpoint('db'), mp, 'the mountpoint stays');

    // Between the two renames _data is missing: the journal makes restart finish the swap.
    // A dead holder's volume lock looks held until it is stale; wait for that, so that the
    // restart itself (not a later operation on db) is what repairs the volume.
    await crashAt(
      d,
      'volume.restore.after-rename',
      () => d.volumes.restore('db', 'old'),
      () => {
        t.false(fs.existsSync(mp), 'the crash came while _data was renamed aside');
        t.true(has(d, /(^|\/)volumes\/db\/rm-[^/]+$/), 'the old files are aside');
        t.true(has(d, /(^|\/)volumes\/db\/new-[^/]+$/), 'the new copy is staged');
      },
      { afterKill: () => lockStale(d, 'db') },
    );
    await assertConsistent(t, vols, ['db']);
    t.deepEqual(await vols.snaps('db'), ['new', 'old'], 'both snapshots survive');
    t.deepEqual(tree(mp), old, 'restart rolled the journaled restore forward');
    t.is(await vols.mountpoint('db'), mp, 'the mountpoint stays');
    assertNoDebris(t, d);

    await vols.v.restore('db', 'new');
    t.deepEqual(tree(mp), now, 'restore works after the crashes');
    t.deepEqual(await vols.snapTree('db', 'old'), old);
    t.deepEqual(await vols.snapTree('db', 'new'), now);
  });

  test(`${driver}: SIGKILL in the middle of a volume import leaves no half volume, and the import then succeeds`, async (t) => {
    const d = await start();
    t.teardown(() => d.stop());
    const work = d.root + '-work';
    t.teardown(() => fs.promises.rm(work, { recursive: true, force: true }));
    const vols = new Vols(d);
    // A volume that exists before the crash must come through it untouched.
    await vols.v.create({ Name: 'keep' });
    const kept = await fill(await vols.mountpoint('keep'), 4, 'keep');

    const src = path.join(work, 'src');
    const data = await fill(src, 32, 'imp');
    const tar = path.join(work, 'vol.tar');
    await exec('tar', ['-C', src, '-cf', tar, '.']);
    const bytes = fs.readFileSync(tar);

    // Mid-stream: part of the body sent, and the daemon has written some of it into staging.
    const body = new PassThrough();
    const pending = d.volumes.import('imp', body).catch(() => undefined);
    body.write(bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await eventually(() => has(d, /(^|\/)staging\/new-[^/]+\/_data\/sub\/imp-0$/), { message: 'the import to write its first file into staging' });
    await d.kill();
    body.destroy();
    await pending;
    await d.restart();
    await assertConsistent(t, vols, ['keep']);
    t.deepEqual(await vols.names(), ['keep'], 'no half volume after a crash mid-stream');
    t.deepEqual(tree(await vols.mountpoint('keep')), kept);

    // After the whole body: the volume is built but not yet recorded.
    for (const { step, debris } of BUILD_STEPS) {
      await crashAt(d, step, () => d.volumes.import('imp', fs.createReadStream(tar)), () => {
        t.true(has(d, debris('imp')), `${step}: the crash left the half-made volume on disk`);
      });
      await assertConsistent(t, vols, ['keep']);
      t.deepEqual(await vols.names(), ['keep'], `${step}: no half volume`);
      t.deepEqual(tree(await vols.mountpoint('keep')), kept);
    }

    const r = await d.berth(['volume', 'import', 'imp', tar]);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(await vols.names(), ['imp', 'keep']);
    t.deepEqual(tree(await vols.mountpoint('imp')), data, 'the same import then succeeds, byte for byte');
    assertNoDebris(t, d); // what all three crashes left, removed by the import that took the lock
    // And through a container, as a user would check it.
    const sum = await d.berth(['run', '--rm', '-v', 'imp:/d', 'busybox', 'sha256sum', '/d/imp.txt']);
    t.is(sum.code, 0, sum.stderr);
    t.is(sum.stdout.split(/\s+/)[0], data['imp.txt']);
  });
}
