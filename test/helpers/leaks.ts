/**
 * The suite's one leak policy, scoped to one data root: what a daemon (or an engine, a
 * volume driver) on `root` left on the host after it stopped. A root is unique per test
 * fixture, so everything below names it — mounts under it, processes whose arguments name
 * it, its cgroup parent (`cgroupParent(root)`), links claimed by it, its bridge and chain
 * suffix, its containers' veths, loop devices backed by files under it. A network
 * namespace outlives its processes only through a bind mount (under the root: a mount) or
 * a process (a process here, or one in a leftover cgroup), so those two scans cover it.
 *
 * `leftoversOf` only looks; `cleanLeftovers` tries hard to remove what was found (so one
 * leak does not cascade into the next test) and says what it could not remove. A fixture
 * reports both and fails the test that owned the root: it never hides a leak. The global
 * `test/leakcheck.ts` stays the final net after the whole run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cgroupDirs, cgroupParent } from '../../src/engine/host';
import { cgroupPids } from '../../src/runtime/cgroups';
import { vethName } from '../../src/network/modes';
import { ownChains } from '../../src/network/rules';
import { ownerTag } from '../../src/network/claims';
import { IptablesExecutor } from '../../src/network/iptables';
import { mountsUnder } from './mounts';

export interface Leftover {
  kind: 'mount' | 'process' | 'cgroup' | 'bridge' | 'chains' | 'veth' | 'loop' | 'runc-state';
  /** What it is: a path, a pid, a link or chain name, a loop device. */
  what: string;
  /** More words for the report (a command line, a backing file). */
  detail?: string;
}

export interface Scope {
  /** The data root (a test daemon's, an engine's, a driver's temp dir). */
  root: string;
  /** The daemon's bridge and iptables chain suffix, when it has its own network. */
  bridge?: string;
  suffix?: string;
  /** Container ids whose veths to look for (default: the directories in `<root>/containers`). */
  containerIds?: string[];
  /** Processes not to report (the test's own, a daemon's pid the caller is still ending). */
  ignorePids?: number[];
}

const out = (cmd: string, args: string[]): string => spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '';

const under = (p: string, root: string): boolean => p === root || p.startsWith(`${root}/`);

function realRoot(root: string): string {
  try {
    return fs.realpathSync(root);
  } catch {
    return path.resolve(root);
  }
}

/** Live (not zombie) processes whose arguments name `root` or a path under it. */
export function processesNaming(root: string, ignore: number[] = []): Array<{ pid: number; cmd: string }> {
  const roots = [...new Set([path.resolve(root), realRoot(root)])];
  const found: Array<{ pid: number; cmd: string }> = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || ignore.includes(pid)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const names = (a: string) => roots.some((r) => under(a, r) || a.includes(`=${r}/`) || a.endsWith(`=${r}`));
      if (argv.some(names)) found.push({ pid, cmd: argv.join(' ').slice(0, 300) });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function containerIdsOf(root: string): string[] {
  try {
    return fs.readdirSync(path.join(root, 'containers')).filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    return [];
  }
}

/** Loop devices backed by a file under `root`: [device, backing file]. */
export function loopsUnder(root: string): Array<[string, string]> {
  const roots = [...new Set([path.resolve(root), realRoot(root)])];
  const found: Array<[string, string]> = [];
  for (const line of out('losetup', ['-a']).split('\n')) {
    const m = /^(\/dev\/loop\d+):.*\((.*)\)$/.exec(line);
    if (m && roots.some((r) => under(m[2].replace(/ \(deleted\)$/, ''), r))) found.push([m[1], m[2]]);
  }
  return found;
}

/**
 * A pool's loop device is marked autoclear (pool.ts): the kernel detaches it when the last
 * reference to its filesystem goes. Unmounted here, the filesystem can still be referenced for
 * a moment by a mount namespace that copied the host's mounts — another test's container
 * between its clone and its pivot_root, an `ip netns exec` — so the device goes a little after
 * the close. Wait for that (bounded); one still attached after 30 s is a leak, and says so.
 */
export async function settleAutoclearLoops(root: string, timeoutMs = 30_000): Promise<void> {
  const autoclear = (dev: string) => {
    try {
      return fs.readFileSync(`/sys/block/${path.basename(dev)}/loop/autoclear`, 'utf8').trim() === '1';
    } catch {
      return false; // gone already
    }
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const loops = loopsUnder(root);
    if (!loops.length || !loops.every(([dev]) => autoclear(dev)) || mountsUnder(root).length || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What is left on the host of `scope.root`. Empty: nothing. */
export function leftoversOf(scope: Scope): Leftover[] {
  const { root } = scope;
  const found: Leftover[] = [];
  for (const m of mountsUnder(root)) found.push({ kind: 'mount', what: m });
  for (const p of processesNaming(root, scope.ignorePids)) found.push({ kind: 'process', what: String(p.pid), detail: p.cmd });
  for (const dir of cgroupDirs(cgroupParent(root))) {
    if (!fs.existsSync(dir)) continue;
    const children = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
    found.push({ kind: 'cgroup', what: dir, detail: children.length ? `holds ${children.map((c) => c.name.slice(0, 12)).join(' ')}` : undefined });
  }
  const links = JSON.parse(out('ip', ['-j', 'link', 'show']) || '[]') as Array<{ ifname: string; master?: string; ifalias?: string }>;
  const tag = `berth-root=${ownerTag(root)}`;
  const bridges = new Set(links.filter((l) => l.ifalias === tag || (scope.bridge && l.ifname === scope.bridge)).map((l) => l.ifname));
  for (const b of bridges) found.push({ kind: 'bridge', what: b });
  const ids = scope.containerIds ?? containerIdsOf(root);
  for (const l of links) {
    if (bridges.has(l.ifname)) continue;
    const ours = ids.some((id) => l.ifname === vethName(id) || l.ifname.startsWith(`bu${id.slice(0, 7)}`)) || (l.master !== undefined && bridges.has(l.master));
    if (ours) found.push({ kind: 'veth', what: l.ifname });
  }
  if (scope.suffix) {
    const rules = out('iptables-save', []).split('\n').filter((r) => r.includes(`BERTH-`) && (r.includes(`${scope.suffix} `) || r.endsWith(scope.suffix!)));
    if (rules.length) found.push({ kind: 'chains', what: `BERTH-*${scope.suffix}`, detail: `${rules.length} lines, e.g. ${rules[0]}` });
  }
  for (const [dev, file] of loopsUnder(root)) found.push({ kind: 'loop', what: dev, detail: `backed by ${file}` });
  return found;
}

export function describeLeftovers(found: Leftover[]): string {
  return found.map((l) => `  ${l.kind} ${l.what}${l.detail ? ` (${l.detail})` : ''}`).join('\n');
}

/**
 * Remove what `leftoversOf` found, hardest first: kill the processes (and those in the
 * leftover cgroups), delete the runc state under the root, unmount deepest first, detach
 * the loop devices, delete links and chains, remove the cgroups. Returns what could not be
 * removed (a lazy unmount counts as removed, but is named: the mount was busy).
 */
export async function cleanLeftovers(scope: Scope, found: Leftover[]): Promise<string[]> {
  const failed: string[] = [];
  const run = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  const kill = (pid: number) => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  };
  for (const l of found) if (l.kind === 'process') kill(Number(l.what));
  for (const pid of cgroupPids(cgroupParent(scope.root))) kill(pid);
  // runc state under the root (`runc --root <root>/runtime`, or an engine's <root>/runc).
  for (const dir of ['runtime', 'runc']) {
    const state = path.join(scope.root, dir);
    if (!fs.existsSync(state)) continue;
    for (const id of fs.readdirSync(state)) run('runc', ['--root', state, 'delete', '--force', id]);
  }
  // Killed processes take a moment to leave their cgroups and release their mounts.
  for (let i = 0; i < 100 && cgroupPids(cgroupParent(scope.root)).length; i++) await new Promise((r) => setTimeout(r, 50));
  for (const m of mountsUnder(scope.root)) {
    if (!run('umount', [m])) {
      if (run('umount', ['-l', m])) failed.push(`mount ${m} was busy (lazily unmounted)`);
      else failed.push(`mount ${m} could not be unmounted`);
    }
  }
  for (const [dev] of loopsUnder(scope.root)) if (!run('losetup', ['-d', dev])) failed.push(`loop ${dev} could not be detached`);
  for (const l of found) {
    if (l.kind === 'veth' && fs.existsSync(`/sys/class/net/${l.what}`) && !run('ip', ['link', 'del', 'dev', l.what])) failed.push(`veth ${l.what} could not be deleted`);
  }
  for (const l of found) {
    if (l.kind === 'bridge' && fs.existsSync(`/sys/class/net/${l.what}`) && !run('ip', ['link', 'del', 'dev', l.what])) failed.push(`bridge ${l.what} could not be deleted`);
  }
  if (scope.suffix && found.some((l) => l.kind === 'chains')) {
    await new IptablesExecutor().remove(ownChains(scope.suffix)).catch((e: Error) => failed.push(`chains BERTH-*${scope.suffix}: ${e.message}`));
  }
  for (const dir of cgroupDirs(cgroupParent(scope.root))) {
    try {
      removeCgroupTree(dir);
    } catch (e) {
      failed.push(`cgroup ${dir}: ${(e as Error).message}`);
    }
  }
  return failed;
}

function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

/** An Error that names every leftover of `what`, what the cleanup could not remove, and other teardown failures. */
export class LeakError extends Error {
  readonly code = 'LEAK' as const;
  constructor(
    what: string,
    readonly leftovers: Leftover[],
    /** What the cleanup could not remove; null: no cleanup was tried. */
    readonly uncleaned: string[] | null,
    readonly problems: string[] = [],
    extra = '',
  ) {
    const parts: string[] = [];
    if (leftovers.length) {
      const removed = uncleaned === null ? 'not removed here: the daemon\'s stop removes and reports them' : `the fixture removed them${uncleaned.length ? `, except: ${uncleaned.join('; ')}` : ''}`;
      parts.push(`${what} left ${leftovers.length} thing(s) behind (${removed}):\n${describeLeftovers(leftovers)}`);
    }
    if (problems.length) parts.push(`${leftovers.length ? 'and its' : `${what}: its`} teardown failed: ${problems.join('; ')}`);
    super(parts.join('\n') + extra);
    this.name = 'LeakError';
  }
}

/**
 * The end of a fixture's root: scan it for leftovers, remove them, remove the root, and
 * throw a LeakError if anything was left or `problems` (failures the caller met while
 * closing, e.g. a driver's close) is not empty. Resolves only when all was clean.
 */
export async function releaseRoot(what: string, scope: Scope, problems: string[] = [], extra = ''): Promise<void> {
  await settleAutoclearLoops(scope.root);
  const left = leftoversOf(scope);
  const uncleaned = left.length ? await cleanLeftovers(scope, left) : [];
  await fs.promises.rm(scope.root, { recursive: true, force: true }).catch((e: Error) => problems.push(`removing ${scope.root} failed: ${e.message}`));
  if (left.length || problems.length) throw new LeakError(what, left, uncleaned, problems, extra);
}

/**
 * What one container of the daemon on `root` left after it was removed: mounts under its
 * directory, its cgroups (under the daemon's cgroup parent), processes naming it (its
 * berth-monitor, a runc), its veths, its runc state. Empty: nothing.
 */
export function containerLeftovers(root: string, id: string): Leftover[] {
  const found: Leftover[] = [];
  const dir = path.join(root, 'containers', id);
  for (const m of mountsUnder(dir)) found.push({ kind: 'mount', what: m });
  for (const cg of cgroupDirs(`${cgroupParent(root)}/${id}`)) if (fs.existsSync(cg)) found.push({ kind: 'cgroup', what: cg });
  for (const p of processesNaming(dir)) found.push({ kind: 'process', what: String(p.pid), detail: p.cmd });
  for (const p of processesNaming(path.join(root, 'runtime', id))) if (!found.some((f) => f.what === String(p.pid))) found.push({ kind: 'process', what: String(p.pid), detail: p.cmd });
  for (const name of fs.readdirSync('/sys/class/net')) {
    if (name === vethName(id) || name.startsWith(`bu${id.slice(0, 7)}`)) found.push({ kind: 'veth', what: name });
  }
  if (fs.existsSync(path.join(root, 'runtime', id))) found.push({ kind: 'runc-state', what: path.join(root, 'runtime', id) });
  return found;
}
