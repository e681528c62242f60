import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { HealthConfig, ImageConfigFields } from './service';
import { goDuration } from '../units';

/**
 * The OCI/Docker image config document (the blob whose digest is the image id), and the
 * pure helpers around it: chain ids, `--change` instructions, media types.
 */

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  comment?: string;
  container?: string;
  docker_version?: string;
  config?: ImageConfigFields;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** Layer media types berth can unpack (applyLayer reads plain and gzip tars). */
export const LAYER_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MEDIA.ociLayer,
  MEDIA.ociLayerGzip,
  MEDIA.ociLayerNondistributable,
  MEDIA.ociLayerNondistributableGzip,
  MEDIA.dockerLayer,
  MEDIA.dockerLayerGzip,
]);

/** The OCI layer media type for a blob whose first bytes are `head`. */
export function layerMediaType(head: Buffer): string {
  return isGzip(head) ? MEDIA.ociLayerGzip : MEDIA.ociLayer;
}

/** The OCI equivalent of a layer media type (docker's become OCI's; OCI's stay). */
export function ociLayerMediaType(mediaType: string): string {
  switch (mediaType) {
    case MEDIA.dockerLayer:
      return MEDIA.ociLayer;
    case MEDIA.dockerLayerGzip:
      return MEDIA.ociLayerGzip;
    default:
      return mediaType;
  }
}

export function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** OCI chain ids: chainID(L0) = diffID(L0), chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

/** GOARCH for this process (docker's `architecture` field). */
export function goArch(arch: string = process.arch): string {
  const map: Record<string, string> = {
    x64: 'amd64',
    ia32: '386',
    arm64: 'arm64',
    arm: 'arm',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
    loong64: 'loong64',
    mips: 'mips',
    mipsel: 'mipsle',
  };
  return map[arch] ?? arch;
}

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Apply Dockerfile-like `--change` instructions to a config, as `docker import --change`
 * does. Supported: CMD, ENTRYPOINT (JSON and shell form), ENV, WORKDIR, USER, EXPOSE,
 * LABEL, VOLUME, STOPSIGNAL, ONBUILD, HEALTHCHECK.
 */
export function applyChanges(base: ImageConfigFields, changes: string[] = []): ImageConfigFields {
  const c: ImageConfigFields = structuredClone(base);
  for (const raw of changes) {
    for (const line of raw.split(/\r?\n/)) {
      const text = line.trim();
      if (!text || text.startsWith('#')) continue;
      const m = /^(\S+)\s*(.*)$/s.exec(text)!;
      const instr = m[1].toUpperCase();
      const arg = m[2].trim();
      switch (instr) {
        case 'CMD':
          c.Cmd = commandForm(arg, instr);
          break;
        case 'ENTRYPOINT':
          c.Entrypoint = commandForm(arg, instr);
          break;
        case 'ENV':
          for (const [k, v] of keyValues(arg, instr, true)) {
            const env = (c.Env ?? []).filter((e) => e.split('=')[0] !== k);
            env.push(`${k}=${v}`);
            c.Env = env;
          }
          break;
        case 'LABEL':
          for (const [k, v] of keyValues(arg, instr, false)) c.Labels = { ...(c.Labels ?? {}), [k]: v };
          break;
        case 'WORKDIR': {
          const w = unquote(need(arg, instr));
          c.WorkingDir = w.startsWith('/') ? w : `${(c.WorkingDir || '/').replace(/\/$/, '')}/${w}`;
          break;
        }
        case 'USER':
          c.User = unquote(need(arg, instr));
          break;
        case 'EXPOSE':
          for (const p of words(need(arg, instr))) {
            const pm = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
            if (!pm) throw bad(instr, `invalid port ${JSON.stringify(p)}`, 'write ports as 80, 80/tcp or 53/udp');
            const from = Number(pm[1]);
            const to = pm[2] ? Number(pm[2]) : from;
            if (from < 1 || to > 65535 || to < from) throw bad(instr, `invalid port range ${p}`, 'ports are 1 to 65535');
            for (let port = from; port <= to; port++) {
              c.ExposedPorts = { ...(c.ExposedPorts ?? {}), [`${port}/${(pm[3] ?? 'tcp').toLowerCase()}`]: {} };
            }
          }
          break;
        case 'VOLUME': {
          const vols = arg.startsWith('[') ? jsonArray(arg, instr) : words(need(arg, instr));
          for (const v of vols) {
            if (!v) throw bad(instr, 'empty volume path', 'give an absolute path, e.g. VOLUME /data');
            c.Volumes = { ...(c.Volumes ?? {}), [v]: {} };
          }
          break;
        }
        case 'STOPSIGNAL': {
          const s = unquote(need(arg, instr));
          if (!/^(SIG)?[A-Z0-9+-]+$/i.test(s)) throw bad(instr, `invalid signal ${JSON.stringify(s)}`, 'e.g. STOPSIGNAL SIGTERM or STOPSIGNAL 15');
          c.StopSignal = s;
          break;
        }
        case 'ONBUILD':
          c.OnBuild = [...(c.OnBuild ?? []), need(arg, instr)];
          break;
        case 'HEALTHCHECK':
          c.Healthcheck = healthcheck(need(arg, instr));
          break;
        default:
          throw new InvalidArgumentError(`${instr} is not a valid change command`, {
            hint: 'use CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR',
          });
      }
    }
  }
  return c;
}

/**
 * `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
 * [--retries=N] CMD command` (JSON form: CMD, shell form: CMD-SHELL) or `HEALTHCHECK NONE`,
 * as the Dockerfile builder reads it. Durations are Go's (30s, 1m30s).
 */
function healthcheck(arg: string): HealthConfig {
  const instr = 'HEALTHCHECK';
  let rest = arg;
  const out: HealthConfig = {};
  const flags: Record<string, 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval'> = {
    interval: 'Interval',
    timeout: 'Timeout',
    'start-period': 'StartPeriod',
    'start-interval': 'StartInterval',
  };
  for (let m = /^--([a-z-]+)=(\S*)\s*/.exec(rest); m; m = /^--([a-z-]+)=(\S*)\s*/.exec(rest)) {
    rest = rest.slice(m[0].length);
    const [, name, value] = m;
    if (name === 'retries') {
      const n = Number(value);
      if (!/^\d+$/.test(value) || n < 1) throw bad(instr, `invalid --retries ${JSON.stringify(value)}`, 'give a whole number of retries, 1 or more');
      out.Retries = n;
    } else if (flags[name]) {
      const ms = goDuration(value);
      if (ms === undefined) throw bad(instr, `invalid --${name} ${JSON.stringify(value)}`, 'give a duration such as 30s or 1m30s');
      if (ms > 0 && ms < 1) throw bad(instr, `--${name} cannot be less than 1ms`, 'give at least 1ms, or 0 for the default');
      if (ms > 0) out[flags[name]] = Math.round(ms * 1e6);
    } else {
      throw bad(instr, `unknown flag --${name}`, 'use --interval, --timeout, --start-period, --start-interval or --retries');
    }
  }
  const m = /^(\S+)\s*(.*)$/s.exec(rest);
  const kind = m?.[1].toUpperCase();
  if (kind === 'NONE') {
    if (m![2] || Object.keys(out).length) throw bad(instr, 'NONE takes no arguments or flags', 'write HEALTHCHECK NONE alone');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD') throw bad(instr, `expected CMD or NONE, got ${JSON.stringify(rest)}`, 'e.g. HEALTHCHECK --interval=5s CMD redis-cli ping');
  const cmd = m![2].trim();
  if (cmd.startsWith('[')) {
    let list: string[] | undefined;
    try {
      list = jsonArray(cmd, instr);
    } catch {
      // a malformed JSON array is shell form, as for CMD
    }
    if (list) {
      if (!list.length) throw bad(instr, 'CMD needs a command', 'e.g. HEALTHCHECK CMD ["redis-cli", "ping"]');
      return { Test: ['CMD', ...list], ...out };
    }
  }
  return { Test: ['CMD-SHELL', need(cmd, instr)], ...out };
}

function commandForm(arg: string, instr: string): string[] {
  if (arg.startsWith('[')) {
    try {
      return jsonArray(arg, instr);
    } catch {
      // Docker treats a malformed JSON array as shell form.
    }
  }
  return ['/bin/sh', '-c', need(arg, instr)];
}

function jsonArray(arg: string, instr: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(arg);
  } catch {
    throw bad(instr, `invalid JSON array ${arg}`, `write it as ${instr} ["a", "b"]`);
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw bad(instr, `expected a JSON array of strings, got ${arg}`, `write it as ${instr} ["a", "b"]`);
  }
  return v as string[];
}

/** `K=V K2="v 2"` or the legacy `K V with spaces` (ENV only). */
function keyValues(arg: string, instr: string, legacyAllowed: boolean): Array<[string, string]> {
  need(arg, instr);
  const ws = words(arg);
  if (!ws[0].includes('=')) {
    if (!legacyAllowed || ws.length < 2) {
      throw bad(instr, `expected KEY=VALUE, got ${JSON.stringify(arg)}`, `write it as ${instr} KEY=VALUE`);
    }
    const key = ws[0];
    const value = arg.slice(arg.search(/\s/)).trim();
    return [[key, unquote(value)]];
  }
  return ws.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw bad(instr, `expected KEY=VALUE, got ${JSON.stringify(w)}`, `write it as ${instr} KEY=VALUE`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

/** Split on white space, honouring "double", 'single' quotes and backslash escapes; quotes are removed. */
function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw new InvalidArgumentError(`unterminated quote in ${JSON.stringify(s)}`, { hint: 'close the quote' });
  if (inWord) out.push(cur);
  return out;
}

function unquote(s: string): string {
  const w = words(s);
  return w.length === 1 ? w[0] : s;
}

function need(arg: string, instr: string): string {
  if (!arg) throw bad(instr, 'needs an argument', `e.g. ${instr} ${example(instr)}`);
  return arg;
}

function example(instr: string): string {
  return ({ CMD: '["sh"]', ENTRYPOINT: '["/app"]', WORKDIR: '/app', USER: 'nobody', EXPOSE: '80/tcp', VOLUME: '/data', STOPSIGNAL: 'SIGTERM', ONBUILD: 'RUN true' } as Record<string, string>)[instr] ?? 'KEY=VALUE';
}

function bad(instr: string, what: string, hint: string): InvalidArgumentError {
  return new InvalidArgumentError(`${instr}: ${what}`, { hint });
}

/**
 * The config as Go's encoding/json writes an OCI image-spec `Image`: fields in struct
 * order, empty ones left out, map keys sorted, <, > and & escaped. Tools that convert a
 * docker-archive to OCI (skopeo, podman) re-marshal the config that way; writing it so
 * ourselves makes the conversion a no-op, so the image keeps its id through it.
 */
export function serializeConfig(c: ImageConfig): string {
  const cfg = c.config ?? {};
  const sorted = <T>(m: Record<string, T> | null | undefined) =>
    m && Object.keys(m).length ? Object.fromEntries(Object.keys(m).sort().map((k) => [k, m[k]])) : undefined;
  const nonEmpty = <T>(a: T[] | null | undefined) => (a && a.length ? a : undefined);
  const doc = {
    created: c.created,
    author: c.author || undefined,
    architecture: c.architecture,
    os: c.os,
    config: {
      User: cfg.User || undefined,
      ExposedPorts: sorted(cfg.ExposedPorts),
      Env: nonEmpty(cfg.Env),
      Entrypoint: nonEmpty(cfg.Entrypoint),
      Cmd: nonEmpty(cfg.Cmd),
      Volumes: sorted(cfg.Volumes),
      WorkingDir: cfg.WorkingDir || undefined,
      Labels: sorted(cfg.Labels),
      StopSignal: cfg.StopSignal || undefined,
      // Docker's extension of the OCI config, after its fields (moby's DockerOCIImageConfig).
      Healthcheck: cfg.Healthcheck
        ? {
            Test: nonEmpty(cfg.Healthcheck.Test),
            Interval: cfg.Healthcheck.Interval || undefined,
            Timeout: cfg.Healthcheck.Timeout || undefined,
            StartPeriod: cfg.Healthcheck.StartPeriod || undefined,
            StartInterval: cfg.Healthcheck.StartInterval || undefined,
            Retries: cfg.Healthcheck.Retries || undefined,
          }
        : undefined,
      OnBuild: nonEmpty(cfg.OnBuild),
      Shell: nonEmpty(cfg.Shell),
    },
    rootfs: { type: 'layers', diff_ids: c.rootfs.diff_ids },
    history: nonEmpty(
      (c.history ?? []).map((h) => ({
        created: h.created,
        created_by: h.created_by || undefined,
        author: h.author || undefined,
        comment: h.comment || undefined,
        empty_layer: h.empty_layer || undefined,
      })),
    ),
  };
  return JSON.stringify(doc).replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A timestamp as Go writes a time.Time (RFC 3339 with nanoseconds, UTC). */
export function goTime(d: Date = new Date()): string {
  // Go's RFC3339Nano: nanoseconds, trailing zeros trimmed. Whole seconds made two commits
  // of one container within a second the same image (same config, same id); Docker's are two.
  const ns = (d.getTime() % 1000) * 1e6 + Number(process.hrtime.bigint() % 1000000n);
  const frac = String(ns).padStart(9, '0').replace(/0+$/, '');
  return d.toISOString().replace(/\.\d+Z$/, frac ? `.${frac}Z` : 'Z');
}
