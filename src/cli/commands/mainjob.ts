import { Command } from 'commander';
import { connect } from '../context';
import { table, humanSize, ago, shortId } from '../format';
import { createContainer, runAttached } from './containers';

/**
 * `npm start`: make sure a daemon runs (the CLI starts one when none answers), make sure
 * the built-in busybox image exists, show the images berth has, and run a container.
 */
export async function mainJob(cmd: Command): Promise<void> {
  const ctx = await connect(cmd);
  const info = await ctx.transport.json<{ ServerVersion: string; DockerRootDir: string }>('GET', '/info');
  process.stdout.write(`berthd ${info.ServerVersion} is running: socket ${ctx.loc.socket}, data root ${info.DockerRootDir}\n\n`);
  await ctx.images.resolve('busybox');
  const list = await ctx.images.list();
  const rows = list.flatMap((img) =>
    (img.RepoTags.length ? img.RepoTags : ['<none>:<none>']).map((t) => {
      const i = t.lastIndexOf(':');
      return [t.slice(0, i), t.slice(i + 1), shortId(img.Id), ago(img.Created), humanSize(img.Size)];
    }),
  );
  process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows));
  process.stdout.write('\n$ berth run --rm busybox sh -c \'echo hello from a berth container: $(uname -n), pid $$\'\n');
  const id = await createContainer(ctx, { Image: 'busybox', Cmd: ['sh', '-c', 'echo hello from a berth container: $(uname -n), pid $$'], AttachStdout: true, AttachStderr: true, HostConfig: { AutoRemove: true } });
  const code = await runAttached(ctx, id, { autoRemove: true });
  if (code !== 0) process.exitCode = code;
  process.stdout.write('\nTry: npx berth run --rm busybox echo hi, npx berth ps -a, npx berth images, npx berth image vendor redis /usr/bin/redis-server, npx berth --help\n');
}
