/**
 * Run after the whole suite (`npm test`): the machine must hold nothing of ours — no
 * overlay/btrfs mounts under a test root, no berth-monitor or runc process, no runc state,
 * no berth cgroups, no network namespaces, no bridges or veths, no iptables rules naming berth
 * (a test daemon's chains carry a suffix), no loop devices
 * backed by a berth file. Prints what it finds and exits 1 if anything leaked.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cgroupParent } from '../src/engine/host';

// A user's own berth (the default root, e.g. left by `npm start`) is not the tests' to judge.
const USER_ROOT = '/var/lib/berth';
const userCgroup = cgroupParent(USER_ROOT).slice(1);

const leaks: string[] = [];
const out = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '';

for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
  const mnt = line.split(' ')[4];
  if (mnt && /\/(berth-[^/]*|tmp\/[^/]*berth[^/]*)\//.test(mnt + '/') && !mnt.startsWith('/var/lib/berth')) leaks.push(`mount ${mnt}`);
}
for (const p of out('pgrep', ['-a', '-f', 'berth-monitor|dist/src/cli/main.js daemon']).split('\n').filter(Boolean)) {
  if (!p.includes('/var/lib/berth')) leaks.push(`process ${p}`);
}
for (const ctrl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
  const dir = path.join('/sys/fs/cgroup', ctrl);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    continue;
  }
  for (const n of names) if (/^berth-/.test(n) && n !== userCgroup) leaks.push(`cgroup ${path.join(dir, n)}`);
}
// The suite's own names too: a neighbour host's `bn-<hex>` (network/netutil.ts).
for (const n of out('ip', ['netns', 'list']).split('\n').filter(Boolean)) if (/berth|^bn-[0-9a-f]{6}\b/.test(n)) leaks.push(`netns ${n}`);
// The user's own daemon's rules (default chains, no suffix) and bridge berth0 are not ours to judge.
for (const r of out('iptables-save', []).split('\n')) if (/berth/i.test(r) && !/BERTH-[A-Z]+( |$)/.test(r + ' ')) leaks.push(`iptables ${r}`);
const links = JSON.parse(out('ip', ['-j', 'link', 'show']) || '[]') as Array<{ ifname: string; master?: string; ifalias?: string }>;
// A bridge claimed by a root other than the user's (a user-defined network's br-…, or any
// other name) is a test's; so are the veths on it (bv… on default bridges, bu… on networks).
const userBridges = new Set(['berth0', ...links.filter((l) => l.ifalias === `berth-root=${USER_ROOT}`).map((l) => l.ifname)]);
for (const l of links) {
  if ((/^berth/.test(l.ifname) || l.ifalias?.startsWith('berth-root=')) && !userBridges.has(l.ifname)) leaks.push(`bridge ${l.ifname}${l.ifalias ? ` (${l.ifalias})` : ''}`);
  // The isolation test's own bridges and veth ends (`bi`/`bs` + 6 of its root's name, network/isolation.test.ts).
  if (/^b[is][0-9a-z]{6}[dp]?$/.test(l.ifname)) leaks.push(`link ${l.ifname}`);
  if (/^(bv[0-9a-f]{12}|bu[0-9a-f]{13})$/.test(l.ifname) && !userBridges.has(l.master ?? '')) leaks.push(`veth ${l.ifname}`);
}
for (const l of out('losetup', ['-a']).split('\n')) if (/berth/.test(l) && !l.includes(USER_ROOT + '/')) leaks.push(`loop ${l}`);

if (leaks.length) {
  console.error(`leak check: the tests left ${leaks.length} things behind:\n  ${leaks.join('\n  ')}`);
  process.exit(1);
}
console.log('leak check: nothing left behind (mounts, processes, cgroups, netns, bridges, veths, iptables, loop devices)');
