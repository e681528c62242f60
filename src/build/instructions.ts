import * as posix from 'node:path/posix';
import type { HealthConfig, ImageConfigFields } from '../images/service';
import { lineError, type Step } from './dockerfile';
import { word, words, type Env } from './words';

/**
 * The metadata instructions (ENV, LABEL, CMD, ...): each changes the stage's config only,
 * as Docker's classic dispatchers do; the executor commits the result as a config-only
 * image. Shared helpers read exec/shell forms and key=value lists.
 */

export interface StageState {
  /** The image so far (null: FROM scratch with nothing committed yet). */
  image: string | null;
  config: ImageConfigFields;
  shell: string[];
  /** ARGs declared in this stage, with their values (undefined: declared, no value). */
  args: Map<string, string | undefined>;
  /** CMD set in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
  escape: string;
}

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** The variables a step's words see: declared ARGs with a value, then ENV (ENV wins). */
export function stepEnv(st: StageState): Map<string, string> {
  const env = new Map<string, string>();
  for (const [k, v] of st.args) if (v !== undefined) env.set(k, v);
  for (const e of st.config.Env ?? []) {
    const i = e.indexOf('=');
    env.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1));
  }
  return env;
}

/** The exec form (a JSON array of strings) or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  const t = args.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    /* not JSON: the shell form, as Docker falls back */
  }
  return undefined;
}

/** A command as CMD/ENTRYPOINT/RUN store it: the exec form, or the shell plus the line. */
export function command(st: StageState, step: Step): string[] {
  const exec = execForm(step.args);
  if (exec) return exec;
  return [...st.shell, step.args.trim()];
}

/** key=value pairs (ENV, LABEL, ARG defaults): the new form, or ENV/LABEL's old `key value`. */
export function pairs(step: Step, env: Env, escape: string, oldForm: boolean): Array<[string, string]> {
  const raw = step.args.trim();
  const first = /^\S+/.exec(raw)?.[0] ?? '';
  if (oldForm && first && !first.includes('=')) {
    const key = word(first, env, escape, step.line);
    const rest = raw.slice(first.length).trim();
    if (!rest) throw lineError(step.line, `${step.keyword} ${key} needs a value`, `write ${step.keyword} ${key}=VALUE`);
    return [[key, word(rest, env, escape, step.line)]];
  }
  const out: Array<[string, string]> = [];
  for (const w of words(raw, env, escape, step.line)) {
    const i = w.indexOf('=');
    if (i <= 0) throw lineError(step.line, `${step.keyword} names must be followed by =VALUE: ${w}`, `write ${step.keyword} KEY=VALUE`);
    out.push([w.slice(0, i), w.slice(i + 1)]);
  }
  if (out.length === 0) throw lineError(step.line, `${step.keyword} requires at least one argument`, `write ${step.keyword} KEY=VALUE`);
  return out;
}

export function setEnv(config: ImageConfigFields, key: string, value: string): void {
  const env = (config.Env ?? []).filter((e) => e !== key && !e.startsWith(key + '='));
  const at = (config.Env ?? []).findIndex((e) => e === key || e.startsWith(key + '='));
  const line = `${key}=${value}`;
  if (at >= 0) env.splice(at, 0, line);
  else env.push(line);
  config.Env = env;
}

/**
 * Apply a metadata step to the stage's config. Returns the text of its history entry
 * (`/bin/sh -c #(nop)  ENV A=1` in Docker's spelling), or undefined for a step that is
 * not a metadata step.
 */
export function applyMetadata(st: StageState, step: Step): string | undefined {
  const c = st.config;
  const env = stepEnv(st);
  const e = st.escape;
  switch (step.keyword) {
    case 'ENV':
      for (const [k, v] of pairs(step, env, e, true)) setEnv(c, k, v);
      break;
    case 'LABEL':
      c.Labels = { ...(c.Labels ?? {}) };
      for (const [k, v] of pairs(step, env, e, true)) c.Labels[k] = v;
      break;
    case 'MAINTAINER':
      break; // the author: kept in history only, as the instruction text
    case 'CMD':
      c.Cmd = command(st, step);
      st.cmdSet = true;
      break;
    case 'ENTRYPOINT': {
      const exec = execForm(step.args);
      c.Entrypoint = exec ?? (step.args.trim() ? [...st.shell, step.args.trim()] : null);
      if (!st.cmdSet) c.Cmd = null;
      break;
    }
    case 'SHELL': {
      const exec = execForm(step.args);
      if (!exec || exec.length === 0) throw lineError(step.line, 'SHELL requires the arguments to be in JSON form', 'e.g. SHELL ["/bin/bash", "-c"]');
      st.shell = exec;
      c.Shell = exec;
      break;
    }
    case 'WORKDIR': {
      const w = word(step.args.trim(), env, e, step.line);
      if (!w) throw lineError(step.line, 'WORKDIR requires exactly one argument', 'e.g. WORKDIR /app');
      c.WorkingDir = posix.resolve('/', c.WorkingDir || '/', w);
      break;
    }
    case 'USER': {
      const u = word(step.args.trim(), env, e, step.line);
      if (!u) throw lineError(step.line, 'USER requires exactly one argument', 'e.g. USER app or USER 1000:1000');
      c.User = u;
      break;
    }
    case 'EXPOSE': {
      c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
      for (const p of words(step.args, env, e, step.line)) for (const port of expandPorts(p, step.line)) c.ExposedPorts[port] = {};
      break;
    }
    case 'VOLUME': {
      const list = execForm(step.args) ?? words(step.args, env, e, step.line);
      if (list.length === 0) throw lineError(step.line, 'VOLUME requires at least one argument', 'e.g. VOLUME /data');
      c.Volumes = { ...(c.Volumes ?? {}) };
      for (const v of list) {
        if (!v.trim()) throw lineError(step.line, 'VOLUME specified can not be an empty string', 'name a path');
        c.Volumes[v] = {};
      }
      break;
    }
    case 'STOPSIGNAL': {
      const s = word(step.args.trim(), env, e, step.line);
      if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/i.test(s)) throw lineError(step.line, `invalid signal: ${s}`, 'e.g. STOPSIGNAL SIGQUIT');
      c.StopSignal = s;
      break;
    }
    case 'HEALTHCHECK':
      c.Healthcheck = healthcheck(st, step);
      break;
    case 'ONBUILD':
      c.OnBuild = [...(c.OnBuild ?? []), step.args.trim()];
      break;
    default:
      return undefined;
  }
  return `/bin/sh -c #(nop)  ${step.text}`;
}

function expandPorts(p: string, line: number): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
  if (!m) throw lineError(line, `invalid containerPort: ${p}`, 'e.g. EXPOSE 80 or EXPOSE 53/udp');
  const lo = Number(m[1]);
  const hi = m[2] ? Number(m[2]) : lo;
  if (lo < 1 || hi > 65535 || hi < lo) throw lineError(line, `invalid port range: ${p}`, 'ports are 1-65535');
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const out: string[] = [];
  for (let n = lo; n <= hi; n++) out.push(`${n}/${proto}`);
  return out;
}

function healthcheck(st: StageState, step: Step): HealthConfig {
  const rest = step.args.trim();
  const kind = (/^\S+/.exec(rest)?.[0] ?? '').toUpperCase();
  if (kind === 'NONE') {
    if (rest.length > 4 || step.flags.size) throw lineError(step.line, 'HEALTHCHECK NONE takes no arguments', 'write HEALTHCHECK NONE');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD') throw lineError(step.line, `unknown type ${kind || '(none)'} in HEALTHCHECK (try CMD)`, 'e.g. HEALTHCHECK --interval=5s CMD curl -f http://localhost/');
  const args = rest.slice(3).trim();
  if (!args) throw lineError(step.line, 'HEALTHCHECK CMD needs a command', 'e.g. HEALTHCHECK CMD true');
  const exec = execForm(args);
  const hc: HealthConfig = { Test: exec ? ['CMD', ...exec] : ['CMD-SHELL', args] };
  const dur = (n: string): number | undefined => {
    const v = step.flags.get(n);
    if (v === undefined) return undefined;
    const ns = parseDuration(v);
    if (ns === undefined) throw lineError(step.line, `invalid --${n}: ${v}`, 'use a Go duration such as 30s, 1m30s or 500ms');
    return ns;
  };
  const interval = dur('interval');
  const timeout = dur('timeout');
  const start = dur('start-period');
  const startInterval = dur('start-interval');
  if (interval !== undefined) hc.Interval = interval;
  if (timeout !== undefined) hc.Timeout = timeout;
  if (start !== undefined) hc.StartPeriod = start;
  if (startInterval !== undefined) hc.StartInterval = startInterval;
  const r = step.flags.get('retries');
  if (r !== undefined) {
    if (!/^\d+$/.test(r)) throw lineError(step.line, `invalid --retries: ${r}`, 'give a whole number');
    hc.Retries = Number(r);
  }
  void st;
  return hc;
}

/** Go's time.ParseDuration, in nanoseconds (undefined when malformed). */
export function parseDuration(s: string): number | undefined {
  if (s === '0') return 0;
  const unit: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let rest = s;
  if (!rest) return undefined;
  while (rest) {
    const m = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!m) return undefined;
    total += Number(m[1]) * unit[m[2]];
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}
