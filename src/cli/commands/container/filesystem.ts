import type { Command } from 'commander';
import { PassThrough } from 'node:stream';
import { collect, connect } from '../../context';
import { writeArchive } from '../../progress';
import { both, type Verbs } from '../../verbs';

/** The verbs on a container's filesystem: `commit`, `export` (`cp` is in cp.ts). */

/** `commit`: an image from the container's changes. */
export function commitVerb(v: Verbs): void {
  for (const c of both(v, 'commit <CONTAINER> [REPOSITORY]')) {
    c.description("make a new image from a container's changes")
      .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENV, ...)', collect)
      .option('-m, --message <text>', 'commit message')
      .option('-a, --author <name>', 'author')
      .option('-p, --pause', 'pause the container while committing (default)', true)
      .option('--no-pause', 'do not pause the container')
      .action(async (ref: string, repo: string | undefined, o: { change?: string[]; message?: string; author?: string; pause: boolean }, cmd: Command) => {
        const ctx = await connect(cmd);
        let r: string | undefined;
        let tag: string | undefined;
        if (repo) {
          const slash = repo.lastIndexOf('/');
          const colon = repo.lastIndexOf(':');
          [r, tag] = colon > slash ? [repo.slice(0, colon), repo.slice(colon + 1)] : [repo, undefined];
        }
        const out = await ctx.containers.commit(ref, { repo: r, tag, changes: o.change, comment: o.message, author: o.author, pause: o.pause });
        process.stdout.write(out.Id + '\n');
      });
  }
}

/** `export`: the filesystem as a tar. */
export function exportVerb(v: Verbs): void {
  for (const c of both(v, 'export <CONTAINER>')) {
    c.description("write a container's filesystem as a tar archive")
      .option('-o, --output <file>', 'write to a file instead of standard output')
      .action(async (ref: string, o: { output?: string }, cmd: Command) => {
        const ctx = await connect(cmd);
        await writeArchive(
          'Exporting',
          o.output,
          (out) => ctx.containers.export(ref, out),
          (to) => ctx.containers.export(ref, new PassThrough().resume(), to),
        );
      });
  }
}
