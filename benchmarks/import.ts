import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Row, report, sh, timeIt } from './lib';
import { BenchDaemon } from './daemon';

/**
 * Importing a ~200 MB rootfs tarball with `berth import` (CLI → API → content store +
 * safe layer apply) against plain `tar -x` of the same file into the same filesystem.
 * The runs alternate so that cache and disk state favour neither side.
 */
export async function benchImport(work: string, rounds = 3): Promise<void> {
  const tar = makeRootfsTar(work, 200);
  const d = await BenchDaemon.start(work);
  try {
    const rows: Row[] = [
      { what: 'tar -x (reference)', ms: [] },
      { what: 'berth import', ms: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      const dest = path.join(work, `x${i}`);
      fs.mkdirSync(dest);
      rows[0].ms.push(timeIt(() => sh('tar', ['-C', dest, '-xf', tar])));
      fs.rmSync(dest, { recursive: true, force: true });
      rows[1].ms.push(timeIt(() => d.berth(['import', tar, `bench:${i}`])));
      d.berth(['rmi', `bench:${i}`]);
    }
    report(`import a ${(fs.statSync(tar).size / 1e6).toFixed(0)} MB rootfs tarball`, rows);
  } finally {
    await d.stop();
  }
}

/** A rootfs-like tarball: many small files in nested dirs plus a few large ones. */
function makeRootfsTar(work: string, mb: number): string {
  const src = path.join(work, 'rootfs');
  let bytes = 0;
  for (let i = 0; bytes < mb * 0.6e6 * 1.0; i++) {
    const dir = path.join(src, 'usr', 'lib', `pkg${i % 40}`, `sub${i % 7}`);
    fs.mkdirSync(dir, { recursive: true });
    const size = 512 + ((i * 7919) % 60_000);
    fs.writeFileSync(path.join(dir, `file${i}.so`), randomBytes(size));
    bytes += size;
  }
  fs.mkdirSync(path.join(src, 'var', 'big'), { recursive: true });
  for (let i = 0; bytes < mb * 1e6; i++) {
    fs.writeFileSync(path.join(src, 'var', 'big', `blob${i}`), randomBytes(20e6));
    bytes += 20e6;
  }
  const tar = path.join(work, 'rootfs.tar');
  sh('tar', ['-C', src, '-cf', tar, '.']);
  fs.rmSync(src, { recursive: true, force: true });
  return tar;
}
