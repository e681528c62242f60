import test, { ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { TestDaemon, listTree, exec } from '../helpers/daemon';
import { RemoteVolumeService } from '../../src/client/volumes';

/**
 * Crash safety of volumes through the daemon: SIGKILL berthd while it creates, snapshots,
 * clones, restores or imports a volume, start it again on the same root, and check that
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
    if (st.isFile()) out[rel] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
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

/**
 * Node's global agent keeps connections alive: right after a restart, a request can still
 * go out on a socket of the killed daemon (EPIPE, ECONNRESET). Such a request never
 * reached a daemon that lives, so it is sent again.
 */
async function again<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= 3 || !['EPIPE', 'ECONNRESET'].includes((e as { code?: string }).code ?? '')) throw e;
    }
  }
}

class Vols {
  /** The client for crashing operations: no retries. */
  raw: RemoteVolumeService;
  /** The client for everything else: resent once a stale connection fails. */
  v: RemoteVolumeService;
  constructor(readonly d: TestDaemon) {
    const raw = (this.raw = new RemoteVolumeService(d.transport));
    this.v = new Proxy(raw, {
      get(target, prop, recv) {
        const f = Reflect.get(target, prop, recv);
        return typeof f === 'function' ? (...a: unknown[]) => again(() => f.apply(target, a)) : f;
      },
    });
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

/** Start `op` without waiting for it, SIGKILL berthd after `delay` ms, start it again. */
async function crashDuring(d: TestDaemon, delay: number, op: () => Promise<unknown>): Promise<void> {
  const pending = op().then(
    () => 'done',
    () => 'failed',
  );
  await new Promise((r) => setTimeout(r, delay));
  await d.kill();
  await pending;
  await d.restart();
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

/** Once the operation ran again, nothing the crash left is on disk any more. */
function assertNoDebris(t: ExecutionContext, d: TestDaemon): void {
  t.deepEqual(leftovers(d.root), [], 'what the crash left was cleaned up');
}

const DELAYS = [0, 3, 8, 15, 30, 60];

for (const driver of ['dir', 'btrfs'] as const) {
  const start = () => TestDaemon.start({ args: ['--volume-driver', driver] });

  test(`${driver}: SIGKILL during volume create, then create succeeds`, async (t) => {
    const d = await start();
    t.teardown(() => d.stop());
    const vols = new Vols(d);
    // The very first create also opens the driver (on btrfs: makes and mounts the pool).
    for (const [i, delay] of DELAYS.entries()) {
      const name = `c${i}`;
      await crashDuring(d, delay, () => vols.raw.create({ Name: name, Labels: { n: String(i) } }));
      const before = DELAYS.slice(0, i).map((_, j) => `c${j}`);
      await assertConsistent(t, vols, [...before, name]);
      const names = await vols.names();
      for (const b of before) t.true(names.includes(b), `${b} survives`);
      if (names.includes(name)) t.is((await vols.v.inspect(name)).Labels.n, String(i), 'a listed volume is whole, labels and all');
      const v = await vols.v.create({ Name: name, Labels: { n: String(i) } });
      t.is(v.Name, name);
      t.is(v.Labels.n, String(i));
      t.deepEqual(tree(v.Mountpoint), {});
      assertNoDebris(t, d);
    }
    const info = await vols.v.inspect('c0');
    t.is((info.Status as { Driver: string }).Driver, driver);
  });

  test(`${driver}: SIGKILL during snapshot and clone leaves whole snapshots and clones`, async (t) => {
    const d = await start();
    t.teardown(() => d.stop());
    const vols = new Vols(d);
    await vols.v.create({ Name: 'src' });
    const data = await fill(await vols.mountpoint('src'), 24, 'base');
    t.is((await vols.v.snapshot('src', 'base')).Name, 'base');

    for (const [i, delay] of DELAYS.entries()) {
      // Snapshot.
      const snap = `s${i}`;
      await crashDuring(d, delay, () => vols.raw.snapshot('src', snap));
      await assertConsistent(t, vols, ['src', ...DELAYS.slice(0, i).map((_, j) => `k${j}`)]);
      t.deepEqual(tree(await vols.mountpoint('src')), data, 'the volume is intact');
      const snaps = await vols.snaps('src');
      t.true(snaps.includes('base'));
      t.deepEqual(
        snaps.filter((s) => s !== 'base' && s !== snap),
        DELAYS.slice(0, i).map((_, j) => `s${j}`),
        'earlier snapshots survive, nothing else appears',
      );
      if (snaps.includes(snap)) {
        t.deepEqual(await vols.snapTree('src', snap), data, `${snap}, listed after the crash, is whole`);
      } else {
        t.is((await vols.v.snapshot('src', snap)).Name, snap, 'the same snapshot then succeeds');
      }
      t.deepEqual(await vols.snapTree('src', snap), data);

      // Clone of a snapshot.
      const clone = `k${i}`;
      await crashDuring(d, delay, () => vols.raw.clone('src', 'base', clone));
      await assertConsistent(t, vols, ['src', ...DELAYS.slice(0, i + 1).map((_, j) => `k${j}`)]);
      if (!(await vols.names()).includes(clone)) {
        t.is((await vols.v.clone('src', 'base', clone)).Name, clone, 'the same clone then succeeds');
      }
      t.deepEqual(tree(await vols.mountpoint(clone)), data, `${clone} is whole`);
      assertNoDebris(t, d);
    }
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

    // On dir a restore copies 24 MiB: the later delays land in the middle of it.
    for (const delay of [...DELAYS, 120, 250]) {
      await crashDuring(d, delay, () => vols.raw.restore('db', 'old'));
      await assertConsistent(t, vols, ['db']);
      t.deepEqual(await vols.snaps('db'), ['new', 'old'], 'both snapshots survive');
      const got = tree(await vols.mountpoint('db'));
      t.true(JSON.stringify(got) === JSON.stringify(old) || JSON.stringify(got) === JSON.stringify(now), `after a crash ${delay} ms in, db holds either file set whole`);
      t.is(await vols.mountpoint('db'), mp, 'the mountpoint stays');
      await vols.v.restore('db', 'old');
      t.deepEqual(tree(mp), old, 'the same restore then succeeds');
      assertNoDebris(t, d);
      await vols.v.restore('db', 'new');
      t.deepEqual(tree(mp), now);
    }
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

    for (const fraction of [0.1, 0.6]) {
      const body = new PassThrough();
      const pending = vols.raw.import('imp', body).catch(() => undefined);
      body.write(bytes.subarray(0, Math.floor(bytes.length * fraction)));
      await new Promise((r) => setTimeout(r, 700)); // let the daemon write some of it
      await d.kill();
      body.destroy();
      await pending;
      await d.restart();
      await assertConsistent(t, vols, ['keep']);
      t.deepEqual(await vols.names(), ['keep'], `no half volume after a crash ${fraction * 100}% in`);
      t.deepEqual(tree(await vols.mountpoint('keep')), kept);
    }

    const r = await d.berth(['volume', 'import', 'imp', tar]);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(await vols.names(), ['imp', 'keep']);
    t.deepEqual(tree(await vols.mountpoint('imp')), data, 'the same import then succeeds, byte for byte');
    assertNoDebris(t, d);
    // And through a container, as a user would check it.
    const sum = await d.berth(['run', '--rm', '-v', 'imp:/d', 'busybox', 'sha256sum', '/d/imp.txt']);
    t.is(sum.code, 0, sum.stderr);
    t.is(sum.stdout.split(/\s+/)[0], data['imp.txt']);
  });
}
