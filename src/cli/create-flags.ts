import { Command, Option } from 'commander';
import { collect } from './context';
import { expandEnv, parseBytes, parseCpus, parseKeyValues, parseLabels, parseRestart, readEnvFile } from './parse';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { healthcheckFromFlags, healthOptions, type HealthFlags } from './health-flags';
import type { CreateBody } from '../engine/service';
import { parseExpose, parsePublish, type PortBinding } from '../network/port-spec';
import { hostFields, hostOptions, type HostFlags } from './host-options';
import { parseDetachKeys } from '../engine/detach-keys';
import { windowSize } from './terminal';

/** The option parsing `run` and `create` share: their flags, and the create body they make. */
/** Options shared by `run` and `create`. */
export function createOptions(c: Command): Command {
  return hostOptions(healthOptions(c))
    .option('--name <name>', 'assign a name to the container')
    .option('--pull <policy>', 'pull the image before creating: always, missing (only when not held) or never', 'missing')
    .option('--platform <os/arch>', 'the platform to pull when the image is pulled (default: this host\'s)')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (KEY alone takes it from your environment)', collect)
    .option('--env-file <file>', 'read environment variables from a file', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user name or uid (and group) to run as')
    .option('--entrypoint <command>', 'override the image entrypoint')
    .option('-h, --hostname <name>', 'container host name')
    .option('--rm', 'remove the container when it exits')
    .option('-l, --label <k=v>', 'set a label', collect)
    .option('--read-only', "mount the container's root filesystem read-only")
    .option('-m, --memory <bytes>', 'memory limit (e.g. 512m, 1g)')
    .option('--cpus <n>', 'number of CPUs (e.g. 1.5)')
    .option('--pids-limit <n>', 'maximum number of processes (-1 unlimited)')
    .option('--restart <policy>', 'no, always, unless-stopped, on-failure[:N]', 'no')
    .option('--init', 'run an init (tini) as pid 1 that reaps zombies and forwards signals')
    .option('--runtime <path>', 'OCI runtime for this container (default: the daemon\'s, runc)')
    .option('--log-opt <k=v>', 'log options: max-size=10m, max-file=3', collect)
    .option('--stop-signal <signal>', 'signal to stop the container')
    .option('-i, --interactive', 'keep stdin open and attach it')
    .option('-v, --volume <spec>', 'mount a volume: NAME:/path[:ro] (named, made on first use), /path (anonymous), /host:/path[:ro] (bind)', collect)
    .option('--mount <spec>', 'mount: type=volume|bind|tmpfs,src=…,dst=…[,readonly][,volume-subpath=…][,volume-nocopy][,tmpfs-size=…]', collect)
    .option('--volumes-from <container[:ro|rw]>', "mount another container's volumes and binds", collect)
    .option('-p, --publish <spec>', 'publish a container port on the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]; -p 8080:80, -p 127.0.0.1::6379 (localhost, a random port), -p 6379 (all addresses, a random port), -p 8000-8002:8000-8002, -p 8000-8010:80 (a free one of those)', collect)
    .option('-P, --publish-all', "publish every exposed port (the image's EXPOSE and --expose) on a random host port")
    .option('--expose <port>', 'expose a port or range without publishing it: 80, 7000-7002/udp', collect)
    .option('--network <mode>', 'network: bridge (default: own address, NAT to the host), host (share the host\'s), none (loopback only)')
    .addOption(new Option('--net <mode>', 'alias of --network').hideHelp())
    .option('--network-alias <name>', 'a name other containers on the (user-defined) network find this one by', collect)
    .option('--ip <address>', 'its IPv4 address on the (user-defined) network')
    .option('--link <name[:alias]>', 'on the default bridge: reach another container by name (an /etc/hosts entry)', collect)
    .option('-t, --tty', 'give the container a terminal (a pty); with -i, an interactive session: detach with ctrl-p ctrl-q')
    .option('--detach-keys <keys>', 'the keys that detach from the terminal, e.g. ctrl-a,d (default ctrl-p,ctrl-q)');
}

export interface CreateFlags extends HealthFlags, HostFlags {
  pull?: string;
  platform?: string;
  name?: string;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  rm?: boolean;
  label?: string[];
  readOnly?: boolean;
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  restart: string;
  init?: boolean;
  runtime?: string;
  logOpt?: string[];
  stopSignal?: string;
  interactive?: boolean;
  tty?: boolean;
  detachKeys?: string;
  detach?: boolean;
  volume?: string[];
  mount?: string[];
  volumesFrom?: string[];
  publish?: string[];
  publishAll?: boolean;
  expose?: string[];
  network?: string;
  networkAlias?: string[];
  ip?: string;
  link?: string[];
  net?: string;
}

/**
 * -p, -P, --expose and --network → the create body's networking fields, merged as the
 * docker CLI does: one PortBindings key can collect several -p (8080:80 and 8081:80), and
 * ExposedPorts is every -p and --expose key. Empty maps are left out, so the image's
 * EXPOSE ports are not overridden by an empty set.
 */
export function networkFields(o: Pick<CreateFlags, 'publish' | 'publishAll' | 'expose' | 'network' | 'net' | 'networkAlias' | 'ip' | 'link'>): {
  ExposedPorts?: Record<string, object>;
  PortBindings?: Record<string, PortBinding[]>;
  PublishAllPorts: boolean;
  NetworkMode?: string;
  Links?: string[];
  NetworkingConfig?: { EndpointsConfig: Record<string, { Aliases?: string[]; IPAMConfig?: { IPv4Address: string } }> };
} {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, PortBinding[]> = {};
  for (const spec of o.publish ?? []) {
    const p = parsePublish(spec);
    for (const k of p.exposed) exposed[k] = {};
    for (const [k, bs] of Object.entries(p.bindings)) (bindings[k] ??= []).push(...bs);
  }
  for (const spec of o.expose ?? []) for (const k of parseExpose(spec)) exposed[k] = {};
  const mode = o.network ?? o.net;
  if (mode !== undefined && mode.trim() === '') throw new InvalidArgumentError('empty --network', { hint: 'use --network bridge, host or none' });
  return {
    ...(Object.keys(exposed).length ? { ExposedPorts: exposed } : {}),
    ...(Object.keys(bindings).length ? { PortBindings: bindings } : {}),
    PublishAllPorts: !!o.publishAll,
    ...(mode !== undefined ? { NetworkMode: mode } : {}),
    ...(o.link?.length ? { Links: o.link } : {}),
    // As the docker CLI sends them: the endpoint settings of the one network it is created on.
    ...(o.networkAlias?.length || o.ip
      ? { NetworkingConfig: { EndpointsConfig: { [mode ?? 'default']: { ...(o.networkAlias?.length ? { Aliases: o.networkAlias } : {}), ...(o.ip ? { IPAMConfig: { IPv4Address: o.ip } } : {}) } } } }
      : {}),
  };
}

/** `--mount type=volume,src=data,dst=/data,readonly` → Docker's HostConfig.Mounts item. */
export function parseMount(spec: string): Record<string, unknown> {
  const m: Record<string, unknown> = { Type: 'volume' };
  const vol: Record<string, unknown> = {};
  const tmpfs: Record<string, unknown> = {};
  for (const part of spec.split(',')) {
    const i = part.indexOf('=');
    const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
    const v = i < 0 ? undefined : part.slice(i + 1);
    const bool = v === undefined || ['1', 'true'].includes(v.toLowerCase());
    switch (k) {
      case 'type': m.Type = v; break;
      case 'source': case 'src': m.Source = v; break;
      case 'target': case 'destination': case 'dst': m.Target = v; break;
      case 'readonly': case 'ro': m.ReadOnly = bool; break;
      case 'volume-subpath': vol.Subpath = v; break;
      case 'volume-nocopy': vol.NoCopy = bool; break;
      case 'volume-label': {
        const j = (v ?? '').indexOf('=');
        vol.Labels = { ...((vol.Labels as object) ?? {}), [j < 0 ? v ?? '' : (v ?? '').slice(0, j)]: j < 0 ? '' : (v ?? '').slice(j + 1) };
        break;
      }
      case 'bind-propagation': m.BindOptions = { Propagation: v }; break;
      case 'tmpfs-size': tmpfs.SizeBytes = parseBytes(v ?? '', '--mount tmpfs-size'); break;
      case 'tmpfs-mode': tmpfs.Mode = parseInt(v ?? '', 8); break;
      default:
        throw new InvalidArgumentError(`unknown --mount field ${JSON.stringify(k)}`, { hint: 'use type=volume|bind|tmpfs,src=…,dst=…[,readonly]' });
    }
  }
  if (Object.keys(vol).length) m.VolumeOptions = vol;
  if (Object.keys(tmpfs).length) m.TmpfsOptions = tmpfs;
  return m;
}

export function createBody(image: string, args: string[], o: CreateFlags): CreateBody {
  if (o.detachKeys !== undefined) parseDetachKeys(o.detachKeys); // refused before anything is made
  const env = [...(o.envFile ?? []).flatMap(readEnvFile), ...(o.env ?? []).map(expandEnv).filter((e): e is string => !!e)];
  const restart = parseRestart(o.restart);
  if (o.rm && restart.Name !== 'no') throw new InvalidArgumentError('--rm and --restart cannot be combined', { hint: 'drop one of them' });
  const pids = o.pidsLimit === undefined ? undefined : Number(o.pidsLimit);
  if (pids !== undefined && !Number.isInteger(pids)) throw new InvalidArgumentError(`invalid --pids-limit ${o.pidsLimit}`, { hint: 'give a whole number, -1 for unlimited' });
  // As the docker CLI does: `-v /path` (no colon) is an anonymous volume, the rest are Binds.
  const binds = (o.volume ?? []).filter((v) => v.includes(':'));
  const anon = Object.fromEntries((o.volume ?? []).filter((v) => !v.includes(':')).map((v) => [v, {}]));
  const { ExposedPorts, NetworkingConfig, ...net } = networkFields(o);
  const healthcheck = healthcheckFromFlags(o);
  const extra = hostFields(o);
  return {
    ...extra.config,
    Image: image,
    Cmd: args.length ? args : undefined,
    ...(Object.keys(anon).length ? { Volumes: anon } : {}),
    ...(ExposedPorts ? { ExposedPorts } : {}),
    ...(NetworkingConfig ? { NetworkingConfig } : {}),
    Entrypoint: o.entrypoint !== undefined ? (o.entrypoint === '' ? [] : [o.entrypoint]) : undefined,
    Env: env,
    WorkingDir: o.workdir ?? '',
    User: o.user ?? '',
    Hostname: o.hostname ?? '',
    Labels: parseLabels(o.label),
    StopSignal: o.stopSignal,
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    OpenStdin: !!o.interactive,
    StdinOnce: !!o.interactive && !o.detach,
    AttachStdin: !!o.interactive && !o.detach,
    AttachStdout: !o.detach,
    AttachStderr: !o.detach,
    Tty: !!o.tty,
    HostConfig: {
      ...(o.tty ? consoleSize() : {}),
      AutoRemove: !!o.rm,
      RestartPolicy: restart,
      ReadonlyRootfs: !!o.readOnly,
      Memory: o.memory ? parseBytes(o.memory) : 0,
      NanoCpus: o.cpus ? parseCpus(o.cpus) : 0,
      PidsLimit: pids,
      Init: o.init ? true : null,
      Runtime: o.runtime,
      LogConfig: { Type: 'json-file', Config: parseKeyValues(o.logOpt, '--log-opt') },
      ...(binds.length ? { Binds: binds } : {}),
      ...(o.mount?.length ? { Mounts: o.mount.map(parseMount) } : {}),
      ...(o.volumesFrom?.length ? { VolumesFrom: o.volumesFrom } : {}),
      ...net,
      ...extra.host,
    },
  };
}

/** Create, pulling (making) the image on first use, as `docker run` does. */

/** The terminal's size as the container's first (HostConfig.ConsoleSize), when it has one. */
function consoleSize(): { ConsoleSize?: [number, number] } {
  const { rows, cols } = windowSize();
  return rows && cols ? { ConsoleSize: [rows, cols] } : {};
}
