import * as fs from 'node:fs';

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

/** Docker's fallback when the host has only loopback resolvers (unreachable from a container). */
const DEFAULT_DNS = ['nameserver 8.8.8.8', 'nameserver 8.8.4.4'];

function isLoopbackNameserver(line: string): boolean {
  const m = /^\s*nameserver\s+(\S+)/.exec(line);
  return !!m && (m[1].startsWith('127.') || m[1] === '::1');
}

/**
 * The host's resolv.conf as Docker passes it on: loopback nameservers removed (a
 * container cannot reach the host's 127.0.0.53); on a systemd-resolved host the real
 * upstream file is used; with no nameserver left, Google's public DNS.
 */
export function containerResolvConf(files = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']): string {
  let fallback: string[] | undefined;
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const lines = text.split('\n').filter((l) => !isLoopbackNameserver(l));
    fallback ??= lines;
    if (lines.some((l) => /^\s*nameserver\s/.test(l))) return lines.join('\n').replace(/\n*$/, '\n');
  }
  const lines = (fallback ?? []).filter((l) => l.trim() !== '');
  return [...lines, ...DEFAULT_DNS].join('\n') + '\n';
}

export async function writeEtcFiles(p: { hostname: string; hosts: string; resolvConf: string }, hostname: string): Promise<void> {
  await fs.promises.writeFile(p.hostname, `${hostname}\n`, { mode: 0o644 });
  await fs.promises.writeFile(p.hosts, `${HOSTS.join('\n')}\n`, { mode: 0o644 });
  await fs.promises.writeFile(p.resolvConf, containerResolvConf(), { mode: 0o644 });
}
