import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { TestDaemon, exec, BERTH } from '../helpers/daemon';
import { TestRegistry } from '../helpers/registry';
import { eventually } from '../helpers/eventually';
import { describeTree } from '../archive/helpers';
import { MiB, random, writeFile } from '../volumes/helpers';
import { RemoteVolumeTransfers } from '../../src/client/volume-transfers';
import type { RegistryMessage } from '../../src/images/registry/service';

/**
 * `berth volume push` / `volume pull` end to end: berthd A (dir driver) pushes to Debian's
 * docker-registry on loopback, berthd B (btrfs driver, its own data root) pulls. A later
 * push sends only the changes (the CLI's count and the registry's manifest agree); the
 * pull rebuilds the same tree and snapshots; a volume a running container uses is refused
 * CONFLICT; a pull cut short (client killed, then berthd SIGKILLed; on A, whose dir
 * driver removes at once where btrfs waits for its cleaner) leaves no volume and resumes
 * its blob from the bytes on disk; credentials for a basic-auth registry never
 * show in output or logs. The tests run one after another on the shared daemons.
 */

let a: TestDaemon;
let b: TestDaemon;
let reg: TestRegistry;

test.before(async () => {
  [a, b, reg] = await Promise.all([TestDaemon.start({ args: ['--volume-driver', 'dir'] }), TestDaemon.start({ args: ['--volume-driver', 'btrfs'] }), TestRegistry.start()]);
});

test.after.always(async () => {
  await Promise.all([a?.stop(), b?.stop(), reg?.stop()]);
});

/** The manifest the registry holds for `ref` (skopeo reads it, so it is a valid OCI artifact). */
async function manifestOf(ref: string): Promise<{ artifactType: string; layers: { digest: string; size: number; annotations: Record<string, string> }[]; annotations: Record<string, string> }> {
  return JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout);
}

function sentOf(stdout: string): number {
  const m = /sent: (\d+) bytes/.exec(stdout);
  if (!m) throw new Error(`no bytes sent in ${JSON.stringify(stdout)}`);
  return Number(m[1]);
}

test.serial('volume push sends the whole tree, a later push only the changes (the CLI and the registry agree); pull on a second root (btrfs) gives the same tree and snapshots', async (t) => {
  const ref = `${reg.host}/vols/data:latest`;
  const mp = (await a.volumes.create({ Name: 'data', Labels: { app: 'db' } })).Mountpoint;
  await writeFile(mp, 'big.bin', random(4 * MiB));
  await writeFile(mp, 'conf/app.conf', 'v1\n');
  await writeFile(mp, 'old.log', 'to be deleted');
  fs.symlinkSync('conf/app.conf', path.join(mp, 'link'));
  fs.linkSync(path.join(mp, 'conf/app.conf'), path.join(mp, 'hard'));
  fs.chownSync(path.join(mp, 'conf/app.conf'), 999, 998);
  fs.chmodSync(path.join(mp, 'conf'), 0o750);

  // Without @SNAPSHOT a fresh snapshot is taken and pushed.
  const first = await a.berth(['volume', 'push', 'data', ref]);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stderr, /Took snapshot \S+ of volume data/);
  t.regex(first.stderr, /Pushed/, 'progress as berth push draws it');
  const snap1 = /snapshot: data@(\S+)/.exec(first.stdout)![1];
  t.deepEqual((await a.volumes.snapshots('data')).map((s) => s.Name), [snap1]);
  const m1 = await manifestOf(ref);
  t.is(m1.artifactType, 'application/vnd.berth.volume.snapshot.v1+json');
  t.is(m1.layers.length, 1);
  // The registry's view: what was sent is the layer it holds, plus the 2-byte empty config.
  t.is(sentOf(first.stdout), m1.layers[0].size + 2);
  t.true(m1.layers[0].size > 4 * MiB);
  t.is(fs.statSync(reg.blobPath(m1.layers[0].digest)).size, m1.layers[0].size);

  await writeFile(mp, 'conf/app.conf', 'v2, changed\n');
  fs.rmSync(path.join(mp, 'old.log'));
  await writeFile(mp, 'new.txt', 'added');
  t.is((await a.berth(['volume', 'snapshot', 'data', 's2'])).code, 0);
  const second = await a.berth(['volume', 'push', 'data@s2', ref]);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /snapshot: data@s2 layers: 2 /);
  const m2 = await manifestOf(ref);
  t.is(m2.layers.length, 2);
  t.is(m2.layers[0].digest, m1.layers[0].digest, 'the first layer stays as it was');
  t.is(sentOf(second.stdout), m2.layers[1].size, 'only the new layer was sent');
  t.true(sentOf(second.stdout) < 64 * 1024, `the second push sends the changes only: ${sentOf(second.stdout)} bytes against ${sentOf(first.stdout)}`);
  t.log(`first push ${sentOf(first.stdout)} bytes, second ${sentOf(second.stdout)} bytes`);

  const pull = await b.berth(['volume', 'pull', ref]);
  t.is(pull.code, 0, pull.stderr + b.log());
  t.regex(pull.stderr, /Pull complete/);
  t.regex(pull.stdout, new RegExp(`^data: new snapshots: ${snap1} s2;`));
  const copy = await b.volumes.inspect('data');
  t.is(copy.Status?.Driver, 'btrfs');
  t.like(copy.Labels, { app: 'db' });
  t.deepEqual((await b.volumes.snapshots('data')).map((s) => s.Name), [snap1, 's2']);
  t.deepEqual(await describeTree(copy.Mountpoint), await describeTree(mp), 'the pulled volume is the pushed snapshot, deletion included');

  // Pushing the same snapshot again sends nothing; pulling again fetches nothing.
  const again = await a.berth(['volume', 'push', '-q', 'data@s2', ref]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stderr, '');
  t.is(sentOf(again.stdout), 0);
  const none = await new RemoteVolumeTransfers(b.transport).pull(ref);
  t.deepEqual(none, { volume: 'data', snapshots: [], fetched: 0, received: [], digest: none.digest });
});

test.serial('a pull into a volume a running container uses is refused CONFLICT naming it; into a new name it works, and once stopped the volume gets only the new layer', async (t) => {
  const ref = `${reg.host}/vols/data:latest`;
  const mp = (await a.volumes.inspect('data')).Mountpoint;
  await writeFile(mp, 'new.txt', 'added, then changed');
  t.is((await a.berth(['volume', 'snapshot', 'data', 's3'])).code, 0);
  t.is((await a.berth(['volume', 'push', '-q', 'data@s3', ref])).code, 0);

  const run = await b.docker(['run', '-d', '--name', 'vol-user', '-v', 'data:/data', 'busybox', 'sleep', '600']);
  t.is(run.code, 0, run.stderr);
  t.teardown(() => b.docker(['rm', '-f', 'vol-user']).then(() => undefined));
  const refused = await b.berth(['volume', 'pull', ref]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /vol-user/, 'the error names the container');
  await t.throwsAsync(new RemoteVolumeTransfers(b.transport).pull(ref), { code: 'CONFLICT' });
  t.deepEqual((await b.volumes.snapshots('data')).map((s) => s.Name).slice(-1), ['s2'], 'the volume was not touched');

  const fresh = await b.berth(['volume', 'pull', '-q', ref, 'data-copy']);
  t.is(fresh.code, 0, fresh.stderr);
  t.is(fresh.stdout, 'data-copy\n');
  t.is(fs.readFileSync(path.join((await b.volumes.inspect('data-copy')).Mountpoint, 'new.txt'), 'utf8'), 'added, then changed');

  t.is((await b.docker(['stop', '-t', '1', 'vol-user'])).code, 0);
  const messages: RegistryMessage[] = [];
  const r = await new RemoteVolumeTransfers(b.transport).pull(ref, undefined, { progress: (m) => messages.push(m) });
  t.deepEqual(r.snapshots, ['s3'], 'a stopped user does not stop it (as restore), and only the new snapshot comes');
  const m = await manifestOf(ref);
  t.is(r.fetched, m.layers[2].size, 'only the new layer was fetched');
  t.is(messages.filter((x) => x.status === 'Already exists').length, 2);
  t.is(fs.readFileSync(path.join((await b.volumes.inspect('data')).Mountpoint, 'new.txt'), 'utf8'), 'added, then changed');

  // An existing volume that holds none of the chain is never overwritten.
  await b.volumes.create({ Name: 'unrelated' });
  await t.throwsAsync(new RemoteVolumeTransfers(b.transport).pull(ref, 'unrelated'), { code: 'ALREADY_EXISTS' });
  t.is((await b.volumes.snapshots('unrelated')).length, 0);
});

/**
 * A proxy in front of the registry that, when told, passes only the first `bytes` of the
 * next GET of one blob and then holds the connection open without a byte more: a pull is
 * caught mid-blob at an exact point, however fast loopback is. It records each GET of a
 * blob with its Range header.
 */
async function stallProxy(target: TestRegistry): Promise<{ host: string; ranges(digest: string): string[]; stall(digest: string, bytes: number): void; close(): Promise<void> }> {
  let armed: { digest: string; bytes: number } | undefined;
  const seen: { url: string; range: string }[] = [];
  const held = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (req.method === 'GET' && url.includes('/blobs/')) seen.push({ url, range: String(req.headers.range ?? '') });
    const stall = armed && req.method === 'GET' && url.endsWith(`/blobs/${armed.digest}`) ? armed : undefined;
    if (stall) armed = undefined;
    const up = http.request({ host: '127.0.0.1', port: target.port, method: req.method, path: url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (!stall) return void ur.pipe(res);
      held.add(res);
      let left = stall.bytes;
      ur.on('data', (c: Buffer) => {
        if (left <= 0) return;
        res.write(c.subarray(0, left));
        left -= c.length;
        if (left <= 0) ur.pause(); // and hold: no more bytes, no end
      });
      res.on('close', () => ur.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    ranges: (digest) => seen.filter((s) => s.url.endsWith(`/blobs/${digest}`)).map((s) => s.range),
    stall: (digest, bytes) => void (armed = { digest, bytes }),
    close: async () => {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const sizeOf = (file: string) => (fs.existsSync(file) ? fs.statSync(file).size : -1);

test.serial('a pull cut short (the client killed, then berthd SIGKILLed mid-blob) leaves no half-made volume, and the next pull resumes the blob from the bytes on disk', async (t) => {
  const proxy = await stallProxy(reg);
  t.teardown(() => proxy.close());
  const mp = (await a.volumes.create({ Name: 'big' })).Mountpoint;
  await writeFile(mp, 'small.txt', 'first layer');
  await a.volumes.snapshot('big', 'b1');
  const direct = new RemoteVolumeTransfers(a.transport);
  await direct.push('big', 'b1', `${reg.host}/vols/big:latest`);
  await writeFile(mp, 'big.bin', random(8 * MiB));
  await a.volumes.snapshot('big', 'b2');
  await direct.push('big', 'b2', `${reg.host}/vols/big:latest`);
  const m = await manifestOf(`${reg.host}/vols/big:latest`);
  const layer = m.layers[1];
  t.true(layer.size > 8 * MiB);
  const ref = `${proxy.host}/vols/big:latest`;
  const partial = path.join(a.root, 'volume-transfers', 'content', 'partial', layer.digest.slice(7));
  const journal = path.join(a.root, 'volume-transfers', 'pulls');
  const hasBig = async () => (await a.volumes.list()).Volumes.some((v) => v.Name === 'big-copy');

  // 1. The CLI killed while the second layer downloads: the first is in the volume by then.
  proxy.stall(layer.digest, 2 * MiB);
  const cli = spawn(BERTH, ['volume', 'pull', ref, 'big-copy'], { env: a.env, stdio: 'ignore' });
  const exited = new Promise((r) => cli.once('exit', r));
  await eventually(() => sizeOf(partial) === 2 * MiB, { message: '2 MiB of the layer on disk' });
  t.true(await hasBig(), 'mid-pull, the first layer made the volume');
  cli.kill('SIGKILL');
  await exited;
  await eventually(async () => !(await hasBig()) && fs.readdirSync(journal).length === 0, { message: 'the half-made volume removed', timeout: 120_000 });
  t.is(sizeOf(partial), 2 * MiB, 'the bytes that came are kept for the next attempt');

  // 2. berthd SIGKILLed mid-blob: the next attempt resumed (Range), and is cut again.
  proxy.stall(layer.digest, MiB);
  const pulling = new RemoteVolumeTransfers(a.transport).pull(ref, 'big-copy').catch((e: Error) => e);
  await eventually(() => sizeOf(partial) === 3 * MiB, { message: 'a third MiB on disk' });
  t.true(await hasBig());
  await a.kill();
  t.true((await pulling) instanceof Error);
  await a.restart();
  t.false(await hasBig(), 'after the restart no half-made volume is listed');
  t.deepEqual(fs.readdirSync(journal), []);
  t.is(sizeOf(partial), 3 * MiB);
  // 3. The next pull fetches the rest of the blob only, and leaves no download behind.
  const messages: RegistryMessage[] = [];
  const r = await new RemoteVolumeTransfers(a.transport).pull(ref, 'big-copy', { progress: (x) => messages.push(x) });
  t.deepEqual(r.snapshots, ['b1', 'b2']);
  t.is(r.fetched, m.layers[0].size + layer.size - 3 * MiB, 'fewer bytes than the blob were fetched for it');
  t.deepEqual(proxy.ranges(layer.digest), ['', `bytes=${2 * MiB}-`, `bytes=${3 * MiB}-`]);
  const first = messages.find((x) => x.id === layer.digest.slice(7, 19) && x.status === 'Downloading');
  t.is(first?.progressDetail?.current, 3 * MiB, 'the download started from the bytes on disk');
  t.deepEqual(await describeTree((await a.volumes.inspect('big-copy')).Mountpoint), await describeTree(mp));
  t.is(sizeOf(partial), -1);
  t.deepEqual(fs.readdirSync(path.join(a.root, 'volume-transfers', 'content', 'blobs', 'sha256')), []);
});

test.serial('a basic-auth registry: push and pull with the docker config.json credentials and X-Registry-Auth; none of them in any output, error or log', async (t) => {
  const user = 'voltester';
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-volauth-'));
  const htpasswd = path.join(dir, 'htpasswd');
  await exec('htpasswd', ['-Bbc', htpasswd, user, password]);
  const areg = await TestRegistry.start({ htpasswd });
  t.teardown(async () => {
    await areg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const since = Math.floor(Date.now() / 1000) - 1;
  const ref = `${areg.host}/private/data:v1`;
  const outputs: string[] = [];
  const run = async (d: TestDaemon, args: string[], input?: string) => {
    const r = await d.berth(args, { input });
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  const anon = await run(a, ['volume', 'push', 'data@s2', ref]);
  t.not(anon.code, 0);
  t.regex(anon.stderr, /unauthorized|authentication required|berth login/i);
  const wrong = await t.throwsAsync(new RemoteVolumeTransfers(a.transport).push('data', 's2', ref, { auth: { username: user, password: `wrong-${password}` } }));
  outputs.push(wrong!.message, String((wrong as { hint?: string }).hint));

  t.is((await run(a, ['login', areg.host, '-u', user, '--password-stdin'], password)).code, 0);
  const push = await run(a, ['volume', 'push', 'data@s2', ref]);
  t.is(push.code, 0, push.stderr);
  t.true(sentOf(push.stdout) > 4 * MiB, push.stdout);

  const noCreds = await run(b, ['volume', 'pull', ref, 'private']);
  t.not(noCreds.code, 0);
  t.false((await b.volumes.list()).Volumes.some((v) => v.Name === 'private'));
  const pulled = await new RemoteVolumeTransfers(b.transport).pull(ref, 'private', { auth: { username: user, password, serveraddress: areg.host } });
  t.deepEqual(pulled.snapshots, ['s2'], 'a first push to a repository is one full layer');
  t.is(fs.readFileSync(path.join((await b.volumes.inspect('private')).Mountpoint, 'conf/app.conf'), 'utf8'), 'v2, changed\n');

  // A corrupt blob fails the pull hard: no volume, and nothing of the download kept.
  const auth = { username: user, password, serveraddress: areg.host };
  const layer = (JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', `${user}:${password}`, `docker://${ref}`])).stdout) as { layers: { digest: string }[] }).layers[0];
  fs.writeFileSync(areg.blobPath(layer.digest), randomBytes(fs.statSync(areg.blobPath(layer.digest)).size)); // same size, other bytes
  const bad = await t.throwsAsync(new RemoteVolumeTransfers(b.transport).pull(ref, 'private2', { auth }), { code: 'UNAVAILABLE' });
  outputs.push(bad!.message);
  t.false((await b.volumes.list()).Volumes.some((v) => v.Name === 'private2'));
  const content = path.join(b.root, 'volume-transfers', 'content');
  t.deepEqual([...fs.readdirSync(path.join(content, 'partial')), ...fs.readdirSync(path.join(content, 'blobs', 'sha256'))], []);

  const events = await a.docker(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000))]);
  const basic = Buffer.from(`${user}:${password}`).toString('base64');
  for (const text of [...outputs, a.log(), b.log(), events.stdout]) {
    t.false(text.includes(password), 'the password shows nowhere');
    t.false(text.includes(basic), 'nor the basic-auth header');
  }
});
