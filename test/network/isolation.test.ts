import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon, exec, BERTH } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { loadImages } from '../helpers/images';
import { BridgeNetwork, derivedBridge, vethName } from '../../src/network/network';
import { bridgeOwner, ownerTag } from '../../src/network/claims';
import { ConflictError } from '../../volumes/shared/errors';
import { chainRules, linkExists, linksOn, netOf } from './netutil';
import { runCommand } from '../helpers/proc';
import { overlaps, parseSubnet } from '../../src/network/ipv4';

/**
 * Daemon isolation: a daemon never changes a bridge, veth or chain another daemon owns.
 * "first" stands in for a user's default daemon (a TestDaemon with its own bridge: tests
 * never touch the real berth0); other daemons start and stop beside it, one of them
 * without --bridge and with a user-defined network of its own, and its Redis keeps
 * answering on its published port throughout, as its own user-defined network's embedded
 * DNS keeps answering for it.
 */

const REDIS = ['redis-server', '--port', '6379', '--save', '', '--protected-mode', 'no'];

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const r = await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  return (r.stdout + r.stderr).trim();
}

async function waitPong(port: number): Promise<void> {
  await eventually(async () => (await redisCli(port, 'ping')) === 'PONG', { timeout: 60_000, message: `redis on 127.0.0.1:${port} to answer` });
}

test('daemons on other roots, with and without --bridge, start and stop beside a live Redis without touching its network', async (t) => {
  const first = await TestDaemon.start();
  t.teardown(() => first.stop());
  const mine = netOf(first);
  await loadImages(first, 'redis');
  const r = await first.berth(['run', '-d', '--name', 'redis', '-p', '127.0.0.1::6379', 'redis', ...REDIS]);
  t.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  const port = Number((await first.berth(['port', 'redis', '6379'])).stdout.trim().split(':').pop());
  await waitPong(port);
  t.is(await redisCli(port, 'set', 'k', 'before'), 'OK');
  t.deepEqual(bridgeOwner(mine.bridge), { state: 'claimed', owner: ownerTag(first.root) }, 'the bridge carries its root as its claim');
  const dnat0 = await chainRules('nat', `BERTH-DNAT${mine.suffix}`);
  // And a user-defined network of its own, with the embedded DNS: Redis joins it as `cache`.
  const ok = async (dd: TestDaemon, args: string[]) => {
    const out = await dd.berth(args);
    t.is(out.code, 0, `berth ${args.join(' ')}: ${out.stderr}`);
    return out.stdout.trim();
  };
  await ok(first, ['network', 'create', 'usernet']);
  const userBridge = (JSON.parse(await ok(first, ['network', 'inspect', '-f', '{{json .Options}}', 'usernet'])) as Record<string, string>)['com.docker.network.bridge.name'];
  await ok(first, ['network', 'connect', '--alias', 'cache', 'usernet', 'redis']);
  await ok(first, ['run', '-d', '--name', 'app', '--network', 'usernet', 'busybox', 'sleep', '600']);
  const cacheIp = await ok(first, ['inspect', '-f', '{{.NetworkSettings.Networks.usernet.IPAddress}}', 'redis']);
  const lookup = async () => {
    const out = await first.berth(['exec', 'app', 'nslookup', 'cache']);
    return /Name:\s+cache\s+Address:\s+(\S+)/.exec(out.stdout)?.[1] ?? `${out.stdout}${out.stderr}`;
  };
  t.is(await lookup(), cacheIp);
  const userLinks = await linksOn(userBridge);

  // A second daemon on another root, without --bridge: a bridge of its own, derived from its root.
  const second = await TestDaemon.start({ derivedNetwork: true });
  let secondStopped = false;
  t.teardown(() => (secondStopped ? undefined : second.stop()));
  const info = JSON.parse((await second.berth(['info', '--format', 'json'])).stdout);
  const net2 = (Array.isArray(info) ? info[0] : info).Berth.Network as { bridge: string; chains: string[] };
  t.is(net2.bridge, derivedBridge(second.root));
  t.not(net2.bridge, mine.bridge);
  t.false(net2.chains.some((c) => c.endsWith(mine.suffix) && mine.suffix !== '' && c === `BERTH-DNAT${mine.suffix}`));
  const c2 = await second.berth(['run', '-d', '--name', 'other', '-p', '127.0.0.1::80', 'busybox', 'httpd', '-f', '-p', '80']);
  t.is(c2.code, 0, c2.stderr);
  // The second daemon's own user-defined network (its subnet chosen beside the first's).
  await ok(second, ['network', 'create', 'usernet']);
  await ok(second, ['run', '-d', '--name', 'app2', '--network', 'usernet', 'busybox', 'sleep', '600']);
  t.is(await redisCli(port, 'get', 'k'), 'before', 'Redis answers while the second daemon runs a container');
  await second.stop();
  secondStopped = true;
  t.false(await linkExists(net2.bridge), 'the second daemon removed its own bridge');

  // Daemons that ask for what the first owns are refused, and change nothing.
  for (const extra of [['--bridge', mine.bridge, '--iptables-suffix', '-ISO1'], ['--bridge', 'berth-iso2', '--iptables-suffix', mine.suffix]]) {
    const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-t-'));
    t.teardown(() => fs.promises.rm(root, { recursive: true, force: true }));
    const sock = `unix://${root}/berth.sock`;
    const out = await runCommand(BERTH, ['daemon', '--root', root, '--host', sock, ...extra]);
    t.not(out.code, 0, `a daemon with ${extra.join(' ')} started`);
    t.true(out.stderr.includes(first.root), `the refusal names the owner's root: ${out.stderr}`);
    await t.throwsAsync(BridgeNetwork.open({ root, bridge: extra[1], iptablesSuffix: extra[3], subnet: '10.199.77.0/24' }), { instanceOf: ConflictError });
    t.false(await linkExists('berth-iso2'), 'a refused daemon made no bridge');
  }

  // After all that: the first's veth, rule and claim are intact, and Redis still answers.
  t.deepEqual(await linksOn(mine.bridge), [vethName(id)]);
  t.deepEqual(await chainRules('nat', `BERTH-DNAT${mine.suffix}`), dnat0);
  t.deepEqual(bridgeOwner(mine.bridge), { state: 'claimed', owner: ownerTag(first.root) });
  t.is(await redisCli(port, 'get', 'k'), 'before');
  t.is(await redisCli(port, 'set', 'k', 'after'), 'OK');
  t.deepEqual(await linksOn(userBridge), userLinks, "its user-defined network's veths are intact");
  t.deepEqual(bridgeOwner(userBridge), { state: 'claimed', owner: ownerTag(first.root) });
  t.is(await lookup(), cacheIp, 'its embedded DNS still answers');

  // The first daemon restarted (live restore) still finds everything its own.
  await first.terminate();
  await first.restart();
  t.deepEqual(await linksOn(mine.bridge), [vethName(id)]);
  t.is(await redisCli(port, 'get', 'k'), 'after');
});

test('a bridge claimed by a root that no longer exists is taken over; an unclaimed bridge with foreign ports is refused', async (t) => {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-t-'));
  const bridge = `bi${path.basename(root).slice(-6).toLowerCase().replace(/[^a-z0-9]/g, '0')}`;
  const dummy = `${bridge}d`; // a veth's end on the bridge: somebody else's port
  t.teardown(async () => {
    await exec('ip', ['link', 'del', dummy]).catch(() => undefined); // takes its peer along
    await exec('ip', ['link', 'del', bridge]).catch(() => undefined);
    await fs.promises.rm(root, { recursive: true, force: true });
  });
  await exec('ip', ['link', 'add', bridge, 'type', 'bridge']);
  await exec('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${bridge}p`]);
  await exec('ip', ['link', 'set', dummy, 'master', bridge]);
  const opts = { root, bridge, iptablesSuffix: `-${bridge.toUpperCase()}`, subnet: '10.199.78.0/24' };
  await t.throwsAsync(BridgeNetwork.open(opts), { instanceOf: ConflictError }, 'an unclaimed bridge with a port that is not ours');
  t.deepEqual(await linksOn(bridge), [dummy], 'the refused daemon left its port alone');

  await exec('ip', ['link', 'set', 'dev', bridge, 'alias', 'berth-root=/nonexistent/berth-gone']);
  const net = await BridgeNetwork.open(opts);
  t.deepEqual(bridgeOwner(bridge), { state: 'claimed', owner: ownerTag(root) });
  await net.close(false);
  t.false(await linkExists(bridge), 'its own bridge goes when it stops');
});

test('two daemons that start at once without --subnet choose their subnets under the host lock: never one subnet for both', async (t) => {
  const roots = await Promise.all([0, 1].map(() => fs.promises.mkdtemp(path.join(os.tmpdir(), 'berth-t-'))));
  const nets: BridgeNetwork[] = [];
  t.teardown(async () => {
    for (const n of nets) await n.close(false).catch(() => undefined);
    for (const r of roots) await fs.promises.rm(r, { recursive: true, force: true });
  });
  const opts = roots.map((root) => {
    const tag = path.basename(root).slice(-6).toLowerCase().replace(/[^a-z0-9]/g, '0');
    return { root, bridge: `bs${tag}`, iptablesSuffix: `-BS${tag.toUpperCase()}` };
  });
  const opened = await Promise.allSettled(opts.map((o) => BridgeNetwork.open(o)));
  for (const o of opened) if (o.status === 'fulfilled') nets.push(o.value);
  t.deepEqual(opened.map((o) => o.status), ['fulfilled', 'fulfilled'], opened.map((o) => (o.status === 'rejected' ? String(o.reason) : '')).join(' '));
  const [a, b] = nets.map((n) => parseSubnet(n.info().subnet));
  t.false(overlaps(a, b), `${nets[0].info().subnet} and ${nets[1].info().subnet}`);
  // Each is the subnet its bridge has, and what its root records for the next start.
  for (const [i, n] of nets.entries()) {
    t.is(JSON.parse(await fs.promises.readFile(path.join(roots[i], 'network.json'), 'utf8')).subnet, n.info().subnet);
  }
});
