import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BenchDaemon } from './daemon';
import { report, type Row } from './lib';

const KEYS = 400_000;
const VALUE = 240; // ~100 MB of RESP with the keys and framing

/**
 * Database branching (issue 17): time until a Redis holding a ~100 MB seed answers its
 * first query, three ways, in one run:
 *  (a) a fresh container, then the seed loaded through the protocol (`redis-cli --pipe`,
 *      what a test suite's setup does);
 *  (b) `run` on a copy of the seeded data directory (`cp -a` of it, then redis reads its
 *      RDB: what people do with Docker today);
 *  (c) `run -v data@seeded` (a clone of the seeded volume's snapshot, made at create).
 * "Answers" means DBSIZE returns the seed's key count through the published port.
 */
export async function benchBranching(work: string, rounds = 3): Promise<void> {
  const d = await BenchDaemon.start(work);
  const names: string[] = [];
  try {
    console.log(`\n# branching (bench daemon: bridge ${d.network.bridge})`);
    d.berth(['image', 'vendor', 'redis', '/usr/bin/redis-server', '/usr/bin/redis-cli']);
    const resp = path.join(work, 'seed.resp');
    writeSeed(resp);
    console.log(`  seed: ${KEYS} keys, ${(fs.statSync(resp).size / 1e6).toFixed(0)} MB of RESP`);

    // the seeded volume, once: load through the protocol, SAVE, snapshot
    names.push('bench-seed');
    d.berth(['run', '-d', '--name', 'bench-seed', '-p', '127.0.0.1::6379', '-v', 'bench-data:/data', ...redis()]);
    const sp = port(d, 'bench-seed');
    waitAnswer(sp, 0);
    pipe(sp, resp);
    redisCli(sp, ['SAVE']);
    d.berth(['rm', '-f', 'bench-seed']);
    names.pop();
    d.berth(['volume', 'snapshot', 'bench-data', 'seeded']);
    const seeded = JSON.parse(d.berth(['volume', 'inspect', 'bench-data']))[0].Mountpoint as string;
    console.log(`  seeded RDB: ${(fs.statSync(path.join(seeded, 'dump.rdb')).size / 1e6).toFixed(0)} MB`);

    const rows: Row[] = [
      { what: '(a) fresh container + redis-cli --pipe', ms: [] },
      { what: '(b) run on a cp -a of the data dir', ms: [] },
      { what: '(c) run -v bench-data@seeded', ms: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      const name = `bench-br-${i}`;
      names.push(`${name}a`, `${name}b`, `${name}c`);
      // (a)
      rows[0].ms.push(
        timed(() => {
          d.berth(['run', '-d', '--name', `${name}a`, '-p', '127.0.0.1::6379', ...redis('/tmp')]);
          const p = port(d, `${name}a`);
          waitAnswer(p, 0);
          pipe(p, resp);
          waitAnswer(p, KEYS);
        }),
      );
      d.berth(['rm', '-f', `${name}a`]);
      // (b)
      const copy = path.join(work, `copy-${i}`);
      rows[1].ms.push(
        timed(() => {
          sh('cp', ['-a', seeded, copy]);
          d.berth(['run', '-d', '--name', `${name}b`, '-p', '127.0.0.1::6379', '-v', `${copy}:/data`, ...redis()]);
          waitAnswer(port(d, `${name}b`), KEYS);
        }),
      );
      d.berth(['rm', '-f', `${name}b`]);
      fs.rmSync(copy, { recursive: true, force: true });
      // (c)
      rows[2].ms.push(
        timed(() => {
          d.berth(['run', '-d', '--name', `${name}c`, '-p', '127.0.0.1::6379', '-v', 'bench-data@seeded:/data', ...redis()]);
          waitAnswer(port(d, `${name}c`), KEYS);
        }),
      );
      d.berth(['rm', '-f', `${name}c`]);
    }
    report(`time to a first query of a ~100 MB Redis seed (${rounds} rounds)`, rows, 'c/a <= 0.05');
    const ca = med(rows[2].ms) / med(rows[0].ms);
    console.log(`  c/a = ${ca.toFixed(3)}   c/b = ${(med(rows[2].ms) / med(rows[1].ms)).toFixed(3)}`);
  } finally {
    for (const n of names) {
      try {
        d.berth(['rm', '-f', n]);
      } catch {
        /* gone already, or the daemon is */
      }
    }
    try {
      d.berth(['volume', 'snapshot', 'rm', '-f', 'bench-data', 'seeded']);
      d.berth(['volume', 'rm', '-f', 'bench-data']);
    } catch {
      /* not made */
    }
    await d.stop();
  }
}

function redis(dir = '/data'): string[] {
  return ['redis', 'redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--dir', dir, '--save', '', '--appendonly', 'no'];
}

function med(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function sh(cmd: string, args: string[], input?: Buffer): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function port(d: BenchDaemon, name: string): number {
  const m = /:(\d+)\s*$/m.exec(d.berth(['port', name, '6379']));
  if (!m) throw new Error(`no published port for ${name}`);
  return Number(m[1]);
}

function redisCli(p: number, args: string[]): string {
  return spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(p), ...args], { encoding: 'utf8' }).stdout ?? '';
}

/** Poll DBSIZE until it answers `keys` (redis answers LOADING while it reads its RDB). */
function waitAnswer(p: number, keys: number): void {
  const until = Date.now() + 120_000;
  for (;;) {
    if (redisCli(p, ['DBSIZE']).trim() === String(keys)) return;
    if (Date.now() > until) throw new Error(`redis on ${p} did not answer DBSIZE ${keys}`);
    spawnSync('sleep', ['0.005']);
  }
}

function pipe(p: number, file: string): void {
  const r = spawnSync('sh', ['-c', `redis-cli -h 127.0.0.1 -p ${p} --pipe < ${file}`], { encoding: 'utf8' });
  if (r.status !== 0 || !/errors: 0/.test(r.stdout)) throw new Error(`redis-cli --pipe failed: ${r.stdout}${r.stderr}`);
}

/** KEYS SETs in RESP, as `redis-cli --pipe` wants them. */
function writeSeed(file: string): void {
  const fd = fs.openSync(file, 'w');
  // random values: redis compresses repetitive ones, and the RDB should be as big as the seed
  const pool = randomBytes(VALUE * 64).toString('base64');
  let buf = '';
  for (let i = 0; i < KEYS; i++) {
    const key = `key:${i}`;
    const at = (i * 7919) % (pool.length - VALUE);
    const value = (i.toString(36) + pool.slice(at, at + VALUE)).slice(0, VALUE);
    buf += `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${VALUE}\r\n${value}\r\n`;
    if (buf.length > 1 << 20) {
      fs.writeSync(fd, buf);
      buf = '';
    }
  }
  fs.writeSync(fd, buf);
  fs.closeSync(fd);
}
