import type { ImageConfigFields } from '../images/service';
import type { ContainerRecord } from './container-record';
import { mergeEnv } from './create-config';

/**
 * The committed image's config: the container's, with the request's own config merged over
 * it the way moby merges a container config over an image's (set fields win, Env by key).
 */
export function commitConfig(rec: ContainerRecord, over: Partial<ImageConfigFields>): ImageConfigFields {
  const c = rec.Config;
  const base: ImageConfigFields = {
    Hostname: c.Hostname,
    Domainname: c.Domainname,
    User: c.User,
    Env: c.Env,
    Cmd: c.Cmd,
    Entrypoint: c.Entrypoint,
    WorkingDir: c.WorkingDir,
    Labels: c.Labels,
    ExposedPorts: c.ExposedPorts,
    Volumes: c.Volumes,
    OnBuild: c.OnBuild,
    ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
  };
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(over ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    if (k === 'Env' && Array.isArray(v)) out.Env = mergeEnv(base.Env ?? [], v as string[]);
    else if (k === 'Labels' && typeof v === 'object') out.Labels = { ...(base.Labels ?? {}), ...(v as Record<string, string>) };
    else if (k in base || ['Hostname', 'Domainname', 'User', 'Cmd', 'Entrypoint', 'WorkingDir', 'ExposedPorts', 'Volumes', 'StopSignal', 'OnBuild', 'Healthcheck'].includes(k)) out[k] = structuredClone(v);
  }
  if (Array.isArray(over?.Entrypoint) && over.Entrypoint.length && !(Array.isArray(over.Cmd) && over.Cmd.length)) out.Cmd = null;
  return out as ImageConfigFields;
}
