import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { TestDaemon } from '../helpers/daemon';

// dockerode and docker-py (Debian's python3-docker) on berthd: archive both ways, stats,
// update and df, as those libraries call them.

const execFileP = promisify(execFile);
let d: TestDaemon;
let docker: Docker;
test.before(async () => {
  d = await TestDaemon.start();
  docker = new Docker({ socketPath: d.socket });
});
test.after.always(async () => d?.stop());

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function untar(stream: NodeJS.ReadableStream): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const x = tar.extract();
  stream.pipe(x as unknown as NodeJS.WritableStream);
  for await (const e of x) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    out[e.header.name] = Buffer.concat(chunks).toString();
  }
  return out;
}

test('dockerode: putArchive, getArchive and infoArchive', async (t) => {
  const c = await docker.createContainer({ Image: 'busybox', Cmd: ['sleep', '1000'], name: 'dode' });
  await c.start();
  await c.putArchive(await tarOf({ 'hello.txt': 'from dockerode\n' }), { path: '/tmp' });
  const files = await untar(await c.getArchive({ path: '/tmp/hello.txt' }));
  t.is(files['hello.txt'], 'from dockerode\n');
  // dockerode hands back the HEAD response; the stat is Docker's base64 JSON header.
  const head = (await c.infoArchive({ path: '/tmp/hello.txt' })) as unknown as { headers: Record<string, string>; resume(): void };
  head.resume();
  const info = JSON.parse(Buffer.from(head.headers['x-docker-container-path-stat'], 'base64').toString()) as { name: string; size: number; mode: number };
  t.is(info.name, 'hello.txt');
  t.is(info.size, 15);
  await t.throwsAsync(c.getArchive({ path: '/no/such' }), { message: /Could not find the file/ });
});

test('dockerode: stats, update and df', async (t) => {
  const c = await docker.createContainer({ Image: 'busybox', Cmd: ['sleep', '1000'], name: 'dode2', HostConfig: { Memory: 64 * 1024 * 1024 } });
  await c.start();
  const s = (await c.stats({ stream: false })) as unknown as { memory_stats: { usage: number; limit: number }; pids_stats: { current: number }; cpu_stats: { online_cpus: number } };
  t.true(s.memory_stats.usage > 0);
  t.is(s.memory_stats.limit, 64 * 1024 * 1024);
  t.is(s.pids_stats.current, 1);
  t.true(s.cpu_stats.online_cpus > 0);
  await c.update({ Memory: 96 * 1024 * 1024, RestartPolicy: { Name: 'unless-stopped' } });
  const info = await c.inspect();
  t.is(info.HostConfig.Memory, 96 * 1024 * 1024);
  t.is(info.HostConfig.RestartPolicy?.Name, 'unless-stopped');
  const refused = await t.throwsAsync(c.update({ CpusetCpus: '0' }));
  t.is((refused as unknown as { statusCode: number }).statusCode, 400, 'a field update cannot apply is refused, not ignored');
  const df = (await docker.df()) as { Images: Array<{ RepoTags: string[] }>; Containers: Array<{ Names: string[] }>; Volumes: unknown[]; LayersSize: number };
  t.true(df.Images.some((i) => i.RepoTags.includes('busybox:latest')));
  t.true(df.Containers.some((x) => x.Names.includes('/dode2')));
  t.true(df.LayersSize > 0);
  t.true(Array.isArray(df.Volumes));
});

test('docker-py: put_archive, get_archive and stats', async (t) => {
  await d.docker(['run', '-d', '--name', 'py1', 'busybox', 'sleep', '1000']);
  const script = `
import docker, io, tarfile, sys
c = docker.DockerClient(base_url='unix://${d.socket}').containers.get('py1')
b = io.BytesIO()
with tarfile.open(fileobj=b, mode='w') as t:
    data = b'from docker-py\\n'
    i = tarfile.TarInfo('py.txt'); i.size = len(data); t.addfile(i, io.BytesIO(data))
assert c.put_archive('/tmp', b.getvalue()) is True
bits, stat = c.get_archive('/tmp/py.txt')
raw = b''.join(bits)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    print(t.extractfile('py.txt').read().decode().strip(), stat['name'], stat['size'])
s = c.stats(stream=False)
print(s['memory_stats']['usage'] > 0, s['pids_stats']['current'], 'eth0' in s['networks'])
`;
  const { stdout } = await execFileP('python3', ['-c', script]);
  t.deepEqual(stdout.trim().split('\n'), ['from docker-py py.txt 15', 'True 1 True']);
});
