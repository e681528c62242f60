import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import { TestDaemon } from '../helpers/daemon';
import { runCommand } from '../helpers/proc';
import { dockerPy } from '../helpers/dockerpy';
import { crashAt } from '../helpers/fault';

/**
 * Database branching through unchanged Docker clients (issue 17): `VOL@SNAP` as a volume
 * source mounts a fresh private clone of the snapshot, made at create and gone with the
 * container. Every client test asserts the same three things (`threeThings`): the writes
 * stayed private, the snapshot is unchanged, the clone went with the container.
 */

let d: TestDaemon;
let tc: typeof import('testcontainers');
test.before(async () => {
  d = await TestDaemon.start();
  process.env.DOCKER_HOST = d.host;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  tc = await import('testcontainers');
});
test.after.always(async () => {
  await d?.stop();
});

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A volume `name` holding /seed = `content`, with snapshot `snap` of it. Set-up, not the
 * behaviour under test: made through the API and the volume's host mountpoint, without a
 * container or a CLI process.
 */
async function seed(name: string, snap = 'seeded', content = `seed of ${name}`): Promise<void> {
  const v = await d.volumes.create({ Name: name });
  fs.writeFileSync(path.join(v.Mountpoint, 'seed'), `${content}\n`);
  await d.volumes.snapshot(name, snap);
}

/** Volumes made on mount of `vol` (by their label; one listing, as other tests make and remove theirs). */
async function clonesOf(vol: string): Promise<string[]> {
  const { Volumes } = await new Docker({ socketPath: d.socket }).listVolumes({ filters: { label: ['berth.clone-of'] } });
  return (Volumes ?? []).filter((v) => (v.Labels?.['berth.clone-of'] ?? '').startsWith(`${vol}@`)).map((v) => v.Name);
}

/** What a fresh clone of `vol@snap` holds: the files and /seed's content. */
async function snapshotFiles(vol: string, snap: string): Promise<string> {
  return ok(d.docker(['run', '--rm', '-v', `${vol}@${snap}:/d`, 'busybox', 'sh', '-c', 'ls /d; cat /d/seed']));
}

/** The three claims: private writes (the container saw its own), the snapshot unchanged, the clone gone. */
async function threeThings(t: ExecutionContext, vol: string, seen: string, content = `seed of ${vol}`): Promise<void> {
  t.regex(seen, /mine/, 'the container saw its own write');
  t.is(await snapshotFiles(vol, 'seeded'), `seed\n${content}\n`, 'the snapshot is unchanged (no file from the container)');
  t.is(await ok(d.docker(['run', '--rm', '-v', `${vol}:/d`, 'busybox', 'ls', '/d'])), 'seed\n', 'the live volume is untouched too');
  t.deepEqual(await clonesOf(vol), [], 'the clone went with the container');
}

test('docker run -v VOL@SNAP mounts a private clone that goes with the container, labelled with its source', async (t) => {
  await seed('br-cli');
  await ok(d.docker(['create', '--name', 'br-cli-c', '-v', 'br-cli@seeded:/d', 'busybox', 'sh', '-c', 'echo mine > /d/mine; echo changed > /d/seed; ls /d']));
  const [m] = JSON.parse(await ok(d.docker(['inspect', '-f', '{{json .Mounts}}', 'br-cli-c'])));
  t.like(m, { Type: 'volume', Destination: '/d', RW: true });
  t.regex(m.Name, /^br-cli\.seeded\.[0-9a-f]{12}$/);
  const [v] = JSON.parse(await ok(d.docker(['volume', 'inspect', m.Name])));
  t.is(v.Labels['berth.clone-of'], 'br-cli@seeded');
  t.is((await ok(d.docker(['volume', 'ls', '-q', '--filter', 'label=berth.clone-of=br-cli@seeded']))).trim(), m.Name);
  await ok(d.docker(['start', '-a', 'br-cli-c']));
  const seen = await ok(d.docker(['logs', 'br-cli-c']));
  t.is(await ok(d.docker(['run', '--rm', '-v', `${m.Name}:/d`, 'busybox', 'cat', '/d/seed']))  , 'changed\n', 'the clone holds the container\'s writes while it exists');
  await ok(d.docker(['rm', 'br-cli-c']));
  await threeThings(t, 'br-cli', seen);

  // --rm, and --mount with the same string
  const once = await ok(d.docker(['run', '--rm', '--mount', 'type=volume,source=br-cli@seeded,target=/d', 'busybox', 'sh', '-c', 'echo mine > /d/mine; ls /d']));
  await threeThings(t, 'br-cli', once);
});

test('VOL@ clones the latest snapshot; volume-opt=keep=true keeps the clone after the container', async (t) => {
  await seed('br-keep');
  await ok(d.docker(['run', '--rm', '-v', 'br-keep:/d', 'busybox', 'sh', '-c', 'echo newer > /d/seed']));
  await ok(d.berth(['volume', 'snapshot', 'br-keep', 'later']));
  t.is(await ok(d.docker(['run', '--rm', '-v', 'br-keep@:/d', 'busybox', 'cat', '/d/seed'])), 'newer\n');
  const id = (await ok(d.docker(['run', '-d', '--mount', 'type=volume,source=br-keep@seeded,target=/d,volume-opt=keep=true', 'busybox', 'sh', '-c', 'echo mine > /d/mine']))).trim();
  await ok(d.docker(['wait', id]));
  await ok(d.docker(['rm', id]));
  const kept = await clonesOf('br-keep');
  t.is(kept.length, 1, 'the kept clone stays');
  t.is(await ok(d.docker(['run', '--rm', '-v', `${kept[0]}:/d`, 'busybox', 'cat', '/d/mine', '/d/seed'])), `mine\nseed of br-keep\n`);
  const other = await d.docker(['run', '--rm', '--mount', 'type=volume,source=br-keep@seeded,target=/d,volume-opt=size=1G', 'busybox', 'true']);
  t.not(other.code, 0, 'an unknown volume-opt is refused, not dropped');
  t.regex(other.stderr, /size=1G/);
  await ok(d.docker(['volume', 'rm', kept[0]]));
});

test('a missing volume or snapshot is NOT_FOUND with the snapshots as a hint; hostile names stay refused', async (t) => {
  await seed('br-bad');
  const noVol = await d.berth(['run', '--rm', '-v', 'br-nothere@s:/d', 'busybox', 'true']);
  t.not(noVol.code, 0);
  t.regex(noVol.stderr, /br-nothere/);
  const noSnap = await d.berth(['run', '--rm', '-v', 'br-bad@nope:/d', 'busybox', 'true']);
  t.not(noSnap.code, 0);
  t.regex(noSnap.stderr, /no such snapshot: br-bad@nope/);
  t.regex(noSnap.stderr, /^hint: snapshots of br-bad: seeded$/m);
  const viaDocker = await d.docker(['run', '--rm', '-v', 'br-bad@nope:/d', 'busybox', 'true']);
  t.regex(viaDocker.stderr, /no such snapshot/);
  await ok(d.docker(['volume', 'create', 'br-empty']));
  const none = await d.berth(['run', '--rm', '-v', 'br-empty@:/d', 'busybox', 'true']);
  t.regex(none.stderr, /br-empty has no snapshots/);
  for (const bad of ['br-bad@seeded@x', 'br-bad@..', 'br-bad@.x', '..@seeded', '@seeded', 'br-bad@-x', 'a@seeded']) {
    const r = await d.berth(['run', '--rm', '-v', `${bad}:/d`, 'busybox', 'true']);
    t.not(r.code, 0, bad);
    t.regex(r.stderr, /invalid volume snapshot reference|invalid volume/, bad);
  }
  const slash = await d.berth(['run', '--rm', '--mount', 'type=volume,source=br-bad@../../etc,target=/d', 'busybox', 'true']);
  t.regex(slash.stderr, /invalid volume snapshot reference/);
  const create = await d.docker(['volume', 'create', 'br-bad@seeded']);
  t.not(create.code, 0, 'a volume cannot be named like a snapshot reference');
  t.deepEqual(await clonesOf('br-bad'), []);
  await ok(d.docker(['volume', 'rm', 'br-empty']));
});

test('a source volume or snapshot with clones is CONFLICT to remove unless forced; inspect VOL@SNAP answers', async (t) => {
  await seed('br-src');
  await ok(d.docker(['create', '--name', 'br-src-c', '-v', 'br-src@seeded:/d', 'busybox', 'true']));
  const [view] = JSON.parse(await ok(d.docker(['volume', 'inspect', 'br-src@seeded'])));
  t.like(view, { Name: 'br-src@seeded', Driver: 'local', Status: { Volume: 'br-src', Snapshot: 'seeded', Clones: 1 } });
  const rm = await d.berth(['volume', 'rm', 'br-src']);
  t.not(rm.code, 0);
  t.regex(rm.stderr, /has clones made on mount/);
  const srm = await d.berth(['volume', 'snapshot', 'rm', 'br-src', 'seeded']);
  t.not(srm.code, 0);
  t.regex(srm.stderr, /has clones made on mount/);
  const rmSnapAsVol = await d.docker(['volume', 'rm', 'br-src@seeded']);
  t.not(rmSnapAsVol.code, 0, 'VOL@SNAP is not a volume to remove');
  t.is((await ok(d.berth(['volume', 'snapshots', 'br-src', '--format', '{{.Name}}']))).trim(), 'seeded');
  await ok(d.berth(['volume', 'snapshot', 'rm', '-f', 'br-src', 'seeded']));
  await ok(d.berth(['volume', 'rm', '-f', 'br-src']));
  await ok(d.docker(['start', '-a', 'br-src-c']));
  await ok(d.docker(['rm', 'br-src-c']));
  t.deepEqual(await clonesOf('br-src'), []);
});

test('twenty containers mount one VOL@SNAP at once: each sees the snapshot and only its own writes', async (t) => {
  await seed('br-many');
  const outs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => ok(d.docker(['run', '--rm', '-v', 'br-many@seeded:/d', 'busybox', 'sh', '-c', `echo ${i} > /d/mine-${i}; ls /d; cat /d/seed`]))),
  );
  outs.forEach((o, i) => t.is(o, `mine-${i}\nseed\nseed of br-many\n`, `container ${i}`));
  t.deepEqual(await clonesOf('br-many'), []);
});

test('dockerode: HostConfig.Binds and Mounts with VOL@SNAP', async (t) => {
  await seed('br-dockerode');
  const docker = new Docker({ socketPath: d.socket });
  for (const hc of [{ Binds: ['br-dockerode@seeded:/d'] }, { Mounts: [{ Type: 'volume' as const, Source: 'br-dockerode@seeded', Target: '/d' }] }]) {
    const c = await docker.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'echo mine > /d/mine; ls /d'], HostConfig: hc });
    await c.start();
    await c.wait();
    const seen = (await c.logs({ stdout: true })).toString();
    await c.remove();
    await threeThings(t, 'br-dockerode', seen);
  }
});

test('docker-py: volumes={"VOL@SNAP": …}', async (t) => {
  await seed('br-py');
  const r = await dockerPy<{ seen: string }>(
    d,
    [
      "c = client.containers.run('busybox', ['sh', '-c', 'echo mine > /d/mine; ls /d'], volumes={'br-py@seeded': {'bind': '/d', 'mode': 'rw'}}, detach=True)",
      'c.wait()',
      "seen = c.logs().decode()",
      'c.remove()',
      "out({'seen': seen})",
    ].join('\n'),
  );
  await threeThings(t, 'br-py', r.seen);
});

test('testcontainers: the volume string in withBindMounts is enough', async (t) => {
  await seed('br-tc');
  const c = await new tc.GenericContainer('busybox')
    .withBindMounts([{ source: 'br-tc@seeded', target: '/d', mode: 'rw' }])
    .withCommand(['sh', '-c', 'echo mine > /d/mine; sleep 1000'])
    .start();
  const r = await c.exec(['ls', '/d']);
  await c.stop();
  await threeThings(t, 'br-tc', r.output);
});

test('docker-compose: an external volume named VOL@SNAP gives the service container its own clone; down removes it', async (t) => {
  await seed('br-compose');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-t-branch-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'docker-compose.yml'),
    [
      "version: '3.7'",
      'services:',
      '  db:',
      '    image: busybox',
      "    command: ['sh', '-c', 'echo mine > /d/mine; sleep 1000']",
      '    volumes:',
      "      - 'seeded:/d'",
      'volumes:',
      '  seeded:',
      '    external: true',
      '    name: br-compose@seeded',
      '',
    ].join('\n'),
  );
  const compose = (...args: string[]) => runCommand('docker-compose', ['-p', 'branch', '-f', path.join(dir, 'docker-compose.yml'), ...args], { env: { ...d.env, COMPOSE_INTERACTIVE_NO_CLI: '1' } });
  const up = await compose('up', '-d');
  t.is(up.code, 0, up.stderr);
  const ls = await ok(d.docker(['exec', 'branch_db_1', 'sh', '-c', 'while [ ! -f /d/mine ]; do sleep 0.1; done; ls /d']));
  t.is((await clonesOf('br-compose')).length, 1);
  const down = await compose('down');
  t.is(down.code, 0, down.stderr);
  await threeThings(t, 'br-compose', ls);
});

/** Entries under `dir` (a few levels down) whose name starts with `prefix`: a volume's directory or record on disk. */
function onDisk(dir: string, prefix: string, depth = 5): string[] {
  if (depth < 0) return [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => [
    ...(e.name.startsWith(prefix) ? [path.join(dir, e.name)] : []),
    ...(e.isDirectory() && !e.isSymbolicLink() ? onDisk(path.join(dir, e.name), prefix, depth - 1) : []),
  ]);
}

// Serial: it restarts the file's daemon, before the concurrent tests begin.
test.serial('SIGKILL between the clone and the container record leaves no orphan clone after restart', async (t) => {
  await seed('br-crash');
  await crashAt(
    d,
    'container.create.mounts-made',
    () => d.docker(['create', '--name', 'br-crash-c', '-v', 'br-crash@seeded:/d', 'busybox', 'true']),
    () => {
      t.true(onDisk(d.root, 'br-crash.seeded.').length > 0, 'the clone was made before the crash');
    },
  );
  t.deepEqual(await clonesOf('br-crash'), [], 'the orphan clone is collected at the first volume use');
  t.deepEqual(onDisk(d.root, 'br-crash.seeded.'), [], 'and nothing of it is left on disk');
  t.not((await d.docker(['inspect', 'br-crash-c'])).code, 0, 'no container was recorded');
  t.is(await snapshotFiles('br-crash', 'seeded'), 'seed\nseed of br-crash\n');
});
