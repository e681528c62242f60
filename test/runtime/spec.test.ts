import test from 'ava';
import { execFileSync } from 'node:child_process';
import {
  buildSpec,
  CONTAINER_INIT_PATH,
  DEFAULT_CAPABILITIES,
  parseLimits,
  readHostInfo,
  RLIM_INFINITY,
  specToJson,
  type ContainerSpecInput,
  type HostInfo,
} from '../../src/runtime/spec';

const host: HostInfo = { rlimits: { RLIMIT_NOFILE: 20000n, RLIMIT_NPROC: 5000n, RLIMIT_CORE: RLIM_INFINITY }, nrOpen: 1048576n, initPath: '/usr/bin/tini-static' };
const base: ContainerSpecInput = { rootfs: '/var/lib/berth/c/rootfs', args: ['sh'], cgroupsPath: '/berth-x/c1' };

test("buildSpec has Docker's namespaces, capabilities, masked paths and default mounts", (t) => {
  const s = buildSpec(base, host);
  t.deepEqual(s.linux.namespaces.map((n) => n.type).sort(), ['ipc', 'mount', 'network', 'pid', 'uts']);
  t.is(s.linux.namespaces.find((n) => n.type === 'network')?.path, undefined, 'a new network namespace');
  t.is(DEFAULT_CAPABILITIES.length, 14);
  t.deepEqual(s.process.capabilities.bounding, [...DEFAULT_CAPABILITIES]);
  t.deepEqual(s.process.capabilities.effective, [...DEFAULT_CAPABILITIES]);
  t.deepEqual(s.process.capabilities.permitted, [...DEFAULT_CAPABILITIES]);
  t.false('inheritable' in s.process.capabilities, 'no inheritable capabilities (CVE-2022-24769)');
  t.false(s.process.noNewPrivileges);
  t.false(s.process.terminal);
  for (const p of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/sys/firmware', '/proc/acpi', '/proc/scsi']) t.true(s.linux.maskedPaths.includes(p), p);
  t.deepEqual(s.linux.readonlyPaths, ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
  t.deepEqual(s.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm']);
  t.true(s.mounts.find((m) => m.destination === '/dev/shm')?.options.includes('size=65536k'));
  t.true(s.mounts.find((m) => m.destination === '/sys')?.options.includes('ro'));
  t.true(s.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options.includes('ro'));
  t.deepEqual(s.linux.resources.devices[0], { allow: false, access: 'rwm' }, 'deny all first');
  t.true(s.linux.resources.devices.some((d) => d.allow && d.major === 1 && d.minor === 3), '/dev/null allowed');
  t.true(s.linux.resources.devices.some((d) => !d.allow && d.major === 10 && d.minor === 229), 'fuse denied');
  t.is(s.linux.cgroupsPath, '/berth-x/c1');
  t.deepEqual(s.root, { path: base.rootfs, readonly: false });
  t.is(s.process.cwd, '/');
  t.deepEqual(s.process.user, { uid: 0, gid: 0 });
  t.deepEqual(s.process.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  t.is(s.annotations, undefined);
  t.is(s.linux.resources.memory, undefined);
});

test('buildSpec maps user, limits, netns, labels and mounts', (t) => {
  const s = buildSpec(
    {
      ...base,
      env: ['PATH=/bin', 'A=b'],
      cwd: '/app/',
      uid: 1000,
      gid: 1001,
      additionalGids: [10],
      hostname: 'web',
      readonlyRootfs: true,
      memoryBytes: 64 * 1024 * 1024,
      cpus: 1.5,
      pidsLimit: 100,
      netnsPath: '/run/netns/berth-1',
      labels: { 'com.example': 'x' },
      mounts: [
        { source: '/srv/data', destination: '/data', options: ['ro'] },
        { source: 'shm', destination: '/dev/shm', type: 'tmpfs', options: ['size=1g'] },
      ],
    },
    host,
  );
  t.deepEqual(s.process.user, { uid: 1000, gid: 1001, additionalGids: [10] });
  t.deepEqual(s.process.env, ['PATH=/bin', 'A=b', 'HOSTNAME=web']);
  t.is(s.process.cwd, '/app');
  t.is(s.hostname, 'web');
  t.true(s.root.readonly);
  t.deepEqual(s.linux.resources.memory, { limit: 64 * 1024 * 1024, swap: 128 * 1024 * 1024 });
  t.deepEqual(s.linux.resources.cpu, { quota: 150000, period: 100000 });
  t.deepEqual(s.linux.resources.pids, { limit: 100 });
  t.deepEqual(s.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/berth-1' });
  t.deepEqual(s.annotations, { 'com.example': 'x' });
  t.deepEqual(s.mounts.find((m) => m.destination === '/data'), { destination: '/data', type: 'bind', source: '/srv/data', options: ['ro', 'rbind'] });
  const shm = s.mounts.filter((m) => m.destination === '/dev/shm');
  t.is(shm.length, 1, 'a user mount replaces the default at the same place');
  t.deepEqual(shm[0].options, ['size=1g']);
});

test('--init bind-mounts tini-static read-only at /sbin/docker-init and runs the command under it', (t) => {
  const s = buildSpec({ ...base, args: ['nginx', '-g', 'daemon off;'], init: true }, host);
  t.deepEqual(s.process.args, [CONTAINER_INIT_PATH, '--', 'nginx', '-g', 'daemon off;']);
  t.deepEqual(s.mounts.find((m) => m.destination === CONTAINER_INIT_PATH), { destination: '/sbin/docker-init', type: 'bind', source: '/usr/bin/tini-static', options: ['bind', 'ro'] });
  const err = t.throws(() => buildSpec({ ...base, init: true }, { rlimits: {} }), { code: 'FAILED_PRECONDITION' });
  t.regex((err as { hint?: string }).hint ?? '', /tini/);
});

test('rlimits: RLIMIT_NOFILE 1048576 as Docker, but never above the host hard limit', (t) => {
  t.deepEqual(buildSpec(base, host).process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }]);
  const roomy: HostInfo = { rlimits: { RLIMIT_NOFILE: RLIM_INFINITY }, nrOpen: 1048576n };
  t.deepEqual(buildSpec(base, roomy).process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 1048576, hard: 1048576 }]);
  const small: HostInfo = { rlimits: { RLIMIT_NOFILE: RLIM_INFINITY }, nrOpen: 65536n };
  t.deepEqual(buildSpec(base, small).process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 65536, hard: 65536 }], 'nr_open caps nofile too');

  const user = buildSpec({ ...base, rlimits: [{ type: 'nproc', soft: -1, hard: -1 }, { type: 'RLIMIT_CORE', soft: -1, hard: -1 }, { type: 'nofile', soft: 100, hard: 1e9 }] }, host).process.rlimits;
  t.deepEqual(user, [
    { type: 'RLIMIT_NOFILE', soft: 100, hard: 20000 },
    { type: 'RLIMIT_NPROC', soft: 5000, hard: 5000 },
    { type: 'RLIMIT_CORE', soft: RLIM_INFINITY, hard: RLIM_INFINITY },
  ]);
  t.throws(() => buildSpec({ ...base, rlimits: [{ type: 'nofile', soft: 10, hard: 5 }] }, host), { code: 'INVALID_ARGUMENT' });
  t.throws(() => buildSpec({ ...base, rlimits: [{ type: 'bogus', soft: 1, hard: 1 }] }, host), { code: 'INVALID_ARGUMENT' });
});

test('specToJson writes RLIM_INFINITY as the exact integer 2^64-1', (t) => {
  const s = buildSpec({ ...base, rlimits: [{ type: 'core', soft: -1, hard: -1 }] }, host);
  const text = specToJson(s);
  t.regex(text, /"type": "RLIMIT_CORE",\s*"soft": 18446744073709551615,\s*"hard": 18446744073709551615/);
  t.notThrows(() => JSON.parse(text));
});

test("readHostInfo reads this process's hard limits", (t) => {
  const info = readHostInfo();
  // A child inherits our hard limit: the shell's ulimit says what it is.
  const hard = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  t.is(info.rlimits.RLIMIT_NOFILE, hard === 'unlimited' ? RLIM_INFINITY : BigInt(hard));
  t.deepEqual(
    parseLimits('Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 20000                files     \nMax core file size        0                    unlimited            bytes     \n'),
    { RLIMIT_NOFILE: 20000n, RLIMIT_CORE: RLIM_INFINITY },
  );
});

test('buildSpec refuses bad input with INVALID_ARGUMENT and a hint', (t) => {
  const bad: Partial<ContainerSpecInput>[] = [
    { args: [] },
    { cwd: '/proc/self/fd/7' },
    { cwd: '/proc' },
    { cwd: 'relative' },
    { rootfs: 'rootfs' },
    { cgroupsPath: 'berth/c1' },
    { cgroupsPath: '/berth/../c1' },
    { memoryBytes: 1024 * 1024 },
    { memoryBytes: 64 * 1024 * 1024, memorySwapBytes: 1024 },
    { cpus: -1 },
    { uid: -1 },
    { terminal: true, consoleSize: { height: 0, width: 80 } },
    { terminal: true, consoleSize: { height: 24, width: 10001 } },
    { consoleSize: { height: 24, width: 80 } },
    { mounts: [{ source: '/x', destination: 'relative' }] },
  ];
  for (const b of bad) {
    const err = t.throws(() => buildSpec({ ...base, ...b }, host), { code: 'INVALID_ARGUMENT' }, JSON.stringify(b));
    t.truthy((err as { hint?: string }).hint, JSON.stringify(b));
  }
});

test('a terminal sets process.terminal and the console size', (t) => {
  const s = buildSpec({ ...base, terminal: true, consoleSize: { height: 33, width: 101 } }, host);
  t.true(s.process.terminal);
  t.deepEqual(s.process.consoleSize, { height: 33, width: 101 });
  const plain = buildSpec({ ...base, terminal: true }, host);
  t.true(plain.process.terminal);
  t.false('consoleSize' in plain.process);
});
