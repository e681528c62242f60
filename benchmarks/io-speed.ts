import * as fs from 'node:fs';
import * as path from 'node:path';
import { Row, report, sh, timeIt } from './lib';
import { BenchDaemon } from './daemon';
import { fillTree as fillVolumeTree } from './volumes';

/**
 * Issue 16, targets 5 and 6: archives in and out at disk speed. Each row is berth's CLI end
 * to end against GNU tar on the same tree or the same tar file, in the same run, the two
 * alternating (an unmeasured pass of each first warms the page cache equally):
 *   volume export -o FILE   against tar -C <mountpoint> -cf FILE .       (>= 0.8x throughput)
 *   volume import           against tar -x into an empty volume         (>= 0.8x throughput)
 *   container export -o     against tar -cf of the same tree             (>= 0.8x throughput)
 *   image import            against tar -x of the same file              (<= 1.3x the time)
 * Throughput is the tar file's bytes over the time. `npm run bench -- io`.
 */
export async function benchIo(work: string, rounds = 5): Promise<void> {
  const d = await BenchDaemon.start(work);
  try {
    const src = path.join(work, 'tree');
    const { files, bytes } = fillTree(src, Number(process.env.BERTH_BENCH_IO_MB ?? 600));
    const tar = path.join(work, 'tree.tar');
    sh('tar', ['-C', src, '--numeric-owner', '-cf', tar, '.']);
    const size = fs.statSync(tar).size;
    console.log(`  a tree of ${files} files, ${(bytes / 1e6).toFixed(0)} MB of data, ${(size / 1e6).toFixed(0)} MB as a tar`);
    const mb = (r: Row): Row => ({ what: r.what, ms: r.ms.map((ms) => size / 1e6 / (ms / 1000)) });
    const out = path.join(work, 'out.tar');
    const rm = (p: string) => fs.rmSync(p, { recursive: true, force: true });
    const mountpoint = (vol: string): string => JSON.parse(d.berth(['volume', 'inspect', vol]))[0].Mountpoint;

    // volume export -o against tar -c of the volume's own directory
    d.berth(['volume', 'import', 'io-src', tar]);
    const mp = mountpoint('io-src');
    sh('sync', []);
    const vexp: Row[] = [
      { what: 'tar -C <mountpoint> -cf FILE . (reference)', ms: [] },
      { what: 'berth volume export -o FILE', ms: [] },
    ];
    for (let i = -1; i < rounds; i++) {
      const a = timeIt(() => sh('tar', ['-C', mp, '-cf', out, '.']));
      rm(out);
      const b = timeIt(() => d.berth(['volume', 'export', 'io-src', '-o', out]));
      rm(out);
      if (i >= 0) vexp[0].ms.push(a), vexp[1].ms.push(b);
    }
    report(`volume export -o: throughput (MB/s of the tar)`, vexp.map(mb), 'berth >= 0.8x of tar -c', 'MB/s');

    // volume import against tar -x into an empty volume (the same pool)
    const vimp: Row[] = [
      { what: 'tar -xf into an empty volume (reference)', ms: [] },
      { what: 'berth volume import NAME FILE', ms: [] },
    ];
    for (let i = -1; i < rounds; i++) {
      d.berth(['volume', 'create', 'io-ref']);
      const dest = mountpoint('io-ref');
      const a = timeIt(() => sh('tar', ['-C', dest, '--numeric-owner', '-xf', tar]));
      d.berth(['volume', 'rm', 'io-ref']);
      const b = timeIt(() => d.berth(['volume', 'import', 'io-imp', tar]));
      d.berth(['volume', 'rm', 'io-imp']);
      if (i >= 0) vimp[0].ms.push(a), vimp[1].ms.push(b);
    }
    report(`volume import: throughput (MB/s of the tar)`, vimp.map(mb), 'berth >= 0.8x of tar -x', 'MB/s');

    // image import against tar -x into a directory on the data root's filesystem
    const iimp: Row[] = [
      { what: 'tar -xf into a directory (reference)', ms: [] },
      { what: 'berth import FILE', ms: [] },
    ];
    for (let i = -1; i < rounds; i++) {
      const dest = path.join(work, 'x');
      fs.mkdirSync(dest);
      const a = timeIt(() => sh('tar', ['-C', dest, '--numeric-owner', '-xf', tar]));
      rm(dest);
      const b = timeIt(() => d.berth(['import', tar, `io:${i + 1}`]));
      d.berth(['rmi', `io:${i + 1}`]);
      if (i >= 0) iimp[0].ms.push(a), iimp[1].ms.push(b);
    }
    report('image import: time', iimp, 'berth <= 1.3x of tar -x');

    // container export against tar -c of the same tree (on the data root's filesystem)
    d.berth(['import', tar, 'io:base']);
    d.berth(['create', '--name', 'io-c', 'io:base', '/bin/true']);
    const cexp: Row[] = [
      { what: 'tar -C <tree> -cf FILE . (reference)', ms: [] },
      { what: 'berth export -o FILE', ms: [] },
    ];
    for (let i = -1; i < rounds; i++) {
      const a = timeIt(() => sh('tar', ['-C', src, '-cf', out, '.']));
      rm(out);
      const b = timeIt(() => d.berth(['export', '-o', out, 'io-c']));
      rm(out);
      if (i >= 0) cexp[0].ms.push(a), cexp[1].ms.push(b);
    }
    report('container export -o: throughput (MB/s of the tar)', cexp.map(mb), 'berth >= 0.8x of tar -c', 'MB/s');
    d.berth(['rm', 'io-c']);
    d.berth(['rmi', 'io:base']);
    d.berth(['volume', 'rm', 'io-src']);
  } finally {
    await d.stop();
  }
}

/** volumes.ts's tree (many small files, some large ones) plus hardlinks and symlinks among the small files. */
function fillTree(dir: string, mb: number): { files: number; bytes: number } {
  const made = fillVolumeTree(dir, mb);
  const sub = path.join(dir, 'lib', 'pkg0', 'sub0');
  for (const [i, n] of fs.readdirSync(sub).entries()) {
    if (i % 5 === 0) fs.linkSync(path.join(sub, n), path.join(sub, `hard-${n}`));
    if (i % 7 === 0) fs.symlinkSync(n, path.join(sub, `link-${n}`));
  }
  return made;
}
