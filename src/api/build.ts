import type { IncomingMessage } from 'node:http';
import type { Router } from './router';
import { drainBody, qbool } from './http';
import { errorResponse } from './errors';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import type { Builder } from '../build/builder';
import type { BuildRequest } from '../build/ports';

/**
 * POST /build, the classic builder's protocol (API 1.41): the context tar is the body,
 * the options are query parameters, and the answer is Docker's JSON stream (`stream` lines,
 * `aux` with the image ID, `errorDetail` on failure, its `code` a failed RUN's exit status,
 * which the docker CLI exits with). The client going away cancels the build.
 *
 * Every parameter of API 1.41 is honoured or refused by name: resource limits apply to
 * the RUN containers; cpushares, cpusetcpus, cgroupparent, isolation, ulimits, squash,
 * remote, outputs and BuildKit (version=2, session) are refused when asked for.
 */
export function buildRoutes(router: Router, builder: Builder): void {
  router.add('POST', /^\/build$/, async ({ req, res, query }) => {
    let opts: Omit<BuildRequest, 'context' | 'signal'>;
    try {
      opts = buildOptions(query, req);
    } catch (e) {
      await drainBody(req, 30_000);
      throw e;
    }
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new Error('the client went away'));
    });
    let started = false;
    const write = (m: object) => {
      if (!started) {
        started = true;
        res.writeHead(200, { 'Content-Type': 'application/json' });
      }
      if (!res.destroyed) res.write(JSON.stringify(m) + '\n');
    };
    try {
      await builder.build({ ...opts, context: req, signal: ac.signal }, { stream: (stream) => write({ stream }), aux: (aux) => write({ aux }) });
    } catch (e) {
      if (!req.complete) await drainBody(req, 30_000);
      const { body } = errorResponse(e);
      write({ errorDetail: { ...(body.exitCode !== undefined ? { code: body.exitCode } : {}), message: body.message }, error: body.message, code: body.code, ...(body.hint ? { hint: body.hint } : {}) });
    }
    if (!started) res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end();
  });
}

function jsonParam<T>(query: URLSearchParams, name: string, dflt: T, check: (v: unknown) => boolean): T {
  const raw = query.get(name);
  if (raw === null || raw === '') return dflt;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError(`${name} is not valid JSON`, { hint: `pass ${name} as a JSON ${Array.isArray(dflt) ? 'array' : 'object'}` });
  }
  if (v === null) return dflt;
  if (!check(v)) throw new InvalidArgumentError(`${name} has the wrong shape`, { hint: `pass ${name} as a JSON ${Array.isArray(dflt) ? 'array of strings' : 'object of strings'}` });
  return v as T;
}

const isStringMap = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string' || x === null);
const isStringList = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');

function intParam(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  if (!/^-?\d+$/.test(raw)) throw new InvalidArgumentError(`${name} must be an integer, not ${JSON.stringify(raw)}`, { hint: `pass ${name} as a number of bytes or microseconds` });
  const n = Number(raw);
  return n === 0 ? undefined : n;
}

function refuse(name: string, why: string, hint: string): never {
  throw new InvalidArgumentError(`build parameter ${name} is not supported: ${why}`, { hint });
}

export function buildOptions(query: URLSearchParams, req: IncomingMessage): Omit<BuildRequest, 'context' | 'signal'> {
  const version = query.get('version');
  if (version && version !== '1') refuse('version', `builder version ${version} (BuildKit) is not available; berth runs the classic builder`, 'build with DOCKER_BUILDKIT=0 (the docker CLI then uses the classic builder), or drop version=2');
  if (query.get('remote')) refuse('remote', 'a remote context (git or URL)', 'send the context as the request body: build from a local directory');
  if (query.get('session')) refuse('session', 'BuildKit sessions', 'build with DOCKER_BUILDKIT=0');
  if (qbool(query, 'squash')) refuse('squash', 'squashing layers', 'build without --squash');
  if (query.get('outputs')) refuse('outputs', 'exporters are a BuildKit feature', 'build without --output; the image lands in the image store');
  for (const n of ['cpushares', 'cpusetcpus', 'cpusetmems', 'cgroupparent']) {
    const v = query.get(n);
    if (v && v !== '0') refuse(n, 'berth applies memory, memswap, cpuperiod, cpuquota and shmsize to RUN steps only', `drop ${n}`);
  }
  const iso = query.get('isolation');
  if (iso && iso !== 'default') refuse('isolation', `isolation ${iso} is a Windows feature`, 'drop --isolation');
  const ulimits = query.get('ulimits');
  if (ulimits && ulimits !== '[]' && ulimits !== 'null') refuse('ulimits', 'ulimits for RUN steps', 'drop --ulimit');
  const networkMode = query.get('networkmode') || 'default';
  if (!['default', 'bridge', 'host', 'none'].includes(networkMode)) refuse('networkmode', `network ${networkMode} for RUN steps`, 'use default, bridge, host or none');
  const extraHosts = query.getAll('extrahosts').flatMap((h) => h.split(',')).filter(Boolean);
  let authConfigs: Record<string, unknown> | undefined;
  const reg = req.headers['x-registry-config'];
  if (typeof reg === 'string' && reg) {
    try {
      authConfigs = JSON.parse(Buffer.from(reg, 'base64').toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new InvalidArgumentError('X-Registry-Config is not base64 JSON', { hint: 'send the auth configs as base64url-encoded JSON' });
    }
  }
  const limits: BuildRequest['limits'] = {};
  const mem = intParam(query, 'memory');
  const swap = intParam(query, 'memswap');
  const period = intParam(query, 'cpuperiod');
  const quota = intParam(query, 'cpuquota');
  const shm = intParam(query, 'shmsize');
  if (mem !== undefined) limits.Memory = mem;
  if (swap !== undefined) limits.MemorySwap = swap;
  if (period !== undefined) limits.CpuPeriod = period;
  if (quota !== undefined) limits.CpuQuota = quota;
  if (shm !== undefined) limits.ShmSize = shm;
  const buildArgs = jsonParam<Record<string, string | null>>(query, 'buildargs', {}, isStringMap);
  const labels = jsonParam<Record<string, string>>(query, 'labels', {}, (v) => isStringMap(v) && Object.values(v as object).every((x) => typeof x === 'string'));
  const cacheFrom = jsonParam<string[]>(query, 'cachefrom', [], isStringList);
  const rm = qbool(query, 'rm', true);
  return {
    dockerfile: query.get('dockerfile') || 'Dockerfile',
    tags: query.getAll('t').filter(Boolean),
    buildArgs,
    labels,
    noCache: qbool(query, 'nocache'),
    pull: qbool(query, 'pull'),
    rm,
    forceRm: qbool(query, 'forcerm'),
    target: query.get('target') || undefined,
    networkMode,
    extraHosts,
    cacheFrom,
    quiet: qbool(query, 'q'),
    platform: query.get('platform') || undefined,
    limits,
    authConfigs,
  };
}
