import * as fs from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { collect } from './context';
import { parseKeyValues } from './parse';
import type { HostConfig } from '../engine/service';

/**
 * The docker CLI's security and host flags of `run`/`create`, read as it reads them:
 * --cap-add/--cap-drop, --privileged, --security-opt (seccomp=FILE is read here and its
 * content sent, as docker does), --ulimit, --sysctl, --device, --device-cgroup-rule,
 * --tmpfs, --dns*, --add-host, --group-add, --mac-address and --oom-score-adj. berthd
 * checks every value; only the docker CLI's own syntax is handled here.
 */

export interface HostFlags {
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  securityOpt?: string[];
  ulimit?: string[];
  sysctl?: string[];
  device?: string[];
  deviceCgroupRule?: string[];
  tmpfs?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  addHost?: string[];
  groupAdd?: string[];
  macAddress?: string;
  oomScoreAdj?: string;
}

export function hostOptions(c: Command): Command {
  return c
    .option('--cap-add <cap>', 'add a Linux capability (NET_ADMIN or CAP_NET_ADMIN; ALL for every one)', collect)
    .option('--cap-drop <cap>', 'drop a Linux capability (ALL for every one)', collect)
    .option('--privileged', 'every capability and host device, no seccomp, writable /sys (Docker\'s meaning)')
    .option('--security-opt <opt>', 'no-new-privileges, seccomp=unconfined, seccomp=PROFILE.json', collect)
    .option('--ulimit <name=soft[:hard]>', 'a resource limit, e.g. nofile=1024:2048 (never above the host\'s hard limit)', collect)
    .option('--sysctl <name=value>', 'a namespaced sysctl: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*', collect)
    .option('--device <host[:container[:rwm]]>', 'add a host device, e.g. /dev/fuse', collect)
    .option('--device-cgroup-rule <rule>', "allow devices in the cgroup, e.g. 'c 10:229 rwm'", collect)
    .option('--tmpfs <path[:options]>', 'mount a tmpfs, e.g. /run:rw,size=64m', collect)
    .option('--dns <ip>', 'a DNS server for the container', collect)
    .option('--dns-search <domain>', 'a DNS search domain ("." for none)', collect)
    .option('--dns-option <opt>', 'a resolv.conf option, e.g. ndots:2', collect)
    .option('--add-host <name:ip>', 'an /etc/hosts entry; ip may be host-gateway (the bridge gateway)', collect)
    .option('--group-add <group>', 'a supplementary group (name or gid)', collect)
    .option('--mac-address <mac>', "the container's MAC address on the bridge")
    .option('--oom-score-adj <n>', "the container's OOM score adjustment (-1000 to 1000)");
}

function securityOpts(list: string[] | undefined): string[] {
  return (list ?? []).map((opt) => {
    const m = /^seccomp[=:](.+)$/.exec(opt);
    if (!m || m[1] === 'unconfined' || m[1].trimStart().startsWith('{')) return opt;
    try {
      return `seccomp=${JSON.stringify(JSON.parse(fs.readFileSync(m[1], 'utf8')))}`;
    } catch (e) {
      throw new InvalidArgumentError(`opening seccomp profile (${m[1]}) failed: ${(e as Error).message}`, { hint: 'give a readable JSON seccomp profile, or seccomp=unconfined' });
    }
  });
}

function ulimits(list: string[] | undefined): HostConfig['Ulimits'] {
  return (list ?? []).map((u) => {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m) throw new InvalidArgumentError(`invalid --ulimit ${JSON.stringify(u)}`, { hint: 'use NAME=SOFT[:HARD], e.g. --ulimit nofile=1024:2048' });
    return { Name: m[1], Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
  });
}

function devices(list: string[] | undefined): HostConfig['Devices'] {
  return (list ?? []).map((spec) => {
    const [host, second, third, ...rest] = spec.split(':');
    if (rest.length || !host) throw new InvalidArgumentError(`invalid --device ${JSON.stringify(spec)}`, { hint: 'use --device /dev/HOST[:/dev/CONTAINER][:rwm]' });
    // `/dev/x:rw`: the second part is permissions when it is not a path.
    const secondIsPerms = second !== undefined && third === undefined && /^[rwm]+$/.test(second);
    return { PathOnHost: host, PathInContainer: secondIsPerms || !second ? host : second, CgroupPermissions: (secondIsPerms ? second : third) || 'rwm' };
  });
}

function tmpfs(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of list ?? []) {
    const i = t.indexOf(':');
    out[i < 0 ? t : t.slice(0, i)] = i < 0 ? '' : t.slice(i + 1);
  }
  return out;
}

/** The create body's fields for these flags (only those given, so defaults stay defaults). */
export function hostFields(o: HostFlags): { config: { MacAddress?: string }; host: Partial<HostConfig> } {
  const host: Partial<HostConfig> = {};
  const set = <K extends keyof HostConfig>(k: K, v: HostConfig[K] | undefined, given: boolean) => {
    if (given) host[k] = v as HostConfig[K];
  };
  set('CapAdd', o.capAdd, !!o.capAdd?.length);
  set('CapDrop', o.capDrop, !!o.capDrop?.length);
  set('Privileged', true, !!o.privileged);
  set('SecurityOpt', securityOpts(o.securityOpt), !!o.securityOpt?.length);
  set('Ulimits', ulimits(o.ulimit), !!o.ulimit?.length);
  set('Sysctls', parseKeyValues(o.sysctl, '--sysctl'), !!o.sysctl?.length);
  set('Devices', devices(o.device), !!o.device?.length);
  set('DeviceCgroupRules', o.deviceCgroupRule, !!o.deviceCgroupRule?.length);
  set('Tmpfs', tmpfs(o.tmpfs), !!o.tmpfs?.length);
  set('Dns', o.dns, !!o.dns?.length);
  set('DnsSearch', o.dnsSearch, !!o.dnsSearch?.length);
  set('DnsOptions', o.dnsOption, !!o.dnsOption?.length);
  set('ExtraHosts', o.addHost, !!o.addHost?.length);
  set('GroupAdd', o.groupAdd, !!o.groupAdd?.length);
  if (o.oomScoreAdj !== undefined) {
    const n = Number(o.oomScoreAdj);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`invalid --oom-score-adj ${o.oomScoreAdj}`, { hint: 'give a whole number from -1000 to 1000' });
    host.OomScoreAdj = n;
  }
  return { config: o.macAddress ? { MacAddress: o.macAddress } : {}, host };
}
