/**
 * The pure parts of container security: Docker's capability arithmetic, the default
 * seccomp profile translated for a container's capabilities and this host's architecture,
 * and the spec a privileged container gets. No daemon, no runc.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { DEFAULT_CAPABILITIES, allCapabilities, effectiveCapabilities, normalizeCapabilities } from '../../src/runtime/capabilities';
import { loadDefaultProfile, parseProfile, translateProfile } from '../../src/runtime/seccomp';
import { buildSpec } from '../../src/runtime/spec';
import { parseSecurityOpt, tmpfsMounts } from '../../src/engine/security-config';

const host = { rlimits: {} };
const base = { rootfs: '/tmp/rootfs', args: ['sh'], cgroupsPath: '/berth-test/x' };
const allowed = (s: ReturnType<typeof translateProfile>, name: string) => s.syscalls.some((r) => r.names.includes(name) && r.action === 'SCMP_ACT_ALLOW');

test('capability names are read as Docker reads them, unknown ones refused', (t) => {
  t.deepEqual(normalizeCapabilities(['net_admin', 'CAP_SYS_PTRACE', 'Kill', 'all', 'NET_ADMIN'], 'CapAdd'), ['CAP_NET_ADMIN', 'CAP_SYS_PTRACE', 'CAP_KILL', 'ALL']);
  const e = t.throws(() => normalizeCapabilities(['CAP_FLY'], 'CapAdd'), { instanceOf: InvalidArgumentError });
  t.truthy(e?.hint);
});

test('effective capabilities: defaults, drop ALL, add ALL, privileged', (t) => {
  t.deepEqual(effectiveCapabilities({}), [...DEFAULT_CAPABILITIES]);
  t.deepEqual(effectiveCapabilities({ drop: ['ALL'], add: ['CAP_KILL'] }), ['CAP_KILL']);
  t.deepEqual(effectiveCapabilities({ add: ['ALL'], drop: ['CAP_CHOWN'] }), allCapabilities().filter((c) => c !== 'CAP_CHOWN'));
  t.deepEqual(effectiveCapabilities({ privileged: true, drop: ['ALL'] }), allCapabilities());
  t.false(effectiveCapabilities({ drop: ['CAP_CHOWN'] }).includes('CAP_CHOWN'));
});

test('the default profile keeps CAP_SYS_ADMIN syscalls for containers that have it only', (t) => {
  const p = loadDefaultProfile();
  const plain = translateProfile(p, DEFAULT_CAPABILITIES);
  const admin = translateProfile(p, [...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN']);
  t.is(plain.defaultAction, 'SCMP_ACT_ERRNO');
  t.false(allowed(plain, 'bpf'));
  t.true(allowed(admin, 'bpf'));
  t.false(allowed(plain, 'add_key'), 'add_key is never allowed');
  t.true(allowed(plain, 'read'));
  // Only this host's architecture (and its sub-architectures) is named.
  t.true(plain.architectures.length > 0);
  t.is(plain.architectures[0], process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64');
  for (const r of plain.syscalls) t.deepEqual(Object.keys(r).filter((k) => !['names', 'action', 'errnoRet', 'args'].includes(k)), []);
});

test('includes/excludes by arch and minKernel are applied for the host given', (t) => {
  const p = parseProfile(
    JSON.stringify({
      defaultAction: 'SCMP_ACT_ERRNO',
      archMap: [{ architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }],
      syscalls: [
        { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64'] } },
        { names: ['newer'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '5.8' } },
        { names: ['notarm'], action: 'SCMP_ACT_ALLOW', excludes: { arches: ['arm64'] } },
      ],
    }),
  );
  const arm = translateProfile(p, [], { goArch: 'arm64', scmpArch: 'SCMP_ARCH_AARCH64', kernel: '5.4.0' });
  t.deepEqual(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  t.deepEqual(arm.syscalls, []);
  const amd = translateProfile(p, [], { goArch: 'amd64', scmpArch: 'SCMP_ARCH_X86_64', kernel: '6.1.0' });
  t.deepEqual(amd.syscalls.map((s) => s.names[0]), ['arch_prctl', 'newer', 'notarm']);
});

test('bad profiles and security options are refused with a hint', (t) => {
  for (const text of ['nope', '{}', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}', '{"defaultAction":"SCMP_ACT_FLY"}']) {
    const e = t.throws(() => parseProfile(text), { instanceOf: InvalidArgumentError }, text);
    t.truthy(e?.hint);
  }
  for (const opt of ['apparmor=docker-default', 'label=type:x', 'seccomp', 'no-new-privileges=maybe', 'systempaths=unconfined']) {
    t.throws(() => parseSecurityOpt([opt]), { instanceOf: InvalidArgumentError }, opt);
  }
  t.deepEqual(parseSecurityOpt(['no-new-privileges:true', 'seccomp=unconfined', 'apparmor=unconfined', 'label=disable']), { noNewPrivileges: true, seccomp: { kind: 'unconfined' } });
});

test('a privileged spec: every capability, every device allowed, no seccomp, no masked paths, /sys writable', (t) => {
  const s = buildSpec({ ...base, security: { privileged: true } }, host);
  t.deepEqual(s.process.capabilities.effective, allCapabilities());
  t.deepEqual(s.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
  t.is(s.linux.seccomp, undefined);
  t.deepEqual(s.linux.maskedPaths, []);
  t.deepEqual(s.linux.readonlyPaths, []);
  t.false(s.mounts.find((m) => m.destination === '/sys')?.options.includes('ro'));
  const plain = buildSpec(base, host);
  t.truthy(plain.linux.seccomp);
  t.true(plain.mounts.find((m) => m.destination === '/sys')?.options.includes('ro'));
});

test('--tmpfs options: Docker\'s defaults first, a later flag wins over its opposite', (t) => {
  const [m] = tmpfsMounts({ '/run': 'exec,size=64M,mode=1777' });
  t.deepEqual(m, { type: 'tmpfs', source: 'tmpfs', destination: '/run', options: ['nosuid', 'nodev', 'exec', 'size=64m', 'mode=1777'] });
  t.throws(() => tmpfsMounts({ relative: '' }), { instanceOf: InvalidArgumentError });
  t.throws(() => tmpfsMounts({ '/x': 'size=big' }), { instanceOf: InvalidArgumentError });
});
