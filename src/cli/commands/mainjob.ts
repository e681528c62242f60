import { Command } from 'commander';
import { CliContext, connect } from '../context';
import { table, humanSize, ago, shortId } from '../format';
import { createContainer, runAttached } from './container/session';
import { NotFoundError } from '../../../volumes/shared/errors';
import { tool } from '../../../volumes/shared/host-tool';
import { shareThroughARegistry } from './mainjob-share';

/**
 * `npm start`: make sure a daemon runs (the CLI starts one when none answers), make sure
 * the built-in busybox image exists, show the images, run a container, and show what berth
 * is for: Redis with its data on a volume that outlives the container, snapshotted and
 * rolled back, published on localhost (through the kernel, no proxy) and talked to there
 * with the host's redis-cli; then that volume pushed to a local registry, changed, pushed
 * again (only the change goes), and pulled by a second berth that runs Redis on it
 * (mainjob-share.ts).
 */
export async function mainJob(cmd: Command): Promise<void> {
  const ctx = await connect(cmd);
  const info = await ctx.transport.json<{ ServerVersion: string; DockerRootDir: string }>('GET', '/info');
  say(`berthd ${info.ServerVersion} is running: socket ${ctx.loc.socket}, data root ${info.DockerRootDir}\n`);
  await ctx.images.resolve('busybox');

  say(`\n$ berth run --rm busybox sh -c 'echo hello from a berth container: $(uname -n), pid $$'`);
  const id = await createContainer(ctx, { Image: 'busybox', Cmd: ['sh', '-c', 'echo hello from a berth container: $(uname -n), pid $$'], AttachStdout: true, AttachStderr: true, HostConfig: { AutoRemove: true } });
  const code = await runAttached(ctx, id, { autoRemove: true });
  if (code !== 0) process.exitCode = code;

  const port = await redisOnAVolume(ctx);
  await shareThroughARegistry(ctx, port, { volume: VOLUME, start: startRedis, redis: redisCli });

  const list = await ctx.images.list();
  const rows = list.flatMap((img) =>
    (img.RepoTags.length ? img.RepoTags : ['<none>:<none>']).map((t) => {
      const i = t.lastIndexOf(':');
      return [t.slice(0, i), t.slice(i + 1), shortId(img.Id), ago(img.Created), humanSize(img.Size)];
    }),
  );
  say('\n$ berth images');
  process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows));
  say('\nTry: berth ps -a, berth volume snapshots redis-data, berth run --rm -v redis-data:/data busybox ls /data, berth volume push --help, berth --help');
}

const VOLUME = 'redis-data';
const NAME = 'redis-demo';

async function redisOnAVolume(ctx: CliContext): Promise<string> {
  say('\n# Redis with its data on a volume');
  try {
    await ctx.images.inspect('redis');
  } catch (e) {
    if (!(e instanceof NotFoundError)) throw e;
    say('$ berth image vendor redis /usr/bin/redis-server /usr/bin/redis-cli');
    await ctx.images.vendor({ ref: 'redis', binaries: ['/usr/bin/redis-server', '/usr/bin/redis-cli'] });
  }
  // A fresh demo each time: the previous run's container and volume go first.
  await ctx.containers.remove(NAME, { force: true }).catch(() => undefined);
  await ctx.volumes.remove(VOLUME, { force: true }).catch(() => undefined);

  let port = '';
  const start = async () => (port = await startRedis(ctx, NAME, VOLUME));
  const redis = (args: string[]) => redisCli(port, args);
  const get = () => redis(['get', 'greeting']);

  await start();
  await redis(['set', 'greeting', 'hello, data']);
  say(`$ berth volume snapshot ${VOLUME} before-change`);
  const snap = await ctx.volumes.snapshot(VOLUME, 'before-change');
  say(`  snapshot ${snap.Name}: ${snap.Metadata.consistency}, taken while Redis kept running`);
  await redis(['set', 'greeting', 'changed after the snapshot']);

  say(`$ berth rm -f ${NAME}    # the container goes; the volume stays`);
  await ctx.containers.remove(NAME, { force: true });
  await start();
  await get();

  say(`$ berth stop ${NAME} && berth volume restore ${VOLUME} before-change && berth start ${NAME}`);
  await ctx.containers.stop(NAME);
  await ctx.volumes.restore(VOLUME, 'before-change');
  await ctx.containers.start(NAME);
  port = await waitForRedis(ctx, NAME);
  await get();
  say(`(the volume ${VOLUME} and its snapshot stay for you to try; Redis runs as ${NAME} on 127.0.0.1:${port})`);
  return port;
}

/** Its published port, once Redis in container `name` answers there (after every start: a new random one). */
async function waitForRedis(ctx: CliContext, name: string): Promise<string> {
  const ports = (await ctx.containers.inspect(name)).NetworkSettings.Ports as Record<string, Array<{ HostPort: string }> | null>;
  const port = ports['6379/tcp']?.[0]?.HostPort ?? '';
  say(`$ berth port ${name} 6379\n127.0.0.1:${port}`);
  for (let i = 0; i < 100; i++) {
    if ((await cli(port, ['ping']).catch(() => '')).trim() === 'PONG') return port;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis did not answer on its published port');
}

/** Run Redis as container `name` with its data on `volume`, published on a random localhost port; the port. */
async function startRedis(ctx: CliContext, name: string, volume: string): Promise<string> {
  say(`$ berth run -d --name ${name} -v ${volume}:/data -p 127.0.0.1::6379 redis redis-server --dir /data --appendonly yes --save ''`);
  const { Id } = await ctx.containers.create(
    {
      Image: 'redis',
      Cmd: ['/usr/bin/redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--dir', '/data', '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
      ExposedPorts: { '6379/tcp': {} },
      HostConfig: { Binds: [`${volume}:/data`], PortBindings: { '6379/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    },
    name,
  );
  await ctx.containers.start(Id);
  return waitForRedis(ctx, name);
}

/** redis-cli against `port`, shown with its answer; the answer. */
async function redisCli(port: string, args: string[]): Promise<string> {
  const out = (await cli(port, args)).trim();
  say(`$ redis-cli -p ${port} ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}${out ? '\n' + out : ''}`);
  return out;
}

/** The host's redis-cli, through the published port on localhost. */
function cli(port: string, args: string[]): Promise<string> {
  return tool('redis-cli', ['-h', '127.0.0.1', '-p', port, ...args], {
    timeoutMs: 5000,
    hint: `check that Redis answers on 127.0.0.1:${port} (berth logs ${NAME})`,
  });
}

function say(s: string): void {
  process.stdout.write(s + '\n');
}
