import { InvalidArgumentError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';
import { ipToNum, overlaps, parseSubnet, subnetOf, type Subnet } from './ipv4';

/**
 * Choosing a subnet for a bridge: Docker's default-bridge candidates, then smaller private
 * ranges, the first that overlaps no route the host has (its own bridge's excepted).
 */

/** Docker's default-bridge candidates, then smaller private ranges. */
function* candidates(): Generator<string> {
  for (let b = 17; b <= 31; b++) yield `172.${b}.0.0/16`;
  for (let c = 0; c < 256; c += 16) yield `192.168.${c}.0/20`;
  for (let b = 89; b < 256; b++) yield `10.${b}.0.0/16`;
}

/** Every IPv4 destination the host routes already (except default routes), with its device. */
export async function hostRoutes(): Promise<Array<{ subnet: Subnet; dev: string }>> {
  const text = await tool('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], {
    hint: 'berth reads the host routes to pick a free subnet; check that `ip -j -4 route show table all` works, or give the subnet yourself (--subnet)',
  });
  let routes: Array<{ dst?: string; dev?: string }> = [];
  try {
    routes = JSON.parse(text || '[]');
  } catch {
    return []; // an ip without JSON output: no routes known to be in our way
  }
  const out: Array<{ subnet: Subnet; dev: string }> = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default') continue;
    const [ip, p] = r.dst.split('/');
    try {
      out.push({ subnet: subnetOf(ipToNum(ip), p === undefined ? 32 : Number(p)), dev: r.dev ?? '' });
    } catch {
      // not an address we understand (multicast names): not in our way
    }
  }
  return out;
}

/** The host's routed subnets but loopback's (and but those of `bridge`: ours to reuse). */
export async function hostSubnets(bridge = ''): Promise<Subnet[]> {
  return (await hostRoutes()).filter((r) => r.dev !== bridge && r.subnet.base !== 0x7f000000).map((r) => r.subnet);
}

/** The first candidate subnet that overlaps none of `taken`. */
export function pickSubnet(taken: Subnet[]): Subnet {
  for (const c of candidates()) {
    const s = parseSubnet(c);
    if (!taken.some((r) => overlaps(r, s))) return s;
  }
  throw new InvalidArgumentError('no free private subnet for the bridge', { hint: 'give the daemon one with --subnet, e.g. --subnet 10.200.0.0/24' });
}

