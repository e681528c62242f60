import * as fs from 'node:fs';
import { containerResolvConf } from '../network/resolv';
import { extraHostLines, resolvWithOverrides, type DnsOverrides, type ExtraHost } from '../network/dns-options';

/**
 * The files Docker bind-mounts over a container's /etc/hostname, /etc/hosts and
 * /etc/resolv.conf. They live in the container's directory, so a container sees its own
 * hostname and the host's resolvers without its image being changed.
 */

const HOSTS = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

export interface EtcContent {
  hostname: string;
  /** The container's name (without the leading /), listed with its address in /etc/hosts. */
  name: string;
  /** Its address on the bridge, if it has one. */
  address?: string;
  /** resolv.conf to give it (the network's); default: the host's, loopback nameservers left out. */
  resolvConf?: string;
  /** `--network host`: the host's own /etc/hosts and resolv.conf, as Docker does. */
  hostNetwork?: boolean;
  /** --dns, --dns-search, --dns-option: replace those lines of the resolv.conf. */
  dns?: DnsOverrides;
  /** --add-host entries (host-gateway already resolved), appended to /etc/hosts. */
  extraHosts?: ExtraHost[];
}

export async function writeEtcFiles(p: { hostname: string; hosts: string; resolvConf: string }, c: EtcContent): Promise<void> {
  await fs.promises.writeFile(p.hostname, `${c.hostname}\n`, { mode: 0o644 });
  let hosts = `${HOSTS.join('\n')}\n`;
  let resolv = c.resolvConf ?? containerResolvConf().text;
  if (c.hostNetwork) {
    hosts = await fs.promises.readFile('/etc/hosts', 'utf8').catch(() => hosts);
    resolv = await fs.promises.readFile('/etc/resolv.conf', 'utf8').catch(() => resolv);
  } else if (c.address) {
    const names = [...new Set([c.hostname, c.name])].join(' ');
    hosts += `${c.address}\t${names}\n`;
  }
  if (c.extraHosts?.length) hosts = hosts.replace(/\n*$/, '\n') + extraHostLines(c.extraHosts);
  await fs.promises.writeFile(p.hosts, hosts, { mode: 0o644 });
  await writeResolvConf(p.resolvConf, { resolvConf: resolv, dns: c.dns });
}

/**
 * Rewrite a container's resolv.conf alone (its networks changed). In place, not by
 * rename: a running container has the file bind-mounted, and sees the same inode.
 */
export async function writeResolvConf(file: string, c: Pick<EtcContent, 'resolvConf' | 'dns'>): Promise<void> {
  await fs.promises.writeFile(file, resolvWithOverrides(c.resolvConf ?? containerResolvConf().text, c.dns), { mode: 0o644 });
}
