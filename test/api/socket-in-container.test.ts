import test from 'ava';
import { TestDaemon } from '../helpers/daemon';

// The daemon's socket mounted into a container, as CI runners and testcontainers' reaper
// use it: a docker CLI inside (the host's, vendored into an image) drives berthd.

test('a docker CLI in a container drives berthd through the mounted socket', async (t) => {
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const v = await d.berth(['image', 'vendor', 'dockercli:test', '/usr/local/bin/docker']);
  t.is(v.code, 0, v.stderr);
  const inside = (...args: string[]) => d.docker(['run', '--rm', '-e', 'HOME=/tmp', '-v', `${d.socket}:/var/run/docker.sock`, 'dockercli:test', 'docker', ...args]);
  const ver = await inside('version', '--format', '{{.Server.APIVersion}}');
  t.is(ver.code, 0, ver.stderr);
  t.is(ver.stdout.trim(), '1.41');
  // A container started from inside runs on the same daemon, its output streamed back.
  const run = await inside('run', '--rm', '--name', 'from-inside', 'busybox', 'echo', 'hello from a sibling');
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, 'hello from a sibling\n');
  await d.docker(['run', '-d', '--name', 'seen', 'busybox', 'sleep', '1000']);
  const ps = await inside('ps', '--format', '{{.Names}}');
  t.is(ps.code, 0, ps.stderr);
  t.true(ps.stdout.split('\n').includes('seen'), ps.stdout);
  const cp = await inside('exec', 'seen', 'cat', '/etc/hostname');
  t.is(cp.code, 0, cp.stderr);
});
