import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestDaemon } from '../helpers/daemon';

// docker cp (the real docker CLI) and berth cp against one berthd: both directions, into a
// volume, on a stopped container, and the symlink escapes of the CVE-2018-15664 class.

let d: TestDaemon;
let host: string; // a scratch directory on the host, standing for what must stay untouched

test.before(async () => {
  d = await TestDaemon.start();
  host = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cp-host-'));
});
test.after.always(async () => {
  await d?.stop();
  fs.rmSync(host, { recursive: true, force: true });
});

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A raw PUT on a connection of its own (no keep-alive reuse: a pooled socket the daemon
 * closes while this worker is busy would turn into ECONNRESET). A refusal may come back
 * before the whole body is written (EPIPE then), as with Docker; an error after the
 * answer began fails the call instead of leaving it pending.
 */
function put(container: string, dir: string, tar: Buffer, query = ''): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      { socketPath: d.socket, agent: false, method: 'PUT', path: `/v1.41/containers/${container}/archive?path=${encodeURIComponent(dir)}${query}`, headers: { 'Content-Type': 'application/x-tar' } },
      (res) => {
        const chunks: Buffer[] = [];
        answered = true;
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error(`the answer to PUT ${dir} was cut off after ${Buffer.concat(chunks).length} bytes`)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', (e) => (answered ? undefined : reject(e)));
    req.end(tar);
  });
}

const run = promisify(execFile);

/** A tar made by python's tarfile, so hostile entries are exactly what the test says. */
/** (Asynchronous: a synchronous spawn would stall the other tests of this worker.) */
async function pyTar(entries: Array<{ name: string; type?: 'sym' | 'file' | 'dir'; link?: string; data?: string }>): Promise<Buffer> {
  const script = `
import tarfile, io, sys, json
b = io.BytesIO()
t = tarfile.open(fileobj=b, mode='w')
for e in json.loads(sys.argv[1]):
    i = tarfile.TarInfo(e['name'])
    if e.get('type') == 'sym':
        i.type = tarfile.SYMTYPE; i.linkname = e['link']; t.addfile(i)
    elif e.get('type') == 'dir':
        i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    else:
        d = e.get('data', '').encode(); i.size = len(d); t.addfile(i, io.BytesIO(d))
t.close()
sys.stdout.buffer.write(b.getvalue())
`;
  return (await run('python3', ['-c', script, JSON.stringify(entries)], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;
}

test('docker cp copies a file and a directory in and out of a running container', async (t) => {
  await ok(d.docker(['run', '-d', '--name', 'cp1', 'busybox', 'sleep', '1000']));
  const src = path.join(host, 'src1');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'sub', 'f.txt'), 'in a dir\n');
  fs.writeFileSync(path.join(src, 'one.txt'), 'one\n');
  await ok(d.docker(['cp', path.join(src, 'one.txt'), 'cp1:/tmp/']));
  await ok(d.docker(['cp', src, 'cp1:/tmp/tree']));
  t.is(await ok(d.docker(['exec', 'cp1', 'cat', '/tmp/one.txt', '/tmp/tree/sub/f.txt'])), 'one\nin a dir\n');

  const out = path.join(host, 'out1');
  fs.mkdirSync(out);
  await ok(d.docker(['cp', 'cp1:/tmp/tree', out]));
  t.is(fs.readFileSync(path.join(out, 'tree', 'sub', 'f.txt'), 'utf8'), 'in a dir\n');
  await ok(d.docker(['cp', 'cp1:/tmp/tree/.', path.join(out, 'contents')]));
  t.is(fs.readFileSync(path.join(out, 'contents', 'one.txt'), 'utf8'), 'one\n');
  await ok(d.docker(['cp', 'cp1:/etc/passwd', path.join(out, 'pw')]));
  t.regex(fs.readFileSync(path.join(out, 'pw'), 'utf8'), /^root:/);
  const missing = await d.docker(['cp', 'cp1:/no/such', out]);
  t.not(missing.code, 0);
  t.regex(missing.stderr, /Could not find the file/);
});

test('docker cp into a volume path lands in the volume, running or stopped', async (t) => {
  await ok(d.docker(['run', '-d', '--name', 'cpv', '-v', 'cpvol:/data', 'busybox', 'sleep', '1000']));
  const f = path.join(host, 'vol.txt');
  fs.writeFileSync(f, 'in the volume\n');
  await ok(d.docker(['cp', f, 'cpv:/data/']));
  await ok(d.docker(['stop', '-t', '0', 'cpv']));
  fs.writeFileSync(f, 'copied while stopped\n');
  await ok(d.docker(['cp', f, 'cpv:/data/stopped.txt']));
  // Another container sees both files: they are in the volume, not in cpv's own layer.
  t.is(await ok(d.docker(['run', '--rm', '-v', 'cpvol:/v', 'busybox', 'cat', '/v/vol.txt', '/v/stopped.txt'])), 'in the volume\ncopied while stopped\n');
  t.deepEqual((await ok(d.docker(['diff', 'cpv']))).split('\n').filter((l) => l.includes('/data/')), []);
  // And out of the stopped container's volume.
  const out = path.join(host, 'vol-out.txt');
  await ok(d.docker(['cp', 'cpv:/data/stopped.txt', out]));
  t.is(fs.readFileSync(out, 'utf8'), 'copied while stopped\n');
});

test('berth cp streams tars with -, both ways', async (t) => {
  await ok(d.docker(['run', '-d', '--name', 'cpb', 'busybox', 'sleep', '1000']));
  const tar = await pyTar([{ name: 'dir/', type: 'dir' }, { name: 'dir/a.txt', data: 'from a tar\n' }]);
  await ok(d.berth(['cp', '-', 'cpb:/tmp'], { input: tar }));
  t.is(await ok(d.docker(['exec', 'cpb', 'cat', '/tmp/dir/a.txt'])), 'from a tar\n');
  const cli = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const listing = (await run('sh', ['-c', `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} cp cpb:/tmp/dir - | tar -t`], { env: d.env })).stdout;
  t.deepEqual(listing.trim().split('\n').sort(), ['dir/', 'dir/a.txt']);
  const out = path.join(host, 'berth-out');
  await ok(d.berth(['cp', 'cpb:/tmp/dir', out]));
  t.is(fs.readFileSync(path.join(out, 'a.txt'), 'utf8'), 'from a tar\n');
});

test('a symlink in the container never leads a copy out to the host, in either direction', async (t) => {
  const secret = path.join(host, 'secret');
  fs.mkdirSync(secret);
  fs.writeFileSync(path.join(secret, 'key'), 'HOST SECRET\n');
  await ok(d.docker(['run', '-d', '--name', 'esc', 'busybox', 'sleep', '1000']));
  // Absolute, relative-climbing and /proc magic links, all aimed at the host's directory.
  await ok(d.docker(['exec', 'esc', 'sh', '-c', `ln -s ${secret} /abs && ln -s ../../../../../../..${secret} /tmp/rel && ln -s /proc/1/root${secret} /magic && mkdir -p ${secret} && echo container > ${secret}/key`]));
  for (const link of ['/abs', '/tmp/rel', '/magic']) {
    const r = await d.docker(['cp', `esc:${link}/key`, '-']);
    t.false(r.stdout.includes('HOST SECRET'), `read through ${link}`);
    const f = path.join(host, 'payload');
    fs.writeFileSync(f, 'written from outside\n');
    await d.docker(['cp', f, `esc:${link}/`]);
    t.false(fs.existsSync(path.join(secret, 'payload')), `wrote through ${link}`);
  }
  t.is(await ok(d.docker(['exec', 'esc', 'cat', `${secret}/payload`])), 'written from outside\n', 'the write landed inside the container');
  t.is(fs.readFileSync(path.join(secret, 'key'), 'utf8'), 'HOST SECRET\n');
  t.deepEqual(fs.readdirSync(secret), ['key']);

  // Copying out a link gives the link; copying it with -L gives the container's target.
  const out = path.join(host, 'esc-out');
  fs.mkdirSync(out);
  await ok(d.docker(['cp', 'esc:/abs', path.join(out, 'link')]));
  t.true(fs.lstatSync(path.join(out, 'link')).isSymbolicLink());
  await ok(d.docker(['cp', '-L', 'esc:/abs', path.join(out, 'followed')]));
  t.is(fs.readFileSync(path.join(out, 'followed', 'key'), 'utf8'), 'container\n');
});

test('a PUT tar gets a layer tar\'s checks: no climbing out, no writing through a symlink', async (t) => {
  const secret = path.join(host, 'put-secret');
  fs.mkdirSync(secret);
  await ok(d.docker(['run', '-d', '--name', 'put1', 'busybox', 'sleep', '1000']));
  const climb = await put('put1', '/tmp', await pyTar([{ name: `../../../../..${secret}/x`, data: 'pwn' }]));
  t.is(climb.status, 400);
  t.is(JSON.parse(climb.body).code, 'INVALID_ARGUMENT');
  const through = await put('put1', '/tmp', await pyTar([{ name: 'l', type: 'sym', link: secret }, { name: 'l/x', data: 'pwn' }]));
  t.is(through.status, 400);
  t.is(JSON.parse(through.body).code, 'INVALID_ARGUMENT');
  t.deepEqual(fs.readdirSync(secret), []);
  const notDir = await put('put1', '/etc/passwd', await pyTar([{ name: 'x', data: 'x' }]));
  t.is(notDir.status, 400);
  const missing = await put('put1', '/no/such/dir', await pyTar([{ name: 'x', data: 'x' }]));
  t.is(missing.status, 404);
  // noOverwriteDirNonDir: a file does not replace a directory.
  await ok(d.docker(['exec', 'put1', 'mkdir', '-p', '/tmp/isdir']));
  const over = await put('put1', '/tmp', await pyTar([{ name: 'isdir', data: 'file' }]), '&noOverwriteDirNonDir=1');
  t.is(over.status, 400);
  t.is(await ok(d.docker(['exec', 'put1', 'sh', '-c', 'test -d /tmp/isdir && echo dir'])), 'dir\n');
});

test('copyUIDGID gives the files to the container\'s user; without it the tar\'s owner stays', async (t) => {
  await ok(d.docker(['run', '-d', '--name', 'own', '--user', 'nobody', 'busybox', 'sleep', '1000']));
  const f = path.join(host, 'owned.txt');
  fs.writeFileSync(f, 'x');
  await ok(d.docker(['cp', '-a', f, 'own:/tmp/a.txt']));
  await ok(d.docker(['cp', f, 'own:/tmp/b.txt']));
  t.is(await ok(d.docker(['exec', 'own', 'stat', '-c', '%U %u', '/tmp/a.txt', '/tmp/b.txt'])), `nobody 65534\nroot 0\n`);
});

test('a directory swapped for a symlink while copies run never takes a copy to the host', async (t) => {
  const target = path.join(host, 'swap-target');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'hostfile'), 'HOST DATA\n');
  await ok(d.docker(['run', '-d', '--name', 'swap', 'busybox', 'sh', '-c',
    `mkdir -p /w/d && echo inside > /w/d/hostfile && ln -s ${target} /w/link && while true; do mv /w/d /w/real && mv /w/link /w/d && mv /w/d /w/link && mv /w/real /w/d; done`]));
  const f = path.join(host, 'swap-payload');
  fs.writeFileSync(f, 'payload\n');
  let readInside = 0;
  for (let i = 0; i < 40; i++) {
    const r = await d.docker(['cp', 'swap:/w/d/hostfile', '-']);
    t.false(r.stdout.includes('HOST DATA'), 'a read followed the swapped-in symlink to the host');
    if (r.stdout.includes('inside')) readInside++;
    await d.docker(['cp', f, 'swap:/w/d/']);
    t.false(fs.existsSync(path.join(target, 'swap-payload')), 'a write followed the swapped-in symlink to the host');
  }
  t.true(readInside > 0, 'some copies ran while the real directory was there');
  t.deepEqual(fs.readdirSync(target), ['hostfile']);
});
