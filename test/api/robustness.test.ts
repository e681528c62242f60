/**
 * Hostile and malformed input at the raw API (issue 18): wrong types, values runc would
 * refuse, oversized lists, deeply nested JSON, bodies that trickle. Each is a typed 400 (or
 * a closed connection), never a 500 with JavaScript's words, and the daemon stays quick.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { spawn } from 'node:child_process';
import { rawCall, type RawAnswer } from '../helpers/raw-api';
import { TestDaemon } from '../helpers/daemon';
import { errorResponse } from '../../src/api/errors';
import { Gate } from '../../src/api/body-guard';
import { LIMITS } from '../../src/api/limits';

let d: TestDaemon;

test.before(async () => {
  // A short body window so the slow-body cases end in seconds.
  d = await TestDaemon.start({ args: ['--body-timeout', '2'] });
});

test.after.always(async () => {
  await d?.stop();
});

type Answer = RawAnswer;
const call = (method: string, path: string, body?: string | Buffer): Promise<Answer> => rawCall(d.socket, method, path, body);


const create = (body: unknown, name?: string) => call('POST', `/v1.41/containers/create${name ? `?name=${name}` : ''}`, JSON.stringify(body));

/** Words that only JavaScript's own errors use. */
const INTERNALS = /is not a function|Cannot read prop|undefined|Maximum call stack|TypeError|RangeError/;

async function refused(t: import('ava').ExecutionContext, a: Answer, field: string): Promise<void> {
  t.is(a.status, 400, JSON.stringify(a.json));
  t.is(a.json.code, 'INVALID_ARGUMENT');
  t.truthy(a.json.hint, 'every refusal carries a hint');
  t.true((a.json.message ?? '').includes(field), `the message names ${field}: ${a.json.message}`);
  t.notRegex(a.json.message ?? '', INTERNALS);
}

test('a label with a number is refused, and ps -a still lists', async (t) => {
  await refused(t, await create({ Image: 'busybox', Cmd: ['true'], Labels: { a: 5 } }), 'Labels');
  await refused(t, await create({ Image: 'busybox', Cmd: ['true'], Labels: 'abc' }), 'Labels');
  const ps = await d.docker(['ps', '-a']);
  t.is(ps.code, 0, ps.stderr);
});

const WRONG_TYPES: Array<[string, Record<string, unknown>, string]> = [
  ['Binds [5]', { HostConfig: { Binds: [5] } }, 'HostConfig.Binds[0]'],
  ['Mounts [null]', { HostConfig: { Mounts: [null] } }, 'HostConfig.Mounts[0]'],
  ['WorkingDir 5', { WorkingDir: 5 }, 'WorkingDir'],
  ['NetworkMode 5', { HostConfig: { NetworkMode: 5 } }, 'HostConfig.NetworkMode'],
  ['VolumesFrom [5]', { HostConfig: { VolumesFrom: [5] } }, 'HostConfig.VolumesFrom[0]'],
  ['User 5', { User: 5 }, 'User'],
  ['Hostname 5', { Hostname: 5 }, 'Hostname'],
  ['Tty "yes"', { Tty: 'yes' }, 'Tty'],
  ['RestartPolicy "always"', { HostConfig: { RestartPolicy: 'always' } }, 'HostConfig.RestartPolicy'],
  ['Env "A=b"', { Env: 'A=b' }, 'Env'],
  ['StopSignal SIGBOGUS', { StopSignal: 'SIGBOGUS' }, 'StopSignal'],
  ['Ulimits Soft "a"', { HostConfig: { Ulimits: [{ Name: 'nofile', Soft: 'a', Hard: 10 }] } }, 'HostConfig.Ulimits[0].Soft'],
  ['Memory 1e300', { HostConfig: { Memory: 1e300 } }, 'HostConfig.Memory'],
  ['HostConfig a list', { HostConfig: [] }, 'HostConfig'],
  ['PortBindings HostPort 80', { HostConfig: { PortBindings: { '80/tcp': [{ HostPort: 80 }] } } }, 'HostPort'],
  ['EndpointsConfig a string', { NetworkingConfig: { EndpointsConfig: { bridge: 'x' } } }, 'NetworkingConfig.EndpointsConfig'],
];

for (const [name, fields, path] of WRONG_TYPES) {
  test(`create with ${name} is a typed 400 naming ${path}`, async (t) => {
    await refused(t, await create({ Image: 'busybox', Cmd: ['true'], ...fields }), path);
  });
}

const RUNC_WOULD_REFUSE: Array<[string, Record<string, unknown>, string]> = [
  ['a 65-character hostname', { Hostname: 'h'.repeat(65) }, 'Hostname'],
  ['a hostname with a space', { Hostname: 'my host' }, 'Hostname'],
  ['a NUL in an env var', { Env: ['A=b\u0000c'] }, 'Env[0]'],
  ['an env var without a name', { Env: ['=x'] }, 'Env[0]'],
  ['a tmpfs size beyond any memory', { HostConfig: { Tmpfs: { '/run': 'size=99999999999999999g' } } }, 'HostConfig.Tmpfs'],
  ['a tmpfs size of 300%', { HostConfig: { Tmpfs: { '/run': 'size=300%' } } }, 'HostConfig.Tmpfs'],
  ['a negative memory limit', { HostConfig: { Memory: -5 } }, 'HostConfig.Memory'],
  ['a fractional memory limit', { HostConfig: { Memory: 1.5e7 + 0.5 } }, 'HostConfig.Memory'],
  ['a restart policy without a known name', { HostConfig: { RestartPolicy: { Name: 'sometimes' } } }, 'HostConfig.RestartPolicy.Name'],
  ['a negative retry count', { HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: -1 } } }, 'MaximumRetryCount'],
  ['a ulimit below -1', { HostConfig: { Ulimits: [{ Name: 'nofile', Soft: -2, Hard: 10 }] } }, 'HostConfig.Ulimits[0].Soft'],
  ['a CPU period of 10 µs', { HostConfig: { CpuPeriod: 10 } }, 'HostConfig.CpuPeriod'],
  ['an OOM score of 5000', { HostConfig: { OomScoreAdj: 5000 } }, 'HostConfig.OomScoreAdj'],
];

for (const [name, fields, path] of RUNC_WOULD_REFUSE) {
  test(`create refuses ${name} in berth's words`, async (t) => {
    await refused(t, await create({ Image: 'busybox', Cmd: ['true'], ...fields }), path);
  });
}

test('Memory 1e300 is refused as out of range, not as too small', async (t) => {
  const a = await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Memory: 1e300 } });
  await refused(t, a, 'HostConfig.Memory');
  t.notRegex(a.json.message ?? '', /Minimum/);
});

test(`100k Env entries are refused with a hint (the bound is ${LIMITS.envCount})`, async (t) => {
  const env = Array.from({ length: 100_000 }, (_, i) => `V${i}=x`);
  await refused(t, await create({ Image: 'busybox', Cmd: ['true'], Env: env }), 'Env');
});

test('Env within the count but over the exec size is refused', async (t) => {
  const env = Array.from({ length: 10 }, (_, i) => `V${i}=${'x'.repeat(120 * 1024)}`);
  await refused(t, await create({ Image: 'busybox', Cmd: ['true'], Env: env }), 'Env');
});

test('too many labels, and too many mounts, are refused', async (t) => {
  const labels = Object.fromEntries(Array.from({ length: LIMITS.labelCount + 1 }, (_, i) => [`l${i}`, 'v']));
  await refused(t, await create({ Image: 'busybox', Cmd: ['true'], Labels: labels }), 'Labels');
  const binds = Array.from({ length: LIMITS.mountCount + 1 }, (_, i) => `/tmp:/m${i}`);
  await refused(t, await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Binds: binds } }), 'HostConfig.Binds');
});

test("what clients send for empty fields (nulls, zeros, empty maps) is accepted", async (t) => {
  const a = await create({
    Hostname: '', Domainname: '', User: '', Env: null, Cmd: ['true'], Image: 'busybox', Volumes: {}, WorkingDir: '', Entrypoint: null,
    OnBuild: null, Labels: {}, StopSignal: null, Healthcheck: null, ExposedPorts: null, MacAddress: null,
    HostConfig: {
      Binds: null, ContainerIDFile: '', LogConfig: { Type: '', Config: {} }, NetworkMode: 'default', PortBindings: {}, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false, VolumeDriver: '', VolumesFrom: null, CapAdd: null, CapDrop: null, CgroupnsMode: '', Dns: [], DnsOptions: [], DnsSearch: [],
      ExtraHosts: null, GroupAdd: null, IpcMode: '', Cgroup: '', Links: null, OomScoreAdj: 0, PidMode: '', Privileged: false, PublishAllPorts: false,
      ReadonlyRootfs: false, SecurityOpt: null, UTSMode: '', UsernsMode: '', ShmSize: 0, ConsoleSize: [0, 0], Isolation: '', CpuShares: 0, Memory: 0,
      NanoCpus: 0, CgroupParent: '', BlkioWeight: 0, BlkioWeightDevice: [], BlkioDeviceReadBps: null, BlkioDeviceWriteBps: null, BlkioDeviceReadIOps: null,
      BlkioDeviceWriteIOps: null, CpuPeriod: 0, CpuQuota: 0, CpuRealtimePeriod: 0, CpuRealtimeRuntime: 0, CpusetCpus: '', CpusetMems: '', Devices: [],
      DeviceCgroupRules: null, DeviceRequests: null, KernelMemory: 0, KernelMemoryTCP: 0, MemoryReservation: 0, MemorySwap: 0, MemorySwappiness: null,
      OomKillDisable: false, PidsLimit: null, Ulimits: null, CpuCount: 0, CpuPercent: 0, IOMaximumIOps: 0, IOMaximumBandwidth: 0, MaskedPaths: null, ReadonlyPaths: null,
    },
    NetworkingConfig: { EndpointsConfig: { bridge: null } },
  });
  t.is(a.status, 201, JSON.stringify(a.json));
  await call('DELETE', `/v1.41/containers/${a.json.Id}?force=1`);
});

test('a null body is an empty one, and an array body is refused', async (t) => {
  const a = await call('POST', '/v1.41/containers/create', 'null');
  t.is(a.status, 400);
  t.is(a.json.code, 'INVALID_ARGUMENT');
  await refused(t, await call('POST', '/v1.41/containers/create', '[1,2]'), 'container create body');
});

test('bad filters and bad numbers in queries are typed 400s', async (t) => {
  for (const q of ['filters=null', 'filters=[1]', 'filters=%7B%22label%22%3A5%7D', 'limit=abc', 'limit=1e400']) {
    const a = await call('GET', `/v1.41/containers/json?all=1&${q}`);
    t.is(a.status, 400, `${q}: ${JSON.stringify(a.json)}`);
    t.is(a.json.code, 'INVALID_ARGUMENT');
    t.notRegex(a.json.message ?? '', INTERNALS);
  }
});

test('junk in boolean, t, signal and link query parameters is a typed 400 naming the parameter, and nothing is done', async (t) => {
  const c = await create({ Image: 'busybox', Cmd: ['sleep', '60'] }, 'robust-query');
  t.is(c.status, 201);
  const id = c.json.Id as string;
  t.is((await call('POST', `/v1.41/containers/${id}/start`)).status, 204);
  // Docker's words for true and false are read as Docker reads them, in any case.
  for (const q of ['all=1', 'all=True', 'all=no', 'all=FALSE', 'all=', 'size=0', 'size=true']) {
    t.is((await call('GET', `/v1.41/containers/json?${q}`)).status, 200, q);
  }
  for (const [method, path, param] of [
    ['GET', '/v1.41/containers/json?all=maybe', 'all'],
    ['GET', '/v1.41/containers/json?size=2', 'size'],
    ['DELETE', `/v1.41/containers/${id}?force=yes-please`, 'force'],
    ['DELETE', `/v1.41/containers/${id}?force=1&v=x`, 'v'],
    ['DELETE', `/v1.41/containers/${id}?force=1&link=1`, 'link'],
    ['POST', `/v1.41/containers/${id}/stop?t=soon`, 't'],
    ['POST', `/v1.41/containers/${id}/stop?t=1.5`, 't'],
    ['POST', `/v1.41/containers/${id}/restart?t=abc`, 't'],
    ['POST', `/v1.41/containers/${id}/stop?signal=SIGBOGUS`, 'signal'],
    ['POST', `/v1.41/containers/${id}/kill?signal=NOPE`, 'signal'],
  ] as const) {
    const a = await call(method, path);
    t.is(a.status, 400, `${path}: ${JSON.stringify(a.json)}`);
    t.is(a.json.code, 'INVALID_ARGUMENT', path);
    t.truthy(a.json.hint, path);
    t.regex((a.json.message ?? '').toLowerCase(), new RegExp(param === 'link' ? 'link' : param === 'signal' ? 'signal' : `\\b${param}=`), path);
    t.notRegex(a.json.message ?? '', INTERNALS);
  }
  const info = await call('GET', `/v1.41/containers/${id}/json`);
  t.is((info.json.State as { Running: boolean }).Running, true, 'none of the refused requests stopped or removed it');
  t.is((await call('DELETE', `/v1.41/containers/${id}?force=True&v=0`)).status, 204);
});

test('the other bodies are checked too: exec, update, network, volume, commit', async (t) => {
  const c = await create({ Image: 'busybox', Cmd: ['sleep', '60'] }, 'robust-other');
  t.is(c.status, 201);
  await refused(t, await call('POST', '/v1.41/containers/robust-other/exec', JSON.stringify({ Cmd: [5] })), 'Cmd');
  await refused(t, await call('POST', '/v1.41/containers/robust-other/exec', JSON.stringify({ Cmd: ['true'], Env: ['A=\u0000'] })), 'Env[0]');
  await refused(t, await call('POST', '/v1.41/containers/robust-other/update', JSON.stringify({ Memory: 'lots' })), 'Memory');
  await refused(t, await call('POST', '/v1.41/containers/robust-other/update', JSON.stringify({ RestartPolicy: 'always' })), 'RestartPolicy');
  await refused(t, await call('POST', '/v1.41/networks/create', JSON.stringify({ Name: 'n', Labels: { a: 5 } })), 'Labels');
  await refused(t, await call('POST', '/v1.41/networks/bridge/connect', JSON.stringify({ Container: 5 })), 'Container');
  await refused(t, await call('POST', '/v1.41/volumes/create', JSON.stringify({ Name: 'v', DriverOpts: { size: 10 } })), 'DriverOpts');
  await refused(t, await call('POST', '/v1.41/commit?container=robust-other', JSON.stringify({ Env: 'A=b' })), 'Env');
  await call('DELETE', '/v1.41/containers/robust-other?force=1');
});

/** Open a raw connection, send a request's head, then its body a byte at a time; resolve with how long until the daemon closed it. */
function trickle(path: string, length: number, everyMs: number): Promise<{ closedAfterMs: number; bytesSent: number }> {
  return new Promise((resolve) => {
    const s = net.connect(d.socket);
    const t0 = Date.now();
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    s.on('connect', () => {
      s.write(`POST ${path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
      timer = setInterval(() => {
        if (sent < length - 1) {
          s.write(sent === 0 ? '{' : ' ');
          sent++;
        }
      }, everyMs);
    });
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(timer);
      resolve({ closedAfterMs: Date.now() - t0, bytesSent: sent });
    });
  });
}

test('a JSON body sent one byte at a time is cut off', async (t) => {
  const r = await trickle('/v1.41/containers/create', 10_000, 200);
  // The window is 2 s: the watchdog cuts it after one or two windows; never a trickle to the end.
  t.true(r.closedAfterMs < 30_000, `closed after ${r.closedAfterMs} ms`);
  t.true(r.bytesSent < 200, `${r.bytesSent} bytes were sent before the close`);
  t.is((await call('GET', '/_ping')).status, 200);
});

test('an upload sent one byte at a time is cut off', async (t) => {
  const r = await trickle('/v1.41/images/create?fromSrc=-&repo=slow', 100_000, 200);
  t.true(r.closedAfterMs < 30_000, `closed after ${r.closedAfterMs} ms`);
  t.true(r.bytesSent < 200, `${r.bytesSent} bytes were sent before the close`);
});

test('the heavy-request gate lets `limit` in, queues the next and refuses beyond its queue', async (t) => {
  const g = new Gate(1, 1);
  let release!: () => void;
  const first = g.run(() => new Promise<void>((r) => (release = r)));
  let secondRan = false;
  const second = g.run(async () => {
    secondRan = true;
  });
  await t.throwsAsync(g.run(async () => undefined), { code: 'UNAVAILABLE' } as never);
  t.false(secondRan);
  release();
  await first;
  await second;
  t.true(secondRan);
  t.is(g.busy, 0);
});

test("a JavaScript error is answered as INTERNAL with a reference, never in JavaScript's words", (t) => {
  const r = errorResponse(new TypeError('spec.split is not a function'));
  t.is(r.status, 500);
  t.is(r.body.code, 'INTERNAL');
  t.truthy(r.ref);
  t.notRegex(r.body.message, /split|function/);
  t.truthy(r.body.hint);
});
