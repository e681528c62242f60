import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BenchDaemon } from './daemon';
import { Row, median, report, sh, timeIt } from './lib';
import { Transport } from '../src/client/transport';
import { setMaxListeners } from 'node:events';

const MiB = 1 << 20;

/**
 * `docker cp` of a ~500 MB tree into and out of a container against `tar -c | tar -x` of
 * the same tree on the host (target ≤1.25x), the container stopped so every copy goes
 * through its snapshot.
 */
export async function benchCp(work: string, rounds = 3): Promise<void> {
  const d = await BenchDaemon.start(work);
  const env = { ...process.env, DOCKER_HOST: 'unix://' + d.socket, DOCKER_CONFIG: path.join(work, 'docker-config') };
  try {
    const src = path.join(work, 'tree');
    const mb = makeTree(src);
    sh('docker', ['create', '--name', 'bench-cp', 'busybox', 'true'], env);
    const rows: Row[] = [
      { what: 'tar -c | tar -x on the host', ms: [] },
      { what: 'docker cp tree container:/ (in)', ms: [] },
      { what: 'docker cp container:/tree out (out)', ms: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      const dst = path.join(work, `host-copy-${i}`);
      fs.mkdirSync(dst);
      sh('sync', []);
      rows[0].ms.push(timeIt(() => sh('sh', ['-c', `tar -C ${JSON.stringify(src)} -cf - . | tar -C ${JSON.stringify(dst)} -xf -`])));
      fs.rmSync(dst, { recursive: true, force: true });
      sh('sync', []);
      rows[1].ms.push(timeIt(() => sh('docker', ['cp', src, `bench-cp:/tree${i}`], env)));
      const out = path.join(work, `out-${i}`);
      sh('sync', []);
      rows[2].ms.push(timeIt(() => sh('docker', ['cp', `bench-cp:/tree${i}`, out], env)));
      fs.rmSync(out, { recursive: true, force: true });
    }
    report(`docker cp of a ${mb} MB tree (${FILES} files in ${DIRS} directories), container stopped`, rows, 'docker cp ≤1.25x of tar | tar');
    const ref = median(rows[0].ms);
    console.log(`  ratio in ${(median(rows[1].ms) / ref).toFixed(2)}x, out ${(median(rows[2].ms) / ref).toFixed(2)}x`);
  } finally {
    try {
      sh('docker', ['rm', '-f', 'bench-cp'], env);
    } catch {
      /* not created */
    }
    await d.stop();
  }
}

const DIRS = 40;
const FILES = 2080;

/** 40 directories; in each, 12 files of 1 MiB and 40 of 16 KiB (~530 MB), random data. */
function makeTree(dir: string): number {
  const big = randomBytes(MiB);
  const small = randomBytes(16 * 1024);
  let bytes = 0;
  for (let i = 0; i < DIRS; i++) {
    const sub = path.join(dir, `d${i}`, 'inner');
    fs.mkdirSync(sub, { recursive: true });
    for (let j = 0; j < 12; j++) {
      big[0] = j;
      fs.writeFileSync(path.join(sub, `big${j}.bin`), big);
      bytes += big.length;
    }
    for (let j = 0; j < 40; j++) {
      fs.writeFileSync(path.join(dir, `d${i}`, `small${j}.txt`), small);
      bytes += small.length;
    }
  }
  return Math.round(bytes / 1e6);
}

/**
 * Streaming stats of 50 containers for 30 s: the CPU berthd spends (utime+stime from
 * /proc, ticks of 10 ms) as a share of one core (target ≤5%).
 */
export async function benchStats(work: string, containers = 50, seconds = 30): Promise<void> {
  const d = await BenchDaemon.start(work);
  const env = { ...process.env, DOCKER_HOST: 'unix://' + d.socket, DOCKER_CONFIG: path.join(work, 'docker-config') };
  const names: string[] = [];
  try {
    for (let i = 0; i < containers; i++) {
      names.push(`bench-st-${i}`);
      sh('docker', ['run', '-d', '--name', names[i], 'busybox', 'sleep', '100000'], env);
    }
    await new Promise((r) => setTimeout(r, 3000)); // let the starts settle
    const idle = await cpuOver(d.pid, 10);

    const t = new Transport(d.socket);
    const ac = new AbortController();
    setMaxListeners(containers + 10, ac.signal);
    let samples = 0;
    const streams = names.map(async (n) => {
      const res = await t.request('GET', `/containers/${n}/stats`);
      ac.signal.addEventListener('abort', () => res.destroy());
      res.on('data', (c: Buffer) => (samples += c.toString().split('\n').length - 1));
      await new Promise((r) => res.on('close', r));
    });
    await new Promise((r) => setTimeout(r, 2000));
    const busy = await cpuOver(d.pid, seconds);
    ac.abort();
    await Promise.all(streams);
    console.log(`\n## streaming stats of ${containers} containers for ${seconds} s (${samples} samples)`);
    console.log(`  berthd CPU idle with ${containers} containers  ${(idle * 100).toFixed(2)}% of one core`);
    console.log(`  berthd CPU while streaming stats     ${(busy * 100).toFixed(2)}% of one core (target ≤5%)`);
  } finally {
    for (const n of names) {
      try {
        sh('docker', ['rm', '-f', n], env);
      } catch {
        /* gone */
      }
    }
    await d.stop();
  }
}

/** Share of one core a process used over `seconds`. */
async function cpuOver(pid: number, seconds: number): Promise<number> {
  const ticks = () => {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(parts[11]) + Number(parts[12]); // utime, stime
  };
  const t0 = ticks();
  const w0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return (ticks() - t0) / 100 / ((Date.now() - w0) / 1000);
}
