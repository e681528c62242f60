import test from 'ava';
import * as packet from 'dns-packet';
import { EmbeddedDns, type DnsMember } from '../../src/network/dns-server';
import { changes } from '../../src/engine/network-attach';
import type { ContainerRecord } from '../../src/engine/container-record';

/**
 * The embedded DNS answers from an index of the members that is built again only when
 * they change (`version`), not at every query: these check its answers against members
 * in memory (no sockets), that a change shows at the next query, and that the records'
 * change counter sees each kind of change the engine makes.
 */

const NET_A = 'a'.repeat(64);
const NET_B = 'b'.repeat(64);

function member(id: string, name: string, running: boolean, endpoints: DnsMember['endpoints']): DnsMember {
  return { id: id.padEnd(64, '0'), name, running, endpoints };
}

async function ask(dns: EmbeddedDns, from: string, name: string, type: 'A' | 'PTR' = 'A'): Promise<{ rcode: string; data: string[] }> {
  const q = packet.encode({ type: 'query', id: 9, flags: packet.RECURSION_DESIRED, questions: [{ type, name }] });
  const out = await dns.answer(q, from, false);
  const a = packet.decode(out!) as packet.Packet & { rcode?: string };
  return { rcode: a.rcode ?? '', data: (a.answers ?? []).map((x) => String((x as { data?: unknown }).data)) };
}

test('names, aliases, short ids, links and PTR from the index; only shared networks; a change shows once the version moves', async (t) => {
  let members: DnsMember[] = [
    member('1111aaaa2222', 'web', true, [{ net: NET_A, ip: '10.1.0.2', aliases: ['www', 'Front'] }]),
    member('3333bbbb4444', 'db', true, [{ net: NET_B, ip: '10.2.0.2', aliases: [] }]),
    member('5555cccc6666', 'asker', false, [
      { net: NET_A, ip: '10.1.0.9', aliases: [] },
      { net: NET_B, ip: '10.2.0.9', aliases: [], links: [{ target: 'db', alias: 'store' }] },
    ]),
    member('7777dddd8888', 'lonely', true, [{ net: NET_B, ip: '10.2.0.3', aliases: ['www'] }]),
  ];
  let version = 1;
  let built = 0;
  const dns = new EmbeddedDns(
    () => (built++, members),
    () => version,
    (ip) => ip.startsWith('10.'),
    ['127.0.0.1'],
  );
  t.deepEqual(await ask(dns, '10.1.0.9', 'web'), { rcode: 'NOERROR', data: ['10.1.0.2'] });
  t.deepEqual(await ask(dns, '10.1.0.9', 'FRONT'), { rcode: 'NOERROR', data: ['10.1.0.2'] }, 'aliases, any case');
  t.deepEqual(await ask(dns, '10.1.0.9', '1111aaaa2222'), { rcode: 'NOERROR', data: ['10.1.0.2'] }, 'a short id');
  t.deepEqual(await ask(dns, '10.1.0.9', 'www'), { rcode: 'NOERROR', data: ['10.1.0.2', '10.2.0.3'] }, 'an alias on two shared networks');
  t.deepEqual(await ask(dns, '10.1.0.9', 'store'), { rcode: 'NOERROR', data: ['10.2.0.2'] }, "the asker's own link alias");
  t.deepEqual(await ask(dns, '10.1.0.2', 'store'), { rcode: 'NXDOMAIN', data: [] }, 'a link alias is for the linking container alone');
  t.deepEqual(await ask(dns, '10.1.0.2', 'db'), { rcode: 'NXDOMAIN', data: [] }, 'a container on a network not shared');
  t.deepEqual(await ask(dns, '10.1.0.2', 'asker'), { rcode: 'NXDOMAIN', data: [] }, 'a container that is not running is not answered for');
  t.deepEqual(await ask(dns, '10.1.0.9', '2.0.1.10.in-addr.arpa', 'PTR'), { rcode: 'NOERROR', data: ['web'] });
  t.deepEqual(await ask(dns, '10.1.0.2', '2.0.2.10.in-addr.arpa', 'PTR'), { rcode: 'NXDOMAIN', data: [] }, 'no PTR across networks');
  t.is(built, 1, 'ten queries, one index');

  // web stops and db joins network A, with the version moved: the next query sees it.
  members = members.map((m) => (m.name === 'web' ? { ...m, running: false } : m.name === 'db' ? { ...m, endpoints: [...m.endpoints, { net: NET_A, ip: '10.1.0.5', aliases: [] }] } : m));
  t.deepEqual(await ask(dns, '10.1.0.9', 'web'), { rcode: 'NOERROR', data: ['10.1.0.2'] }, 'the version did not move: the index stands');
  version++;
  t.deepEqual(await ask(dns, '10.1.0.9', 'web'), { rcode: 'NXDOMAIN', data: [] });
  t.deepEqual(await ask(dns, '10.1.0.2', 'db'), { rcode: 'NOERROR', data: ['10.1.0.5'] });
  t.is(built, 2);
});

test("the records' change counter moves when a record comes, goes, or has its State, Network, Name or HostConfig replaced, and only then", (t) => {
  const rec = (id: string) => ({ Id: id, Name: `/${id}`, State: { Status: 'created' }, Network: { Mode: 'bridge' }, HostConfig: {} }) as unknown as ContainerRecord;
  const a = rec('a');
  const b = rec('b');
  let all = [a];
  const version = changes(() => all);
  const v0 = version();
  t.is(version(), v0, 'nothing changed');
  const steps: Array<[string, () => void]> = [
    ['a record came', () => (all = [a, b])],
    ['State replaced', () => (a.State = { ...a.State, Status: 'running' })],
    ['Network replaced', () => (a.Network = { ...a.Network!, Networks: {} })],
    ['renamed', () => (b.Name = '/bee')],
    ['HostConfig replaced', () => (b.HostConfig = { ...b.HostConfig })],
    ['a record went', () => (all = [b])],
  ];
  let last = v0;
  for (const [what, change] of steps) {
    change();
    const v = version();
    t.not(v, last, what);
    t.is(version(), v, `${what}: stable after`);
    last = v;
  }
});
