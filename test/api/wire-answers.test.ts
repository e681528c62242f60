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
