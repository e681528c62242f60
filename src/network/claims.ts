import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { ConflictError } from '../../volumes/shared/errors';
import { tool } from '../../volumes/shared/host-tool';
import { linkExists, linksOn } from './links';
import { chainsOf, type Rule } from './rules';

/**
 * Who owns a bridge and an iptables chain suffix: one data root each. The record is kept
 * in the kernel, on the thing it claims, so it can always be checked against the kernel's
 * state and dies with it (a reboot, `ip link del`):
 *
 *   a bridge        its ifalias:             berth-root=/var/lib/berth
 *   a chain suffix  a comment rule, first in raw BERTH-GUARD<suffix>:
 *                                            -m comment --comment berth-root=/var/lib/berth
 *
 * A daemon takes a bridge or suffix that is free, or already its own; one that another
 * root claims is refused with CONFLICT naming that root (unless that root is gone from
 * disk: a claim nobody can come back for is stale). Unclaimed ones (made before claims
 * existed) are taken only when nothing on them is somebody else's. The checks and the
 * claiming run under one host-wide lock, so two daemons starting together cannot both win.
 */

const ALIAS_PREFIX = 'berth-root=';
const LOCK_DIR = '/run/berth';

/** The owner tag of a data root: the path itself when it is plain, else its hash. */
export function ownerTag(root: string): string {
  return /^\/[A-Za-z0-9_./-]{0,200}$/.test(root) ? root : `sha256:${createHash('sha256').update(root).digest('hex').slice(0, 32)}`;
}

/** The comment rule that claims a chain suffix for `root`; baseRules puts it first in the guard chain. */
export function claimRule(suffix: string, root: string): Rule {
  return { table: 'raw', chain: chainsOf(suffix).guard, args: ['-m', 'comment', '--comment', `${ALIAS_PREFIX}${ownerTag(root)}`] };
}

export type Owner =
  /** nothing there */
  | { state: 'free' }
  /** there, with a claim: the owner's tag */
  | { state: 'claimed'; owner: string }
  /** there, with no claim (made before claims, or not berth's) */
  | { state: 'unclaimed' };

export function bridgeOwner(name: string): Owner {
  if (!linkExists(name)) return { state: 'free' };
  let alias = '';
  try {
    alias = fs.readFileSync(`/sys/class/net/${name}/ifalias`, 'utf8').trim();
  } catch {
    // no alias support: treat as unclaimed
  }
  return alias.startsWith(ALIAS_PREFIX) ? { state: 'claimed', owner: alias.slice(ALIAS_PREFIX.length) } : { state: 'unclaimed' };
}

export async function claimBridge(name: string, root: string): Promise<void> {
  await tool('ip', ['link', 'set', 'dev', name, 'alias', `${ALIAS_PREFIX}${ownerTag(root)}`]);
}

/** The guard chain's owner, and how many rules the suffix's chains hold (from one iptables-save). */
export async function chainOwner(suffix: string): Promise<Owner & { rules: number }> {
  const text = await tool('iptables-save', []).catch(() => '');
  const c = chainsOf(suffix);
  const names = new Set([c.guard, c.dnat, c.post, c.fwd]);
  let exists = false;
  let rules = 0;
  let owner: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith(':') && names.has(line.slice(1).split(' ')[0])) exists = true;
    if (!line.startsWith('-A ')) continue;
    const chain = line.split(' ')[1];
    if (!names.has(chain)) continue;
    const m = /--comment "?berth-root=([^" ]+)"?/.exec(line);
    if (chain === c.guard && m) owner = m[1];
    else rules++;
  }
  if (!exists) return { state: 'free', rules };
  return owner ? { state: 'claimed', owner, rules } : { state: 'unclaimed', rules };
}

/** A claim whose root is gone from disk: nobody can come back for what it holds. */
function stale(owner: string): boolean {
  return owner.startsWith('/') && !fs.existsSync(owner);
}

function conflict(what: string, owner: string, flag: string): ConflictError {
  return new ConflictError(`${what} belongs to the berth daemon of data root ${owner}`, {
    hint: `give this daemon its own ${flag} (or leave --bridge out on a root of its own: it then gets a bridge derived from the root), or use the daemon of ${owner}`,
  });
}

export interface ClaimCheck {
  root: string;
  bridge: string;
  suffix: string;
  /** The bridge and suffix this root used last time (network.json). */
  recorded: { bridge?: string; suffix?: string };
  /** Host-side veth names of this root's containers: the only ports it may find on an unclaimed bridge. */
  ownVeths: Set<string>;
  log: (msg: string) => void;
  /** Check the bridge only (a user-defined network's: the suffix is the daemon's, claimed already). */
  bridgeOnly?: boolean;
}

/** Refuse with CONFLICT if the bridge or the suffix is another root's; else say what to claim. */
export async function checkClaims(c: ClaimCheck): Promise<void> {
  const me = ownerTag(c.root);
  const b = bridgeOwner(c.bridge);
  if (b.state === 'claimed' && b.owner !== me) {
    if (!stale(b.owner)) throw conflict(`bridge ${c.bridge}`, b.owner, '--bridge');
    c.log(`bridge ${c.bridge} was claimed by ${b.owner}, which is gone: taking it over`);
  } else if (b.state === 'unclaimed') {
    const foreign = (await linksOn(c.bridge)).filter((l) => !c.ownVeths.has(l));
    if (foreign.length > 0) {
      throw new ConflictError(`bridge ${c.bridge} exists, is claimed by no berth data root, and has ports that are not this daemon's: ${foreign.slice(0, 5).join(', ')}`, {
        hint: 'give this daemon its own --bridge; an older berth daemon may be using it (restart that one first: it claims its bridge)',
      });
    }
  }
  if (c.bridgeOnly) return;
  const ch = await chainOwner(c.suffix);
  if (ch.state === 'claimed' && ch.owner !== me) {
    if (!stale(ch.owner)) throw conflict(`iptables chain suffix ${JSON.stringify(c.suffix)}`, ch.owner, '--iptables-suffix');
    c.log(`chains BERTH-*${c.suffix} were claimed by ${ch.owner}, which is gone: taking them over`);
  } else if (ch.state === 'unclaimed' && ch.rules > 0 && c.recorded.suffix !== c.suffix) {
    throw new ConflictError(`iptables chains BERTH-*${c.suffix} exist with rules, and no berth data root claims them`, {
      hint: 'give this daemon its own --iptables-suffix; an older berth daemon may be using them (restart that one first: it claims its chains)',
    });
  }
}

/** Every link on the host whose claim is `root`'s (its bridges, ours to clean after a crash). */
export function claimedBy(root: string): string[] {
  const me = `${ALIAS_PREFIX}${ownerTag(root)}`;
  const out: string[] = [];
  for (const name of fs.readdirSync('/sys/class/net')) {
    try {
      if (fs.readFileSync(`/sys/class/net/${name}/ifalias`, 'utf8').trim() === me) out.push(name);
    } catch {
      // gone meanwhile, or no alias support
    }
  }
  return out;
}

/** Is the bridge still claimed by `root` (before a daemon removes it)? */
export function ownsBridge(name: string, root: string): boolean {
  const b = bridgeOwner(name);
  return b.state === 'claimed' && b.owner === ownerTag(root);
}

export async function ownsChains(suffix: string, root: string): Promise<boolean> {
  const ch = await chainOwner(suffix);
  return ch.state === 'claimed' && ch.owner === ownerTag(root);
}

/** Run `fn` holding the host-wide network lock (claims are checked and made under it). */
export async function withHostLock<T>(fn: () => Promise<T>): Promise<T> {
  await fs.promises.mkdir(LOCK_DIR, { recursive: true, mode: 0o700 });
  const release = await lockfile.lock(LOCK_DIR, {
    lockfilePath: path.join(LOCK_DIR, 'network.lock'),
    realpath: false,
    stale: 15_000,
    update: 3_000,
    retries: { retries: 200, minTimeout: 20, maxTimeout: 200 },
  });
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}
