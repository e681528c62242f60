import * as fs from 'node:fs';
import { InvalidArgumentError } from '../../volumes/shared/errors';

/**
 * Linux capabilities as Docker gives them: the 14 defaults, `--cap-add`/`--cap-drop` with
 * or without the `CAP_` prefix and in any case, `ALL` on either side, and `--privileged`
 * (every capability the kernel knows). Names are always returned as `CAP_*`.
 *
 * Example: effectiveCapabilities({ add: ['net_admin'], drop: ['ALL'] }) → ['CAP_NET_ADMIN']
 */

/** Every capability by number (capability.h); the kernel's cap_last_cap says how many it has. */
export const ALL_CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** Docker's 14 default capabilities. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

let hostCaps: string[] | undefined;

/**
 * The capabilities a container can have here (Docker's GetAllCapabilities): those this
 * kernel knows (cap_last_cap) that berthd's own bounding set holds, since no process
 * can give a child a capability it cannot have itself.
 */
export function allCapabilities(): string[] {
  if (!hostCaps) {
    let last = ALL_CAPABILITY_NAMES.length - 1;
    let bounding = (1n << 64n) - 1n;
    try {
      last = Math.min(last, Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim()));
      const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
      if (m) bounding = BigInt(`0x${m[1]}`);
    } catch {
      // no procfs to ask: every name we know
    }
    hostCaps = ALL_CAPABILITY_NAMES.slice(0, last + 1).filter((_c, i) => (bounding >> BigInt(i)) & 1n);
  }
  return [...hostCaps];
}

/** `net_admin`, `CAP_NET_ADMIN`, `Net_Admin` → `CAP_NET_ADMIN`; `all` → `ALL`; unknown names refused. */
export function normalizeCapabilities(list: unknown, field: 'CapAdd' | 'CapDrop'): string[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list) || list.some((c) => typeof c !== 'string')) {
    throw new InvalidArgumentError(`HostConfig.${field} must be a list of strings`, { hint: `e.g. "${field}": ["NET_ADMIN"]` });
  }
  const out: string[] = [];
  for (const raw of list as string[]) {
    const up = raw.trim().toUpperCase();
    const name = up === 'ALL' ? 'ALL' : up.startsWith('CAP_') ? up : `CAP_${up}`;
    if (name !== 'ALL' && !ALL_CAPABILITY_NAMES.includes(name)) {
      throw new InvalidArgumentError(`unknown capability: ${JSON.stringify(raw)} (HostConfig.${field})`, {
        hint: 'use a name from capabilities(7), with or without CAP_, e.g. NET_ADMIN or SYS_PTRACE, or ALL',
      });
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * The container's capability set, as moby's TweakCapabilities computes it: privileged is
 * everything; `--cap-add ALL` is everything but the drops; `--cap-drop ALL` is only the
 * adds; otherwise the defaults minus the drops plus the adds.
 */
export function effectiveCapabilities(o: { add?: string[]; drop?: string[]; privileged?: boolean }): string[] {
  const all = allCapabilities();
  if (o.privileged) return all;
  const add = (o.add ?? []).filter((c) => c === 'ALL' || all.includes(c));
  const drop = o.drop ?? [];
  if (add.includes('ALL')) return all.filter((c) => !drop.includes(c));
  if (drop.includes('ALL')) return add;
  const out = DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c));
  for (const c of add) if (!out.includes(c)) out.push(c);
  return out;
}
