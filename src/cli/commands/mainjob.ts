import { Command } from 'commander';
import { Writable } from 'node:stream';
import { CliContext, connect } from '../context';
import { table, humanSize, ago, shortId } from '../format';
import { createContainer, runAttached } from './containers';
import { NotFoundError } from '../../../volumes/errors';

/**
 * `npm start`: make sure a daemon runs (the CLI starts one when none answers), make sure
 * the built-in busybox image exists, show the images, run a container, and show what berth
 * is for: Redis with its data on a volume that outlives the container, snapshotted and
 * rolled back.
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

  await redisOnAVolume(ctx);

  const list = await ctx.images.list();
  const rows = list.flatMap((img) =>
    (img.RepoTags.length ? img.RepoTags : ['<none>:<none>']).map((t) => {
      const i = t.lastIndexOf(':');
      return [t.slice(0, i), t.slice(i + 1), shortId(img.Id), ago(img.Created), humanSize(img.Size)];
    }),
  );
  say('\n$ berth images');
  process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows));
  say('\nTry: npx berth ps -a, npx berth volume snapshots redis-data, npx berth run --rm -v redis-data:/data busybox ls /data, npx berth --help');
}

const VOLUME = 'redis-data';
const NAME = 'redis-demo';

async function redisOnAVolume(ctx: CliContext): Promise<void> {
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

  const startRedis = async () => {
    say(`$ berth run -d --name ${NAME} -v ${VOLUME}:/data redis redis-server --dir /data --appendonly yes --save ''`);
    const { Id } = await ctx.containers.create(
      { Image: 'redis', Cmd: ['/usr/bin/redis-server', '--dir', '/data', '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], HostConfig: { Binds: [`${VOLUME}:/data`] } },
      NAME,
    );
    await ctx.containers.start(Id);
    for (let i = 0; i < 100; i++) {
      if ((await cli(ctx, ['ping'])).trim() === 'PONG') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('redis did not answer');
  };
  const get = async () => say(`$ berth exec ${NAME} redis-cli get greeting\n${(await cli(ctx, ['get', 'greeting'])).trim()}`);

  await startRedis();
  say(`$ berth exec ${NAME} redis-cli set greeting "hello, data"`);
  await cli(ctx, ['set', 'greeting', 'hello, data']);
  say(`$ berth volume snapshot ${VOLUME} before-change`);
  const snap = await ctx.volumes.snapshot(VOLUME, 'before-change');
  say(`  snapshot ${snap.Name}: ${snap.Metadata.consistency}, taken while Redis kept running`);
  say(`$ berth exec ${NAME} redis-cli set greeting "changed after the snapshot"`);
  await cli(ctx, ['set', 'greeting', 'changed after the snapshot']);

  say(`$ berth rm -f ${NAME}    # the container goes; the volume stays`);
  await ctx.containers.remove(NAME, { force: true });
  await startRedis();
  await get();

  say(`$ berth stop ${NAME} && berth volume restore ${VOLUME} before-change && berth start ${NAME}`);
  await ctx.containers.stop(NAME);
  await ctx.volumes.restore(VOLUME, 'before-change');
  await ctx.containers.start(NAME);
  for (let i = 0; i < 100 && (await cli(ctx, ['ping'])).trim() !== 'PONG'; i++) await new Promise((r) => setTimeout(r, 50));
  await get();
  say(`(the volume ${VOLUME} and its snapshot stay for you to try; Redis runs as ${NAME})`);
}

async function cli(ctx: CliContext, args: string[]): Promise<string> {
  const { Id } = await ctx.containers.execCreate(NAME, { Cmd: ['/usr/bin/redis-cli', ...args] });
  let out = '';
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      out += c.toString();
      cb();
    },
  });
  await ctx.containers.execStart(Id, { stdout: sink, stderr: sink }).catch(() => undefined);
  return out;
}

function say(s: string): void {
  process.stdout.write(s + '\n');
}
