import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Row, median, report, sh, timeIt } from './lib';
import { BenchDaemon } from './daemon';

/**
 * End-to-end `berth run --rm busybox true` (CLI → API → create, attach, wait, start →
 * exit → remove) against raw `runc run` of an equivalent prepared bundle, alternating in
 * one run; `docker run --rm busybox true` too when a Docker engine answers.
 * Target: berth within 2.5x of raw runc (Docker measured about 10x raw runc).
 */
export async function benchRun(work: string, rounds = 15): Promise<void> {
  const d = await BenchDaemon.start(work);
  try {
    d.berth(['run', '--rm', 'busybox', 'true']); // makes busybox, warms caches
    const bundle = prepareBundle(work);
    const runcRoot = path.join(work, 'runc-root');
    const rows: Row[] = [
      { what: 'runc run (prepared bundle)', ms: [] },
      { what: 'berth run --rm busybox true', ms: [] },
    ];
    // The docker CLI (a Go client, ~20 ms to start) against berthd separates the daemon's
    // cost from the Node CLI's start-up (~110 ms for node alone on a small VM).
    rows.push({ what: 'docker CLI → berthd: docker run --rm', ms: [] });
    const docker = dockerEngineAnswers();
    if (docker) rows.push({ what: 'docker run --rm busybox true (Docker)', ms: [] });
    for (let i = 0; i < rounds; i++) {
      rows[0].ms.push(timeIt(() => sh('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `bench-${process.pid}-${i}`])));
      rows[1].ms.push(timeIt(() => d.berth(['run', '--rm', 'busybox', 'true'])));
      rows[2].ms.push(timeIt(() => sh('docker', ['run', '--rm', 'busybox', 'true'], { ...process.env, DOCKER_HOST: 'unix://' + d.socket, DOCKER_CONFIG: path.join(work, 'docker-config') })));
      if (docker) rows[3].ms.push(timeIt(() => sh('docker', ['run', '--rm', 'busybox', 'true'], { ...process.env, DOCKER_HOST: '' })));
    }
    report('start and stop a container that runs `true`', rows, 'berth within 2.5x of raw runc');
    if (!docker) console.log('  (no Docker engine answers on this machine: docker run not measured)');
  } finally {
    await d.stop();
  }
}

/**
 * `stop -t 1` of a container whose PID 1 ignores SIGTERM (`sleep` as PID 1 has no
 * handler): berthd must SIGKILL it when the 1 s timeout runs out, not at the default 10 s.
 * The tests assert only that it stops (137); the time is this row's claim.
 * Target: within 1.5 s of the timeout plus one CLI call.
 */
export async function benchStop(work: string, rounds = 5): Promise<void> {
  const d = await BenchDaemon.start(work);
  try {
    d.berth(['run', '--rm', 'busybox', 'true']); // makes busybox, warms caches
    const rows: Row[] = [
      { what: 'berth ps (one CLI call, for scale)', ms: [] },
      { what: 'berth stop -t 1 (PID 1 ignores SIGTERM)', ms: [] },
    ];
    for (let i = 0; i < rounds; i++) {
      d.berth(['run', '-d', '--name', `stop${i}`, 'busybox', 'sleep', '100000']);
      rows[0].ms.push(timeIt(() => d.berth(['ps', '-q'])));
      rows[1].ms.push(timeIt(() => d.berth(['stop', '-t', '1', `stop${i}`])));
      d.berth(['rm', `stop${i}`]);
    }
    report('stop with a 1 s timeout', rows, 'stop ≤ 1 s + 1.5 s + one CLI call');
  } finally {
    await d.stop();
  }
}

/** Memory: berthd and the monitors with 100 idle `sleep` containers, per container. */
export async function benchIdleMemory(work: string, count = 100): Promise<void> {
  const d = await BenchDaemon.start(work);
  try {
    d.berth(['run', '--rm', 'busybox', 'true']);
    const before = rssKb(d.pid);
    const started = Date.now();
    for (let i = 0; i < count; i++) d.berth(['run', '-d', '--name', `idle${i}`, 'busybox', 'sleep', '100000']);
    const seconds = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    const after = rssKb(d.pid);
    const monitors = sh('pgrep', ['-f', `berth-monitor.*${d.root}`]).trim().split('\n').filter(Boolean).map(Number);
    const pss = monitors.map(pssKb);
    console.log(`\n## memory with ${count} idle containers (sleep)`);
    console.log(`  berthd RSS: ${(before / 1024).toFixed(1)} MB before, ${(after / 1024).toFixed(1)} MB after: ${((after - before) / count).toFixed(0)} kB per container`);
    console.log(`  berth-monitor: ${monitors.length} processes, median Pss ${median(pss).toFixed(0)} kB, median RSS ${median(monitors.map(rssKb)).toFixed(0)} kB`);
    console.log(`  total per container (berthd share + monitor Pss): ${((after - before) / count + median(pss)).toFixed(0)} kB`);
    console.log(`  (${count} detached starts took ${seconds.toFixed(1)} s: ${((seconds * 1000) / count).toFixed(0)} ms each)`);
    d.berth(['rm', '-f', ...Array.from({ length: count }, (_, i) => `idle${i}`)]);
  } finally {
    await d.stop();
  }
}

export function prepareBundle(work: string): string {
  const bundle = path.join(work, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  fs.symlinkSync('busybox', path.join(rootfs, 'bin', 'true'));
  for (const dir of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
  sh('runc', ['spec', '--bundle', bundle]);
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['/bin/true'];
  spec.root.readonly = false;
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

function dockerEngineAnswers(): boolean {
  const r = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { env: { ...process.env, DOCKER_HOST: '' }, encoding: 'utf8', timeout: 5000 });
  return r.status === 0 && r.stdout.trim() !== '';
}

export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function pssKb(pid: number): number {
  try {
    const m = /Pss:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
