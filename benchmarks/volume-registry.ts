import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { DirDriver } from '../volumes/drivers/dir/dir';
import type { VolumeDriver } from '../volumes/drivers/driver';
import { RegistrySession } from '../src/images/registry/client';
import { endpointFor } from '../src/images/registry/endpoint';
import { parseReference } from '../src/images/reference';
import { pullVolume, pushVolume, type TransferContext } from '../src/volumes/registry-transfer';
import { TestRegistry } from '../test/helpers/registry';
import { Row, report, sh, timeAsync, timeIt } from './lib';

const MiB = 1024 * 1024;

/**
 * `npm run bench -- volume-chunks`: what sending a partly changed file as its changed
 * blocks (volumes/archive/chunks.ts) saves, through the real changeset code on a dir
 * driver, and what content-defined chunking (a gear-hash CDC, 16 KiB average, computed
 * here only for comparison) would send for the same change:
 *   - a Redis AOF (RESP commands, 256 MiB) after 4 MiB of appends;
 *   - a 1 GiB file rewritten in place the way PostgreSQL does: 1% of its 8 KiB pages;
 *   - the case fixed blocks lose: 100 bytes inserted near the start of a 64 MiB file.
 */
export async function benchVolumeChunks(work: string): Promise<void> {
  const d = await DirDriver.open(path.join(work, 'root'));
  try {
    const rows: string[] = [];
    const measure = async (what: string, make: (f: string) => void, change: (f: string) => void) => {
      const vol = `v${rows.length}`;
      const mp = (await d.create(vol)).mountpoint;
      const f = path.join(mp, 'data');
      make(f);
      await d.snapshot(vol, 's1');
      const before = fs.readFileSync(f);
      change(f);
      const after = fs.readFileSync(f);
      await d.snapshot(vol, 's2');
      let raw = 0;
      let gz = 0;
      const ms = await timeAsync(async () => {
        const delta = await d.exportChanges(vol, 's2', 's1');
        const count = (add: (n: number) => void) =>
          new Writable({
            write(c: Buffer, _e, cb) {
              add(c.length);
              cb();
            },
          });
        const z = createGzip({ level: 1 });
        const tapped = delta.on('data', (c: Buffer) => (raw += c.length));
        await pipeline(tapped, z, count((n) => (gz += n)));
      });
      const cdc = cdcNewBytes(before, after);
      rows.push(
        `  ${what.padEnd(58)} file ${mb(after.length)}  fixed 4 KiB blocks: changeset ${mb(raw)} (gzip ${mb(gz)}, ${ms.toFixed(0)} ms)  CDC 16 KiB avg: ${mb(cdc)}  whole file: ${mb(after.length)}`,
      );
      await d.remove(vol, { force: true });
    };
    /** `n` bytes of SET commands, numbered from `from` (so an append is new commands). */
    const aof = (n: number, from: number) => {
      const parts: string[] = [];
      let len = 0;
      for (let i = from; len < n; i++) {
        const key = `key:${i % 100000}`;
        const val = createHash('sha1').update(String(i)).digest('hex').repeat(3);
        const cmd = `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${val.length}\r\n${val}\r\n`;
        parts.push(cmd);
        len += cmd.length;
      }
      return Buffer.from(parts.join('')).subarray(0, n);
    };
    await measure(
      'Redis AOF 256 MiB, 4 MiB appended',
      (f) => fs.writeFileSync(f, aof(256 * MiB, 0)),
      (f) => fs.appendFileSync(f, aof(4 * MiB, 10_000_000)),
    );
    await measure(
      'PostgreSQL-style 1 GiB, 1% of 8 KiB pages rewritten',
      (f) => writeRandom(f, 1024 * MiB),
      (f) => {
        const fd = fs.openSync(f, 'r+');
        const page = Buffer.alloc(8192);
        for (let i = 0; i < 1311; i++) fs.writeSync(fd, randomFillSync(page), 0, 8192, ((i * 7919) % 131072) * 8192);
        fs.closeSync(fd);
      },
    );
    await measure(
      '64 MiB, 100 bytes inserted at 1 MiB (fixed blocks lose)',
      (f) => writeRandom(f, 64 * MiB),
      (f) => {
        const b = fs.readFileSync(f);
        fs.writeFileSync(f, Buffer.concat([b.subarray(0, MiB), randomFillSync(Buffer.alloc(100)), b.subarray(MiB)]));
      },
    );
    console.log('\n## partly changed files in a volume changeset (bytes sent)');
    for (const r of rows) console.log(r);
  } finally {
    await d.close();
  }
}

/**
 * `npm run bench -- volume-registry`: a 1 GiB volume through a local docker-registry.
 *   - first push (export, gzip, upload) against `tar -c | zstd -1` of the same tree plus a
 *     `skopeo copy` of that one blob to the registry (target ≤1.3x);
 *   - a second push after 1% of the data changed: bytes and time next to the first's
 *     (goal: ≤5% of the bytes);
 *   - a pull into a fresh root, against the first push.
 * The volume: a 960 MiB database-like file (8 KiB pages, each half random, half zero:
 * compresses about 2x) and 64 files of 1 MiB. Rounds alternate berth and the reference.
 */
export async function benchVolumeRegistry(work: string, rounds = Number(process.env.BERTH_BENCH_ROUNDS ?? 2)): Promise<void> {
  const reg = await TestRegistry.start();
  const drivers: VolumeDriver[] = [];
  const sessions: RegistrySession[] = [];
  const ctxOf = async (name: string): Promise<TransferContext> => {
    const d = await DirDriver.open(path.join(work, name));
    drivers.push(d);
    const session = new RegistrySession(endpointFor(reg.host), undefined, { attempts: 1 });
    sessions.push(session);
    return { session, driver: d, work: path.join(work, name, 'transfer') };
  };
  try {
    const src = await ctxOf('src');
    const mp = (await src.driver.create('vol')).mountpoint;
    const db = path.join(mp, 'base/16384');
    fs.mkdirSync(path.dirname(db), { recursive: true });
    writePages(db, 960 * MiB);
    for (let i = 0; i < 64; i++) writeRandom(path.join(mp, `files/f${i}`), MiB);
    await src.driver.snapshot('vol', 's0');
    const tree = path.dirname(path.dirname(db)); // the volume's files
    const diffID = 'sha256:' + sh('bash', ['-c', `tar -C ${tree} -cf - . | sha256sum`]).split(' ')[0];

    const first: Row[] = [
      { what: 'tar -c | zstd -1, then skopeo copy (ref)', ms: [] },
      { what: 'berth volume push (first, full)', ms: [] },
    ];
    const second: Row[] = [
      { what: 'berth volume push (first, full)', ms: [] },
      { what: 'berth volume push (second, 1% changed)', ms: [] },
    ];
    const pull: Row[] = [
      { what: 'berth volume push (first, full)', ms: [] },
      { what: 'berth volume pull into a fresh root', ms: [] },
    ];
    const bytes: string[] = [];
    for (let i = 0; i < rounds; i++) {
      // The reference: compress the tree into one blob, and push that blob as an image's one layer.
      const layout = path.join(work, `layout${i}`);
      fs.mkdirSync(layout);
      const blobTmp = path.join(layout, 'blob');
      let refMs = timeIt(() => sh('bash', ['-c', `tar -C ${tree} -cf - . | zstd -1 -q -T0 -o ${blobTmp}`]));
      const blobDigest = createHash('sha256').update(fs.readFileSync(blobTmp)).digest('hex');
      fs.renameSync(blobTmp, path.join(layout, blobDigest));
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffID] } }));
      const configDigest = createHash('sha256').update(config).digest('hex');
      fs.writeFileSync(path.join(layout, configDigest), config);
      const blobSize = fs.statSync(path.join(layout, blobDigest)).size;
      fs.writeFileSync(
        path.join(layout, 'manifest.json'),
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: `sha256:${blobDigest}`, size: blobSize }],
        }),
      );
      fs.writeFileSync(path.join(layout, 'version'), 'Directory Transport Version: 1.1\n');
      refMs += timeIt(() => sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `dir:${layout}`, `docker://${reg.host}/ref/r${i}:v1`]));
      fs.rmSync(layout, { recursive: true, force: true });
      first[0].ms.push(refMs);

      const ref = parseReference(`${reg.host}/vols/v${i}:latest`);
      let sent1 = 0;
      const ms1 = await timeAsync(async () => (sent1 = (await pushVolume(src, ref, 'vol', 's0')).sent));
      first[1].ms.push(ms1);
      second[0].ms.push(ms1);
      pull[0].ms.push(ms1);

      // 1% of the data: 9.6 MiB of pages rewritten in place in the big file, one small file replaced.
      const fd = fs.openSync(db, 'r+');
      const page = Buffer.alloc(8192);
      for (let p = 0; p < 1229; p++) fs.writeSync(fd, randomFillSync(page), 0, 8192, (((p + i * 97) * 7919) % 122880) * 8192);
      fs.closeSync(fd);
      writeRandom(path.join(mp, `files/f${i}`), MiB);
      await src.driver.snapshot('vol', `s${i + 1}`);
      let sent2 = 0;
      second[1].ms.push(await timeAsync(async () => (sent2 = (await pushVolume(src, ref, 'vol', `s${i + 1}`)).sent)));
      await src.driver.removeSnapshot('vol', `s${i + 1}`).catch(() => undefined);
      bytes.push(`  round ${i}: first push ${mb(sent1)}, second push ${mb(sent2)} (${((100 * sent2) / sent1).toFixed(2)}% of the first); reference blob ${mb(blobSize)}`);

      const dst = await ctxOf(`dst${i}`);
      pull[1].ms.push(await timeAsync(() => pullVolume(dst, ref, 'copy')));
      await dst.driver.close();
      fs.rmSync(path.join(work, `dst${i}`), { recursive: true, force: true });
    }
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    report('first push of a 1 GiB volume to a local registry', first, '≤1.3x of the reference');
    report('second push after changing 1% (time)', second, 'bytes: ≤5% of the first push');
    for (const b of bytes) console.log(b);
    report('pull into a fresh root', pull, 'about the first push');
    console.log(`  load average at the end: ${load}`);
  } finally {
    for (const s of sessions) s.close();
    for (const d of drivers) await d.close().catch(() => undefined);
    await reg.stop();
  }
}

function mb(n: number): string {
  return `${(n / MiB).toFixed(2)} MiB`;
}

function writeRandom(file: string, size: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(Math.min(size, 16 * MiB));
  for (let at = 0; at < size; at += buf.length) fs.writeSync(fd, randomFillSync(buf), 0, Math.min(buf.length, size - at), at);
  fs.closeSync(fd);
}

/** 8 KiB pages, each 4 KiB random then 4 KiB zero (a half-full table page). */
function writePages(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(16 * MiB);
  for (let at = 0; at < size; at += buf.length) {
    for (let p = 0; p < buf.length; p += 8192) randomFillSync(buf, p, 4096);
    fs.writeSync(fd, buf, 0, Math.min(buf.length, size - at), at);
  }
  fs.closeSync(fd);
}

/**
 * Bytes a content-defined chunker would send: chunks of `after` (gear rolling hash, cut
 * where the low bits are zero: 16 KiB average, 4 KiB minimum, 64 KiB maximum) whose hash
 * is not among `before`'s chunks.
 */
function cdcNewBytes(before: Buffer, after: Buffer): number {
  const gear = new Uint32Array(256);
  const seed = createHash('sha256').update('gear').digest();
  for (let i = 0; i < 256; i++) gear[i] = createHash('sha256').update(seed).update(String(i)).digest().readUInt32LE(0);
  const chunks = (b: Buffer): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    const MASK = (1 << 14) - 1;
    let start = 0;
    let h = 0;
    for (let i = 0; i < b.length; i++) {
      h = ((h << 1) + gear[b[i]]) >>> 0;
      const len = i - start + 1;
      if ((len >= 4096 && (h & MASK) === 0) || len >= 65536) {
        out.push([start, i + 1]);
        start = i + 1;
        h = 0;
      }
    }
    if (start < b.length) out.push([start, b.length]);
    return out;
  };
  const key = (b: Buffer, [s, e]: [number, number]) => createHash('sha1').update(b.subarray(s, e)).digest('base64');
  const have = new Set(chunks(before).map((c) => key(before, c)));
  let sent = 0;
  for (const c of chunks(after)) if (!have.has(key(after, c))) sent += c[1] - c[0];
  return sent;
}
