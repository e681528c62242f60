import type { Command } from 'commander';
import { connect, type CliContext } from '../context';
import { InvalidArgumentError } from '../../../volumes/shared/errors';
import { RemoteRegistryService } from '../../client/registry';
import { parseReference } from '../../images/reference';
import { credentialsFor, eraseCredentials, storeCredentials } from '../credentials';
import { parseFilters } from '../parse';
import { formatItems, table } from '../format';
import { collect } from '../context';
import { transferDisplay } from '../transfer-progress';

/**
 * `pull`, `push`, `login`, `logout`, `search`. Credentials come from the docker CLI's
 * config.json (credentials.ts) and go to berthd per request in X-Registry-Auth; berthd
 * keeps none.
 */

/** Pull `ref` with the stored credentials for its registry and Docker's progress display. */
export async function pullWithProgress(ctx: CliContext, ref: string, o: { platform?: string; quiet?: boolean } = {}): Promise<void> {
  const r = parseReference(ref);
  const display = o.quiet ? undefined : transferDisplay();
  const reg = new RemoteRegistryService(ctx.transport);
  await reg.pull(ref, { platform: o.platform, auth: credentialsFor(r.domain), progress: display?.onMessage });
  display?.done();
}

export function registryCommands(program: Command): void {
  const image = program.commands.find((c) => c.name() === 'image') ?? program.command('image').description('manage images');
  for (const c of [program.command('pull <NAME>'), image.command('pull <NAME>')]) {
    c.description('download an image from a registry (name[:tag] or name@digest)')
      .option('--platform <os/arch>', 'the platform to pull from a multi-platform image (default: this host\'s, linux/amd64 here)')
      .option('-q, --quiet', 'print only the image name')
      .option('-a, --all-tags', 'pull every tag of the repository')
      .addHelpText('after', '\nExamples:\n  berth pull redis:7\n  berth pull 127.0.0.1:5000/team/app@sha256:<digest>\n  berth pull --platform linux/arm64 alpine')
      .action(async (ref: string, o: { platform?: string; quiet?: boolean; allTags?: boolean }, cmd: Command) => {
        if (o.allTags) throw new InvalidArgumentError('--all-tags is not supported by berth', { hint: 'pull each tag by name' });
        const ctx = await connect(cmd);
        const r = parseReference(ref);
        const full = r.digest ? `${r.name}@${r.digest}` : `${r.name}:${r.tag ?? 'latest'}`;
        await pullWithProgress(ctx, r.tag || r.digest ? ref : `${ref}:latest`, o);
        process.stdout.write(full + '\n');
      });
  }
  for (const c of [program.command('push <NAME>'), image.command('push <NAME>')]) {
    c.description('upload an image to a registry')
      .option('-q, --quiet', 'print only the digest line')
      .option('-a, --all-tags', 'push every tag of the repository')
      .addHelpText('after', '\nExamples:\n  berth tag app 127.0.0.1:5000/team/app:v1 && berth push 127.0.0.1:5000/team/app:v1')
      .action(async (ref: string, o: { quiet?: boolean; allTags?: boolean }, cmd: Command) => {
        if (o.allTags) throw new InvalidArgumentError('--all-tags is not supported by berth', { hint: 'push each tag by name' });
        const ctx = await connect(cmd);
        const r = parseReference(ref);
        const display = o.quiet ? undefined : transferDisplay();
        const res = await new RemoteRegistryService(ctx.transport).push(r.tag ? ref : `${ref}:latest`, { auth: credentialsFor(r.domain), progress: display?.onMessage });
        if (o.quiet) process.stdout.write(`${res.tag}: digest: ${res.digest} size: ${res.size}\n`);
      });
  }
  program
    .command('login [SERVER]')
    .description('log in to a registry (Docker Hub when no server is given); credentials are kept in the docker CLI\'s config.json or its credential helper')
    .option('-u, --username <user>', 'user name')
    .option('-p, --password <password>', 'password or token (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .addHelpText('after', '\nExamples:\n  echo "$TOKEN" | berth login -u me --password-stdin registry.example.com\n  berth login 127.0.0.1:5000 -u me -p secret')
    .action(async (server: string | undefined, o: { username?: string; password?: string; passwordStdin?: boolean }, cmd: Command) => {
      const domain = loginDomain(server);
      let password = o.password;
      if (o.passwordStdin) {
        if (o.password) throw new InvalidArgumentError('--password and --password-stdin are mutually exclusive', { hint: 'give the password one way' });
        password = (await readStdin()).replace(/\r?\n$/, '');
      }
      if (!o.username || password === undefined) {
        throw new InvalidArgumentError('login needs a user name and a password', { hint: 'berth login -u USER --password-stdin SERVER (the password on stdin)' });
      }
      if (o.password) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      const ctx = await connect(cmd);
      const res = await new RemoteRegistryService(ctx.transport).login({ username: o.username, password, serveraddress: domain });
      const where = storeCredentials(domain, { username: o.username, password, identitytoken: res.IdentityToken || undefined });
      process.stdout.write(`${res.Status || 'Login Succeeded'}\n`);
      process.stderr.write(`credentials for ${domain} kept in ${where}\n`);
    });
  program
    .command('logout [SERVER]')
    .description('forget the credentials for a registry (Docker Hub when no server is given)')
    .action(async (server: string | undefined) => {
      const domain = loginDomain(server);
      const had = eraseCredentials(domain);
      process.stdout.write(had ? `Removing login credentials for ${domain}\n` : `Not logged in to ${domain}\n`);
    });
  program
    .command('search <TERM>')
    .description('search a registry for images (Docker Hub, or HOST[:PORT]/TERM to search a registry\'s catalog)')
    .option('--limit <n>', 'at most this many results (1-100)', '25')
    .option('-f, --filter <filter>', 'is-official=true, is-automated=true or stars=N', collect)
    .option('--no-trunc', 'do not truncate descriptions')
    .option('--format <format>', 'json, or a Go template of .Name .Description .StarCount .IsOfficial .IsAutomated')
    .addHelpText('after', '\nExamples:\n  berth search redis\n  berth search 127.0.0.1:5000/team')
    .action(async (term: string, o: { limit: string; filter?: string[]; trunc: boolean; format?: string }, cmd: Command) => {
      const limit = Number(o.limit);
      const ctx = await connect(cmd);
      const domain = /^[^/]*[.:][^/]*\//.test(term) ? term.slice(0, term.indexOf('/')) : 'docker.io';
      const rows = await new RemoteRegistryService(ctx.transport).search(term, { limit, filters: parseFilters(o.filter), auth: credentialsFor(domain) });
      const items = rows.map((r) => ({
        Name: r.name,
        Description: o.trunc && r.description.length > 45 ? `${r.description.slice(0, 44)}…` : r.description,
        StarCount: r.star_count,
        IsOfficial: r.is_official,
        IsAutomated: r.is_automated,
        Official: r.is_official ? '[OK]' : '',
      }));
      process.stdout.write(
        o.format ? formatItems(o.format, items) : table(['NAME', 'DESCRIPTION', 'STARS', 'OFFICIAL'], items.map((i) => [i.Name, i.Description, String(i.StarCount), i.Official])),
      );
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Loaded on use: the registry client (https, tls) costs every other command's start-up. */
function loginDomain(server: string | undefined): string {
  return (require('../../images/registry/registry') as typeof import('../../images/registry/registry')).loginDomain(server);
}
