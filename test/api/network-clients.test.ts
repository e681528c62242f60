import test from 'ava';
import Docker from 'dockerode';
import { TestDaemon } from '../helpers/daemon';

/**
 * Library clients of the networks API against one berth daemon: dockerode's createNetwork,
 * listNetworks, connect/disconnect and remove; and testcontainers-node's Network, whose
 * containers find each other by their network aliases. testcontainers' reaper stays off
 * (an image from a registry).
 */

let d: TestDaemon;
let docker: Docker;
let tc: typeof import('testcontainers');
test.before(async () => {
  d = await TestDaemon.start();
  docker = new Docker({ socketPath: d.socket });
  // Read once, when testcontainers makes its client: set before it is loaded.
  process.env.DOCKER_HOST = d.host;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  tc = await import('testcontainers');
});
test.after.always(async () => {
  await d?.stop();
});

/** busybox nslookup's A answers. */
function addresses(out: string): string[] {
  return out
    .split('\n')
    .slice(2)
    .map((l) => /^Address:\s+(\d+\.\d+\.\d+\.\d+)$/.exec(l.trim())?.[1])
    .filter((x): x is string => !!x);
}

test.serial('dockerode: createNetwork with IPAM and labels, listNetworks by label, connect with an alias, disconnect, remove; a name twice is 409', async (t) => {
  const net = await docker.createNetwork({ Name: 'dockerode-net', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.198.33.0/24', Gateway: '10.198.33.1' }] }, Labels: { owner: 'dockerode' } });
  const info = await net.inspect();
  t.is(info.Name, 'dockerode-net');
  t.deepEqual(info.IPAM?.Config, [{ Subnet: '10.198.33.0/24', Gateway: '10.198.33.1' }]);
  t.deepEqual(info.Labels, { owner: 'dockerode' });
  const listed = await docker.listNetworks({ filters: JSON.stringify({ label: ['owner=dockerode'] }) });
  t.deepEqual(listed.map((n) => n.Name), ['dockerode-net']);
  const err = await t.throwsAsync(docker.createNetwork({ Name: 'dockerode-net' }));
  t.is((err as { statusCode?: number }).statusCode, 409);

  const c = await docker.createContainer({ Image: 'busybox', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'dockerode-net' } });
  await c.start();
  const peer = await docker.createContainer({ Image: 'busybox', Cmd: ['sleep', '600'] });
  await peer.start();
  await net.connect({ Container: peer.id, EndpointConfig: { Aliases: ['buddy'], IPAMConfig: { IPv4Address: '10.198.33.40' } } });
  const after = await net.inspect();
  t.deepEqual(Object.keys(after.Containers ?? {}).sort(), [c.id, peer.id].sort());
  const ex = await c.exec({ Cmd: ['nslookup', 'buddy'], AttachStdout: true, AttachStderr: true });
  const out = await new Promise<string>((resolve, reject) => {
    ex.start({ hijack: true, stdin: false }, (e, stream) => {
      if (e || !stream) return reject(e);
      let text = '';
      stream.on('data', (b: Buffer) => (text += b.toString('latin1')));
      stream.on('end', () => resolve(text));
    });
  });
  t.true(out.includes('Address: 10.198.33.40'), out);
  await net.disconnect({ Container: peer.id });
  t.deepEqual(Object.keys((await net.inspect()).Containers ?? {}), [c.id]);
  await c.remove({ force: true });
  await peer.remove({ force: true });
  await net.remove();
  const gone = await t.throwsAsync(net.inspect());
  t.is((gone as { statusCode?: number }).statusCode, 404);
});

test.serial('testcontainers: containers on a Network find each other by their network aliases', async (t) => {
  const network = await new tc.Network().start();
  const server = await new tc.GenericContainer('busybox').withNetwork(network).withNetworkAliases('web', 'www').withCommand(['httpd', '-f', '-p', '80', '-h', '/etc']).start();
  const client = await new tc.GenericContainer('busybox').withNetwork(network).withCommand(['sleep', '600']).start();
  const ip = server.getIpAddress(network.getName());
  for (const alias of ['web', 'www']) {
    const r = await client.exec(['nslookup', alias]);
    t.deepEqual(addresses(r.output), [ip], r.output);
  }
  const page = await client.exec(['wget', '-q', '-O', '-', 'http://www/hostname']);
  t.is(page.output.trim(), server.getId().slice(0, 12));
  await client.stop();
  await server.stop();
  await network.stop();
  t.false((await docker.listNetworks()).some((n) => n.Name === network.getName()), 'the network is removed');
});
