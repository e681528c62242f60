/**
 * Security and per-container host options through the real docker CLI against berthd:
 * capabilities, --privileged, no-new-privileges, the default seccomp profile, ulimits,
 * sysctls, devices, --tmpfs, --dns/--add-host, random host port 0, and Docker's answer to
 * routes berth does not serve. One daemon for the file; every test is serial (each runs
 * containers on a shared, loaded host).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon, exec } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { loadImages } from '../helpers/images';
import type { HostConfig } from '../../src/engine/service';

let d: TestDaemon;

test.before(async () => {
  d = await TestDaemon.start();
});

test.after.always(async () => {
  await d?.stop();
});

/** `docker run --rm ARGS...` that must succeed; its stdout. */
async function runOk(t: { is: (a: unknown, b: unknown, m?: string) => void }, args: string[]): Promise<string> {
  const r = await d.docker(['run', '--rm', ...args]);
  t.is(r.code, 0, `docker run ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function rawRequest(method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.socket, method, path }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.serial('a route berth does not serve answers 404 with Docker\'s body, whatever the method', async (t) => {
  for (const [method, path] of [
    ['GET', '/v1.41/nosuch/endpoint'],
    ['POST', '/v1.41/images/json'], // a path that exists for GET only
    ['PUT', '/containers/abc/nosuch'],
  ]) {
    const r = await rawRequest(method, path);
    t.is(r.status, 404, `${method} ${path}`);
    t.is(JSON.parse(r.body).message, 'page not found', `${method} ${path}`);
  }
});

test.serial('--dns, --dns-search, --dns-option and --add-host (host-gateway too) are written into the container\'s files', async (t) => {
  const out = await runOk(t, [
    '--dns', '192.0.2.53', '--dns', '192.0.2.54', '--dns-search', 'corp.example', '--dns-option', 'ndots:3',
    '--add-host', 'db.local:192.0.2.10', '--add-host', 'host.docker.internal:host-gateway',
    'busybox', 'sh', '-c', 'cat /etc/resolv.conf; echo ---; cat /etc/hosts',
  ]);
  const [resolv, hosts] = out.split('---\n');
  t.deepEqual(resolv.split('\n').filter((l) => /^nameserver /.test(l)), ['nameserver 192.0.2.53', 'nameserver 192.0.2.54']);
  t.regex(resolv, /^search corp\.example$/m);
  t.regex(resolv, /^options ndots:3$/m);
  t.regex(hosts, /^192\.0\.2\.10\tdb\.local$/m);
  const gw = /^(\d+\.\d+\.\d+\.\d+)\thost\.docker\.internal$/m.exec(hosts)?.[1];
  t.truthy(gw, hosts);
  // The gateway is the bridge's own address: the host, as the container reaches it.
  const { stdout } = await exec('ip', ['-4', '-o', 'addr', 'show', 'dev', d.args[d.args.indexOf('--bridge') + 1]]);
  t.true(stdout.includes(` ${gw}/`), `${gw} is the bridge's address: ${stdout}`);

  // `--dns-search .` means no search line at all.
  const none = await runOk(t, ['--dns-search', '.', 'busybox', 'cat', '/etc/resolv.conf']);
  t.notRegex(none, /^search /m);
});

test.serial('bad --dns and --add-host values are refused at create, typed', async (t) => {
  for (const args of [['--add-host', 'nohost'], ['--add-host', 'x:not-an-ip']]) {
    const r = await d.docker(['create', ...args, 'busybox', 'true']);
    t.not(r.code, 0, args.join(' '));
  }
  // The docker CLI checks those itself; through the API berth refuses them with INVALID_ARGUMENT.
  for (const HostConfig of [{ Dns: ['nope'] }, { ExtraHosts: ['x:999.1.1.1'] }, { DnsSearch: ['bad domain'] }]) {
    const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig }));
    t.is((e as { code?: string }).code, 'INVALID_ARGUMENT', JSON.stringify(HostConfig));
  }
});

test.serial('-p 0:6379 publishes redis on a random host port that answers (testcontainers sends HostPort "0")', async (t) => {
  t.timeout(120_000);
  await loadImages(d, 'redis');
  const r = await d.docker(['run', '-d', '--name', 'r0', '-p', '0:6379', 'redis', 'redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', '']);
  t.is(r.code, 0, r.stderr);
  t.teardown(() => d.docker(['rm', '-f', 'r0']));
  const line = (await d.docker(['port', 'r0', '6379'])).stdout.split('\n')[0];
  const port = Number(/:(\d+)$/.exec(line)?.[1]);
  t.true(port > 0 && port !== 6379, `a random port: ${line}`);
  t.is((await d.docker(['inspect', '-f', '{{json .HostConfig.PortBindings}}', 'r0'])).stdout.trim(), '{"6379/tcp":[{"HostIp":"","HostPort":"0"}]}');
  let pong = '';
  await eventually(async () => (pong = (await exec('/usr/bin/redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping'], { timeout: 5000 }).catch(() => ({ stdout: '' }))).stdout.trim()) === 'PONG', { timeout: 60_000, message: 'redis to answer on the published port' }).catch(() => undefined);
  t.is(pong, 'PONG');
});

/** A line of /proc/self/status, e.g. status(out, 'CapEff') → '00000000a80425fb'. */
function status(text: string, key: string): string {
  const m = new RegExp(`^${key}:\\s*(\\S+)`, 'm').exec(text);
  if (!m) throw new Error(`no ${key} in ${text}`);
  return m[1];
}

const DEFAULT_CAPEFF = '00000000a80425fb';

test.serial('capabilities: --cap-drop ALL leaves none, --cap-add adds (with or without CAP_, any case), --privileged gives the full set', async (t) => {
  const host = fs.readFileSync('/proc/self/status', 'utf8');
  const read = (args: string[]) => runOk(t, [...args, 'busybox', 'cat', '/proc/self/status']);
  t.is(status(await read([]), 'CapEff'), DEFAULT_CAPEFF);
  t.is(status(await read(['--cap-drop', 'ALL']), 'CapEff'), '0000000000000000');
  t.is(status(await read(['--cap-drop', 'all']), 'CapBnd'), '0000000000000000');
  // NET_ADMIN is bit 12; chown (bit 0) dropped by its CAP_ name.
  const added = BigInt(`0x${status(await read(['--cap-add', 'net_admin', '--cap-drop', 'CAP_CHOWN']), 'CapEff')}`);
  t.is(added, (BigInt(`0x${DEFAULT_CAPEFF}`) | (1n << 12n)) & ~1n);
  t.is(status(await read(['--cap-drop', 'ALL', '--cap-add', 'CAP_KILL']), 'CapEff'), (1n << 5n).toString(16).padStart(16, '0'));
  t.is(status(await read(['--cap-add', 'ALL', '--cap-drop', 'NET_RAW']), 'CapEff'), (BigInt(`0x${status(host, 'CapBnd')}`) & ~(1n << 13n)).toString(16).padStart(16, '0'));
  const priv = await read(['--privileged']);
  t.is(status(priv, 'CapEff'), status(host, 'CapBnd'), 'privileged: every capability berthd has');
  t.is(status(priv, 'Seccomp'), '0', 'privileged: no seccomp');
  // An unknown capability is refused, typed.
  const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { CapAdd: ['CAP_NOPE'] } }));
  t.is((e as { code?: string }).code, 'INVALID_ARGUMENT');
});

test.serial('--privileged: host devices, writable /sys, no masked paths', async (t) => {
  const out = await runOk(t, ['--privileged', 'busybox', 'sh', '-c', 'ls /dev; echo ---; grep " /sys " /proc/mounts; echo ---; cat /proc/kcore >/dev/null 2>&1 && echo kcore-readable || echo kcore-hidden; wc -c < /proc/keys']);
  const [devs, sys] = out.split('---\n');
  t.regex(devs, /\bfuse\b/, 'the host\'s /dev/fuse');
  t.regex(sys, /\brw\b/);
  const plain = await runOk(t, ['busybox', 'sh', '-c', 'ls /dev; echo ---; grep " /sys " /proc/mounts']);
  t.notRegex(plain.split('---\n')[0], /\bfuse\b/);
  t.regex(plain.split('---\n')[1], /\bro\b/);
});

test.serial('exec --privileged gets every capability; a plain exec the container\'s', async (t) => {
  const r = await d.docker(['run', '-d', '--name', 'ex', 'busybox', 'sleep', '1000']);
  t.is(r.code, 0, r.stderr);
  t.teardown(() => d.docker(['rm', '-f', 'ex']));
  const host = fs.readFileSync('/proc/self/status', 'utf8');
  const priv = await d.docker(['exec', '--privileged', 'ex', 'cat', '/proc/self/status']);
  t.is(priv.code, 0, priv.stderr);
  t.is(status(priv.stdout, 'CapEff'), status(host, 'CapBnd'));
  const plain = await d.docker(['exec', 'ex', 'cat', '/proc/self/status']);
  t.is(status(plain.stdout, 'CapEff'), DEFAULT_CAPEFF);
});

test.serial('no-new-privileges sets NoNewPrivs in the container and in its execs', async (t) => {
  t.is(status(await runOk(t, ['busybox', 'cat', '/proc/self/status']), 'NoNewPrivs'), '0');
  t.is(status(await runOk(t, ['--security-opt', 'no-new-privileges', 'busybox', 'cat', '/proc/self/status']), 'NoNewPrivs'), '1');
  const r = await d.docker(['run', '-d', '--name', 'nnp', '--security-opt', 'no-new-privileges:true', 'busybox', 'sleep', '1000']);
  t.is(r.code, 0, r.stderr);
  t.teardown(() => d.docker(['rm', '-f', 'nnp']));
  t.is(status((await d.docker(['exec', 'nnp', 'cat', '/proc/self/status'])).stdout, 'NoNewPrivs'), '1');
});

/**
 * A static binary that makes one call named by its argument: unshare(CLONE_NEWUSER) (which
 * the kernel allows without any capability, so only a seccomp filter refuses it), or
 * keyctl(KEYCTL_GET_KEYRING_ID, session keyring), or add_key(2). Prints "ok" or "errno N".
 */
async function callProbe(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-probe-'));
  fs.writeFileSync(
    path.join(dir, 'call.c'),
    '#define _GNU_SOURCE\n#include <stdio.h>\n#include <errno.h>\n#include <string.h>\n#include <unistd.h>\n#include <sched.h>\n#include <sys/syscall.h>\n' +
      'int main(int argc, char **argv) { long r = -1;\n' +
      'if (argc > 1 && !strcmp(argv[1], "unshare")) r = syscall(SYS_unshare, CLONE_NEWUSER);\n' +
      'else if (argc > 1 && !strcmp(argv[1], "keyctl")) r = syscall(SYS_keyctl, 0, -3, 0);\n' +
      'else if (argc > 1 && !strcmp(argv[1], "add_key")) r = syscall(SYS_add_key, "user", "berth-probe", "x", 1, -2);\n' +
      'else { printf("usage\\n"); return 2; }\n' +
      'if (r < 0) { printf("errno %d\\n", errno); return 1; } printf("ok\\n"); return 0; }\n',
  );
  await exec('gcc', ['-static', '-O1', '-o', path.join(dir, 'call'), path.join(dir, 'call.c')]);
  return dir;
}

test.serial('seccomp: Docker\'s default profile (mode 2) blocks add_key; seccomp=unconfined and a given profile work', async (t) => {
  const probe = await callProbe();
  t.teardown(() => fs.rmSync(probe, { recursive: true, force: true }));
  t.is(status(await runOk(t, ['busybox', 'cat', '/proc/self/status']), 'Seccomp'), '2');
  const blocked = await d.docker(['run', '--rm', '-v', `${probe}:/probe:ro`, 'busybox', '/probe/call', 'add_key']);
  t.is(blocked.code, 1, blocked.stdout + blocked.stderr);
  t.regex(blocked.stdout, /^errno (1|38)$/m, 'EPERM or ENOSYS from the filter');
  const free = await d.docker(['run', '--rm', '--security-opt', 'seccomp=unconfined', '-v', `${probe}:/probe:ro`, 'busybox', 'sh', '-c', 'grep Seccomp: /proc/self/status; /probe/call add_key']);
  t.is(free.code, 0, free.stdout + free.stderr);
  t.regex(free.stdout, /Seccomp:\s+0/);
  t.regex(free.stdout, /^ok$/m);
  // A profile file: the docker CLI reads it and sends its content.
  const profile = path.join(probe, 'no-mkdir.json');
  fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }));
  const custom = await d.docker(['run', '--rm', '--security-opt', `seccomp=${profile}`, 'busybox', 'sh', '-c', 'mkdir /tmp/x && echo made || echo refused']);
  t.is(custom.code, 0, custom.stderr);
  t.is(custom.stdout.trim(), 'refused');
  const bad = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { SecurityOpt: ['seccomp={"nope": 1}'] } }));
  t.is((bad as { code?: string }).code, 'INVALID_ARGUMENT');
  const unknown = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { SecurityOpt: ['apparmor=docker-default'] } }));
  t.is((unknown as { code?: string }).code, 'INVALID_ARGUMENT');
});

test.serial('--ulimit is set in the container; above the host\'s hard limit it is refused at create', async (t) => {
  const limits = await runOk(t, ['--ulimit', 'nofile=1024:2048', '--ulimit', 'nproc=500', 'busybox', 'cat', '/proc/self/limits']);
  t.regex(limits, /^Max open files\s+1024\s+2048\s/m);
  t.regex(limits, /^Max processes\s+500\s+500\s/m);
  const hostHard = /^Max open files\s+\S+\s+(\S+)/m.exec(fs.readFileSync(`/proc/${d.child?.pid}/limits`, 'utf8'))?.[1];
  const nrOpen = Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8'));
  const over = Math.min(hostHard === 'unlimited' ? Infinity : Number(hostHard), nrOpen) + 1;
  const r = await d.docker(['create', '--ulimit', `nofile=${over}:${over}`, 'busybox', 'true']);
  t.not(r.code, 0, r.stderr);
  t.regex(r.stderr, /host's hard limit/);
  const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Ulimits: [{ Name: 'nofile', Soft: over, Hard: over }] } }));
  t.is((e as { code?: string }).code, 'INVALID_ARGUMENT');
});

test.serial('--sysctl sets namespaced sysctls; others and net.* on the host network are refused', async (t) => {
  const out = await runOk(t, ['--sysctl', 'net.ipv4.ip_unprivileged_port_start=99', '--sysctl', 'kernel.shmmni=1234', 'busybox', 'sh', '-c', 'cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni']);
  t.deepEqual(out.trim().split('\n'), ['99', '1234']);
  const refused: HostConfig[] = [{ Sysctls: { 'vm.swappiness': '10' } }, { Sysctls: { 'kernel.hostname': 'x' } }, { NetworkMode: 'host', Sysctls: { 'net.ipv4.ip_forward': '0' } }];
  for (const HostConfig of refused) {
    const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig }));
    t.is((e as { code?: string }).code, 'INVALID_ARGUMENT', JSON.stringify(HostConfig));
  }
});

test.serial('--device maps a host device with its cgroup rule; --device-cgroup-rule opens one to mknod', async (t) => {
  const open = 'exec 3<>/dev/cfuse && echo opened || echo denied';
  t.is((await runOk(t, ['--device', '/dev/fuse:/dev/cfuse:rw', 'busybox', 'sh', '-c', open])).trim(), 'opened');
  const made = '(mknod /tmp/f c 10 229 && exec 3<>/tmp/f && echo opened) 2>/dev/null || echo denied';
  t.is((await runOk(t, ['busybox', 'sh', '-c', made])).trim(), 'denied', 'fuse is denied by default');
  t.is((await runOk(t, ['--device-cgroup-rule', 'c 10:229 rwm', 'busybox', 'sh', '-c', made])).trim(), 'opened');
  for (const HostConfig of [{ Devices: [{ PathOnHost: '/dev/nonexistent', PathInContainer: '/dev/x', CgroupPermissions: 'rwm' }] }, { DeviceCgroupRules: ['c 1:3 xyz'] }]) {
    const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig }));
    t.is((e as { code?: string }).code, 'INVALID_ARGUMENT', JSON.stringify(HostConfig));
  }
});

test.serial('--tmpfs mounts a tmpfs with Docker\'s defaults and the given options', async (t) => {
  const out = await runOk(t, ['--tmpfs', '/run:rw,size=1m,mode=1770', '--tmpfs', '/scratch:exec', 'busybox', 'grep', 'tmpfs', '/proc/mounts']);
  const run = out.split('\n').find((l) => l.split(' ')[1] === '/run') ?? '';
  t.regex(run, /\bnosuid\b/);
  t.regex(run, /\bnodev\b/);
  t.regex(run, /\bnoexec\b/);
  t.regex(run, /\bsize=1024k\b/);
  t.regex(run, /\bmode=1770\b/);
  const scratch = out.split('\n').find((l) => l.split(' ')[1] === '/scratch') ?? '';
  t.truthy(scratch, out);
  t.notRegex(scratch, /\bnoexec\b/, 'exec overrides the default noexec');
  const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Tmpfs: { '/run': 'bogus=1' } } }));
  t.is((e as { code?: string }).code, 'INVALID_ARGUMENT');
});

test.serial('--group-add, --oom-score-adj and Config.MacAddress are honoured', async (t) => {
  const out = await runOk(t, ['--group-add', 'nobody', '--group-add', '1234', '--oom-score-adj', '500', 'busybox', 'sh', '-c', 'id -G; cat /proc/self/oom_score_adj']);
  const [groups, oom] = out.trim().split('\n');
  t.deepEqual(groups.split(' ').sort(), ['0', '1234', '65534']);
  t.is(oom, '500');
  // The docker CLI 28 sends --mac-address per network (API 1.44); API 1.41 clients send Config.MacAddress.
  const { Id } = await d.containers.create({ Image: 'busybox', Cmd: ['cat', '/sys/class/net/eth0/address'], MacAddress: '02:42:ac:11:00:99' });
  t.teardown(() => d.docker(['rm', '-f', Id]));
  const r = await d.docker(['start', '-a', Id]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), '02:42:ac:11:00:99');
  t.is((await d.docker(['inspect', '-f', '{{.Config.MacAddress}} {{.NetworkSettings.MacAddress}}', Id])).stdout.trim(), '02:42:ac:11:00:99 02:42:ac:11:00:99');
  const e = await t.throwsAsync(d.containers.create({ Image: 'busybox', Cmd: ['true'], MacAddress: '02:42:ac:11:00:99', HostConfig: { NetworkMode: 'host' } }));
  t.is((e as { code?: string }).code, 'INVALID_ARGUMENT');
});

test.serial("seccomp: as Docker's default, unshare needs CAP_SYS_ADMIN and keyctl is refused; seccomp=unconfined lifts both", async (t) => {
  const probe = await callProbe();
  t.teardown(() => fs.rmSync(probe, { recursive: true, force: true }));
  const run = (opts: string[], call: string) => d.docker(['run', '--rm', ...opts, '-v', `${probe}:/probe:ro`, 'busybox', '/probe/call', call]);
  const unshare = await run([], 'unshare');
  t.is(unshare.code, 1, unshare.stdout + unshare.stderr);
  t.regex(unshare.stdout, /^errno (1|38)$/m, 'the filter refuses unshare without CAP_SYS_ADMIN');
  const keyctl = await run([], 'keyctl');
  t.is(keyctl.code, 1, keyctl.stdout + keyctl.stderr);
  t.regex(keyctl.stdout, /^errno (1|38)$/m, 'the filter refuses keyctl');
  const keyctlAdmin = await run(['--cap-add', 'SYS_ADMIN'], 'keyctl');
  t.regex(keyctlAdmin.stdout, /^errno (1|38)$/m, 'keyctl stays refused with CAP_SYS_ADMIN');
  const admin = await run(['--cap-add', 'SYS_ADMIN'], 'unshare');
  t.is(admin.code, 0, admin.stdout + admin.stderr);
  t.regex(admin.stdout, /^ok$/m);
  for (const call of ['unshare', 'keyctl']) {
    const free = await run(['--security-opt', 'seccomp=unconfined'], call);
    t.is(free.code, 0, `${call}: ${free.stdout}${free.stderr}`);
    t.regex(free.stdout, /^ok$/m);
  }
  // Plain fork and threads (clone without namespace flags) still work under the filter.
  t.is((await runOk(t, ['busybox', 'sh', '-c', 'echo $(echo forked)'])).trim(), 'forked');
});

test.serial('berth run takes the same flags: caps, seccomp=FILE (read by the CLI), ulimit, sysctl, tmpfs, dns, add-host, group-add; exec --privileged', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-prof-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const profile = path.join(dir, 'no-mkdir.json');
  fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }));
  const r = await d.berth([
    'run', '--rm', '--cap-drop', 'ALL', '--cap-add', 'kill', '--security-opt', `seccomp=${profile}`, '--security-opt', 'no-new-privileges',
    '--ulimit', 'nofile=512:1024', '--sysctl', 'net.ipv4.ip_unprivileged_port_start=80', '--tmpfs', '/scratch:size=2m', '--dns', '192.0.2.9',
    '--add-host', 'gw:host-gateway', '--group-add', '4321', '--oom-score-adj', '300',
    'busybox', 'sh', '-c',
    'grep -E "^(CapEff|NoNewPrivs):" /proc/self/status; grep "open files" /proc/self/limits; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; ' +
      'grep " /scratch " /proc/mounts; grep nameserver /etc/resolv.conf; grep -c "\tgw$" /etc/hosts; id -G; cat /proc/self/oom_score_adj; mkdir /tmp/x 2>/dev/null || echo no-mkdir',
  ]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^CapEff:\s+0000000000000020$/m);
  t.regex(r.stdout, /^NoNewPrivs:\s+1$/m);
  t.regex(r.stdout, /^Max open files\s+512\s+1024\s/m);
  t.regex(r.stdout, /^80$/m);
  t.regex(r.stdout, /\/scratch tmpfs .*size=2048k/);
  t.regex(r.stdout, /^nameserver 192\.0\.2\.9$/m);
  t.regex(r.stdout, /^1$/m);
  t.regex(r.stdout, /^0 4321$/m);
  t.regex(r.stdout, /^300$/m);
  t.regex(r.stdout, /^no-mkdir$/m);

  t.is((await d.berth(['run', '-d', '--name', 'bex', 'busybox', 'sleep', '1000'])).code, 0);
  t.teardown(() => d.berth(['rm', '-f', 'bex']));
  const host = fs.readFileSync('/proc/self/status', 'utf8');
  const ex = await d.berth(['exec', '--privileged', 'bex', 'grep', 'CapEff', '/proc/self/status']);
  t.is(ex.code, 0, ex.stderr);
  t.is(status(ex.stdout, 'CapEff'), status(host, 'CapBnd'));
  const refused = await d.berth(['run', '--rm', '--sysctl', 'vm.swappiness=1', 'busybox', 'true']);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /hint:/);
});
