import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { TestDaemon, useDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { loadImages } from '../helpers/images';

/**
 * The proof: a real Redis keeps its data on a berth volume across containers, a snapshot
 * taken while it runs brings back exactly its keys, and a clone feeds a second Redis.
 *
 * One daemon per volume driver, shared by that driver's tests (none restarts or kills it):
 * each test names its containers and volumes with its own tag (useDaemon) and asserts only
 * about them. The containers are set up through the API; the volume commands under test
 * run through the berth CLI.
 */

const REDIS = ['redis-server', '--port', '6390', '--dir', '/data', '--save', '', '--appendonly', 'yes'];
const DRIVERS = ['btrfs', 'dir'] as const;
const daemons = new Map<string, TestDaemon>();

test.before(async () => {
  await Promise.all(
    DRIVERS.map(async (driver) => {
      const d = await TestDaemon.start({ args: ['--volume-driver', driver] });
      daemons.set(driver, d);
      await loadImages(d, 'redis');
    }),
  );
});
test.after.always(async () => {
  const errors: unknown[] = [];
  for (const d of daemons.values()) await d.stop().catch((e) => errors.push(e));
  if (errors.length) throw errors[0];
});

/** `redis-cli -p 6390 ARGS` in container c (an exec through the API); its stdout, trimmed. */
async function cli(d: TestDaemon, c: string, ...args: string[]): Promise<string> {
  const { Id } = await d.containers.execCreate(c, { Cmd: ['redis-cli', '-p', '6390', ...args] });
  let out = '';
  let err = '';
  const sink = (add: (s: string) => void) => new Writable({ write: (b, _e, cb) => (add(b.toString()), cb()) });
  const code = await d.containers.execStart(Id, { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) });
  if (code !== 0) throw new Error(`redis-cli ${args.join(' ')} in ${c}: exit ${code}: ${err}`);
  return out.trim();
}

async function waitReady(d: TestDaemon, c: string): Promise<void> {
  await eventually(async () => (await cli(d, c, 'ping')) === 'PONG', { timeout: 60_000, message: `redis in ${c} to answer` });
}

async function keys(d: TestDaemon, c: string): Promise<string[]> {
  const out = await cli(d, c, '--raw', 'keys', '*');
  return out ? out.split('\n').sort() : [];
}

/** As `berth run -d --name NAME -v VOLUME:/data redis …`, through the API; waits until Redis answers. */
async function redis(d: TestDaemon, name: string, volume: string): Promise<void> {
  await d.containers.create({ Image: 'redis', Cmd: REDIS, HostConfig: { Binds: [`${volume}:/data`] } }, name);
  await d.containers.start(name);
  await waitReady(d, name);
}

for (const driver of DRIVERS) {
  test(`${driver}: a Redis on a volume: data outlives containers, snapshot while running, restore, clone`, async (t) => {
    const d = daemons.get(driver)!;
    const share = useDaemon(t, d);
    const [r1, r2, r3, r4] = ['r1', 'r2', 'r3', 'r4'].map((n) => share.name(n));
    const [rdata, rcopy, rimported] = ['rdata', 'rcopy', 'rimported'].map((n) => share.name(n));
    const probe = await d.volumes.create({ Name: share.name('probe') });
    t.is((await d.volumes.inspect(probe.Name)).Status?.Driver, driver, 'the daemon uses the driver asked for');
    await d.volumes.remove(probe.Name);

    await redis(d, r1, rdata);
    for (const k of ['a', 'b', 'c']) t.is(await cli(d, r1, 'set', k, `v-${k}`), 'OK');
    await d.containers.remove(r1, { force: true });

    // A new Redis on the same volume sees every key (the append-only file lives there).
    await redis(d, r2, rdata);
    t.deepEqual(await keys(d, r2), ['a', 'b', 'c']);

    // Snapshot while Redis runs: crash-consistent, Redis frozen for the instant.
    const s = await d.berth(['volume', 'snapshot', rdata, 'before']);
    t.is(s.code, 0, s.stderr);
    const snaps = (await d.berth(['volume', 'snapshots', rdata, '--format', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    t.is(snaps.length, 1);
    t.is(snaps[0].Name, 'before');
    t.is(snaps[0].Metadata.consistency, 'crash-consistent');
    t.is(snaps[0].Metadata.frozen.length, 1, 'the one container using the volume was frozen');
    t.is((await d.containers.inspect(r2)).State.Status, 'running', 'thawed after the snapshot');

    for (const k of ['d', 'e']) t.is(await cli(d, r2, 'set', k, `v-${k}`), 'OK');
    t.deepEqual(await keys(d, r2), ['a', 'b', 'c', 'd', 'e']);

    // Restore while it runs is refused; stopped, it works, and a start sees exactly the snapshot's keys.
    const busy = await d.berth(['volume', 'restore', rdata, 'before']);
    t.is(busy.code, 1);
    t.regex(busy.stderr, /^hint: .*stop/m);
    await d.containers.stop(r2);
    const rs = await d.berth(['volume', 'restore', rdata, 'before']);
    t.is(rs.code, 0, rs.stderr);
    await d.containers.start(r2);
    await waitReady(d, r2);
    t.deepEqual(await keys(d, r2), ['a', 'b', 'c']);

    // A clone of the snapshot feeds a second Redis while the first keeps running.
    t.is((await d.berth(['volume', 'clone', `${rdata}@before`, rcopy])).code, 0);
    await redis(d, r3, rcopy);
    t.deepEqual(await keys(d, r3), ['a', 'b', 'c']);
    t.is(await cli(d, r3, 'set', 'only-in-clone', '1'), 'OK');
    t.deepEqual(await keys(d, r2), ['a', 'b', 'c'], 'writes to the clone are not seen by the source');
    t.is(await cli(d, r2, 'get', 'a'), 'v-a');

    // Export the snapshot, import it as a new volume: the same files.
    const tar = path.join(d.root, `rdata-${share.tag}.tar`);
    const ex = await d.berth(['volume', 'export', `${rdata}@before`, '-o', tar]);
    t.is(ex.code, 0, ex.stderr);
    t.true(fs.statSync(tar).size > 0);
    const im = await d.berth(['volume', 'import', rimported, tar]);
    t.is(im.code, 0, im.stderr);
    await redis(d, r4, rimported);
    t.deepEqual(await keys(d, r4), ['a', 'b', 'c']);
  });

  test(`${driver}: berth volume CLI: create, ls, inspect, rename, snapshot rm, prune -a`, async (t) => {
    const d = daemons.get(driver)!;
    const share = useDaemon(t, d);
    const [one, two] = [share.name('one'), share.name('two')];
    // Other tests' volumes live on this daemon: ls and prune look only at this test's (its
    // names carry its tag; its volumes its label), never an unfiltered prune.
    const mine = `t=${share.tag}`;
    t.is((await d.berth(['volume', 'create', '-l', 'k=v', '-l', mine, one])).stdout.trim(), one);
    const ls = await d.berth(['volume', 'ls', '--filter', `name=${share.tag}`, '--format', 'json']);
    t.is(JSON.parse(ls.stdout.trim()).Name, one);
    t.is((await d.berth(['volume', 'inspect', '-f', '{{.Name}}', one])).stdout.trim(), one);
    t.is((await d.berth(['volume', 'snapshot', one, 'snap1'])).code, 0);
    const auto = await d.berth(['volume', 'snapshot', one]);
    t.is(auto.code, 0, auto.stderr);
    t.is((await d.berth(['volume', 'snapshot', 'rm', one, 'snap1', auto.stdout.trim()])).code, 0);
    t.is((await d.berth(['volume', 'snapshots', one, '--format', 'json'])).stdout, '');
    const rn = await d.berth(['volume', 'rename', one, two]);
    t.is(rn.code, 0, rn.stderr);
    t.deepEqual((await d.berth(['volume', 'ls', '-q', '--filter', `name=${share.tag}`])).stdout.trim().split('\n'), [two]);
    t.is((await d.berth(['volume', 'prune', '--filter', `label=${mine}`])).code, 0);
    t.is((await d.berth(['volume', 'ls', '-q', '--filter', `name=${share.tag}`])).stdout.trim(), two, 'prune keeps named volumes');
    t.is((await d.berth(['volume', 'prune', '-a', '--filter', `label=${mine}`])).code, 0);
    t.is((await d.berth(['volume', 'ls', '-q', '--filter', `name=${share.tag}`])).stdout.trim(), '', 'prune -a removes an unused named volume (it kept its label through the rename)');
    const missing = await d.berth(['volume', 'snapshot', share.name('nosuch')]);
    t.is(missing.code, 1);
    t.regex(missing.stderr, /^hint: /m);
  });

  test(`${driver}: snapshot --pre/--post hooks run in the Redis container: application-consistent, a failing --pre takes none`, async (t) => {
    const d = daemons.get(driver)!;
    const share = useDaemon(t, d);
    const [h1, hdata, hcopy] = [share.name('h1'), share.name('hdata'), share.name('hcopy')];
    await redis(d, h1, hdata);
    for (const k of ['x', 'y']) t.is(await cli(d, h1, 'set', k, `v-${k}`), 'OK');

    const pre = 'redis-cli -p 6390 save';
    const post = 'redis-cli -p 6390 set after-post 1';
    const s = await d.berth(['volume', 'snapshot', '--pre', pre, '--post', post, hdata, 'app']);
    t.is(s.code, 0, s.stderr);
    t.is(s.stdout.trim(), 'app');
    const list = () => d.berth(['volume', 'snapshots', hdata, '--format', 'json']).then((r) => r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    const snaps = await list();
    t.is(snaps.length, 1);
    t.is(snaps[0].Metadata.consistency, 'application-consistent');
    t.deepEqual(snaps[0].Metadata.hooks, { pre, post, containers: [h1] });
    t.is(await cli(d, h1, 'get', 'after-post'), '1', '--post ran after the thaw');

    // The --pre `save` wrote dump.rdb before the freeze: the snapshot holds it.
    t.is((await d.berth(['volume', 'clone', `${hdata}@app`, hcopy])).code, 0);
    const ls = await d.berth(['run', '--rm', '--name', share.name('ls'), '-v', `${hcopy}:/d`, 'busybox', 'ls', '/d']);
    t.is(ls.code, 0, ls.stderr);
    t.regex(ls.stdout, /^dump\.rdb$/m);

    // A failing --pre aborts: no snapshot, a hint, Redis still running and not paused.
    const bad = await d.berth(['volume', 'snapshot', '--pre', 'echo not ready >&2; exit 3', hdata, 'bad']);
    t.is(bad.code, 1);
    t.true(bad.stderr.includes(`failed in container ${h1} (exit code 3): not ready`), bad.stderr);
    t.regex(bad.stderr, /pre-snapshot hook .* failed in container /);
    t.regex(bad.stderr, /^hint: /m);
    t.deepEqual((await list()).map((x) => x.Name), ['app']);
    t.is((await d.containers.inspect(h1)).State.Status, 'running');
    t.is(await cli(d, h1, 'ping'), 'PONG');
  });
}
