/**
 * The rule: no field of Docker Engine API 1.41's create body is dropped without a word.
 * The field lists below are written from the API reference (definitions ContainerConfig
 * and HostConfig = Resources + HostConfig of docs/api/v1.41.yaml). Every field is set to a
 * non-default value on a real berthd: it is either refused with INVALID_ARGUMENT naming
 * it, or create succeeds and inspect shows it; the spec-bound ones are then seen in the
 * OCI spec runc got.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { CONFIG_FIELDS, HOST_CONFIG_FIELDS } from '../../src/engine/create-fields';

/** ContainerConfig of the 1.41 reference, in its order. */
const CONFIG_1_41 = [
  'Hostname', 'Domainname', 'User', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'ExposedPorts', 'Tty',
  'OpenStdin', 'StdinOnce', 'Env', 'Cmd', 'Healthcheck', 'ArgsEscaped', 'Image', 'Volumes', 'WorkingDir',
  'Entrypoint', 'NetworkDisabled', 'MacAddress', 'OnBuild', 'Labels', 'StopSignal', 'StopTimeout', 'Shell',
];

/** HostConfig of the 1.41 reference (Resources, then HostConfig's own), in its order. */
const HOST_CONFIG_1_41 = [
  'CpuShares', 'Memory', 'CgroupParent', 'BlkioWeight', 'BlkioWeightDevice', 'BlkioDeviceReadBps',
  'BlkioDeviceWriteBps', 'BlkioDeviceReadIOps', 'BlkioDeviceWriteIOps', 'CpuPeriod', 'CpuQuota',
  'CpuRealtimePeriod', 'CpuRealtimeRuntime', 'CpusetCpus', 'CpusetMems', 'Devices', 'DeviceCgroupRules',
  'DeviceRequests', 'KernelMemory', 'KernelMemoryTCP', 'MemoryReservation', 'MemorySwap', 'MemorySwappiness',
  'NanoCpus', 'OomKillDisable', 'Init', 'PidsLimit', 'Ulimits', 'CpuCount', 'CpuPercent', 'IOMaximumIOps',
  'IOMaximumBandwidth', 'Binds', 'ContainerIDFile', 'LogConfig', 'NetworkMode', 'PortBindings', 'RestartPolicy',
  'AutoRemove', 'VolumeDriver', 'VolumesFrom', 'Mounts', 'CapAdd', 'CapDrop', 'CgroupnsMode', 'Dns', 'DnsOptions',
  'DnsSearch', 'ExtraHosts', 'GroupAdd', 'IpcMode', 'Cgroup', 'Links', 'OomScoreAdj', 'PidMode', 'Privileged',
  'PublishAllPorts', 'ReadonlyRootfs', 'SecurityOpt', 'StorageOpt', 'Tmpfs', 'UTSMode', 'UsernsMode', 'ShmSize',
  'Sysctls', 'Runtime', 'ConsoleSize', 'Isolation', 'MaskedPaths', 'ReadonlyPaths',
];

const MiB = 1024 * 1024;
const throttle = [{ Path: '/dev/null', Rate: 1000 }];

/** A non-default value for each field (with what it needs beside it, if anything). */
const CONFIG_SAMPLES: Record<string, { value: unknown; with?: Record<string, unknown> }> = {
  Hostname: { value: 'fieldhost' },
  Domainname: { value: 'example.org' },
  User: { value: '65534' },
  AttachStdin: { value: true },
  AttachStdout: { value: true },
  AttachStderr: { value: true },
  ExposedPorts: { value: { '7/tcp': {} } },
  Tty: { value: true },
  OpenStdin: { value: true },
  StdinOnce: { value: true },
  Env: { value: ['FIELD=1'] },
  Cmd: { value: ['sleep', '7'] },
  Healthcheck: { value: { Test: ['CMD', 'true'], Interval: 2_000_000_000 } },
  ArgsEscaped: { value: true },
  Image: { value: 'busybox' },
  Volumes: { value: { '/vol': {} } },
  WorkingDir: { value: '/work' },
  Entrypoint: { value: ['/bin/sleep'] },
  NetworkDisabled: { value: true },
  MacAddress: { value: '02:42:ac:11:00:98' },
  OnBuild: { value: ['RUN true'] },
  Labels: { value: { field: '1' } },
  StopSignal: { value: 'SIGUSR1' },
  StopTimeout: { value: 5 },
  Shell: { value: ['/bin/sh', '-c'] },
};

const HOST_SAMPLES: Record<string, { value: unknown; with?: Record<string, unknown> }> = {
  CpuShares: { value: 512 },
  Memory: { value: 64 * MiB },
  CgroupParent: { value: '/elsewhere' },
  BlkioWeight: { value: 300 },
  BlkioWeightDevice: { value: [{ Path: '/dev/null', Weight: 300 }] },
  BlkioDeviceReadBps: { value: throttle },
  BlkioDeviceWriteBps: { value: throttle },
  BlkioDeviceReadIOps: { value: throttle },
  BlkioDeviceWriteIOps: { value: throttle },
  CpuPeriod: { value: 50_000, with: { CpuQuota: 25_000 } },
  CpuQuota: { value: 50_000 },
  CpuRealtimePeriod: { value: 1_000_000 },
  CpuRealtimeRuntime: { value: 950_000 },
  CpusetCpus: { value: '0' },
  CpusetMems: { value: '0' },
  Devices: { value: [{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rwm' }] },
  DeviceCgroupRules: { value: ['c 10:229 rwm'] },
  DeviceRequests: { value: [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }] },
  KernelMemory: { value: 64 * MiB },
  KernelMemoryTCP: { value: 64 * MiB },
  MemoryReservation: { value: 32 * MiB },
  MemorySwap: { value: 128 * MiB, with: { Memory: 64 * MiB } },
  MemorySwappiness: { value: 60 },
  NanoCpus: { value: 500_000_000 },
  OomKillDisable: { value: true },
  Init: { value: true },
  PidsLimit: { value: 100 },
  Ulimits: { value: [{ Name: 'nofile', Soft: 1024, Hard: 1024 }] },
  CpuCount: { value: 1 },
  CpuPercent: { value: 50 },
  IOMaximumIOps: { value: 100 },
  IOMaximumBandwidth: { value: 1000 },
  Binds: { value: ['/tmp:/hosttmp:ro'] },
  ContainerIDFile: { value: '/tmp/berth-field.cid' },
  LogConfig: { value: { Type: 'json-file', Config: { 'max-size': '1m' } } },
  NetworkMode: { value: 'none' },
  PortBindings: { value: { '7/tcp': [{ HostIp: '127.0.0.1', HostPort: '0' }] } },
  RestartPolicy: { value: { Name: 'always', MaximumRetryCount: 0 } },
  AutoRemove: { value: true },
  VolumeDriver: { value: 'flocker' },
  VolumesFrom: { value: ['fields-source'] },
  Mounts: { value: [{ Type: 'tmpfs', Target: '/tm' }] },
  CapAdd: { value: ['NET_ADMIN'] },
  CapDrop: { value: ['MKNOD'] },
  CgroupnsMode: { value: 'private' },
  Dns: { value: ['192.0.2.1'] },
  DnsOptions: { value: ['ndots:2'] },
  DnsSearch: { value: ['example.org'] },
  ExtraHosts: { value: ['h:192.0.2.2'] },
  GroupAdd: { value: ['1234'] },
  IpcMode: { value: 'host' },
  Cgroup: { value: 'container:fields-source' },
  Links: { value: ['fields-source:src'] },
  OomScoreAdj: { value: 100 },
  PidMode: { value: 'host' },
  Privileged: { value: true },
  PublishAllPorts: { value: true },
  ReadonlyRootfs: { value: true },
  SecurityOpt: { value: ['no-new-privileges'] },
  StorageOpt: { value: { size: '1G' } },
  Tmpfs: { value: { '/t': 'size=1m' } },
  UTSMode: { value: 'host' },
  UsernsMode: { value: 'private' },
  ShmSize: { value: 128 * MiB },
  Sysctls: { value: { 'kernel.shmmni': '1000' } },
  Runtime: { value: 'runc' },
  ConsoleSize: { value: [24, 80] },
  Isolation: { value: 'hyperv' },
  MaskedPaths: { value: ['/proc/kcore'] },
  ReadonlyPaths: { value: ['/proc/sys'] },
};

let d: TestDaemon;

test.before(async () => {
  d = await TestDaemon.start();
  const r = await d.docker(['create', '--name', 'fields-source', '-v', '/fromsrc', 'busybox', 'true']);
  if (r.code !== 0) throw new Error(r.stderr);
});

test.after.always(async () => {
  await d?.stop();
});

function post(p: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: d.socket, method: 'POST', path: p, headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** `expected` is found in `actual`: objects by key, arrays element by element, the rest equal. */
function contains(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) return Array.isArray(actual) && expected.every((e) => actual.some((a) => contains(a, e)));
  if (expected && typeof expected === 'object') {
    return !!actual && typeof actual === 'object' && Object.entries(expected).every(([k, v]) => contains((actual as Record<string, unknown>)[k], v));
  }
  return actual === expected;
}

test('the table names every field of the 1.41 create body, and nothing else', (t) => {
  t.deepEqual(Object.keys(CONFIG_FIELDS).sort(), [...CONFIG_1_41].sort());
  t.deepEqual(Object.keys(HOST_CONFIG_FIELDS).sort(), [...HOST_CONFIG_1_41].sort());
  t.deepEqual(Object.keys(CONFIG_SAMPLES).sort(), [...CONFIG_1_41].sort());
  t.deepEqual(Object.keys(HOST_SAMPLES).sort(), [...HOST_CONFIG_1_41].sort());
  for (const rule of [...Object.values(CONFIG_FIELDS), ...Object.values(HOST_CONFIG_FIELDS)]) {
    if (rule.status === 'refused') t.true(rule.hint.length > 10);
    if (rule.status === 'no-op') t.true(rule.reason.length > 10);
  }
});

for (const [section, list, samples, table] of [
  ['Config', CONFIG_1_41, CONFIG_SAMPLES, CONFIG_FIELDS],
  ['HostConfig', HOST_CONFIG_1_41, HOST_SAMPLES, HOST_CONFIG_FIELDS],
] as const) {
  for (const field of list) {
    const rule = table[field];
    test.serial(`${section}.${field} (${rule.status}) is ${rule.status === 'refused' ? 'refused, naming it' : 'reflected in inspect'}`, async (t) => {
      const { value, with: extra } = samples[field];
      const body: Record<string, unknown> = { Image: 'busybox', Cmd: ['true'] };
      if (section === 'Config') Object.assign(body, extra ?? {}, { [field]: value });
      else body.HostConfig = { ...(extra ?? {}), [field]: value };
      const r = await post('/v1.41/containers/create', body);
      if (rule.status === 'refused') {
        t.is(r.status, 400, JSON.stringify(r.json));
        t.is(r.json.code, 'INVALID_ARGUMENT');
        t.true(String(r.json.message).includes(field), `the error names ${field}: ${r.json.message}`);
        t.truthy(r.json.hint);
        return;
      }
      t.is(r.status, 201, JSON.stringify(r.json));
      const id = String(r.json.Id);
      t.teardown(() => d.containers.remove(id, { force: true, volumes: true }).catch(() => undefined));
      const info = (await d.containers.inspect(id)) as unknown as Record<string, Record<string, unknown>>;
      t.true(contains(info[section][field], value), `inspect ${section}.${field} = ${JSON.stringify(info[section][field])}, sent ${JSON.stringify(value)}`);
    });
  }
}

test.serial('a field from a newer API or a typo is refused when set, ignored when left at its default', async (t) => {
  for (const body of [{ Image: 'busybox', Annotations: { a: 'b' } }, { Image: 'busybox', HostConfig: { Memroy: 1 } }]) {
    const r = await post('/v1.41/containers/create', body);
    t.is(r.status, 400);
    t.is(r.json.code, 'INVALID_ARGUMENT');
  }
  const r = await post('/v1.41/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: { Annotations: {}, CpuShares: 0, IpcMode: 'private', CgroupnsMode: 'host', MemorySwappiness: -1 } });
  t.is(r.status, 201, JSON.stringify(r.json));
  await d.containers.remove(String(r.json.Id), { force: true });
});

test.serial('the honoured fields reach the OCI spec runc runs', async (t) => {
  const r = await post('/v1.41/containers/create?name=fields-spec', {
    Image: 'busybox',
    Cmd: ['sleep', '1000'],
    Hostname: 'fieldhost',
    Domainname: 'example.org',
    User: '65534',
    Env: ['FIELD=1'],
    WorkingDir: '/work',
    HostConfig: {
      Memory: 64 * MiB, MemorySwap: 128 * MiB, NanoCpus: 500_000_000, PidsLimit: 100, Init: true, ShmSize: 128 * MiB,
      Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 1024 }], CapAdd: ['NET_ADMIN'], CapDrop: ['MKNOD'], ReadonlyRootfs: true,
      Devices: [{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rwm' }], DeviceCgroupRules: ['c 10:200 rwm'],
      OomScoreAdj: 100, SecurityOpt: ['no-new-privileges'], Tmpfs: { '/t': 'size=1m' }, Sysctls: { 'kernel.shmmni': '1000' },
      MaskedPaths: ['/proc/kcore'], ReadonlyPaths: ['/proc/sys'], GroupAdd: ['1234'],
    },
  });
  t.is(r.status, 201, JSON.stringify(r.json));
  const id = String(r.json.Id);
  t.teardown(() => d.containers.remove(id, { force: true }).catch(() => undefined));
  await d.containers.start(id);
  const spec = JSON.parse(fs.readFileSync(path.join(d.root, 'containers', id, 'bundle', 'config.json'), 'utf8'));
  t.is(spec.hostname, 'fieldhost');
  t.is(spec.domainname, 'example.org');
  t.is(spec.process.user.uid, 65534);
  t.true(spec.process.user.additionalGids.includes(1234));
  t.true(spec.process.env.includes('FIELD=1'));
  t.is(spec.process.cwd, '/work');
  t.is(spec.linux.resources.memory.limit, 64 * MiB);
  t.is(spec.linux.resources.memory.swap, 128 * MiB);
  t.deepEqual(spec.linux.resources.cpu, { quota: 50_000, period: 100_000 });
  t.is(spec.linux.resources.pids.limit, 100);
  t.is(spec.process.args[0], '/sbin/docker-init');
  t.regex(spec.mounts.find((m: { destination: string }) => m.destination === '/dev/shm').options.join(','), /size=131072k/);
  t.deepEqual(spec.process.rlimits.find((l: { type: string }) => l.type === 'RLIMIT_NOFILE'), { type: 'RLIMIT_NOFILE', soft: 1024, hard: 1024 });
  t.true(spec.process.capabilities.effective.includes('CAP_NET_ADMIN'));
  t.false(spec.process.capabilities.effective.includes('CAP_MKNOD'));
  t.true(spec.root.readonly);
  t.true(spec.linux.devices.some((x: { path: string; major: number; minor: number }) => x.path === '/dev/fuse' && x.major === 10 && x.minor === 229));
  t.true(spec.linux.resources.devices.some((x: { major?: number; minor?: number; allow: boolean }) => x.allow && x.major === 10 && x.minor === 200));
  t.is(spec.process.oomScoreAdj, 100);
  t.true(spec.process.noNewPrivileges);
  t.is(spec.linux.seccomp.defaultAction, 'SCMP_ACT_ERRNO');
  t.truthy(spec.mounts.find((m: { destination: string; type: string }) => m.destination === '/t' && m.type === 'tmpfs'));
  t.deepEqual(spec.linux.sysctl, { 'kernel.shmmni': '1000' });
  t.deepEqual(spec.linux.maskedPaths, ['/proc/kcore']);
  t.deepEqual(spec.linux.readonlyPaths, ['/proc/sys']);
});
