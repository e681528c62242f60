import * as os from 'node:os';
import { spawnSync } from 'node:child_process';
import { Transport } from '../src/client/transport';
import { Row, median, report } from './lib';
import { BenchDaemon } from './daemon';

const NET = 'benchnet';
const TARGET = 0.95;

/**
 * User-defined networks, on a benchmark daemon of its own (its own root, bridge, subnet
 * and chains; its user network's bridge is claimed by its root):
 *  1. redis-benchmark SET container to container: a Redis server and a redis-benchmark
 *     client (host binaries vendored into an image), both on a user-defined network, against
 *     the same pair on the default bridge, alternating. Target: user >= 0.95x bridge.
 *  2. 10,000 DNS lookups (A) of a container's name through 127.0.0.11, one at a time, from
 *     inside a container's network namespace (a Node client entered with nsenter): p50 and
 *     p99. Goal: p99 under 2 ms.
 *  3. `network connect` of a running container (POST /networks/{id}/connect, a veth
 *     hot-plugged into its namespace), each followed by a disconnect: the median.
 * Only the benchmark's own containers and loopback are contacted.
 */
export async function benchUserNetworks(work: string, rounds = 3): Promise<void> {
  const d = await BenchDaemon.start(work);
  const made: string[] = [];
  try {
    console.log(`\n# user-defined networks (bench daemon: bridge ${d.network.bridge}, subnet ${d.network.subnet}, chains *${d.network.suffix})`);
    console.log(`  load average at start: ${loadavg()}`);
    d.berth(['image', 'vendor', 'redis', '/usr/bin/redis-server', '/usr/bin/redis-cli', '/usr/bin/redis-benchmark']);
    d.berth(['network', 'create', NET]);
    const server = ['redis', 'redis-server', '--protected-mode', 'no', '--save', '', '--appendonly', 'no'];
    const start = (name: string, args: string[]) => {
      d.berth(['run', '-d', '--name', name, ...args]);
      made.push(name);
    };
    start('bn-srv-bridge', server);
    start('bn-cli-bridge', ['redis', 'sleep', '3600']);
    start('bn-srv-user', ['--network', NET, ...server]);
    start('bn-cli-user', ['--network', NET, 'redis', 'sleep', '3600']);
    const bridgeIp = d.berth(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'bn-srv-bridge']).trim();
    const userIp = d.berth(['inspect', '-f', `{{.NetworkSettings.Networks.${NET}.IPAddress}}`, 'bn-srv-user']).trim();
    const paths = [
      { what: `default bridge -> ${bridgeIp}`, client: 'bn-cli-bridge', ip: bridgeIp },
      { what: `user network -> ${userIp}`, client: 'bn-cli-user', ip: userIp },
    ];
    for (const p of paths) waitPong(d, p.client, p.ip);

    // 1. SET throughput, container to container
    const bench = (p: (typeof paths)[number], n: number) => setRate(d, p.client, p.ip, n);
    for (const p of paths) bench(p, 20_000); // warm-up, unmeasured
    const cal = bench(paths[0], 50_000);
    const n = Math.max(50_000, Math.min(1_000_000, Math.round((5 * cal) / 10_000) * 10_000));
    const set: Row[] = paths.map((p) => ({ what: p.what, ms: [] }));
    for (let i = 0; i < rounds; i++) {
      for (const k of i % 2 ? [1, 0] : [0, 1]) set[k].ms.push(bench(paths[k], n));
    }
    report(`redis-benchmark -t set -c 50 -n ${n} -q, client and server in containers`, set, `user network >= ${TARGET}x default bridge`, 'req/s');
    for (const r of set) console.log(`  SET runs, ${r.what}: ${r.ms.map((x) => x.toFixed(0)).join(', ')}`);
    const ratio = median(set[1].ms) / median(set[0].ms);
    console.log(`  user/bridge: ${ratio.toFixed(2)}x; target ${TARGET}x: ${ratio >= TARGET ? 'met' : 'missed'}`);

    // 2. DNS lookups of a container name through 127.0.0.11
    const pid = Number(d.berth(['inspect', '-f', '{{.State.Pid}}', 'bn-cli-user']).trim());
    const lat = dnsLatencies(pid, 'bn-srv-user', 10_000, userIp);
    const pct = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))];
    console.log(`\n## 10,000 DNS lookups (A bn-srv-user) via 127.0.0.11 from inside a container, one at a time`);
    console.log(`  p50 ${pct(0.5).toFixed(3)} ms  p90 ${pct(0.9).toFixed(3)} ms  p99 ${pct(0.99).toFixed(3)} ms  max ${lat[lat.length - 1].toFixed(3)} ms`);
    console.log(`  goal p99 < 2 ms: ${pct(0.99) < 2 ? 'met' : 'missed'}`);

    // 3. network connect of a running container
    const t = new Transport(d.socket);
    await t.json('POST', '/networks/create', { body: { Name: 'benchplug' } });
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t0 = process.hrtime.bigint();
      await t.json('POST', '/networks/benchplug/connect', { body: { Container: 'bn-cli-bridge' } });
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await t.json('POST', '/networks/benchplug/disconnect', { body: { Container: 'bn-cli-bridge' } });
    }
    report('network connect of a running container (POST /networks/{id}/connect; a disconnect between)', [{ what: 'connect', ms: times }]);
    console.log(`  runs: ${times.map((x) => x.toFixed(0)).join(', ')} ms`);
    console.log(`  load average at end: ${loadavg()}`);
  } finally {
    for (const name of made) {
      try {
        d.berth(['rm', '-f', name]);
      } catch (e) {
        console.error(`  could not remove ${name}: ${(e as Error).message}`);
      }
    }
    for (const n of ['benchplug', NET]) {
      try {
        d.berth(['network', 'rm', n]);
      } catch {
        // not made
      }
    }
    await d.stop();
  }
}

function loadavg(): string {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ') + ` on ${os.cpus().length} CPUs`;
}

function waitPong(d: BenchDaemon, client: string, ip: string): void {
  for (let i = 0; i < 100; i++) {
    try {
      if (d.berth(['exec', client, 'redis-cli', '-h', ip, 'ping']).trim() === 'PONG') return;
    } catch {
      // not up yet
    }
    spawnSync('sleep', ['0.1']);
  }
  throw new Error(`redis at ${ip} did not answer from ${client}`);
}

/** SET requests per second from one `redis-benchmark -q` run inside `client`. */
function setRate(d: BenchDaemon, client: string, ip: string, n: number): number {
  const out = d.berth(['exec', client, 'redis-benchmark', '-h', ip, '-t', 'set', '-c', '50', '-n', String(n), '-q']).replace(/\r/g, '\n');
  const m = /^SET:\s*([\d.]+)\s*requests per second/m.exec(out);
  if (!m) throw new Error(`no SET rate in redis-benchmark output: ${out}`);
  return Number(m[1]);
}

/** `count` A lookups of `name`, one after another, from the network namespace of `pid`; sorted latencies in ms. */
function dnsLatencies(pid: number, name: string, count: number, want: string): number[] {
  const script = `
    const packet = require(${JSON.stringify(require.resolve('dns-packet'))});
    const s = require('node:dgram').createSocket('udp4');
    const out = [];
    let i = 0, t0 = 0n;
    const ask = () => {
      const q = packet.encode({ type: 'query', id: i & 0xffff, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: ${JSON.stringify(name)} }] });
      t0 = process.hrtime.bigint();
      s.send(q, 53, '127.0.0.11');
    };
    s.on('message', (m) => {
      out.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const a = packet.decode(m);
      if (!a.answers.some((x) => x.data === ${JSON.stringify(want)})) { console.error('wrong answer ' + JSON.stringify(a.answers)); process.exit(3); }
      if (++i === ${count}) { console.log(JSON.stringify(out)); process.exit(0); }
      ask();
    });
    ask();`;
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e', script], { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`dns lookups failed (${r.status}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as number[]).sort((a, b) => a - b);
}
