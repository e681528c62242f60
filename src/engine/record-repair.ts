import type { ContainerRecord } from './container-record';

/**
 * Container records written before create bodies were checked may hold values of the wrong
 * type (`"Labels": {"a": 5}`, `"Labels": "abc"` stored as {"0": "a", ...}). Docker clients
 * decode listings strictly, so one such record broke `docker ps -a` for everyone. Each is
 * put back into the shape the API promises when the store is opened; the returned lines
 * say what was changed, for the daemon's log. The record on disk is rewritten at its next
 * save.
 */
export function repairRecord(rec: ContainerRecord): string[] {
  const fixes: string[] = [];
  const r = rec as unknown as Record<string, unknown> & { Config: Record<string, unknown>; HostConfig: Record<string, unknown> };
  if (!isObject(r.Config)) {
    fixes.push('Config was not an object: reset');
    r.Config = {};
  }
  if (!isObject(r.HostConfig)) {
    fixes.push('HostConfig was not an object: reset');
    r.HostConfig = {};
  }
  const cfg = r.Config;
  cfg.Labels = stringMap(cfg.Labels, 'Config.Labels', fixes);
  for (const k of ['Env', 'Cmd', 'Entrypoint'] as const) {
    const v = cfg[k];
    if (v === null || v === undefined) continue;
    if (typeof v === 'string') {
      cfg[k] = [v];
      fixes.push(`Config.${k} was a string: made a list`);
    } else if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      cfg[k] = Array.isArray(v) ? v.filter((x) => typeof x === 'string') : k === 'Env' ? [] : null;
      fixes.push(`Config.${k} held non-strings: dropped them`);
    }
  }
  for (const k of ['Hostname', 'Domainname', 'User', 'WorkingDir', 'Image', 'StopSignal'] as const) {
    const v = cfg[k];
    if (v !== undefined && v !== null && typeof v !== 'string') {
      cfg[k] = k === 'Hostname' ? rec.Id.slice(0, 12) : String(v);
      fixes.push(`Config.${k} was ${typeof v}: made a string`);
    }
  }
  for (const k of ['Tty', 'OpenStdin', 'StdinOnce', 'AttachStdin', 'AttachStdout', 'AttachStderr'] as const) {
    if (cfg[k] !== undefined && typeof cfg[k] !== 'boolean') {
      cfg[k] = !!cfg[k] && cfg[k] !== 'false';
      fixes.push(`Config.${k} was not true/false: made ${cfg[k]}`);
    }
  }
  for (const k of ['ExposedPorts', 'Volumes'] as const) {
    if (cfg[k] !== undefined && cfg[k] !== null && !isObject(cfg[k])) {
      cfg[k] = {};
      fixes.push(`Config.${k} was not an object: reset`);
    }
  }
  const hc = r.HostConfig;
  const rp = hc.RestartPolicy as { Name?: unknown; MaximumRetryCount?: unknown } | undefined;
  if (rp !== undefined && (!isObject(rp) || typeof rp.Name !== 'string' || !['', 'no', 'always', 'on-failure', 'unless-stopped'].includes(rp.Name))) {
    hc.RestartPolicy = { Name: 'no', MaximumRetryCount: 0 };
    fixes.push('HostConfig.RestartPolicy was malformed: made "no"');
  }
  for (const k of ['Binds', 'VolumesFrom', 'Links'] as const) {
    const v = hc[k];
    if (v !== undefined && v !== null && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) {
      hc[k] = Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
      fixes.push(`HostConfig.${k} held non-strings: dropped them`);
    }
  }
  if (hc.NetworkMode !== undefined && typeof hc.NetworkMode !== 'string') {
    hc.NetworkMode = 'default';
    fixes.push('HostConfig.NetworkMode was not a string: made "default"');
  }
  return fixes;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A map of strings: numbers and booleans become their text, anything else is dropped. */
function stringMap(v: unknown, field: string, fixes: string[]): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) {
    fixes.push(`${field} was not an object: reset`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string') out[k] = x;
    else if (typeof x === 'number' || typeof x === 'boolean') {
      out[k] = String(x);
      fixes.push(`${field}[${JSON.stringify(k)}] was a ${typeof x}: made the string ${JSON.stringify(String(x))}`);
    } else fixes.push(`${field}[${JSON.stringify(k)}] was ${x === null ? 'null' : typeof x}: dropped`);
  }
  return out;
}
