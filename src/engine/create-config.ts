import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { ImageConfigFields } from '../images/service';
import { validateWorkdir } from '../runtime/rootfs';
import type { ContainerConfig } from './container-record';
import type { CreateBody, HostConfig, RestartPolicy } from './service';
import { checkLogConfig } from './log-drivers';
import { parseVolumeSpec } from './mounts';
import { dnsOverrides, parseExtraHosts } from '../network/dns-options';
import { checkHealthConfig, mergeHealthConfig } from './health';
import type { HostInfo } from '../runtime/spec';
import { checkSecurityConfig } from './security-config';
import { checkCreateFields } from './create-fields';

/**
 * The pure part of `create`: a POST /containers/create body checked and merged with its
 * image's config the way moby's daemon/create.go merges them, so what inspect shows and
 * what start runs is decided once, at create.
 */

/** Docker's minimum memory limit. */
export const MIN_MEMORY = 6 * 1024 * 1024;

export interface CreatePlan {
  Config: ContainerConfig;
  HostConfig: HostConfig;
  Path: string;
  Args: string[];
}

function strList(v: unknown, what: string): string[] | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return [...v];
  throw new InvalidArgumentError(`${what} must be a list of strings`, { hint: `give ${what} as a JSON array, e.g. ["sh","-c","echo hi"]` });
}

function envKey(e: string): string {
  const i = e.indexOf('=');
  return i < 0 ? e : e.slice(0, i);
}

/** moby's merge(userConf, imageConf). */
export function mergeConfig(body: CreateBody, image: ImageConfigFields, id: string): ContainerConfig {
  const userEnv = strList(body.Env, 'Env') ?? [];
  const env = [...userEnv];
  for (const e of image.Env ?? []) if (!userEnv.some((u) => envKey(u) === envKey(e))) env.push(e);
  let cmd = strList(body.Cmd, 'Cmd');
  let entrypoint = strList(body.Entrypoint, 'Entrypoint');
  if (!entrypoint || entrypoint.length === 0) {
    if (!cmd || cmd.length === 0) cmd = image.Cmd ? [...image.Cmd] : null;
    if (entrypoint === null) entrypoint = image.Entrypoint ? [...image.Entrypoint] : null;
  }
  const cfg: ContainerConfig = {
    Hostname: body.Hostname || id.slice(0, 12),
    Domainname: body.Domainname ?? '',
    User: body.User || image.User || '',
    AttachStdin: !!body.AttachStdin,
    AttachStdout: !!body.AttachStdout,
    AttachStderr: !!body.AttachStderr,
    Tty: !!body.Tty,
    OpenStdin: !!body.OpenStdin,
    StdinOnce: !!body.StdinOnce,
    Env: env,
    Cmd: cmd,
    Image: body.Image,
    Volumes: { ...(image.Volumes ?? {}), ...(body.Volumes ?? {}) },
    WorkingDir: body.WorkingDir || image.WorkingDir || '',
    Entrypoint: entrypoint,
    OnBuild: body.OnBuild ?? null,
    Labels: { ...(image.Labels ?? {}), ...(body.Labels ?? {}) },
    ExposedPorts: { ...(image.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) },
  };
  if (body.MacAddress) cfg.MacAddress = body.MacAddress;
  // Kept for commit and inspect; a run does not use them (see create-fields).
  if (Array.isArray(body.Shell) && body.Shell.length) cfg.Shell = strList(body.Shell, 'Shell') ?? undefined;
  if (body.ArgsEscaped) cfg.ArgsEscaped = true;
  const stop = body.StopSignal || image.StopSignal;
  if (stop) cfg.StopSignal = stop;
  if (body.StopTimeout !== undefined && body.StopTimeout !== null) {
    if (!Number.isInteger(body.StopTimeout)) {
      throw new InvalidArgumentError(`StopTimeout must be a whole number of seconds, not ${JSON.stringify(body.StopTimeout)}`, { hint: 'give --stop-timeout SECONDS (-1: wait for ever)' });
    }
    cfg.StopTimeout = body.StopTimeout;
  }
  // The image's HEALTHCHECK is checked as merged: a user's NONE or own Test overrides a bad one.
  const health = checkHealthConfig(mergeHealthConfig(checkHealthConfig(body.Healthcheck), image.Healthcheck), 'Healthcheck');
  if (health) cfg.Healthcheck = health;
  return cfg;
}

const POLICIES = new Set(['', 'no', 'always', 'on-failure', 'unless-stopped']);

export function checkRestartPolicy(p: RestartPolicy | undefined, autoRemove: boolean): RestartPolicy {
  const name = p?.Name ?? '';
  const max = p?.MaximumRetryCount ?? 0;
  if (!POLICIES.has(name)) {
    throw new InvalidArgumentError(`invalid restart policy '${name}'`, { hint: 'use no, always, unless-stopped or on-failure[:max-retries]' });
  }
  if (!Number.isInteger(max) || max < 0) {
    throw new InvalidArgumentError(`invalid maximum retry count ${max}`, { hint: 'give a whole number of retries, 0 or more' });
  }
  if (max > 0 && name !== 'on-failure') {
    throw new InvalidArgumentError(`maximum retry count cannot be used with restart policy '${name}'`, { hint: 'use on-failure:N, or drop the count' });
  }
  if (autoRemove && name !== '' && name !== 'no') {
    throw new InvalidArgumentError("can't create 'AutoRemove' container with restart policy", { hint: 'use either --rm or --restart, not both' });
  }
  return { Name: name || 'no', MaximumRetryCount: max };
}

function checkHostConfig(hc: HostConfig, host: HostInfo | undefined): HostConfig {
  const out: HostConfig = { ...hc };
  const num = (k: string, v: unknown): number => {
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(`${k} must be a number`, { hint: `give ${k} in its unit, e.g. bytes` });
    return v;
  };
  const memory = num('Memory', hc.Memory);
  if (memory < 0) throw new InvalidArgumentError('invalid memory limit', { hint: 'give a positive memory limit, e.g. -m 64m' });
  if (memory > 0 && memory < MIN_MEMORY) {
    throw new InvalidArgumentError('Minimum memory limit allowed is 6MB', { hint: 'give at least -m 6m' });
  }
  const swap = num('MemorySwap', hc.MemorySwap);
  if (swap > 0 && memory > 0 && swap < memory) {
    throw new InvalidArgumentError('Minimum memoryswap limit should be larger than memory limit, see usage', { hint: 'give --memory-swap at least as large as --memory, or -1' });
  }
  if (swap > 0 && memory === 0) {
    throw new InvalidArgumentError('You should always set the Memory limit when using Memoryswap limit, see usage', { hint: 'set --memory too' });
  }
  const nano = num('NanoCpus', hc.NanoCpus);
  if (nano < 0) throw new InvalidArgumentError('invalid CPU count', { hint: 'give a positive number of CPUs, e.g. --cpus 1.5' });
  if (nano > 0 && (num('CpuQuota', hc.CpuQuota) > 0 || num('CpuPeriod', hc.CpuPeriod) > 0)) {
    throw new InvalidArgumentError('Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set', { hint: 'use either --cpus or --cpu-quota/--cpu-period' });
  }
  num('PidsLimit', hc.PidsLimit);
  num('ShmSize', hc.ShmSize);
  out.LogConfig = checkLogConfig(hc.LogConfig);
  for (const b of hc.Binds ?? []) parseVolumeSpec(b);
  dnsOverrides(hc);
  parseExtraHosts(hc.ExtraHosts);
  out.RestartPolicy = checkRestartPolicy(hc.RestartPolicy, !!hc.AutoRemove);
  out.AutoRemove = !!hc.AutoRemove;
  out.NetworkMode = hc.NetworkMode || 'default';
  checkSecurityConfig(out, host, out.NetworkMode === 'host');
  if (hc.Runtime !== undefined && typeof hc.Runtime !== 'string') {
    throw new InvalidArgumentError('Runtime must be a string', { hint: 'name an OCI runtime, e.g. runc or crun' });
  }
  return out;
}

/** Check `body` and merge it with the image's config: everything create records. */
export function planCreate(body: CreateBody, image: ImageConfigFields, id: string, host?: HostInfo): CreatePlan {
  if (!body || typeof body.Image !== 'string' || body.Image === '') {
    throw new InvalidArgumentError('no image given', { hint: 'name the image to run, e.g. berth run busybox' });
  }
  checkCreateFields(body as unknown as Record<string, unknown>);
  const HostConfig = checkHostConfig(body.HostConfig ?? {}, host);
  const Config = mergeConfig(body, image, id);
  if (Config.WorkingDir) Config.WorkingDir = validateWorkdir(Config.WorkingDir);
  const ep = Config.Entrypoint ?? [];
  const cmd = Config.Cmd ?? [];
  const all = ep.length ? [...ep, ...cmd] : [...cmd];
  if (all.length === 0 || all[0] === '') {
    throw new InvalidArgumentError('No command specified', { hint: 'give a command, or use an image with an entrypoint or cmd' });
  }
  return { Config, HostConfig, Path: all[0], Args: all.slice(1) };
}

/** Docker's env merge: later KEY=... replace earlier ones, new keys are appended. */
export function mergeEnv(base: string[], extra: string[]): string[] {
  const out = [...base];
  for (const e of extra) {
    const k = e.split('=')[0];
    const i = out.findIndex((x) => x.split('=')[0] === k);
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}
