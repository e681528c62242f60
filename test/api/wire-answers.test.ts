import test from 'ava';
import { TestDaemon } from '../helpers/daemon';
import { dockerPy } from '../helpers/dockerpy';

/**
 * Answers clients depend on, checked through the clients themselves (docker-py and the
 * docker CLI): the swarm endpoints of a node that is not in a swarm, and Docker's status
 * codes where a client acts on them. One daemon for the file.
 */

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => {
  await d?.stop();
});

test('swarm: docker-py sees a node outside any swarm (leave_swarm(force) tolerated, services/nodes/secrets/configs 503, info inactive)', async (t) => {
  const r = await dockerPy<Record<string, unknown>>(
    d,
    `
res = {}
res['leave'] = api.leave_swarm(force=True)
for name, call in [('services', lambda: client.services.list()), ('nodes', lambda: client.nodes.list()),
                   ('secrets', lambda: client.secrets.list()), ('configs', lambda: client.configs.list()),
                   ('tasks', lambda: api.tasks()), ('inspect', lambda: api.inspect_swarm())]:
    try:
        call()
        res[name] = 'no error'
    except docker.errors.APIError as e:
        res[name] = [e.status_code, e.explanation]
res['state'] = client.info()['Swarm']['LocalNodeState']
out(res)
`,
  );
  t.is(r.leave, true);
  for (const k of ['services', 'nodes', 'secrets', 'configs', 'tasks', 'inspect']) {
    const [status, msg] = r[k] as [number, string];
    t.is(status, 503, k);
    t.regex(msg, /^This node is not a swarm manager\. Use "docker swarm init" or "docker swarm join"/, k);
  }
  t.is(r.state, 'inactive');
});

test('swarm: the docker CLI prints Docker\'s message for node ls, service ls and swarm leave', async (t) => {
  const nodes = await d.docker(['node', 'ls']);
  t.not(nodes.code, 0);
  t.regex(nodes.stderr, /This node is not a swarm manager/);
  const services = await d.docker(['service', 'ls']);
  t.not(services.code, 0);
  t.regex(services.stderr, /This node is not a swarm manager/);
  const leave = await d.docker(['swarm', 'leave', '--force']);
  t.not(leave.code, 0);
  t.regex(leave.stderr, /This node is not part of a swarm/);
  const info = await d.docker(['info', '--format', '{{.Swarm.LocalNodeState}}']);
  t.is(info.stdout.trim(), 'inactive');
});

test('status codes docker-py acts on: unknown volume driver 404, bad image archive raises ImageLoadError', async (t) => {
  const r = await dockerPy<Record<string, unknown>>(
    d,
    `
res = {}
try:
    client.volumes.create('v-nodriver', driver='no-such-driver')
    res['volume'] = 'created'
except docker.errors.NotFound as e:
    res['volume'] = ['NotFound', e.status_code]
except docker.errors.APIError as e:
    res['volume'] = ['APIError', e.status_code]
try:
    client.images.load(b'this is not a tar archive' * 100)
    res['load'] = 'loaded'
except docker.errors.ImageLoadError as e:
    res['load'] = ['ImageLoadError', str(e)]
except docker.errors.APIError as e:
    res['load'] = ['APIError', e.status_code]
out(res)
`,
  );
  t.deepEqual(r.volume, ['NotFound', 404]);
  t.is((r.load as string[])[0], 'ImageLoadError');
});

test('commit of a stopped container with pause=true works; the image carries Container and ContainerConfig', async (t) => {
  const r = await dockerPy<Record<string, unknown>>(
    d,
    `
c = client.containers.run('busybox', ['sh', '-c', 'echo committed > /f'], detach=True)
c.wait()
img = c.commit(repository='wire-commit', tag='v1', pause=True)
i = api.inspect_image(img.id)
check = client.containers.run('wire-commit:v1', ['cat', '/f'], remove=True)
out({'id': c.id, 'container': i.get('Container'), 'cc': i.get('ContainerConfig'), 'f': check.decode()})
c.remove()
`,
  );
  t.is(r.container, r.id);
  const cc = r.cc as { Image: string; Cmd: string[] };
  t.is(cc.Image, 'busybox');
  t.deepEqual(cc.Cmd, ['sh', '-c', 'echo committed > /f']);
  t.is(r.f, 'committed\n');
});

test('exec of a file that cannot be executed exits 126, of a missing one 127 (with and without a tty)', async (t) => {
  const r = await dockerPy<Record<string, number>>(
    d,
    `
c = client.containers.run('busybox', ['sleep', '1000'], detach=True)
res = {}
for tty in (False, True):
    res['noexec-%s' % tty] = c.exec_run(['/etc/passwd'], tty=tty).exit_code
    res['missing-%s' % tty] = c.exec_run(['/no/such/file'], tty=tty).exit_code
    res['notinpath-%s' % tty] = c.exec_run(['no-such-command'], tty=tty).exit_code
c.remove(force=True)
out(res)
`,
  );
  t.deepEqual(r, { 'noexec-False': 126, 'missing-False': 127, 'notinpath-False': 127, 'noexec-True': 126, 'missing-True': 127, 'notinpath-True': 127 });
});

test('volume prune follows the API version: 1.41 prunes named volumes too, 1.42+ anonymous only unless all=true', async (t) => {
  const r = await dockerPy<Record<string, string[]>>(
    d,
    `
import docker as _d
new = _d.APIClient(base_url=api.base_url.replace('http+docker://localhost', ${JSON.stringify(d.host)}), version='1.43')
res = {}
api.create_volume('wire-named-a')
anon = api.create_volume()['Name']
res['anon'] = [anon]
res['v143'] = new.prune_volumes()['VolumesDeleted'] or []
res['v143all'] = new.prune_volumes(filters={'all': True})['VolumesDeleted'] or []
api.create_volume('wire-named-b')
res['v141'] = api.prune_volumes()['VolumesDeleted'] or []
out(res)
`,
  );
  t.deepEqual(r.v143, r.anon, '1.43: only the anonymous volume');
  t.deepEqual(r.v143all, ['wire-named-a'], '1.43 with all=true: the named one too');
  t.deepEqual(r.v141, ['wire-named-b'], '1.41: every unused volume, named included');
});

test('Config.StopTimeout is kept, shown by inspect, and used by stop', async (t) => {
  const run = await d.docker(['run', '-d', '--name', 'stoptimeout', '--stop-timeout', '1', 'busybox', 'sh', '-c', 'trap "" TERM; sleep 1000']);
  t.is(run.code, 0, run.stderr);
  const r = await dockerPy<{ st: number }>(d, `out({'st': api.inspect_container('stoptimeout')['Config'].get('StopTimeout')})`);
  t.is(r.st, 1);
  // SIGTERM is ignored: stop ends it with SIGKILL after the container's 1 s, not the default
  // 10 s. The gap is read from the daemon's own kill events, not from how long the CLI took
  // (a loaded machine can add seconds to a docker command, not to a daemon timer firing).
  const since = Math.floor(Date.now() / 1000) - 1;
  const stop = await d.docker(['stop', 'stoptimeout']);
  t.is(stop.code, 0, stop.stderr);
  const ev = await d.docker(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'container=stoptimeout', '--filter', 'event=kill', '--format', '{{.Actor.Attributes.signal}} {{.TimeNano}}']);
  const kills = new Map(ev.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
  t.deepEqual([...kills.keys()], ['15', '9'], ev.stdout + ev.stderr);
  const gapMs = Number((BigInt(kills.get('9')!) - BigInt(kills.get('15')!)) / 1_000_000n);
  t.true(gapMs >= 500 && gapMs < 9000, `SIGKILL came ${gapMs} ms after SIGTERM`);
  await d.docker(['rm', '-f', 'stoptimeout']);
});

test('log drivers as Docker 20.10 reads them, through the docker CLI: json-file max-file alone, none, local, unknown', async (t) => {
  const jf = await d.docker(['run', '--name', 'log-jf', '--log-driver', 'json-file', '--log-opt', 'max-file=3', 'busybox', 'echo', 'jf']);
  t.is(jf.code, 0, jf.stderr);
  t.is((await d.docker(['logs', 'log-jf'])).stdout, 'jf\n');

  // none: the foreground run still shows the output (attach), but logs answers as Docker's does.
  const none = await d.docker(['run', '--name', 'log-none', '--log-driver', 'none', 'busybox', 'echo', 'attached']);
  t.is(none.code, 0, none.stderr);
  t.is(none.stdout, 'attached\n');
  const noneLogs = await d.docker(['logs', 'log-none']);
  t.not(noneLogs.code, 0);
  t.regex(noneLogs.stderr, /configured logging driver does not support reading/);
  t.is((await d.docker(['inspect', '-f', '{{.HostConfig.LogConfig.Type}}', 'log-none'])).stdout.trim(), 'none');

  const local = await d.docker(['run', '--name', 'log-local', '--log-driver', 'local', '--log-opt', 'max-size=1m', 'busybox', 'sh', '-c', 'echo out; echo err >&2']);
  t.is(local.code, 0, local.stderr);
  const localLogs = await d.docker(['logs', 'log-local']);
  t.is(localLogs.stdout, 'out\n');
  t.is(localLogs.stderr, 'err\n');
  t.is((await d.docker(['inspect', '-f', '{{.HostConfig.LogConfig.Type}}', 'log-local'])).stdout.trim(), 'local');

  const unknown = await d.docker(['run', '--rm', '--log-driver', 'no-such-driver', 'busybox', 'true']);
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /logger: no log driver named 'no-such-driver' is registered/);
  const badOpt = await d.docker(['run', '--rm', '--log-opt', 'colour=blue', 'busybox', 'true']);
  t.not(badOpt.code, 0);
  t.regex(badOpt.stderr, /unknown log opt 'colour' for json-file log driver/);
  const compress = await d.docker(['run', '--rm', '--log-driver', 'local', '--log-opt', 'compress=true', 'busybox', 'true']);
  t.not(compress.code, 0, 'compress=true is refused, not ignored');
  await d.docker(['rm', '-f', 'log-jf', 'log-none', 'log-local']);
});
