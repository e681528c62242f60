import test, { type ExecutionContext } from 'ava';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { TestDaemon, exec, testNetwork, useDaemon } from '../helpers/daemon';
import { eventually } from '../helpers/eventually';
import { loadImages } from '../helpers/images';

/**
 * Published ports end to end: real daemons, the real `berth` and `docker` CLIs, real
 * servers in containers (redis, memcached, busybox httpd) and real clients on the host.
 *
 * Etiquette: traffic goes only to loopback, to the host's own addresses and to the
 * containers these tests start. `10.99.99.99` below is only ever handed to the daemon,
 * which refuses it; nothing is sent there.
 */

type Result = { code: number; stdout: string; stderr: string };

/** The daemon's DNAT chain (`BERTH-DNAT` + the test daemon's suffix, see testNetwork()). */
function dnatChain(d: TestDaemon): string {
  const args = testNetwork(d.root);
  return `BERTH-DNAT${args[args.indexOf('--iptables-suffix') + 1]}`;
}

function bridgeOf(d: TestDaemon): string {
  const args = testNetwork(d.root);
  return args[args.indexOf('--bridge') + 1];
}

function subnetPrefix(d: TestDaemon): string {
  const args = testNetwork(d.root);
  return args[args.indexOf('--subnet') + 1].replace(/\.0\/24$/, '.');
}

/**
 * The published-port DNAT rules of this daemon, as iptables-save prints them (the DNS
 * forwarding rules from the bridge, `-i <bridge>`, are the daemon's own and left out).
 * With `port`, only the rules for that host port.
 */
async function dnatRules(d: TestDaemon, port?: number): Promise<string[]> {
  const { stdout } = await exec('iptables-save', ['-t', 'nat'], { maxBuffer: 1 << 26 });
  const chain = dnatChain(d);
  const bridge = bridgeOf(d);
  return stdout
    .split('\n')
    .filter((l) => l.startsWith(`-A ${chain} `) && !l.includes(` -i ${bridge} `))
    .filter((l) => port === undefined || new RegExp(`--dport ${port}( |$)`).test(l));
}

/**
 * The DNAT rules that lead to these container addresses (a test's own containers: other
 * tests publish on the same daemon meanwhile). A stopped container keeps its address.
 */
async function rulesTo(d: TestDaemon, ...ips: string[]): Promise<string[]> {
  const to = ips.map((ip) => ` --to-destination ${ip}:`);
  return (await dnatRules(d)).filter((l) => to.some((x) => l.includes(x)));
}

async function ipOf(d: TestDaemon, ref: string): Promise<string> {
  const ip = ((await d.containers.inspect(ref)) as unknown as { NetworkSettings?: { IPAddress?: string } }).NetworkSettings?.IPAddress;
  if (!ip) throw new Error(`container ${ref} has no address`);
  return ip;
}

/** Can a host process bind this TCP port on `host` right now? */
function canBindTcp(port: number, host = '0.0.0.0'): Promise<boolean | string> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function canBindUdp(port: number, host = '0.0.0.0'): Promise<boolean | string> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.close();
      resolve(e.code ?? String(e));
    });
    s.bind({ port, address: host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Ports freePorts() gave out in this file: the tests run side by side, never on the same one. */
const handedOut = new Set<number>();

/**
 * `count` consecutive ports in 20000-29999 that are free (tcp and udp) on every address now,
 * and that no other test of this file was given.
 */
async function freePorts(count = 1): Promise<number[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = 20000 + Math.floor(Math.random() * (10000 - count));
    const ports = Array.from({ length: count }, (_, i) => first + i);
    if (ports.some((p) => handedOut.has(p))) continue;
    let ok = true;
    for (const p of ports) if ((await canBindTcp(p)) !== true || (await canBindUdp(p)) !== true) ok = false;
    if (ports.some((p) => handedOut.has(p))) continue; // another test took one while this one looked
    if (ok) {
      for (const p of ports) handedOut.add(p);
      return ports;
    }
  }
  throw new Error('no free ports in 20000-29999');
}

/** A non-loopback IPv4 address of the host (not a berth bridge), if it has one. */
/**
 * The host's first non-loopback IPv4 address. Publishing on 0.0.0.0 means "every address
 * of the host", which these tests prove through it; a host without one cannot run them,
 * so that fails loudly instead of skipping the checks.
 */
function hostAddress(): string {
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    if (name.startsWith('berth') || name.startsWith('br-')) continue;
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this host has no non-loopback IPv4 address: the published-port tests need one to prove 0.0.0.0 reaches every address');
}

async function ok(t: ExecutionContext, p: Promise<Result>, what: string): Promise<Result> {
  const r = await p;
  t.is(r.code, 0, `${what}: ${r.stderr}`);
  return r;
}

/** GET http://host:port/path → body, retried while the server in the container starts. */
async function httpGet(port: number, host = '127.0.0.1', path = '/', timeoutMs = 15_000): Promise<string> {
  const once = () =>
    new Promise<string>((resolve, reject) => {
      const req = http.get({ host, port, path, timeout: 3000, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });
  // A body is never empty here (every server in these tests answers a line).
  return eventually(once, { timeout: timeoutMs, interval: 100, message: `GET http://${host}:${port}${path} to answer 200` });
}

/** Does a TCP connect to host:port get refused (nothing listens, no DNAT)? */
function connectOutcome(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.setTimeout(3000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
  });
}

/** One memcached text-protocol exchange: send `request`, read until `until` matches. */
function memcachedTalk(port: number, request: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    s.setTimeout(5000, () => s.destroy(new Error(`timeout; got ${JSON.stringify(got)}`)));
    s.on('connect', () => s.write(request));
    s.on('data', (c) => {
      got += c.toString('latin1');
      if (until.test(got)) {
        s.end();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed; got ${JSON.stringify(got)}`)));
  });
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await exec('/usr/bin/redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 });
  return stdout.trim();
}

async function redisReady(port: number): Promise<void> {
  await eventually(async () => (await redisCli(port, 'ping')) === 'PONG', { timeout: 15_000, interval: 150, message: `redis on port ${port} to answer PING` });
}

/** A memcached UDP request (8-byte frame header: request id, seq 0, 1 datagram) and its reply. */
function memcachedUdp(port: number, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no UDP reply'));
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      if (m.readUInt16BE(0) !== 0x4242) reject(new Error(`reply to another request: ${m.toString('hex')}`));
      else resolve(m.subarray(8).toString('latin1'));
    });
    s.on('error', (e) => {
      clearTimeout(t);
      s.close();
      reject(e);
    });
    s.send(Buffer.concat([Buffer.from([0x42, 0x42, 0, 0, 0, 1, 0, 0]), Buffer.from(command)]), port, '127.0.0.1');
  });
}

/** `0.0.0.0:12345` (a `port C PORT` line) → 12345. */
function hostPortOf(line: string): number {
  const m = /^(?:\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):(\d+)$/.exec(line.trim());
  if (!m) throw new Error(`not an address:port: ${JSON.stringify(line)}`);
  return Number(m[1]);
}

function ephemeral(): [number, number] {
  const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  return [lo, hi];
}

const REDIS = ['redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', ''];
/** busybox httpd serving `text` at / on container port `port`, in the foreground. */
const httpd = (text: string, port = 80) => ['sh', '-c', `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p ${port} -h /www`];

// One daemon serves every test here that neither restarts it nor needs a fresh root; each
// test names its containers with `share.name()` (removed and leak-checked at its end) and
// asserts only about its own containers, rules and ports: the tests run side by side.
let shared: TestDaemon;

test.before(async () => {
  shared = await TestDaemon.start();
  await loadImages(shared, 'redis', 'memcached');
});

test.after.always(async () => {
  await shared?.stop();
});

// 11211 is a fixed host port no other test file uses (grep test/ for it); this file uses it
// in this one test only.
test('docker CLI: -p 6379 (random) to redis and -p 11211:11211 to memcached, port, ps PORTS, inspect', async (t) => {
  t.timeout(180_000);
  const FIXED = 11211;
  t.is(await canBindTcp(FIXED), true, `host port ${FIXED} must be free for this test`);
  const share = useDaemon(t, shared);
  const d = share.d;
  const [r1, m1] = [share.name('r1'), share.name('m1')];

  await ok(t, d.docker(['run', '-d', '-p', '6379', '--name', r1, 'redis', ...REDIS]), 'docker run redis');
  const port = await ok(t, d.docker(['port', r1, '6379']), 'docker port');
  t.regex(port.stdout, /^0\.0\.0\.0:\d+\n/);
  const rport = hostPortOf(port.stdout.split('\n')[0]);
  const [lo, hi] = ephemeral();
  t.true(rport >= lo && rport <= hi, `random host port ${rport} is from the ephemeral range ${lo}-${hi}`);

  await redisReady(rport);
  t.is(await redisCli(rport, 'set', 'k', 'v'), 'OK');
  t.is(await redisCli(rport, 'get', 'k'), 'v');
  // 0.0.0.0 means every address of the host: the host's own non-loopback address too.
  const addr = hostAddress();
  const { stdout } = await exec('/usr/bin/redis-cli', ['-h', addr, '-p', String(rport), 'get', 'k'], { timeout: 5000 });
  t.is(stdout.trim(), 'v', `through the host's address ${addr}`);

  await ok(t, d.docker(['run', '-d', '-p', `${FIXED}:11211`, '--name', m1, 'memcached', 'memcached', '-u', 'root']), 'docker run memcached');
  const stored = await eventually(() => memcachedTalk(FIXED, 'set k 0 0 5\r\nhello\r\n', /\r\n$/), { timeout: 15_000, interval: 150, message: 'memcached to store k' });
  t.is(stored, 'STORED\r\n');
  t.is(await memcachedTalk(FIXED, 'get k\r\n', /END\r\n$/), 'VALUE k 0 5\r\nhello\r\nEND\r\n');

  const ps = await ok(t, d.docker(['ps']), 'docker ps');
  const header = ps.stdout.split('\n')[0];
  t.regex(header, /\bPORTS\b/);
  const col = header.indexOf('PORTS');
  const portsOf = (name: string) => {
    const line = ps.stdout.split('\n').find((l) => l.trimEnd().endsWith(` ${name}`)) ?? '';
    return line.slice(col, line.lastIndexOf(' ', line.trimEnd().length - name.length)).trim();
  };
  t.is(portsOf(m1), `0.0.0.0:${FIXED}->11211/tcp`, ps.stdout);
  t.is(portsOf(r1), `0.0.0.0:${rport}->6379/tcp`, ps.stdout);

  const insp = await ok(t, d.docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', r1]), 'docker inspect');
  t.deepEqual(JSON.parse(insp.stdout), { '6379/tcp': [{ HostIp: '0.0.0.0', HostPort: String(rport) }] });
  const minsp = await ok(t, d.docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', m1]), 'docker inspect');
  t.deepEqual(JSON.parse(minsp.stdout), { '11211/tcp': [{ HostIp: '0.0.0.0', HostPort: String(FIXED) }] });
  const ip = (await ok(t, d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', r1]), 'inspect ip')).stdout.trim();
  t.true(ip.startsWith(subnetPrefix(d)), `${ip} is on the daemon's subnet`);
  const mip = await ipOf(d, m1);

  // One DNAT rule per published port, to the container's address; no proxy process holds the traffic.
  const rules = await rulesTo(d, ip, mip);
  t.is(rules.length, 2, rules.join('\n'));
  t.is((await dnatRules(d, rport)).length, 1);
  t.regex((await dnatRules(d, rport))[0], new RegExp(`-p tcp .*--to-destination ${ip.replace(/\./g, '\\.')}:6379$`));
  t.is((await dnatRules(d, FIXED)).length, 1);
  t.is(await canBindTcp(FIXED), 'EADDRINUSE', 'berthd holds the published port');

  await ok(t, d.docker(['stop', '-t', '1', m1, r1]), 'docker stop');
  t.deepEqual(await rulesTo(d, ip, mip), [], 'stopped containers leave no DNAT rule');
  t.deepEqual(await dnatRules(d, FIXED), []);
  t.is(await canBindTcp(FIXED), true, 'the port is released at stop');
  const gone = await d.docker(['port', r1, '6379']);
  t.not(gone.stdout.trim(), `0.0.0.0:${rport}`);
  await ok(t, d.docker(['rm', m1, r1]), 'docker rm');
});

test('berth CLI: static, random, 127.0.0.1::, udp, a range and -P with --expose', async (t) => {
  t.timeout(180_000);
  const share = useDaemon(t, shared);
  const d = share.d;
  const [st, rnd, lop, udp, rng, all] = ['st', 'rnd', 'lo', 'udp', 'rng', 'all'].map((n) => share.name(n));
  const names = [st, rnd, lop, udp, rng, all];
  const [lo, hi] = ephemeral();

  // Static: -p X:80.
  const [sport] = await freePorts();
  await ok(t, d.berth(['run', '-d', '--name', st, '-p', `${sport}:80`, 'busybox', ...httpd('static-ok')]), 'run st');
  t.is(await httpGet(sport), 'static-ok\n');
  t.is((await ok(t, d.berth(['port', st]), 'port st')).stdout, `80/tcp -> 0.0.0.0:${sport}\n`);
  t.is((await ok(t, d.berth(['port', st, '80']), 'port st 80')).stdout, `0.0.0.0:${sport}\n`);
  const addr = hostAddress();
  t.is(await httpGet(sport, addr), 'static-ok\n', `through the host's address ${addr}`);

  // Random: -p 80.
  await ok(t, d.berth(['run', '-d', '--name', rnd, '-p', '80', 'busybox', ...httpd('random-ok')]), 'run rnd');
  const rline = (await ok(t, d.berth(['port', rnd, '80/tcp']), 'port rnd')).stdout;
  t.regex(rline, /^0\.0\.0\.0:\d+\n$/);
  const rport = hostPortOf(rline);
  t.true(rport >= lo && rport <= hi, `${rport} in ${lo}-${hi}`);
  t.not(rport, sport);
  t.is(await httpGet(rport), 'random-ok\n');

  // Loopback only, random port: -p 127.0.0.1::6379.
  await ok(t, d.berth(['run', '-d', '--name', lop, '-p', '127.0.0.1::6379', 'redis', ...REDIS]), 'run lo');
  const lline = (await ok(t, d.berth(['port', lop]), 'port lo')).stdout;
  t.regex(lline, /^6379\/tcp -> 127\.0\.0\.1:\d+\n$/);
  const lport = hostPortOf(lline.split(' -> ')[1]);
  await redisReady(lport);
  t.is(await redisCli(lport, 'set', 'where', 'loopback'), 'OK');
  t.is(await redisCli(lport, 'get', 'where'), 'loopback');
  const lrules = await dnatRules(d, lport);
  t.is(lrules.length, 1);
  t.regex(lrules[0], /-d 127\.0\.0\.1\/32 /, 'the rule matches only 127.0.0.1');
  t.is(await connectOutcome(lport, addr), 'ECONNREFUSED', `not published on ${addr}`);

  // UDP: memcached's UDP protocol on 11211/udp, a random host port.
  await ok(t, d.berth(['run', '-d', '--name', udp, '-p', '11211/udp', 'memcached', 'memcached', '-u', 'nobody', '-U', '11211', '-p', '0']), 'run udp');
  const uline = (await ok(t, d.berth(['port', udp, '11211/udp']), 'port udp')).stdout;
  const uport = hostPortOf(uline);
  t.true(uport >= lo && uport <= hi);
  t.is(await canBindUdp(uport), 'EADDRINUSE', 'berthd holds the udp port');
  t.regex(await eventually(() => memcachedUdp(uport, 'version\r\n'), { timeout: 15_000, interval: 150, message: 'a memcached UDP reply' }), /^VERSION \d+\.\d+\.\d+\r\n$/, 'a datagram to 127.0.0.1 reaches memcached and its reply comes back');
  t.regex((await rulesTo(d, await ipOf(d, udp)))[0] ?? '', new RegExp(` -p udp .*--dport ${uport} `));
  t.is((await d.berth(['port', udp, '11211'])).code, 1, 'no 11211/tcp is published');

  // A range: -p HP1-HP3:7001-7003, three httpds.
  const hps = await freePorts(3);
  const three = ['sh', '-c', 'for p in 7001 7002 7003; do mkdir -p /w$p && echo range-$p > /w$p/index.html && httpd -p $p -h /w$p; done; exec sleep 1000'];
  await ok(t, d.berth(['run', '-d', '--name', rng, '-p', `${hps[0]}-${hps[2]}:7001-7003`, 'busybox', ...three]), 'run rng');
  t.is(
    (await ok(t, d.berth(['port', rng]), 'port rng')).stdout,
    `7001/tcp -> 0.0.0.0:${hps[0]}\n7002/tcp -> 0.0.0.0:${hps[1]}\n7003/tcp -> 0.0.0.0:${hps[2]}\n`,
  );
  for (let i = 0; i < 3; i++) t.is(await httpGet(hps[i]), `range-${7001 + i}\n`);

  // -P with --expose: every exposed port gets a random host port.
  await ok(t, d.berth(['run', '-d', '--name', all, '-P', '--expose', '7100', '--expose', '7200/udp', 'busybox', ...httpd('all-ok', 7100)]), 'run all');
  const aout = (await ok(t, d.berth(['port', all]), 'port all')).stdout;
  const m = /^7100\/tcp -> 0\.0\.0\.0:(\d+)\n7200\/udp -> 0\.0\.0\.0:(\d+)\n$/.exec(aout);
  t.truthy(m, aout);
  const [a1, a2] = [Number(m?.[1]), Number(m?.[2])];
  t.true(a1 >= lo && a1 <= hi && a2 >= lo && a2 <= hi);
  t.is(await httpGet(a1), 'all-ok\n');

  // ps PORTS and inspect.
  const ps = await ok(t, d.berth(['ps', '--format', '{{.Names}}|{{.Ports}}']), 'ps');
  const row = (n: string) => ps.stdout.split('\n').find((l) => l.startsWith(`${n}|`))?.slice(n.length + 1);
  t.is(row(st), `0.0.0.0:${sport}->80/tcp`, ps.stdout);
  t.is(row(rnd), `0.0.0.0:${rport}->80/tcp`);
  t.is(row(lop), `127.0.0.1:${lport}->6379/tcp`);
  t.is(row(udp), `0.0.0.0:${uport}->11211/udp`);
  t.is(row(rng), hps.map((h, i) => `0.0.0.0:${h}->${7001 + i}/tcp`).join(', '));
  t.is(row(all), `0.0.0.0:${a1}->7100/tcp, 0.0.0.0:${a2}->7200/udp`);
  const plain = await ok(t, d.berth(['ps']), 'ps table');
  t.regex(plain.stdout.split('\n')[0], /\bPORTS\b/);
  t.true(plain.stdout.includes(`0.0.0.0:${sport}->80/tcp`), plain.stdout);

  const insp = JSON.parse((await ok(t, d.berth(['inspect', rng, lop, all]), 'inspect')).stdout);
  t.deepEqual(insp[0].NetworkSettings.Ports, {
    '7001/tcp': [{ HostIp: '0.0.0.0', HostPort: String(hps[0]) }],
    '7002/tcp': [{ HostIp: '0.0.0.0', HostPort: String(hps[1]) }],
    '7003/tcp': [{ HostIp: '0.0.0.0', HostPort: String(hps[2]) }],
  });
  t.deepEqual(insp[1].NetworkSettings.Ports, { '6379/tcp': [{ HostIp: '127.0.0.1', HostPort: String(lport) }] });
  t.deepEqual(insp[2].NetworkSettings.Ports, {
    '7100/tcp': [{ HostIp: '0.0.0.0', HostPort: String(a1) }],
    '7200/udp': [{ HostIp: '0.0.0.0', HostPort: String(a2) }],
  });
  const ips = insp.map((c: { NetworkSettings: { IPAddress: string } }) => c.NetworkSettings.IPAddress);
  for (const ip of ips) t.true(ip.startsWith(subnetPrefix(d)), `${ip} on the daemon's subnet`);
  t.is(new Set(ips).size, 3, 'each container has its own address');

  // Every published port is one DNAT rule: st 1, rnd 1, lo 1, udp 1, rng 3, all 2.
  const mine = await Promise.all(names.map((n) => ipOf(d, n)));
  t.is((await rulesTo(d, ...mine)).length, 9, (await rulesTo(d, ...mine)).join('\n'));

  await ok(t, d.berth(['stop', '-t', '1', ...names]), 'stop');
  t.deepEqual(await rulesTo(d, ...mine), [], 'stopped containers leave no DNAT rule');
  for (const p of [sport, ...hps]) t.is(await canBindTcp(p), true, `${p} released`);
  t.is(await canBindUdp(uport), true, `${uport}/udp released`);
  const after = JSON.parse((await ok(t, d.berth(['inspect', st]), 'inspect st')).stdout);
  t.deepEqual(after[0].NetworkSettings.Ports, {}, 'a stopped container publishes nothing');
});

test('a port is owned: a host process holding it fails the run; a published one cannot be bound; stop frees it', async (t) => {
  t.timeout(120_000);
  const share = useDaemon(t, shared);
  const d = share.d;
  const [busy, brief, killed, pool, owner, secondName, udpsame] = ['busy', 'brief', 'killed', 'pool', 'owner', 'second', 'udpsame'].map((n) => share.name(n));
  const [port] = await freePorts();

  for (const [holdOn, publish] of [
    ['127.0.0.1', `${port}:80`],
    ['0.0.0.0', `${port}:80`],
    ['0.0.0.0', `127.0.0.1:${port}:80`],
  ] as const) {
    const holder = net.createServer((s) => s.destroy());
    await new Promise<void>((res, rej) => holder.once('error', rej).listen({ port, host: holdOn, exclusive: true }, res));
    try {
      const r = await d.berth(['run', '-d', '--name', busy, '-p', publish, 'busybox', ...httpd('never')]);
      t.is(r.code, 125, `-p ${publish} while a host process holds ${holdOn}:${port}: ${r.stdout}${r.stderr}`);
      t.regex(r.stderr, new RegExp(`port ${port}/tcp .*is in use by another process`));
      t.regex(r.stderr, /^hint: .+/m);
      t.deepEqual(await dnatRules(d, port), [], 'no DNAT rule for a port the run did not get');
      t.is((await d.berth(['ps', '-q', '--filter', `name=${busy}`])).stdout, '', 'nothing runs');
    } finally {
      await new Promise((res) => holder.close(res));
      await d.berth(['rm', '-f', busy]);
    }
  }

  // A run that ends by itself, or is killed, gives its port back too.
  await ok(t, d.berth(['run', '-d', '--name', brief, '-p', `${port}:80`, 'busybox', 'sh', '-c', 'sleep 1']), 'run brief');
  t.is((await d.berth(['wait', brief])).stdout.trim(), '0');
  t.deepEqual(await dnatRules(d, port), [], 'an exited container leaves no rule');
  t.is(await canBindTcp(port), true, 'an exited container holds no port');
  await ok(t, d.berth(['run', '-d', '--name', killed, '-p', `${port}:80`, 'busybox', 'sleep', '1000']), 'run killed');
  t.is(await canBindTcp(port), 'EADDRINUSE');
  await ok(t, d.berth(['kill', killed]), 'kill');
  await d.berth(['wait', killed]);
  await eventually(async () => (await dnatRules(d, port)).length === 0 && (await canBindTcp(port)) === true, { timeout: 10_000, interval: 150, message: 'the killed container to give its port back' });
  t.pass('a killed container gives its port back');
  await ok(t, d.berth(['rm', '-f', brief, killed]), 'rm');

  // A host range is a pool: the run takes the first port of it nobody holds.
  const [a, b, c] = await freePorts(3);
  const holdA = net.createServer((s) => s.destroy());
  await new Promise<void>((res, rej) => holdA.once('error', rej).listen({ port: a, host: '127.0.0.1', exclusive: true }, res));
  try {
    await ok(t, d.berth(['run', '-d', '--name', pool, '-p', `${a}-${c}:80`, 'busybox', ...httpd('pool-ok')]), 'run pool');
    t.is((await ok(t, d.berth(['port', pool, '80']), 'port pool')).stdout, `0.0.0.0:${b}\n`, `${a} is held by a host process: ${b} is next`);
    t.is(await httpGet(b), 'pool-ok\n');
    t.deepEqual(await dnatRules(d, a), []);
    t.is((await dnatRules(d, b)).length, 1);
  } finally {
    await new Promise((res) => holdA.close(res));
  }
  await ok(t, d.berth(['rm', '-f', pool]), 'rm pool');
  t.deepEqual(await dnatRules(d, b), []);

  // Free now: the container takes it, and then nobody else can.
  await ok(t, d.berth(['run', '-d', '--name', owner, '-p', `${port}:80`, 'busybox', ...httpd('owner-ok')]), 'run owner');
  t.is(await httpGet(port), 'owner-ok\n');
  t.is(await canBindTcp(port, '0.0.0.0'), 'EADDRINUSE');
  t.is(await canBindTcp(port, '127.0.0.1'), 'EADDRINUSE');
  const second = await d.berth(['run', '-d', '--name', secondName, '-p', `127.0.0.1:${port}:80`, 'busybox', ...httpd('second')]);
  t.is(second.code, 125, second.stderr);
  t.regex(second.stderr, new RegExp(`port ${port}/tcp is published by container ${owner}\\b`));
  t.regex(second.stderr, /^hint: .+/m);
  t.is((await dnatRules(d, port)).length, 1, 'still the owner\'s rule only');
  t.is(await httpGet(port), 'owner-ok\n', 'the owner still answers');
  // A udp publication of the same number is another port, and free.
  await ok(t, d.berth(['rm', '-f', secondName]), 'rm second');
  await ok(t, d.berth(['run', '-d', '--name', udpsame, '-p', `${port}:80/udp`, 'busybox', 'sleep', '1000']), 'same number, udp');
  t.is((await dnatRules(d, port)).length, 2);

  await ok(t, d.berth(['stop', '-t', '1', owner, udpsame]), 'stop');
  t.is(await canBindTcp(port, '0.0.0.0'), true, 'released at stop');
  t.is(await canBindTcp(port, '127.0.0.1'), true);
  t.deepEqual(await dnatRules(d, port), []);
  t.is(await connectOutcome(port, '127.0.0.1'), 'ECONNREFUSED', 'nothing answers on the freed port');
  // And it can be published again after the stop, and across a restart.
  await ok(t, d.berth(['start', owner]), 'start owner again');
  t.is(await httpGet(port), 'owner-ok\n');
  await ok(t, d.berth(['restart', '-t', '1', owner]), 'restart owner');
  t.is((await ok(t, d.berth(['port', owner]), 'port owner')).stdout, `80/tcp -> 0.0.0.0:${port}\n`);
  t.is(await httpGet(port), 'owner-ok\n');
  t.is((await dnatRules(d, port)).length, 1);
  t.is(await canBindTcp(port), 'EADDRINUSE');
  await ok(t, d.berth(['rm', '-f', owner, udpsame]), 'rm');
  t.deepEqual(await dnatRules(d, port), []);
  t.is(await canBindTcp(port), true);
});

// Its own daemon: the twenty runs are also busybox's first use on a fresh root, side by side.
// Serial: twenty CLI runs at once are the heaviest moment of the file; it runs alone first.
test.serial('twenty concurrent runs for one host port: one wins, nineteen are told who holds it', async (t) => {
  t.timeout(300_000);
  const d = await TestDaemon.start({ images: [] });
  t.teardown(() => d.stop());
  const [port] = await freePorts();
  const N = 20;
  const names = Array.from({ length: N }, (_, i) => `race${i}`);
  const results = await Promise.all(names.map((n) => d.berth(['run', '-d', '--name', n, '-p', `${port}:80`, 'busybox', ...httpd(n)])));
  const winners = names.filter((_, i) => results[i].code === 0);
  t.is(winners.length, 1, results.map((r, i) => `${names[i]}: ${r.code} ${r.stderr.trim()}`).join('\n'));
  const winner = winners[0];
  for (const [i, r] of results.entries()) {
    if (names[i] === winner) continue;
    t.is(r.code, 125, `${names[i]}: ${r.stderr}`);
    t.regex(r.stderr, new RegExp(`port ${port}/tcp is published by container ${winner}\\b`), names[i]);
    t.regex(r.stderr, /^hint: .+/m);
  }
  t.is((await dnatRules(d, port)).length, 1, (await dnatRules(d)).join('\n'));
  t.is(await httpGet(port), `${winner}\n`, 'the winner answers on the port');
  const running = (await ok(t, d.berth(['ps', '--format', '{{.Names}}']), 'ps')).stdout.trim().split('\n');
  t.deepEqual(running, [winner]);

  await ok(t, d.berth(['rm', '-f', ...names]), 'rm all');
  t.is((await d.berth(['ps', '-aq'])).stdout, '');
  t.deepEqual(await dnatRules(d, port), []);
  t.is(await canBindTcp(port), true, 'released');
});

test('bad -p values fail with a message and a hint, run nothing and add no rule', async (t) => {
  t.timeout(120_000);
  const share = useDaemon(t, shared);
  const d = share.d;
  // (`-p 0:80` is not here: host port 0 is Docker's random port, see docker-security.test.ts.)
  const cases: string[][] = [
    ['-p', '65536:80'],
    ['-p', 'abc'],
    ['-p', '80:80:80:80'],
    // Not an address of this host: the daemon refuses it; no packet is ever sent there.
    ['-p', '10.99.99.99:8080:80'],
    ['-p', '8000-8002:80-81'],
    ['--network', 'none', '-p', '80'],
    ['-p', '80/sctp'],
    ['-p', '8080:0'],
  ];
  // The host ports these ask for; no other test of this file publishes them. (A run that
  // asks for a random port could only add a rule for a container of its own, and none is made.)
  const asked = [80, 8080, 8000, 8001, 8002];
  const rulesForAsked = async () => (await Promise.all(asked.map((p) => dnatRules(d, p)))).flat();
  for (const [k, args] of cases.entries()) {
    const name = share.name(`bad${k}`);
    const r = await d.berth(['run', '-d', '--name', name, ...args, 'busybox', 'sleep', '1000']);
    const what = `berth run -d ${args.join(' ')}`;
    t.not(r.code, 0, what);
    t.regex(r.stderr, /^berth: .+/m, `${what}: ${r.stderr}`);
    t.regex(r.stderr, /^hint: .+/m, `${what}: ${r.stderr}`);
    t.is(r.stdout, '', what);
    t.is((await d.berth(['ps', '-aq', '--filter', `name=${name}`])).stdout, '', `${what} creates nothing`);
    t.deepEqual(await rulesForAsked(), [], `${what} adds no rule`);
  }
  // The docker CLI sends the same bodies; the daemon's own checks answer it.
  const dk = await d.docker(['run', '-d', '--name', share.name('dk'), '-p', '10.99.99.99:8080:80', 'busybox', 'sleep', '1000']);
  t.not(dk.code, 0);
  t.regex(dk.stderr, /10\.99\.99\.99 is not an address of this host/);
  const none = await d.docker(['run', '-d', '--name', share.name('dknone'), '--network', 'none', '-p', '80', 'busybox', 'sleep', '1000']);
  t.not(none.code, 0);
  t.regex(none.stderr, /--network none/);
  t.is((await d.berth(['ps', '-aq', '--filter', `name=-${share.tag}`])).stdout, '', 'no container of this test exists');
  t.deepEqual(await rulesForAsked(), []);
});

// Its own daemon: the test SIGTERMs berthd and starts it again.
test('berthd restarted while a container publishes: the rule stays, the port stays held, nobody else gets it', async (t) => {
  t.timeout(120_000);
  const d = await TestDaemon.start();
  t.teardown(() => d.stop());
  const [port] = await freePorts();
  await ok(t, d.berth(['run', '-d', '--name', 'keep', '-p', `${port}:80`, 'busybox', ...httpd('kept')]), 'run keep');
  t.is(await httpGet(port), 'kept\n');
  await d.terminate(); // live restore: the container keeps running, and so does its forwarding
  t.is(await httpGet(port), 'kept\n', 'forwarded by the kernel while berthd is down');
  await d.restart();
  t.is((await dnatRules(d, port)).length, 1, 'the rule is restored once, not twice');
  t.is(await canBindTcp(port), 'EADDRINUSE', 'the restarted berthd holds the port again');
  const other = await d.berth(['run', '-d', '--name', 'other', '-p', `${port}:80`, 'busybox', ...httpd('other')]);
  t.is(other.code, 125, other.stderr);
  t.regex(other.stderr, new RegExp(`port ${port}/tcp is published by container keep`));
  t.is(await httpGet(port), 'kept\n');
  await ok(t, d.berth(['rm', '-f', 'keep', 'other']), 'rm');
  t.deepEqual(await dnatRules(d, port), []);
  t.is(await canBindTcp(port), true);
});

/** GET / from inside container `c`, to host:port (busybox nc; the host's busybox wget segfaults). */
function getFrom(d: TestDaemon, c: string, host: string, port: number): Promise<Result> {
  return d.berth(['exec', c, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`]);
}

test('containers reach another container\'s published port through the gateway and the host\'s address', async (t) => {
  t.timeout(120_000);
  const share = useDaemon(t, shared);
  const d = share.d;
  const [srv, cl] = [share.name('srv'), share.name('cl')];
  const [port] = await freePorts();
  await ok(t, d.berth(['run', '-d', '--name', srv, '-p', `${port}:80`, 'busybox', ...httpd('srv-ok')]), 'run srv');
  await ok(t, d.berth(['run', '-d', '--name', cl, 'busybox', 'sleep', '1000']), 'run cl');
  t.is(await httpGet(port), 'srv-ok\n');
  const gw = JSON.parse((await ok(t, d.berth(['inspect', srv]), 'inspect')).stdout)[0].NetworkSettings.Gateway;
  t.is(gw, subnetPrefix(d) + '1');
  for (const host of [gw, hostAddress()].filter((h): h is string => !!h)) {
    const r = await getFrom(d, cl, host, port);
    t.is(r.code, 0, `cl -> ${host}:${port}: ${r.stderr}`);
    t.regex(r.stdout, /^HTTP\/1\.[01] 200 .*\r\n[\s\S]*\r\n\r\nsrv-ok\n$/, host);
  }
  await ok(t, d.berth(['rm', '-f', srv, cl]), 'rm');
});

// Hairpin: the host end of the container's veth must be in hairpin mode (links.ts), since
// the DNATed packet leaves by the bridge port it came in on.
test('hairpin: a container reaches its own published port through the gateway', async (t) => {
  t.timeout(120_000);
  const share = useDaemon(t, shared);
  const d = share.d;
  const self = share.name('self');
  const [port] = await freePorts();
  await ok(t, d.berth(['run', '-d', '--name', self, '-p', `${port}:80`, 'busybox', ...httpd('self-ok')]), 'run self');
  t.is(await httpGet(port), 'self-ok\n');
  const gw = JSON.parse((await ok(t, d.berth(['inspect', self]), 'inspect')).stdout)[0].NetworkSettings.Gateway;
  const r = await getFrom(d, self, gw, port);
  t.is(r.code, 0, `self -> ${gw}:${port}: ${r.stderr}`);
  t.regex(r.stdout, /\r\n\r\nself-ok\n$/);
});
