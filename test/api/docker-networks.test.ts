import test from 'ava';
import { TestDaemon } from '../helpers/daemon';

/** `docker network ls/inspect` and `berth info` show the daemon's bridge and who is on it. */

test('docker network ls and inspect show bridge, host and none; the bridge lists its containers', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const run = await d.berth(['run', '-d', '--name', 'member', 'busybox', 'sleep', '60']);
  t.is(run.code, 0, run.stderr);

  const ls = await d.docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']);
  t.is(ls.code, 0, ls.stderr);
  t.deepEqual(ls.stdout.trim().split('\n').sort(), ['bridge bridge local', 'host host local', 'none null local']);

  const info = JSON.parse((await d.berth(['info', '--format', 'json'])).stdout);
  const net = Array.isArray(info) ? info[0].Berth.Network : info.Berth.Network;
  const ip = (await d.berth(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'member'])).stdout.trim();

  const i = await d.docker(['network', 'inspect', 'bridge']);
  t.is(i.code, 0, i.stderr);
  const [b] = JSON.parse(i.stdout);
  t.deepEqual(b.IPAM.Config, [{ Subnet: net.subnet, Gateway: net.gateway }]);
  t.is(b.Options['com.docker.network.bridge.name'], net.bridge);
  const members = Object.values(b.Containers) as Array<{ Name: string; IPv4Address: string }>;
  t.deepEqual(members.map((m) => [m.Name, m.IPv4Address]), [['member', `${ip}/${net.subnet.split('/')[1]}`]]);

  const text = (await d.berth(['info'])).stdout;
  t.true(text.includes(`Bridge: ${net.bridge} ${net.subnet}`), text);
  t.not((await d.docker(['network', 'inspect', 'mynet'])).code, 0);
});
