import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Row, median, report, sh, timeAsync, timeIt } from './lib';
import { BenchDaemon } from './daemon';
import { Transport } from '../src/client/transport';
import { RemoteVolumeService } from '../src/client/volumes';

const MiB = 1 << 20;

/**
 * Volumes, each side by side with its reference in one run:
 *  1. snapshot and clone of a 10 MiB and a 4 GiB volume (default driver), through the CLI
 *     and through the daemon alone (the client in-process, without the Node CLI's start-up);
 *  2. `berth volume export` of a ~500 MB volume of many files against `tar -cf` of its directory;
 *  3. redis-benchmark SET inside a container with its data on a berth volume against a bind
 *     mount of a plain host directory (same image, same flags).
 */
export async function benchVolumes(work: string, rounds = 7): Promise<void> {
  const d = await BenchDaemon.start(work);
  const vols = new RemoteVolumeService(new Transport(d.socket));
  const created: string[] = [];
  try {
    await snapshotClone(d, vols, work, rounds, created);
    await exportThroughput(d, vols, work, created);
    await redisThroughput(d, vols, work, created);
  } finally {
    for (const c of ['bench-redis-vol', 'bench-redis-bind']) {
      try {
        d.berth(['rm', '-f', c]);
      } catch {
        /* not created */
      }
    }
    // the daemon's root is the benchmark's own: whatever volume is left is one of ours
    try {
      const left = (await vols.list()).Volumes.map((v) => v.Name);
      for (const v of new Set([...created, ...left])) await vols.remove(v, { force: true }).catch(() => undefined);
    } catch {
      /* the daemon is gone; work/ is removed by run.ts */
    }
    await d.stop();
  }
}

function mountpoint(d: BenchDaemon, vol: string): string {
  return JSON.parse(d.berth(['volume', 'inspect', vol]))[0].Mountpoint;
}

async function snapshotClone(d: BenchDaemon, vols: RemoteVolumeService, work: string, rounds: number, created: string[]): Promise<void> {
  const sizes = [
    { label: '10 MiB', vol: 'bench-small', mib: 10 },
    { label: '4 GiB', vol: 'bench-big', mib: 4096 },
  ];
  for (const s of sizes) {
    d.berth(['volume', 'create', s.vol]);
    created.push(s.vol);
    const mp = mountpoint(d, s.vol);
    const t = timeIt(() => sh('dd', ['if=/dev/urandom', `of=${path.join(mp, 'data')}`, 'bs=1M', `count=${s.mib}`, 'status=none']));
    sh('sync', []);
    console.log(`  filled ${s.vol} with ${s.label} of random data in ${(t / 1000).toFixed(1)} s`);
  }
  const rows = {
    snapCli: sizes.map((s) => ({ what: `berth volume snapshot (${s.label})`, ms: [] as number[] })),
    snapApi: sizes.map((s) => ({ what: `daemon snapshot call (${s.label})`, ms: [] as number[] })),
    cloneCli: sizes.map((s) => ({ what: `berth volume clone (${s.label})`, ms: [] as number[] })),
    cloneApi: sizes.map((s) => ({ what: `daemon clone call (${s.label})`, ms: [] as number[] })),
  };
  for (let i = 0; i < rounds; i++) {
    for (const [k, s] of sizes.entries()) {
      // through the CLI, end to end
      rows.snapCli[k].ms.push(timeIt(() => d.berth(['volume', 'snapshot', s.vol, `c${i}`])));
      await vols.removeSnapshot(s.vol, `c${i}`);
      rows.cloneCli[k].ms.push(timeIt(() => d.berth(['volume', 'clone', s.vol, `${s.vol}-c${i}`])));
      created.push(`${s.vol}-c${i}`);
      await vols.remove(`${s.vol}-c${i}`, { force: true });
      // the daemon call alone
      rows.snapApi[k].ms.push(await timeAsync(() => vols.snapshot(s.vol, `a${i}`)));
      await vols.removeSnapshot(s.vol, `a${i}`);
      rows.cloneApi[k].ms.push(await timeAsync(() => vols.clone(s.vol, undefined, `${s.vol}-a${i}`)));
      created.push(`${s.vol}-a${i}`);
      await vols.remove(`${s.vol}-a${i}`, { force: true });
    }
  }
  const log = fs.readFileSync(path.join(work, 'daemon.log'), 'utf8');
  console.log(`  volume driver: ${/volume driver (\S+)/.exec(log)?.[1] ?? 'unknown'} (volumes report 'local' to Docker clients)`);
  const target = '4 GiB within 2x of 10 MiB, median under 50 ms';
  report('volume snapshot: daemon call alone (in-process client)', rows.snapApi, target);
  report('volume snapshot: CLI end to end', rows.snapCli, target + ' (the daemon-call rows; the CLI adds Node start-up)');
  report('volume clone: daemon call alone (in-process client)', rows.cloneApi, target);
  report('volume clone: CLI end to end', rows.cloneCli, target + ' (the daemon-call rows; the CLI adds Node start-up)');
  for (const s of sizes) {
    try {
      await vols.remove(s.vol, { force: true });
    } catch {
      /* removed in finally */
    }
  }
}

/** Many small files in nested dirs plus some large ones, ~mb MB in all. */
export function fillTree(dir: string, mb: number): { files: number; bytes: number } {
  let bytes = 0;
  let files = 0;
  for (let i = 0; bytes < mb * 0.4e6; i++, files++) {
    const sub = path.join(dir, 'lib', `pkg${i % 50}`, `sub${i % 7}`);
    fs.mkdirSync(sub, { recursive: true });
    const size = 256 + ((i * 7919) % 40_000);
    fs.writeFileSync(path.join(sub, `file${i}`), randomBytes(size));
    bytes += size;
  }
  fs.mkdirSync(path.join(dir, 'big'), { recursive: true });
  for (let i = 0; bytes < mb * 1e6; i++, files++) {
    const size = i % 2 ? 50e6 : 8e6;
    fs.writeFileSync(path.join(dir, 'big', `blob${i}`), randomBytes(size));
    bytes += size;
  }
  return { files, bytes };
}

async function exportThroughput(d: BenchDaemon, vols: RemoteVolumeService, work: string, created: string[], rounds = 3): Promise<void> {
  const vol = 'bench-export';
  d.berth(['volume', 'create', vol]);
  created.push(vol);
  const mp = mountpoint(d, vol);
  const { files, bytes } = fillTree(mp, 500);
  sh('sync', []);
  const rows: Row[] = [
    { what: 'tar -C <mountpoint> -cf (reference)', ms: [] },
    { what: 'berth volume export -o', ms: [] },
  ];
  const out = path.join(work, 'export.tar');
  let tarSize = 0;
  let exportSize = 0;
  // one unmeasured pass of each warms the page cache equally
  sh('tar', ['-C', mp, '-cf', out, '.']);
  fs.rmSync(out, { force: true });
  for (let i = 0; i < rounds; i++) {
    rows[0].ms.push(timeIt(() => sh('tar', ['-C', mp, '-cf', out, '.'])));
    tarSize = fs.statSync(out).size;
    fs.rmSync(out, { force: true });
    rows[1].ms.push(timeIt(() => d.berth(['volume', 'export', vol, '-o', out])));
    exportSize = fs.statSync(out).size;
    fs.rmSync(out, { force: true });
  }
  report(`export a ${(bytes / 1e6).toFixed(0)} MB volume of ${files} files: time`, rows);
  const rate = (r: Row): Row => ({ what: r.what, ms: r.ms.map((ms) => bytes / 1e6 / (ms / 1000)) });
  report(`export a ${(bytes / 1e6).toFixed(0)} MB volume of ${files} files: throughput (data bytes / time)`, rows.map(rate), 'berth export >= 0.8x of tar', 'MB/s');
  console.log(`  archive sizes: tar ${(tarSize / 1e6).toFixed(1)} MB, berth export ${(exportSize / 1e6).toFixed(1)} MB`);
  await vols.remove(vol, { force: true });
}

async function redisThroughput(d: BenchDaemon, vols: RemoteVolumeService, work: string, created: string[], rounds = 7): Promise<void> {
  d.berth(['image', 'vendor', 'redis', '/usr/bin/redis-server', '/usr/bin/redis-cli', '/usr/bin/redis-benchmark']);
  const vol = 'bench-redis';
  d.berth(['volume', 'create', vol]);
  created.push(vol);
  const hostDir = path.join(work, 'redis-host');
  fs.mkdirSync(hostDir);
  const flags = ['redis-server', '--dir', '/data', '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''];
  const cases = [
    { name: 'bench-redis-bind', mount: `${hostDir}:/data`, what: 'redis SET, /data a host dir bind mount' },
    { name: 'bench-redis-vol', mount: `${vol}:/data`, what: 'redis SET, /data a berth volume' },
  ];
  for (const c of cases) {
    d.berth(['run', '-d', '--name', c.name, '-v', c.mount, 'redis', ...flags]);
    for (let i = 0; ; i++) {
      try {
        if (d.berth(['exec', c.name, 'redis-cli', 'ping']).includes('PONG')) break;
      } catch (e) {
        if (i > 50) throw e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const rows: Row[] = cases.map((c) => ({ what: c.what, ms: [] }));
  const n = 100_000;
  const bench = (name: string): number => {
    const out = d.berth(['exec', name, 'redis-benchmark', '-q', '-t', 'set', '-n', String(n), '-P', '16']);
    const m = /SET:\s*([\d.]+)\s*requests per second/.exec(out.replace(/\r/g, '\n'));
    if (!m) throw new Error(`no SET rate in redis-benchmark output: ${out}`);
    return Number(m[1]);
  };
  bench(cases[0].name); // warm-up, unmeasured
  bench(cases[1].name);
  for (let i = 0; i < rounds; i++) {
    for (const [k, c] of cases.entries()) {
      rows[k].ms.push(bench(c.name)); // requests per second
    }
  }
  report(`redis-benchmark -t set -n ${n} -P 16 inside the container (appendonly, fsync everysec)`, rows, 'berth volume >= 0.9x the bind mount', 'req/s');
  const du = (dir: string): string => sh('du', ['-sh', dir]).split('\t')[0];
  console.log(`  (data written: host dir ${du(hostDir)}, volume ${du((await vols.inspect(vol)).Mountpoint)})`);
  for (const c of cases) d.berth(['rm', '-f', c.name]);
  await vols.remove(vol, { force: true });
}
