import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BenchDaemon } from './daemon';
import { BenchDockerd } from './dockerd';
import { Row, median, report, sh, timeIt } from './lib';

/**
 * docker build against berthd's classic builder.
 * 1. A 10-step Dockerfile (RUN, COPY, metadata), fully cached: the docker CLI against
 *    berthd and against the reference dockerd (Debian's docker.io on roots of its own,
 *    dockerd.ts; its classic builder, DOCKER_BUILDKIT=0, with the same busybox loaded);
 *    target: berthd ≤0.5x of dockerd. Where dockerd cannot be installed the issue's
 *    fallback stands in: the same build with --no-cache on berthd, cached ≤0.5x of it.
 *    RUN steps use --network none on both (the reference dockerd has no bridge).
 * 2. A ~200 MB context (its upload, unpack and a `COPY . /ctx`) against `tar -c` of the
 *    same directory to /dev/null: the upload's throughput.
 */
export async function benchBuild(work: string, rounds = 3): Promise<void> {
  const noDocker = BenchDockerd.ensureInstalled();
  const d = await BenchDaemon.start(work);
  const env = { ...process.env, DOCKER_HOST: 'unix://' + d.socket, DOCKER_CONFIG: path.join(work, 'docker-config'), DOCKER_BUILDKIT: '0' };
  let dk: BenchDockerd | undefined;
  try {
    const small = path.join(work, 'ten-steps');
    fs.mkdirSync(small);
    fs.writeFileSync(path.join(small, 'a.txt'), 'a\n');
    fs.writeFileSync(path.join(small, 'b.txt'), 'b\n');
    fs.writeFileSync(
      path.join(small, 'Dockerfile'),
      ['FROM busybox', 'ENV APP=/app', 'WORKDIR /app', 'COPY a.txt .', 'RUN cp a.txt a2.txt', 'COPY b.txt .', 'RUN cat a.txt b.txt > ab.txt', 'LABEL bench=1', 'EXPOSE 8080', 'CMD ["cat", "ab.txt"]', ''].join('\n'),
    );
    const build = ['build', '-q', '--network', 'none'];
    sh('docker', [...build, '-t', 'bench:cached', small], env); // warm the cache (and busybox)
    let dkEnv: NodeJS.ProcessEnv | undefined;
    if (!noDocker) {
      dk = await BenchDockerd.start(work);
      dkEnv = { ...dk.env(), DOCKER_BUILDKIT: '0' };
      // no Docker Hub here: berth's busybox, saved through the docker CLI, loaded into dockerd
      const tar = path.join(work, 'busybox.tar');
      sh('docker', ['save', '-o', tar, 'busybox'], env);
      dk.docker(['load', '-i', tar]);
      sh('docker', [...build, '-t', 'bench:cached', small], dkEnv);
    }
    const rows: Row[] = dkEnv
      ? [
          { what: `docker build on dockerd ${dk!.version()}, fully cached`, ms: [] },
          { what: 'docker build on berthd, fully cached', ms: [] },
        ]
      : [
          { what: 'docker build, 10 steps, --no-cache', ms: [] },
          { what: 'docker build, 10 steps, fully cached', ms: [] },
        ];
    for (let i = 0; i < rounds; i++) {
      if (dkEnv) rows[0].ms.push(timeIt(() => sh('docker', [...build, '-t', 'bench:cached', small], dkEnv)));
      else rows[0].ms.push(timeIt(() => sh('docker', [...build, '--no-cache', small], env)));
      rows[1].ms.push(timeIt(() => sh('docker', [...build, '-t', 'bench:cached', small], env)));
    }
    if (dkEnv) {
      report('docker build of a 10-step Dockerfile (busybox base), fully cached', rows, 'berthd ≤0.5x of dockerd');
      console.log(`  ratio berthd/dockerd ${(median(rows[1].ms) / median(rows[0].ms)).toFixed(2)}x`);
    } else {
      report('docker build of a 10-step Dockerfile (busybox base)', rows, 'cached ≤0.5x of uncached');
      console.log(`  dockerd not measured (${noDocker}); ratio cached/uncached ${(median(rows[1].ms) / median(rows[0].ms)).toFixed(2)}x`);
    }

    const big = path.join(work, 'big-context');
    const mb = makeContext(big, 200);
    fs.writeFileSync(path.join(big, 'Dockerfile'), 'FROM busybox\nLABEL upload=1\n');
    fs.writeFileSync(path.join(big, 'copy.Dockerfile'), 'FROM busybox\nCOPY . /ctx/\n');
    const up: Row[] = [
      { what: `tar -c of the ${mb} MB context | cat > /dev/null`, ms: [] },
      { what: 'docker build: upload + unpack (no COPY)', ms: [] },
      { what: 'docker build: upload + unpack + COPY . /ctx/', ms: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      sh('sync', []);
      // Through a pipe: GNU tar writing to /dev/null itself skips reading the files.
      up[0].ms.push(timeIt(() => sh('sh', ['-c', `tar -C ${JSON.stringify(big)} -cf - . | cat > /dev/null`])));
      sh('sync', []);
      up[1].ms.push(timeIt(() => sh('docker', ['build', '-q', '--no-cache', big], env)));
      sh('sync', []);
      up[2].ms.push(timeIt(() => sh('docker', ['build', '-q', '--no-cache', '-f', path.join(big, 'copy.Dockerfile'), big], env)));
    }
    report(`a ${mb} MB build context`, up);
    const rate = (ms: number[]) => (mb / (median(ms) / 1000)).toFixed(0);
    console.log(`  throughput: tar -c ${rate(up[0].ms)} MB/s, upload ${rate(up[1].ms)} MB/s, upload + COPY ${rate(up[2].ms)} MB/s`);
  } finally {
    await dk?.destroy();
    await d.stop();
  }
}

/** `mb` MiB of random data in 1 MiB files over 20 directories. */
function makeContext(dir: string, mb: number): number {
  const buf = randomBytes(1 << 20);
  for (let i = 0; i < mb; i++) {
    const sub = path.join(dir, `d${i % 20}`);
    fs.mkdirSync(sub, { recursive: true });
    buf[0] = i & 0xff;
    buf[1] = i >> 8;
    fs.writeFileSync(path.join(sub, `f${i}.bin`), buf);
  }
  return mb;
}
