import * as fs from 'node:fs';
import { Command } from 'commander';
import { collect, connect } from '../context';
import { ago, formatItems, humanSize, shortId, table } from '../format';
import { readWithProgress, writeArchive } from '../progress';
import { parseFilters } from '../parse';
import { InvalidArgumentError, NotFoundError } from '../../../volumes/shared/errors';
import type { ImageSummary } from '../../images/service';

/** `docker images`-style rows: one per tag, `<none>` for untagged. */
function imageRows(list: ImageSummary[]) {
  const rows: Array<{ Repository: string; Tag: string; ID: string; CreatedSince: string; CreatedAt: string; Size: string; Digest: string }> = [];
  for (const img of list) {
    const tags = img.RepoTags?.length ? img.RepoTags : ['<none>:<none>'];
    for (const t of tags) {
      const i = t.lastIndexOf(':');
      rows.push({
        Repository: t.slice(0, i),
        Tag: t.slice(i + 1),
        ID: shortId(img.Id),
        CreatedSince: ago(img.Created),
        CreatedAt: new Date(img.Created * 1000).toISOString(),
        Size: humanSize(img.Size),
        Digest: img.RepoDigests?.[0]?.split('@')[1] ?? '<none>',
      });
    }
  }
  return rows;
}

function requireFile(file: string): void {
  if (file !== '-' && !fs.existsSync(file)) {
    throw new NotFoundError(`no such file: ${file}`, { hint: "check the path, or pass '-' to read standard input" });
  }
}

export function imageCommands(program: Command): void {
  const image = program.command('image').description('manage images');

  const ls = async (opts: { all?: boolean; quiet?: boolean; filter?: string[]; format?: string; digests?: boolean }, cmd: Command, repo?: string) => {
    const ctx = await connect(cmd);
    const filters = parseFilters(opts.filter);
    if (repo) (filters.reference ??= []).push(repo);
    const list = await ctx.images.list({ all: opts.all, filters });
    if (opts.quiet) return void process.stdout.write([...new Set(list.map((i) => shortId(i.Id)))].map((s) => s + '\n').join(''));
    const rows = imageRows(list);
    if (opts.format) return void process.stdout.write(formatItems(opts.format, rows));
    process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows.map((r) => [r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size])));
  };
  for (const c of [program.command('images [REPOSITORY]'), image.command('ls [REPOSITORY]').alias('list')]) {
    c.description('list images')
      .option('-a, --all', 'show all images')
      .option('-q, --quiet', 'only show image IDs')
      .option('-f, --filter <filter>', 'filter output (dangling=true, reference=busy*, label=k=v)', collect)
      .option('--format <format>', "'json' (one object per line) or a Go-style template, e.g. '{{.Repository}}:{{.Tag}}'")
      .action(async (repo: string | undefined, opts, cmd: Command) => ls(opts, cmd, repo));
  }

  const inspect = async (refs: string[], opts: { format?: string }, cmd: Command) => {
    const ctx = await connect(cmd);
    const out = [];
    for (const r of refs) out.push(await ctx.images.inspect(r));
    if (opts.format && opts.format !== 'json') return void process.stdout.write(formatItems(opts.format, out));
    process.stdout.write(JSON.stringify(out, null, 4) + '\n');
  };
  for (const c of [image.command('inspect <IMAGE...>')]) {
    c.description('show low-level information about images as JSON')
      .option('-f, --format <format>', "'json' or a Go-style template, e.g. '{{.Id}}' or '{{json .Config}}'")
      .action(inspect);
  }

  const history = async (ref: string, opts: { format?: string; quiet?: boolean; noTrunc?: boolean }, cmd: Command) => {
    const ctx = await connect(cmd);
    const h = await ctx.images.history(ref);
    if (opts.quiet) return void process.stdout.write(h.map((x) => (opts.noTrunc ? x.Id : x.Id === '<missing>' ? x.Id : shortId(x.Id)) + '\n').join(''));
    if (opts.format) return void process.stdout.write(formatItems(opts.format, h));
    const trunc = (s: string) => (opts.noTrunc || s.length <= 45 ? s : s.slice(0, 44) + '…');
    process.stdout.write(
      table(
        ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
        h.map((x) => [x.Id === '<missing>' || opts.noTrunc ? x.Id : shortId(x.Id), ago(x.Created), trunc(x.CreatedBy), humanSize(x.Size), x.Comment]),
      ),
    );
  };
  for (const c of [program.command('history <IMAGE>'), image.command('history <IMAGE>')]) {
    c.description('show the layers of an image and what made them')
      .option('--format <format>', "'json' or a Go-style template")
      .option('-q, --quiet', 'only show image IDs')
      .option('--no-trunc', "don't truncate output")
      .action(history);
  }

  const rmi = async (refs: string[], opts: { force?: boolean; prune?: boolean }, cmd: Command) => {
    const ctx = await connect(cmd);
    let failed: unknown;
    for (const r of refs) {
      try {
        for (const d of await ctx.images.remove(r, { force: opts.force, noprune: opts.prune === false })) {
          process.stdout.write(d.Untagged ? `Untagged: ${d.Untagged}\n` : `Deleted: ${d.Deleted}\n`);
        }
      } catch (e) {
        failed = e; // like docker: go on with the others, fail at the end
        process.stderr.write(`berth: ${(e as Error).message}\n`);
      }
    }
    if (failed) throw failed;
  };
  for (const c of [program.command('rmi <IMAGE...>'), image.command('rm <IMAGE...>').alias('remove')]) {
    c.description('remove images (untag; delete when no tag is left)')
      .option('-f, --force', 'force removal of an image with several tags')
      .option('--no-prune', 'do not delete untagged parents')
      .action(rmi);
  }

  for (const c of [program.command('tag <SOURCE> <TARGET>'), image.command('tag <SOURCE> <TARGET>')]) {
    c.description('give an image another name: TARGET is NAME[:TAG]').action(async (src: string, target: string, _o, cmd: Command) => {
      const ctx = await connect(cmd);
      const [repo, tag] = splitTag(target);
      await ctx.images.tag(src, repo, tag);
    });
  }

  const importCmd = async (file: string, ref: string | undefined, opts: { change?: string[]; message?: string }, cmd: Command) => {
    requireFile(file);
    const ctx = await connect(cmd);
    const input = readWithProgress(file, 'Importing');
    try {
      const { id } = await ctx.images.importRootfs(input.stream, { repo: ref, changes: opts.change, message: opts.message });
      input.done();
      process.stdout.write(id + '\n');
    } finally {
      input.done();
    }
  };
  for (const c of [program.command('import <FILE> [NAME]'), image.command('import <FILE> [NAME]')]) {
    c.description("make an image from a root filesystem tarball (plain or gzip); FILE '-' reads stdin")
      .option('-c, --change <instruction>', 'apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL', collect)
      .option('-m, --message <text>', 'commit message for the image history')
      .addHelpText('after', "\nExamples:\n  berth import rootfs.tar myimage:1.0\n  tar -C dir -c . | berth import - myimage --change 'CMD [\"sh\"]'")
      .action(importCmd);
  }

  const load = async (opts: { input?: string; quiet?: boolean }, cmd: Command) => {
    const file = opts.input ?? '-';
    if (file === '-' && process.stdin.isTTY) {
      throw new InvalidArgumentError('requested load from stdin, but stdin is a terminal', { hint: 'berth load -i FILE, or pipe an archive in' });
    }
    requireFile(file);
    const ctx = await connect(cmd);
    const input = readWithProgress(file, 'Loading');
    try {
      const { loaded } = await ctx.images.load(input.stream);
      input.done();
      for (const l of loaded) process.stdout.write(l + '\n');
    } finally {
      input.done();
    }
  };
  for (const c of [program.command('load'), image.command('load')]) {
    c.description('load images from a `docker save` archive or an OCI image layout tarball')
      .option('-i, --input <file>', 'read from this file instead of standard input')
      .option('-q, --quiet', 'suppress the progress bar')
      .action(load);
  }

  const save = async (refs: string[], opts: { output?: string }, cmd: Command) => {
    const ctx = await connect(cmd);
    await writeArchive('Saving', opts.output, (out) => ctx.images.save(refs, out));
  };
  for (const c of [program.command('save <IMAGE...>'), image.command('save <IMAGE...>')]) {
    c.description('write images to a tarball that is both a docker-archive and an OCI image layout')
      .option('-o, --output <file>', 'write to this file instead of standard output')
      .action(save);
  }

  image
    .command('vendor <NAME> <BINARY...>')
    .description("make an image from host binaries and every shared library they need (the announcement's \"extreme vendoring\")")
    .option('--cmd <command...>', 'default command (default: the first binary)')
    .option('--entrypoint <command...>', 'entrypoint')
    .addHelpText('after', '\nExample:\n  berth image vendor redis /usr/bin/redis-server /usr/bin/redis-cli')
    .action(async (ref: string, binaries: string[], opts: { cmd?: string[]; entrypoint?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const { id } = await ctx.images.vendor({ ref, binaries, cmd: opts.cmd, entrypoint: opts.entrypoint, progress: statusLine });
      process.stdout.write(id + '\n');
    });

  image
    .command('bootstrap <NAME>')
    .description('build a Debian base image with debootstrap (cached: a second call is instant)')
    .option('--mirror <url>', 'Debian mirror', 'http://deb.debian.org/debian')
    .addHelpText('after', '\nExample:\n  berth image bootstrap debian:bookworm')
    .action(async (ref: string, opts: { mirror: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const r = await ctx.images.bootstrap({ ref, mirror: opts.mirror, progress: statusLine });
      process.stdout.write(`${r.id}${r.cached ? ' (cached)' : ''}\n`);
    });
}

function statusLine(p: { status: string }): void {
  process.stderr.write(p.status.endsWith('\n') ? p.status : p.status + '\n');
}

/** `name:tag` → ['name', 'tag']; a ':' inside a registry host:port is not a tag. */
export function splitTag(ref: string): [string, string | undefined] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return [ref.slice(0, colon), ref.slice(colon + 1)];
  return [ref, undefined];
}
