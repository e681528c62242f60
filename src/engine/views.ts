import type { Endpoint } from '../network/network';
import type { ContainerRecord, ContainerPaths } from './container-record';
import { ZERO_TIME } from './container-record';
import type { ContainerInspect, ContainerSummary } from './service';
import { bindPoints, mountView } from './mounts';
import { portsView, summaryPorts } from '../network/mappings';
import { healthSuffix } from './health';
import { humanDuration } from '../units';

/**
 * The Docker API's views of a container record: the `docker ps` summary with its Status
 * text, and `docker inspect`. Pure functions of the record (and the clock).
 */

function since(iso: string, now: number): string {
  return humanDuration(Math.max(0, now - Date.parse(iso)));
}

/** Docker's State.String(): 'Up 3 seconds', 'Exited (0) 2 seconds ago', 'Created', ... */
export function statusText(rec: ContainerRecord, now = Date.now()): string {
  const s = rec.State;
  switch (s.Status) {
    case 'running':
      return `Up ${since(s.StartedAt, now)}${healthSuffix(s.Health)}`;
    case 'paused':
      return `Up ${since(s.StartedAt, now)} (Paused)`;
    case 'restarting':
      return `Restarting (${s.ExitCode}) ${since(s.FinishedAt, now)} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    case 'exited':
      if (s.FinishedAt === ZERO_TIME) return 'Created';
      return `Exited (${s.ExitCode}) ${since(s.FinishedAt, now)} ago`;
    default:
      return 'Created';
  }
}

function mounts(rec: ContainerRecord): Array<Record<string, unknown>> {
  return (rec.Mounts ?? bindPoints(rec.HostConfig.Binds)).map(mountView);
}

export function toSummary(rec: ContainerRecord, now = Date.now()): ContainerSummary {
  return {
    Id: rec.Id,
    Names: [rec.Name],
    Image: rec.Config.Image,
    ImageID: rec.Image,
    Command: [rec.Path, ...rec.Args].join(' '),
    Created: Math.floor(Date.parse(rec.Created) / 1000),
    Ports: summaryPorts(rec.Config.ExposedPorts, rec.Network?.Ports ?? []),
    Labels: { ...rec.Config.Labels },
    State: rec.State.Status,
    Status: statusText(rec, now),
    HostConfig: { NetworkMode: rec.HostConfig.NetworkMode || 'default' },
    NetworkSettings: { Networks: networks(rec) },
    Mounts: mounts(rec),
  };
}

export function toInspect(rec: ContainerRecord, p: ContainerPaths, graph: Record<string, string>, execIds: string[]): ContainerInspect {
  return {
    Id: rec.Id,
    Created: rec.Created,
    Path: rec.Path,
    Args: [...rec.Args],
    State: { ...rec.State },
    Image: rec.Image,
    ResolvConfPath: p.resolvConf,
    HostnamePath: p.hostname,
    HostsPath: p.hosts,
    LogPath: p.log,
    Name: rec.Name,
    RestartCount: rec.RestartCount,
    Driver: 'overlay',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: execIds.length ? execIds : null,
    HostConfig: structuredClone(rec.HostConfig),
    GraphDriver: { Name: 'overlay', Data: graph },
    Mounts: mounts(rec),
    Config: structuredClone(rec.Config),
    NetworkSettings: networkSettings(rec),
  };
}

/** Docker's NetworkSettings.Networks: the default bridge (or host/none), and each user-defined network. */
function networks(rec: ContainerRecord): Record<string, Record<string, unknown>> {
  const n = rec.Network;
  if (!n) return {};
  const out: Record<string, Record<string, unknown>> = {};
  const entry = (ep: Endpoint | undefined, netId: string, more: Record<string, unknown> = {}) => ({
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: ep?.MacAddress ?? '',
    NetworkID: netId,
    EndpointID: ep ? rec.Id : '',
    Gateway: ep?.Gateway ?? '',
    IPAddress: ep?.IPAddress ?? '',
    IPPrefixLen: ep?.IPPrefixLen ?? 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DriverOpts: null,
    ...more,
  });
  const users = Object.values(n.Networks ?? {});
  if (n.Mode !== 'bridge' || n.Endpoint || users.length === 0) out[n.Mode] = entry(n.Endpoint, n.Mode);
  for (const ep of users) out[ep.NetworkName] = entry(ep, ep.NetworkID, { IPAMConfig: ep.IPAMConfig ?? null, Links: ep.Links ?? null, Aliases: ep.Aliases, EndpointID: rec.Id.slice(0, 32) + ep.NetworkID.slice(0, 32) });
  return out;
}

/** inspect's NetworkSettings, as Docker fills it for the default bridge. */
function networkSettings(rec: ContainerRecord): Record<string, unknown> {
  const running = rec.State.Status === 'running' || rec.State.Status === 'paused';
  const ep = rec.Network?.Mode === 'bridge' ? rec.Network.Endpoint : undefined;
  return {
    Bridge: '',
    SandboxID: running ? rec.Id : '',
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    Ports: running ? portsView(rec.Config.ExposedPorts, rec.Network?.Ports ?? []) : {},
    SandboxKey: running && rec.State.Pid ? `/proc/${rec.State.Pid}/ns/net` : '',
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    EndpointID: ep ? rec.Id : '',
    Gateway: ep?.Gateway ?? '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    IPAddress: ep?.IPAddress ?? '',
    IPPrefixLen: ep?.IPPrefixLen ?? 0,
    IPv6Gateway: '',
    MacAddress: ep?.MacAddress ?? '',
    Networks: networks(rec),
  };
}
