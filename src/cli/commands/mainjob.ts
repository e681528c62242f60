import { Command } from 'commander';
import { connect } from '../context';
import { table, humanSize, ago, shortId } from '../format';

/**
 * `npm start`: make sure a daemon runs (the CLI starts one when none answers), make sure
 * the built-in busybox image exists, and show the images berth has.
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
  process.stdout.write('\nTry: npx berth images, npx berth image vendor redis /usr/bin/redis-server, npx berth --help\n');
}
