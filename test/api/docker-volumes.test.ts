import test from 'ava';
import { TestDaemon, useDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

/**
 * The real docker CLI's volume verbs and `-v`/`--mount` against berthd. One daemon serves
 * the file: each test names its volumes and containers with its own tag and asserts only
 * about those (the other tests run beside it on the same daemon).
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(() => d?.stop());

const volumeExists = async (name: string) => (await d.docker(['volume', 'inspect', name])).code === 0;

test('docker volume create, ls, inspect, rm and prune speak the Docker shapes', async (t) => {
  const share = useDaemon(t, d);
  const data = share.name('data');
  const mine = `t=${share.tag}`;
  const c = await d.docker(['volume', 'create', '--label', 'app=db', '--label', mine, data]);
  t.is(c.code, 0, c.stderr);
  t.is(c.stdout.trim(), data);
  const anon = await d.docker(['volume', 'create', '--label', mine]);
  t.is(anon.code, 0, anon.stderr);
  const anonName = anon.stdout.trim();
  t.regex(anonName, /^[0-9a-f]{64}$/);

  const ls = await d.docker(['volume', 'ls', '-q', '--filter', 'label=app=db', '--filter', `label=${mine}`]);
  t.is(ls.code, 0, ls.stderr);
  t.deepEqual(ls.stdout.trim().split('\n'), [data]);
  const both = await d.docker(['volume', 'ls', '-q', '--filter', `label=${mine}`]);
  t.deepEqual(both.stdout.trim().split('\n').sort(), [anonName, data].sort());

  const i = await d.docker(['volume', 'inspect', data]);
  t.is(i.code, 0, i.stderr);
  const [v] = JSON.parse(i.stdout);
  t.is(v.Name, data);
  t.is(v.Driver, 'local');
  t.is(v.Scope, 'local');
  t.deepEqual(v.Labels, { app: 'db', t: share.tag });
  t.true(v.Mountpoint.startsWith(d.root));

  // prune with a label! filter keeps what carries the label (and, on a shared daemon, a
  // label= filter keeps the prune to this test's volumes).
  const p = await d.docker(['volume', 'prune', '-f', '--filter', `label=${mine}`, '--filter', 'label!=app']);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stdout, new RegExp(anonName), 'prune names what it removed');
  t.deepEqual((await d.docker(['volume', 'ls', '-q', '--filter', `label=${mine}`])).stdout.trim().split('\n'), [data]);

  t.is((await d.docker(['volume', 'rm', data])).code, 0);
  t.is((await d.docker(['volume', 'ls', '-q', '--filter', `label=${mine}`])).stdout.trim(), '');
  const gone = await d.docker(['volume', 'inspect', data]);
  t.not(gone.code, 0);
});

test('docker run -v NAME:/path keeps data for the next container; the volume is refused to rm while used', async (t) => {
  const share = useDaemon(t, d);
  const data = share.name('data');
  const w = await d.docker(['run', '--rm', '--name', share.name('w'), '-v', `${data}:/data`, 'busybox', 'sh', '-c', 'echo x > /data/f']);
  t.is(w.code, 0, w.stderr);
  const r = await d.docker(['run', '--rm', '--name', share.name('r'), '-v', `${data}:/data:ro`, 'busybox', 'cat', '/data/f']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'x\n');
  const ro = await d.docker(['run', '--rm', '--name', share.name('ro'), '-v', `${data}:/data:ro`, 'busybox', 'sh', '-c', 'echo y > /data/g']);
  t.not(ro.code, 0, 'a read-only volume refuses writes');

  const user = share.name('user');
  const c = await d.docker(['create', '--name', user, '-v', `${data}:/data`, 'busybox', 'true']);
  t.is(c.code, 0, c.stderr);
  const m = await d.docker(['inspect', '-f', '{{json .Mounts}}', user]);
  const [mount] = JSON.parse(m.stdout);
  t.like(mount, { Type: 'volume', Name: data, Destination: '/data', Driver: 'local', RW: true });
  const rm = await d.berth(['volume', 'rm', data]);
  t.is(rm.code, 1);
  t.regex(rm.stderr, /^hint: /m);
  t.not((await d.docker(['volume', 'rm', '-f', data])).code, 0, 'docker refuses a volume in use even with -f');
  t.true(await volumeExists(data));
  t.is((await d.docker(['rm', user])).code, 0);
  t.is((await d.docker(['volume', 'rm', data])).code, 0);
});

test('anonymous volumes: -v /path, an image VOLUME filled from the image, removed by rm -v and run --rm', async (t) => {
  const share = useDaemon(t, d);
  const mk = share.name('mk');
  const seeded = share.name('seeded');
  const made = await d.berth(['run', '--name', mk, 'busybox', 'sh', '-c', 'mkdir /seed && echo seeded > /seed/x']);
  t.is(made.code, 0, made.stderr);
  t.is((await d.berth(['commit', '--change', 'VOLUME /seed', mk, seeded])).code, 0);

  // run --rm: the container is kept running to learn its anonymous volume's name, then ends.
  const rr = share.name('rr');
  const run = await d.docker(['run', '-d', '--rm', '--name', rr, seeded, 'sleep', '1000']);
  t.is(run.code, 0, run.stderr);
  const r = await d.docker(['exec', rr, 'cat', '/seed/x']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'seeded\n', 'the new volume holds the image content');
  const [seedVol] = JSON.parse((await d.docker(['inspect', '-f', '{{json .Mounts}}', rr])).stdout);
  t.like(seedVol, { Type: 'volume', Destination: '/seed' });
  t.regex(seedVol.Name, /^[0-9a-f]{64}$/);
  t.true(await volumeExists(seedVol.Name));
  t.is((await d.docker(['kill', rr])).code, 0);
  await eventually(async () => (await d.docker(['ps', '-aq', '--filter', `name=${rr}`])).stdout === '', { timeout: 60_000, message: 'run --rm to remove its container' });
  await eventually(async () => !(await volumeExists(seedVol.Name)), { timeout: 60_000, message: 'run --rm to remove the anonymous volume' });

  const a = share.name('a');
  const keep = share.name('keep');
  t.is((await d.docker(['run', '--name', a, '-v', '/scratch', '-v', `${keep}:/keep`, 'busybox', 'true'])).code, 0);
  const mounts: Array<{ Name: string; Destination: string }> = JSON.parse((await d.docker(['inspect', '-f', '{{json .Mounts}}', a])).stdout);
  const scratch = mounts.find((mt) => mt.Destination === '/scratch')!;
  t.regex(scratch?.Name ?? '', /^[0-9a-f]{64}$/);
  t.true(await volumeExists(scratch.Name));
  t.true(await volumeExists(keep));
  t.is((await d.docker(['rm', '-v', a])).code, 0);
  t.false(await volumeExists(scratch.Name), 'rm -v removes the anonymous volume');
  t.true(await volumeExists(keep), 'rm -v keeps named volumes');
  t.is((await d.docker(['volume', 'rm', keep])).code, 0);
});

test('--mount volume, tmpfs and --volumes-from', async (t) => {
  const share = useDaemon(t, d);
  const v1 = share.name('v1');
  t.is((await d.docker(['run', '--rm', '-v', `${v1}:/v`, 'busybox', 'sh', '-c', 'mkdir -p /v/sub /v/etc && echo in-sub > /v/sub/f && echo in-volume > /v/etc/marker && ln -s /etc /v/out'])).code, 0);
  const sub = await d.berth(['run', '--rm', '--mount', `type=volume,src=${v1},dst=/m,volume-subpath=sub,readonly`, 'busybox', 'cat', '/m/f']);
  t.is(sub.code, 0, sub.stderr);
  t.is(sub.stdout, 'in-sub\n');
  // A symlink in the volume does not lead the subpath out of it: /etc resolves inside the
  // volume (as Docker's safepath does), never to the host's /etc.
  const out = await d.berth(['run', '--rm', '--mount', `type=volume,src=${v1},dst=/m,volume-subpath=out`, 'busybox', 'ls', '/m']);
  t.is(out.code, 0, out.stderr);
  t.is(out.stdout, 'marker\n', "the subpath through the symlink is the volume's etc, not the host's");
  const tmp = await d.docker(['run', '--rm', '--mount', 'type=tmpfs,dst=/t', 'busybox', 'sh', '-c', 'grep " /t " /proc/mounts']);
  t.is(tmp.code, 0, tmp.stderr);
  t.regex(tmp.stdout, /tmpfs/);
  const src = share.name('src');
  t.is((await d.docker(['create', '--name', src, '-v', `${v1}:/v`, 'busybox', 'true'])).code, 0);
  const from = await d.docker(['run', '--rm', '--volumes-from', `${src}:ro`, 'busybox', 'cat', '/v/sub/f']);
  t.is(from.code, 0, from.stderr);
  t.is(from.stdout, 'in-sub\n');
  t.is((await d.docker(['rm', src])).code, 0);
  t.is((await d.docker(['volume', 'rm', v1])).code, 0);
});

test('bad volume input: names Docker refuses, missing volumes, restore in use', async (t) => {
  const share = useDaemon(t, d);
  for (const bad of ['x', '.v', '_v', 'a/b', 'a b', 'v'.repeat(256)]) {
    const r = await d.berth(['volume', 'create', bad]);
    t.is(r.code, 1, bad);
    t.regex(r.stderr, /^hint: /m, bad);
  }
  const badRun = await d.berth(['run', '--rm', '-v', 'x:/data', 'busybox', 'true']);
  t.is(badRun.code, 125);
  const missing = await d.transport.request('POST', `/berth/v1/volumes/${share.name('nosuch')}/snapshots`).then(() => 'ok', (e) => e.code);
  t.is(missing, 'NOT_FOUND');
  const data = share.name('data');
  const busy = share.name('busy');
  t.is((await d.berth(['run', '-d', '--name', busy, '-v', `${data}:/data`, 'busybox', 'sleep', '100'])).code, 0);
  t.is((await d.berth(['volume', 'snapshot', data, 's1'])).code, 0);
  const restore = await d.transport.request('POST', `/berth/v1/volumes/${data}/restore`, { query: { snapshot: 's1' } }).then(() => 'ok', (e) => e.code);
  t.is(restore, 'CONFLICT');
  const rm = await d.transport.request('DELETE', `/volumes/${data}`).then(() => 'ok', (e) => e.code);
  t.is(rm, 'CONFLICT');
  const dup = await d.transport.request('POST', `/berth/v1/volumes/${data}/snapshots`, { query: { name: 's1' } }).then(() => 'ok', (e) => e.code);
  t.is(dup, 'ALREADY_EXISTS');
  t.is((await d.berth(['rm', '-f', busy])).code, 0);
});
