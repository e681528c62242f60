import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Row, report, sh, timeIt, timeAsync } from './lib';
import { BenchDaemon } from './daemon';
import { TestRegistry } from '../test/helpers/registry';
import { Transport } from '../src/client/transport';
import { RemoteRegistryService } from '../src/client/registry';

/**
 * The registry client against its references, in one run, on a local docker-registry:
 *
 * - pull of a ~200 MB, 5-layer image (`berth pull`: download, verify, unpack) against
 *   `skopeo copy docker://… dir:` plus `tar -xzf` of each layer: the same work. Target ≤1.2x.
 * - push of it to another registry (every blob uploaded) against `skopeo copy dir:… docker://…`.
 * - pull of an image already held (manifest check only), through the API: target < 100 ms.
 *
 * Rounds alternate, so cache and disk state favour neither side.
 */
export async function benchRegistry(work: string, rounds = Number(process.env.BERTH_BENCH_ROUNDS ?? 3), layerMB = Number(process.env.BERTH_BENCH_LAYER_MB ?? 40)): Promise<void> {
  const src = await TestRegistry.start();
  const d = await BenchDaemon.start(work);
  try {
    const archive = makeImageArchive(work, 5, layerMB);
    const name = `${src.host}/bench/big:v1`;
    sh('skopeo', ['copy', '--dest-tls-verify=false', '--dest-compress-level', '1', `docker-archive:${archive}`, `docker://${name}`]);
    fs.rmSync(archive);

    const pull: Row[] = [
      { what: 'skopeo copy to dir: + tar -xzf (reference)', ms: [] },
      { what: 'berth pull', ms: [] },
    ];
    const push: Row[] = [
      { what: 'skopeo copy dir: to registry (reference)', ms: [] },
      { what: 'berth push', ms: [] },
    ];
    const dir = path.join(work, 'dir');
    for (let i = 0; i < rounds; i++) {
      fs.rmSync(dir, { recursive: true, force: true });
      const out = path.join(work, `x${i}`);
      pull[0].ms.push(
        timeIt(() => {
          sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${name}`, `dir:${dir}`]);
          const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { layers: Array<{ digest: string }> };
          fs.mkdirSync(out);
          for (const l of manifest.layers) sh('tar', ['-C', out, '-xzf', path.join(dir, l.digest.slice(7))]);
        }),
      );
      fs.rmSync(out, { recursive: true, force: true });
      pull[1].ms.push(timeIt(() => d.berth(['pull', '-q', name])));
      if (process.env.BERTH_BENCH_TRACE) console.error(`round ${i}: pulled`, pull.map((r) => r.ms[i]));

      // Each push goes to a registry of its own that has none of the blobs (skopeo, given
      // one it pushed to before, stalled trying to reuse them).
      const [forRef, forBerth] = await Promise.all([TestRegistry.start(), TestRegistry.start()]);
      try {
        push[0].ms.push(timeIt(() => sh('skopeo', ['copy', '--dest-tls-verify=false', `dir:${dir}`, `docker://${forRef.host}/ref/r${i}:v1`])));
        const target = `${forBerth.host}/berth/b${i}:v1`;
        d.berth(['tag', name, target]);
        push[1].ms.push(timeIt(() => d.berth(['push', '-q', target])));
        d.berth(['rmi', target]);
      } finally {
        await Promise.all([forRef.stop(), forBerth.stop()]);
      }
      if (process.env.BERTH_BENCH_TRACE) console.error(`round ${i}: pushed`, push.map((r) => r.ms[i]));
      if (i < rounds - 1) d.berth(['rmi', '-f', name]);
    }
    report('pull a ~200 MB 5-layer image from a local registry', pull, '≤1.2x of the reference');
    report('push a ~200 MB 5-layer image to a local registry', push, 'about the reference');

    const reg = new RemoteRegistryService(new Transport(d.socket));
    const held: Row[] = [{ what: 'berth pull, image held (API)', ms: [] }];
    for (let i = 0; i < 10; i++) held[0].ms.push(await timeAsync(() => reg.pull(name)));
    report('pull of an image already held', held, '< 100 ms');
  } finally {
    await d.stop();
    await src.stop();
  }
}

/** A docker-archive of `layers` layers of `mb` MB each (incompressible files), as skopeo reads it. */
function makeImageArchive(work: string, layers: number, mb: number): string {
  const dir = path.join(work, 'archive');
  fs.mkdirSync(dir, { recursive: true });
  const diffIDs: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < layers; i++) {
    const src = path.join(work, `layer${i}`);
    fs.mkdirSync(path.join(src, `data${i}`), { recursive: true });
    for (let f = 0; f * 4e6 < mb * 1e6; f++) fs.writeFileSync(path.join(src, `data${i}`, `f${f}`), randomBytes(4e6));
    const tar = path.join(dir, `layer${i}.tar`);
    sh('tar', ['-C', src, '-cf', tar, '.']);
    fs.rmSync(src, { recursive: true, force: true });
    diffIDs.push(`sha256:${createHash('sha256').update(fs.readFileSync(tar)).digest('hex')}`);
    files.push(`layer${i}.tar`);
  }
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: diffIDs }, history: diffIDs.map(() => ({ created_by: 'bench' })) });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  fs.writeFileSync(path.join(dir, configName), config);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: ['bench/big:v1'], Layers: files }]));
  const out = path.join(work, 'image.tar');
  sh('tar', ['-C', dir, '-cf', out, '.']);
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}
