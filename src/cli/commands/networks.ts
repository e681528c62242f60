import { Command } from 'commander';
import { collect, connect } from '../context';
import { formatItems, table } from '../format';
import { parseFilters, parseKeyValues, parseLabels } from '../parse';

/** `berth network …`: Docker's network verbs, over the API's /networks routes. */

type View = { Id: string; Name: string; Driver: string; Scope: string; Internal: boolean; Labels: Record<string, string> };

export function networkCommands(program: Command): void {
  const network = program.command('network').description('manage networks: user-defined bridges with their own subnet and DNS by name');

  network
    .command('create <NAME>')
    .description('make a network (its own bridge and subnet; containers on it find each other by name)')
    .option('-d, --driver <driver>', "network driver: 'bridge'", 'bridge')
    .option('--subnet <cidr>', 'IPv4 subnet, e.g. 10.90.0.0/24 (default: a free private one)')
    .option('--gateway <ip>', "the bridge's address (default: the subnet's first)")
    .option('--ip-range <cidr>', 'allocate container addresses from this part of the subnet')
    .option('--internal', 'no traffic in or out of the network except among its containers')
    .option('--attachable', 'accepted for compatibility (every berth network is attachable)')
    .option('--ipv6', 'IPv6 (not supported yet: refused)')
    .option('-o, --opt <k=v>', 'driver option: com.docker.network.bridge.name=NAME', collect)
    .option('--label <k=v>', 'set a label', collect)
    .action(async (name: string, o: { driver: string; subnet?: string; gateway?: string; ipRange?: string; internal?: boolean; attachable?: boolean; ipv6?: boolean; opt?: string[]; label?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const cfg = o.subnet || o.gateway || o.ipRange ? [{ Subnet: o.subnet, Gateway: o.gateway, IPRange: o.ipRange }] : [];
      const r = await ctx.transport.json<{ Id: string }>('POST', '/networks/create', {
        body: { Name: name, Driver: o.driver, Internal: !!o.internal, Attachable: !!o.attachable, EnableIPv6: !!o.ipv6, IPAM: { Driver: 'default', Config: cfg }, Options: parseKeyValues(o.opt, '-o'), Labels: parseLabels(o.label), CheckDuplicate: true },
      });
      process.stdout.write(r.Id + '\n');
    });

  network
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('-q, --quiet', 'only show ids')
    .option('--no-trunc', 'full ids')
    .option('-f, --filter <filter>', 'filter: name=…, id=…, label=k[=v], driver=…, type=custom|builtin, dangling=true', collect)
    .option('--format <format>', "'json' or a Go-style template, e.g. '{{.Name}}'")
    .action(async (o: { quiet?: boolean; trunc?: boolean; filter?: string[]; format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const list = await ctx.transport.json<View[]>('GET', '/networks', { query: { filters: JSON.stringify(parseFilters(o.filter)) } });
      const id = (v: View) => (o.trunc === false ? v.Id : v.Id.slice(0, 12));
      if (o.quiet) return void process.stdout.write(list.map((v) => id(v) + '\n').join(''));
      if (o.format) return void process.stdout.write(formatItems(o.format, list.map((v) => ({ ...v, ID: id(v) }))));
      process.stdout.write(table(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], list.map((v) => [id(v), v.Name, v.Driver, v.Scope])));
    });

  network
    .command('inspect <NETWORK...>')
    .description('show networks as JSON, with their containers')
    .option('-f, --format <format>', "a Go-style template, e.g. '{{.IPAM.Config}}'")
    .action(async (refs: string[], o: { format?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const out: object[] = [];
      for (const r of refs) out.push(await ctx.transport.json<object>('GET', `/networks/${encodeURIComponent(r)}`));
      if (o.format && o.format !== 'json') return void process.stdout.write(formatItems(o.format, out));
      process.stdout.write(JSON.stringify(out, null, 4) + '\n');
    });

  network
    .command('rm <NETWORK...>')
    .alias('remove')
    .description('remove networks (refused while a container is on one)')
    .action(async (refs: string[], _o: unknown, cmd: Command) => {
      const ctx = await connect(cmd);
      let failed: unknown;
      for (const r of refs) {
        try {
          await ctx.transport.json('DELETE', `/networks/${encodeURIComponent(r)}`);
          process.stdout.write(r + '\n');
        } catch (e) {
          failed ??= e;
          if (refs.length > 1) process.stderr.write(`berth: ${(e as Error).message}\n`);
        }
      }
      if (failed) throw failed;
    });

  network
    .command('prune')
    .description('remove every network no container is on')
    .option('-f, --force', 'do not ask (berth never asks)')
    .option('--filter <filter>', 'label=k[=v], label!=…, until=24h', collect)
    .action(async (o: { filter?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      const r = await ctx.transport.json<{ NetworksDeleted: string[] }>('POST', '/networks/prune', { query: { filters: JSON.stringify(parseFilters(o.filter)) } });
      if (r.NetworksDeleted.length) process.stdout.write(`Deleted Networks:\n${r.NetworksDeleted.join('\n')}\n`);
    });

  network
    .command('connect <NETWORK> <CONTAINER>')
    .description('connect a container to a network (a running one gets a new interface at once)')
    .option('--alias <name>', 'a network-scoped name for the container', collect)
    .option('--ip <address>', 'its IPv4 address on the network')
    .option('--link <name:alias>', 'a link to another container', collect)
    .action(async (net: string, container: string, o: { alias?: string[]; ip?: string; link?: string[] }, cmd: Command) => {
      const ctx = await connect(cmd);
      await ctx.transport.json('POST', `/networks/${encodeURIComponent(net)}/connect`, {
        body: { Container: container, EndpointConfig: { Aliases: o.alias ?? [], Links: o.link ?? null, IPAMConfig: o.ip ? { IPv4Address: o.ip } : null } },
      });
    });

  network
    .command('disconnect <NETWORK> <CONTAINER>')
    .description('disconnect a container from a network')
    .option('-f, --force', 'also when the network is gone')
    .action(async (net: string, container: string, o: { force?: boolean }, cmd: Command) => {
      const ctx = await connect(cmd);
      await ctx.transport.json('POST', `/networks/${encodeURIComponent(net)}/disconnect`, { body: { Container: container, Force: !!o.force } });
    });
}
