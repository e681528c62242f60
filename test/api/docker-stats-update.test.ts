import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon } from '../helpers/daemon';
import { cgroupDirs } from '../../src/engine/host';
import { cgroupParent } from '../../src/engine/host';

// docker stats, update, diff, system df and system prune (the real docker CLI) and berth's
// own verbs against one berthd.

let d: TestDaemon;
test.before(async () => {
  d = await TestDaemon.start();
});
test.after.always(async () => d?.stop());

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The first of a container's cgroup files found (v2: one dir; v1: the controller's). */
function cgroupFile(id: string, ...names: string[]): string {
  for (const dir of cgroupDirs(`${cgroupParent(d.root)}/${id}`)) {
    for (const n of names) if (fs.existsSync(path.join(dir, n))) return fs.readFileSync(path.join(dir, n), 'utf8').trim();
  }
  throw new Error(`no ${names.join('/')} for ${id}`);
}

test('docker stats --no-stream and berth stats show real cpu, memory, pids and network numbers', async (t) => {
  await ok(d.docker(['run', '-d', '--name', 'busy', '-m', '64m', 'busybox', 'sh', '-c', 'while true; do :; done']));
  await ok(d.docker(['run', '-d', '--name', 'idle', 'busybox', 'sleep', '1000']));
  const out = await ok(d.docker(['stats', '--no-stream', '--format', '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}} {{.NetIO}}']));
  const busy = out.split('\n').find((l) => l.startsWith('busy '));
  t.truthy(busy, out);
  const [, cpu, used, , limit, pids] = busy!.split(/\s+/);
  t.true(parseFloat(cpu) > 1, `a spinning shell uses cpu: ${busy}`);
  t.not(used, '0B');
  t.is(limit, '64MiB');
  t.is(pids, '1');
  t.regex(busy!, /\d+(\.\d+)?k?B \/ \d+(\.\d+)?k?B$/);
  const mine = await ok(d.berth(['stats', '--no-stream', 'idle']));
  t.regex(mine, /CONTAINER ID\s+NAME\s+CPU %/);
  t.regex(mine, /idle\s+\d+\.\d+%\s+\d+(\.\d+)?[kKM]i?B/);
});

test('the stats API streams a sample a second, and stream=false gives one with precpu filled', async (t) => {
  await ok(d.docker(['run', '-d', '--name', 'st', 'busybox', 'sleep', '1000']));
  const one = JSON.parse((await d.transport.request('GET', '/containers/st/stats', { query: { stream: 0 } }).then(readBody)).toString());
  t.true(one.cpu_stats.cpu_usage.total_usage > 0);
  t.true(one.precpu_stats.system_cpu_usage > 0, 'stream=false samples twice, as Docker');
  t.true(one.memory_stats.usage > 0);
  t.truthy(one.networks?.eth0);
  const shot = JSON.parse((await d.transport.request('GET', '/containers/st/stats', { query: { stream: 0, 'one-shot': 1 } }).then(readBody)).toString());
  t.is(shot.precpu_stats.system_cpu_usage, 0);
  const res = await d.transport.request('GET', '/containers/st/stats');
  const lines: unknown[] = [];
  await new Promise<void>((resolve) => {
    let buf = '';
    res.on('data', (c: Buffer) => {
      buf += c.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts.filter(Boolean).map((l) => JSON.parse(l)));
      if (lines.length >= 2) {
        res.destroy();
        resolve();
      }
    });
  });
  t.is(lines.length, 2);
  const err = await d.docker(['stats', '--no-stream', 'nosuch']);
  t.not(err.code, 0);
});

test('docker update changes memory, cpus, pids and restart policy live, and refuses what it cannot apply', async (t) => {
  const id = (await ok(d.docker(['run', '-d', '--name', 'up', '-m', '64m', 'busybox', 'sleep', '1000']))).trim();
  await ok(d.docker(['update', '--memory', '128m', '--memory-swap', '256m', '--cpus', '0.5', '--pids-limit', '40', '--restart', 'on-failure:3', 'up']));
  t.is(cgroupFile(id, 'memory.max', 'memory.limit_in_bytes'), String(128 * 1024 * 1024));
  t.is(cgroupFile(id, 'pids.max'), '40');
  const cpu = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? cgroupFile(id, 'cpu.max') : cgroupFile(id, 'cpu.cfs_quota_us');
  t.regex(cpu, /^50000\b/);
  t.is((await ok(d.docker(['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}', 'up']))).trim(), `${128 * 1024 * 1024} 500000000 40 on-failure:3`);
  // Kept for the next run too.
  await ok(d.docker(['restart', '-t', '0', 'up']));
  t.is(cgroupFile(id, 'memory.max', 'memory.limit_in_bytes'), String(128 * 1024 * 1024));
  const shares = await d.docker(['update', '--cpu-shares', '512', 'up']);
  t.not(shares.code, 0);
  t.regex(shares.stderr, /CpuShares/);
  const small = await d.docker(['update', '--memory', '1m', 'up']);
  t.not(small.code, 0);
  const mine = await d.berth(['update', '--memory', '96m', 'up']);
  t.is(mine.code, 0, mine.stderr);
  t.is(cgroupFile(id, 'memory.max', 'memory.limit_in_bytes'), String(96 * 1024 * 1024));
  const rm = await ok(d.docker(['run', '-d', '--rm', '--name', 'uprm', 'busybox', 'sleep', '1000']));
  const auto = await d.docker(['update', '--restart', 'always', 'uprm']);
  t.not(auto.code, 0, 'AutoRemove and a restart policy do not mix');
  void rm;
});

test('docker diff lists added, changed and deleted paths from the overlay upper dir', async (t) => {
  await ok(d.docker(['run', '--name', 'df1', 'busybox', 'sh', '-c', 'mkdir /newdir && echo x > /newdir/f && echo y >> /etc/group && rm /bin/sync']));
  const lines = (await ok(d.docker(['diff', 'df1']))).trim().split('\n');
  for (const l of ['A /newdir', 'A /newdir/f', 'C /etc', 'C /etc/group', 'D /bin/sync']) t.true(lines.includes(l), `${l} in ${lines.join(', ')}`);
  t.false(lines.some((l) => /\/etc\/(hosts|hostname|resolv\.conf)$|^. \/(proc|sys|dev)\b/.test(l)), `no mount points: ${lines.join(', ')}`);
  t.deepEqual((await ok(d.berth(['diff', 'df1']))).trim().split('\n'), lines);
});

// Serial (ava runs serial tests before the concurrent ones): system prune would take the other
// tests' stopped containers (docker diff's df1) on this shared daemon.
test.serial('docker system df sizes images, containers and volumes; system prune -f runs end to end', async (t) => {
  await ok(d.docker(['volume', 'create', 'dfvol']));
  await ok(d.docker(['run', '--name', 'dfc', '-v', 'dfvol:/v', 'busybox', 'sh', '-c', 'dd if=/dev/zero of=/v/blob bs=1M count=3 2>/dev/null && dd if=/dev/zero of=/rw bs=1M count=2 2>/dev/null']));
  const v = await ok(d.docker(['system', 'df', '-v', '--format', '{{json .}}']));
  const du = JSON.parse(v);
  const vol = du.Volumes.find((x: { Name: string }) => x.Name === 'dfvol');
  t.true(parseSize(vol.Size) >= 3e6, `volume size ${vol.Size}`);
  const ctr = du.Containers.find((x: { Names: string }) => x.Names === 'dfc');
  t.true(parseSize(ctr.Size) >= 2e6, `container size ${ctr.Size}`);
  t.true(du.Images.some((i: { Repository: string }) => i.Repository === 'busybox'));
  t.regex(await ok(d.berth(['system', 'df'])), /Local Volumes\s+\d+\s+\d+\s+\d/);

  await ok(d.docker(['commit', 'dfc', 'dangling-to-be']));
  await ok(d.docker(['tag', 'dangling-to-be', 'kept:1']));
  await ok(d.docker(['rmi', 'dangling-to-be']));
  await ok(d.docker(['commit', 'dfc']));
  await ok(d.docker(['run', '-d', '--name', 'keeper', 'busybox', 'sleep', '1000']));
  const prune = await ok(d.docker(['system', 'prune', '-f']));
  t.regex(prune, /Deleted Containers:/);
  t.regex(prune, /Deleted Images:/);
  t.regex(prune, /Total reclaimed space/);
  const names = (await ok(d.docker(['ps', '-a', '--format', '{{.Names}}']))).split('\n');
  t.true(names.includes('keeper'));
  t.false(names.includes('dfc'));
  const images = await ok(d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']));
  t.regex(images, /kept:1/, 'a tagged image survives a plain prune');
  t.notRegex(images, /<none>/);
  const all = await ok(d.docker(['image', 'prune', '-a', '-f']));
  t.regex(all, /untagged: kept:1/);
  t.regex(await ok(d.docker(['images', '--format', '{{.Repository}}'])), /busybox/, 'an image a container uses stays');
});

function parseSize(s: string): number {
  const m = /^([\d.]+)\s*([kMG]?)B$/.exec(s.trim());
  if (!m) return 0;
  return Number(m[1]) * ({ '': 1, k: 1e3, M: 1e6, G: 1e9 } as Record<string, number>)[m[2]];
}

async function readBody(res: import('node:http').IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
