import * as fs from 'node:fs';

/**
 * /etc/resolv.conf for a container, from the host's. A container cannot reach the host's
 * loopback resolvers (systemd-resolved's 127.0.0.53, a local dnsmasq), so they are left
 * out; on a systemd-resolved host the upstream file is used, as Docker does. When the host
 * has loopback resolvers only, a bridged container is given the gateway instead, and the
 * network forwards the gateway's port 53 to the first of them (`forwardTo`). Without a
 * gateway (no bridge), Docker's fallback: Google's public DNS.
 */

export const HOST_RESOLV_FILES = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'];
const DEFAULT_DNS = ['nameserver 8.8.8.8', 'nameserver 8.8.4.4'];

function isLoopbackNameserver(line: string): boolean {
  const m = /^\s*nameserver\s+(\S+)/.exec(line);
  return !!m && (m[1].startsWith('127.') || m[1] === '::1');
}

export function containerResolvConf(gateway?: string, files = HOST_RESOLV_FILES): { text: string; forwardTo?: string } {
  let fallback: { lines: string[]; loopback: string[] } | undefined;
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const all = text.split('\n');
    const lines = all.filter((l) => !isLoopbackNameserver(l));
    if (lines.some((l) => /^\s*nameserver\s/.test(l))) return { text: lines.join('\n').replace(/\n*$/, '\n') };
    const loopback = all.filter(isLoopbackNameserver).map((l) => l.trim().split(/\s+/)[1]).filter((n) => n.startsWith('127.'));
    if (!fallback || (fallback.loopback.length === 0 && loopback.length > 0)) fallback = { lines, loopback };
  }
  const lines = (fallback?.lines ?? []).filter((l) => l.trim() !== '');
  if (gateway && fallback && fallback.loopback.length > 0) {
    return { text: [`nameserver ${gateway}`, ...lines].join('\n') + '\n', forwardTo: fallback.loopback[0] };
  }
  return { text: [...lines, ...DEFAULT_DNS].join('\n') + '\n' };
}
