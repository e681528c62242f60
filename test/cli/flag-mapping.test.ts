import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main';
import { TestDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';

/**
 * The CLI's flag-to-request mapping for `create`, `run` and `exec`, table-driven: every
 * option the command defines has a row here, and a test fails on an option without one, so
 * a new flag cannot land without its mapping proven.
 *
 * A create row makes the same container twice on one berthd — once with `berth create`,
 * once with the real docker CLI — and compares the fields the flag sets in both inspects:
 * berth's CLI must send what Docker's sends. Each row also names the value it expects, so
 * a flag both CLIs drop cannot pass. Rows for flags docker has not, or that act rather than
 * set a field (--pull, -d, --dry-run, exec's), prove their effect instead.
 */

let d: TestDaemon;
let dir: string;
const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;

test.before(async () => {
  d = await TestDaemon.start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-flags-'));
  fs.writeFileSync(path.join(dir, 'env'), 'FROM_FILE=yes\n# a comment\n');
  await ok(d.berth(['create', '--name', 'fm-src', '-v', '/src-vol', 'busybox', 'true']));
  await ok(d.berth(['create', '--name', 'fm-target', 'busybox', 'true']));
  await ok(d.berth(['network', 'create', '--subnet', `${subnet}.0/24`, 'fm-net']));
});
test.after.always(async () => {
  await d?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The long names (or the short, when there is none) of a command's options. */
function optionsOf(verb: string, sub?: string): string[] {
  const program = buildProgram(verb);
  let cmd = program.commands.find((c: Command) => c.name() === verb)!;
  if (sub) cmd = cmd.commands.find((c: Command) => c.name() === sub)!;
  return cmd.options.map((o) => o.long ?? o.short ?? o.flags).filter((f) => f !== '--help');
}

function at(o: unknown, p: string): unknown {
  return p.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);
}

type Inspect = Record<string, unknown>;

interface CreateRow {
  /** The command-line arguments before the image. */
  args: string[];
  /** Dotted paths into `inspect` and the value berth must show there (docker's value must equal berth's). */
  expect: Record<string, unknown>;
  /** Not compared with the docker CLI (docker has not the flag, or cannot send it to API 1.41). */
  berthOnly?: true;
  /** More paths compared with docker's, whatever their value. */
  also?: string[];
  /** Applied to both sides before comparing with docker's (what legitimately differs: ids, spelling). */
  norm?: (v: unknown) => unknown;
}

/** Docker ≥ 23's CLI writes capabilities CAP_-prefixed, 20.10's as given; berthd takes both. */
const capNames = (v: unknown): unknown => (v as string[] | undefined)?.map((c) => c.replace(/^CAP_/, ''));

const CREATE: Record<string, CreateRow> = {
  '--name': { args: ['--name', 'fm-named'], expect: { Name: '/fm-named' }, berthOnly: true },
  '--platform': { args: ['--platform', `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`], expect: { Platform: 'linux' } },
  // The docker CLI (28) sends -e in no fixed order: compared as a set.
  '--env': { args: ['-e', 'A=1', '--env', 'B=two words'], expect: { 'Config.Env': (e: string[]) => e.includes('A=1') && e.includes('B=two words') }, norm: (v) => [...(v as string[])].sort() },
  '--env-file': { args: ['--env-file', '@DIR/env'], expect: { 'Config.Env': (e: string[]) => e.includes('FROM_FILE=yes') && !e.some((x) => x.startsWith('#')) } },
  '--workdir': { args: ['-w', '/srv/app'], expect: { 'Config.WorkingDir': '/srv/app' } },
  '--user': { args: ['-u', '1000:100'], expect: { 'Config.User': '1000:100' } },
  '--entrypoint': { args: ['--entrypoint', '/bin/echo'], expect: { 'Config.Entrypoint': ['/bin/echo'] } },
  '--hostname': { args: ['-h', 'flaghost'], expect: { 'Config.Hostname': 'flaghost' } },
  '--rm': { args: ['--rm'], expect: { 'HostConfig.AutoRemove': true } },
  '--label': { args: ['-l', 'a=1', '--label', 'b'], expect: { 'Config.Labels': { a: '1', b: '' } } },
  '--read-only': { args: ['--read-only'], expect: { 'HostConfig.ReadonlyRootfs': true } },
  '--memory': { args: ['-m', '64m'], expect: { 'HostConfig.Memory': 64 * 1024 * 1024 } },
  '--cpus': { args: ['--cpus', '1.5'], expect: { 'HostConfig.NanoCpus': 1_500_000_000 } },
  '--pids-limit': { args: ['--pids-limit', '77'], expect: { 'HostConfig.PidsLimit': 77 } },
  '--restart': { args: ['--restart', 'on-failure:3'], expect: { 'HostConfig.RestartPolicy': { Name: 'on-failure', MaximumRetryCount: 3 } } },
  '--init': { args: ['--init'], expect: { 'HostConfig.Init': true } },
  '--runtime': { args: ['--runtime', 'runc'], expect: { 'HostConfig.Runtime': 'runc' } },
  '--log-opt': { args: ['--log-opt', 'max-size=1m', '--log-opt', 'max-file=2'], expect: { 'HostConfig.LogConfig.Config': { 'max-size': '1m', 'max-file': '2' } } },
  '--stop-signal': { args: ['--stop-signal', 'SIGUSR1'], expect: { 'Config.StopSignal': 'SIGUSR1' } },
  '--interactive': { args: ['-i'], expect: { 'Config.OpenStdin': true }, also: ['Config.StdinOnce', 'Config.AttachStdin', 'Config.AttachStdout', 'Config.AttachStderr'] },
  '--volume': { args: ['-v', '@DIR:/bound:ro', '-v', '/anon'], expect: { 'HostConfig.Binds': ['@DIR:/bound:ro'], 'Config.Volumes': { '/anon': {} } } },
  '--mount': {
    args: ['--mount', 'type=tmpfs,dst=/t,tmpfs-size=1m', '--mount', 'type=bind,src=@DIR,dst=/b,readonly'],
    expect: {
      'HostConfig.Mounts': [
        { Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1024 * 1024 } },
        { Type: 'bind', Source: '@DIR', Target: '/b', ReadOnly: true },
      ],
    },
  },
  '--volumes-from': { args: ['--volumes-from', 'fm-src:ro'], expect: { 'HostConfig.VolumesFrom': ['fm-src:ro'] } },
  '--publish': {
    args: ['-p', '127.0.0.1:18080:80', '-p', '5353:53/udp'],
    expect: {
      'HostConfig.PortBindings': { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }], '53/udp': [{ HostIp: '', HostPort: '5353' }] },
      'Config.ExposedPorts': { '80/tcp': {}, '53/udp': {} },
    },
  },
  '--publish-all': { args: ['-P'], expect: { 'HostConfig.PublishAllPorts': true } },
  '--expose': { args: ['--expose', '7000-7001/udp'], expect: { 'Config.ExposedPorts': { '7000/udp': {}, '7001/udp': {} } } },
  '--network': { args: ['--network', 'none'], expect: { 'HostConfig.NetworkMode': 'none' } },
  '--net': { args: ['--net', 'host'], expect: { 'HostConfig.NetworkMode': 'host' } },
  '--network-alias': {
    args: ['--network', 'fm-net', '--network-alias', 'db'],
    expect: { 'NetworkSettings.Networks.fm-net.Aliases': (a: string[]) => a.includes('db') },
    norm: (v) => (v as string[]).filter((a) => !/^[0-9a-f]{12}$/.test(a)), // each container's own short id
  },
  // One address cannot be given to two containers: berth's alone.
  '--ip': { args: ['--network', 'fm-net', '--ip', `${subnet}.77`], expect: { 'NetworkSettings.Networks.fm-net.IPAMConfig.IPv4Address': `${subnet}.77` }, berthOnly: true },
  '--link': { args: ['--link', 'fm-target:tgt'], expect: { 'HostConfig.Links': ['fm-target:tgt'] } },
  '--tty': { args: ['-t'], expect: { 'Config.Tty': true } },
  '--health-cmd': { args: ['--health-cmd', 'true'], expect: { 'Config.Healthcheck.Test': ['CMD-SHELL', 'true'] } },
  '--health-interval': { args: ['--health-cmd', 'true', '--health-interval', '2s'], expect: { 'Config.Healthcheck.Interval': 2e9 } },
  '--health-timeout': { args: ['--health-cmd', 'true', '--health-timeout', '3s'], expect: { 'Config.Healthcheck.Timeout': 3e9 } },
  '--health-start-period': { args: ['--health-cmd', 'true', '--health-start-period', '4s'], expect: { 'Config.Healthcheck.StartPeriod': 4e9 } },
  '--health-retries': { args: ['--health-cmd', 'true', '--health-retries', '5'], expect: { 'Config.Healthcheck.Retries': 5 } },
  '--no-healthcheck': { args: ['--no-healthcheck'], expect: { 'Config.Healthcheck.Test': ['NONE'] } },
  '--cap-add': { args: ['--cap-add', 'NET_ADMIN'], expect: { 'HostConfig.CapAdd': ['NET_ADMIN'] }, norm: capNames },
  '--cap-drop': { args: ['--cap-drop', 'CHOWN'], expect: { 'HostConfig.CapDrop': ['CHOWN'] }, norm: capNames },
  '--privileged': { args: ['--privileged'], expect: { 'HostConfig.Privileged': true } },
  '--security-opt': { args: ['--security-opt', 'no-new-privileges'], expect: { 'HostConfig.SecurityOpt': ['no-new-privileges'] } },
  '--ulimit': { args: ['--ulimit', 'nofile=1024:2048'], expect: { 'HostConfig.Ulimits': [{ Name: 'nofile', Soft: 1024, Hard: 2048 }] } },
  '--sysctl': { args: ['--sysctl', 'net.core.somaxconn=512'], expect: { 'HostConfig.Sysctls': { 'net.core.somaxconn': '512' } } },
  '--device': { args: ['--device', '/dev/null:/dev/xnull:r'], expect: { 'HostConfig.Devices': [{ PathOnHost: '/dev/null', PathInContainer: '/dev/xnull', CgroupPermissions: 'r' }] } },
  '--device-cgroup-rule': { args: ['--device-cgroup-rule', 'c 10:229 rwm'], expect: { 'HostConfig.DeviceCgroupRules': ['c 10:229 rwm'] } },
  '--tmpfs': { args: ['--tmpfs', '/run:rw,size=64m'], expect: { 'HostConfig.Tmpfs': { '/run': 'rw,size=64m' } } },
  '--dns': { args: ['--dns', '192.0.2.53'], expect: { 'HostConfig.Dns': ['192.0.2.53'] } },
  '--dns-search': { args: ['--dns-search', 'example.test'], expect: { 'HostConfig.DnsSearch': ['example.test'] } },
  '--dns-option': { args: ['--dns-option', 'ndots:2'], expect: { 'HostConfig.DnsOptions': ['ndots:2'] } },
  '--add-host': { args: ['--add-host', 'db.test:192.0.2.9'], expect: { 'HostConfig.ExtraHosts': ['db.test:192.0.2.9'] } },
  '--group-add': { args: ['--group-add', '123'], expect: { 'HostConfig.GroupAdd': ['123'] } },
  // The docker CLI (28) sends a MAC per network, which needs API 1.44: berth's alone.
  '--mac-address': { args: ['--mac-address', '02:42:ac:11:00:99'], expect: { 'Config.MacAddress': '02:42:ac:11:00:99' }, berthOnly: true },
  '--oom-score-adj': { args: ['--oom-score-adj', '-500'], expect: { 'HostConfig.OomScoreAdj': -500 } },
};

/** Flags of create/run that act rather than set a field: each proven by its effect below. */
const ACTS = ['--pull', '--detach-keys'];
/** run's own. */
const RUN_ONLY = ['--detach', '--dry-run'];
/** exec's, each proven by its effect below. */
const EXEC = ['--detach', '--env', '--workdir', '--user', '--interactive', '--tty', '--privileged'];

const fill = (xs: string[]): string[] => xs.map((x) => x.replaceAll('@DIR', dir));
function fillDeep(v: unknown): unknown {
  if (typeof v === 'string') return v.replaceAll('@DIR', dir);
  if (Array.isArray(v)) return v.map(fillDeep);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fillDeep(x)]));
  return v;
}

async function inspect(name: string): Promise<Inspect> {
  return (JSON.parse(await ok(d.docker(['inspect', name]))) as Inspect[])[0];
}

test('every option of create and run has a row here (a new flag needs its mapping test)', (t) => {
  const known = new Set([...Object.keys(CREATE), ...ACTS]);
  t.deepEqual(optionsOf('create').filter((o) => !known.has(o)), [], 'create options without a row');
  t.deepEqual(optionsOf('run').filter((o) => !known.has(o) && !RUN_ONLY.includes(o)), [], 'run options without a row');
  t.deepEqual(optionsOf('container', 'create').filter((o) => !known.has(o)), [], 'container create options without a row');
  t.deepEqual(optionsOf('exec').filter((o) => !EXEC.includes(o)), [], 'exec options without a row');
  t.deepEqual(
    [...known, ...RUN_ONLY].filter((o) => !optionsOf('run').includes(o)),
    [],
    'rows for options run no longer has',
  );
});

let n = 0;
for (const [flag, row] of Object.entries(CREATE)) {
  test(`create ${flag} reaches berthd as the docker CLI sends it`, async (t) => {
    const i = ++n;
    const args = fill(row.args);
    const bName = flag === '--name' ? 'fm-named' : `fm-b${i}`;
    const viaBerth = flag === '--name' ? args : ['--name', bName, ...args];
    await ok(d.berth(['create', ...viaBerth, 'busybox', 'true']));
    t.teardown(() => d.berth(['rm', '-f', bName]).then(() => undefined));
    const mine = await inspect(bName);
    for (const [p, want] of Object.entries(row.expect)) {
      const got = at(mine, p);
      if (typeof want === 'function') t.true((want as (v: never) => boolean)(got as never), `${flag}: ${p} is ${JSON.stringify(got)}`);
      else t.deepEqual(got, fillDeep(want), `${flag}: ${p}`);
    }
    if (row.berthOnly) return;
    const dName = `fm-d${i}`;
    await ok(d.docker(['create', '--name', dName, ...args, 'busybox', 'true']));
    t.teardown(() => d.berth(['rm', '-f', dName]).then(() => undefined));
    const theirs = await inspect(dName);
    const norm = row.norm ?? ((v: unknown) => v);
    for (const p of [...Object.keys(row.expect), ...(row.also ?? [])]) t.deepEqual(norm(at(mine, p)), norm(at(theirs, p)), `${flag}: ${p} as docker's`);
  });
}

test('--pull never refuses an image that is not here; --pull missing and never take busybox as held', async (t) => {
  const never = await d.berth(['create', '--pull', 'never', 'fm-no-such-image:1', 'true']);
  t.not(never.code, 0);
  t.regex(never.stderr, /hint:/);
  const id = (await ok(d.berth(['create', '--pull', 'never', 'busybox', 'true']))).trim();
  t.teardown(() => d.berth(['rm', '-f', id]).then(() => undefined));
  const bad = await d.berth(['create', '--pull', 'sometimes', 'busybox', 'true']);
  t.not(bad.code, 0, 'an unknown policy is refused');
  t.regex(bad.stderr, /hint:/);
});

test('--detach-keys is checked at create (a bad one creates nothing) and a good one is taken', async (t) => {
  const bad = await d.berth(['create', '--name', 'fm-badkeys', '--detach-keys', 'nonsense-key', 'busybox', 'true']);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /detach keys/i);
  t.not((await d.berth(['inspect', 'fm-badkeys'])).code, 0, 'nothing was created');
  const id = (await ok(d.berth(['create', '--detach-keys', 'ctrl-a,d', 'busybox', 'true']))).trim();
  t.teardown(() => d.berth(['rm', '-f', id]).then(() => undefined));
  t.regex(id, /^[0-9a-f]{64}$/);
});

test('run -d starts it and prints its id; run --dry-run prints the rules and creates nothing', async (t) => {
  const id = (await ok(d.berth(['run', '-d', '--name', 'fm-detached', 'busybox', 'sleep', '1000']))).trim();
  t.teardown(() => d.berth(['rm', '-f', 'fm-detached']).then(() => undefined));
  t.regex(id, /^[0-9a-f]{64}$/);
  t.is((await ok(d.berth(['inspect', '-f', '{{.State.Running}}', id]))).trim(), 'true');
  const dry = await ok(d.berth(['run', '--dry-run', '--name', 'fm-dry', '-p', '18081:80', 'busybox', 'true']));
  t.regex(dry, /18081/);
  t.not((await d.berth(['inspect', 'fm-dry'])).code, 0, 'the dry run made no container');
});

test('exec -e -w -u -i -t --privileged and -d each reach the process', async (t) => {
  await ok(d.berth(['run', '-d', '--name', 'fm-exec', 'busybox', 'sleep', '1000']));
  t.teardown(() => d.berth(['rm', '-f', 'fm-exec']).then(() => undefined));
  t.is(await ok(d.berth(['exec', '-e', 'X=from-exec', '--env', 'Y=2', 'fm-exec', 'sh', '-c', 'echo $X $Y'])), 'from-exec 2\n');
  t.is(await ok(d.berth(['exec', '-w', '/etc', 'fm-exec', 'pwd'])), '/etc\n');
  t.is(await ok(d.berth(['exec', '-u', '1234:99', 'fm-exec', 'sh', '-c', 'echo $(id -u):$(id -g)'])), '1234:99\n');
  t.is(await ok(d.berth(['exec', '-i', 'fm-exec', 'wc', '-c'], { input: 'seven!\n' })), '7\n', '-i: stdin reaches it');
  t.is(await ok(d.berth(['exec', 'fm-exec', 'wc', '-c'], { input: 'seven!\n' })), '0\n', 'without -i it gets no stdin');
  t.regex(await ok(d.berth(['exec', '-t', 'fm-exec', 'tty'])), /^\/dev\/pts\/\d+\r?\n$/, '-t: a terminal');
  t.regex((await d.berth(['exec', 'fm-exec', 'tty'])).stdout, /not a tty/, 'without -t none');
  const capEff = (out: string) => /^CapEff:\s*([0-9a-f]+)$/m.exec(out)?.[1];
  const plain = capEff(await ok(d.berth(['exec', 'fm-exec', 'cat', '/proc/self/status'])));
  const priv = capEff(await ok(d.berth(['exec', '--privileged', 'fm-exec', 'cat', '/proc/self/status'])));
  t.truthy(plain && priv);
  t.true(BigInt(`0x${priv}`) > BigInt(`0x${plain}`), `--privileged: every capability (${priv} against ${plain})`);
  t.is(await ok(d.berth(['exec', '-d', 'fm-exec', 'sh', '-c', 'echo detached > /tmp/d'])), '', '-d prints nothing and returns');
  await eventually(async () => (await d.berth(['exec', 'fm-exec', 'cat', '/tmp/d'])).stdout === 'detached\n', { message: 'the detached exec to write its file' });
});
