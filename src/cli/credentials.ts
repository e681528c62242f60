import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FailedPreconditionError, InvalidArgumentError } from '../../volumes/shared/errors';
import type { Credentials } from '../images/registry/service';

/**
 * The docker CLI's credentials, read and written where the docker CLI keeps them:
 * `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), so `docker login` and
 * `berth login` share them. Per registry, in Docker's order: `credHelpers[host]`, then
 * `credsStore`, both through `docker-credential-<name>` (get/store/erase on stdin), then
 * `auths[key].auth` (base64 user:password) or `identitytoken`. Docker Hub's key is
 * `https://index.docker.io/v1/`. Secrets are never printed.
 */

export const HUB_KEY = 'https://index.docker.io/v1/';

interface ConfigFile {
  auths?: Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker'), 'config.json');
}

/** The config.json key of a registry domain (Docker Hub's is its v1 URL). */
export function authKey(domain: string): string {
  return domain === 'docker.io' ? HUB_KEY : domain;
}

function readConfig(): ConfigFile {
  try {
    return JSON.parse(fs.readFileSync(configPath(), 'utf8')) as ConfigFile;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new InvalidArgumentError(`cannot read ${configPath()}: ${(e as Error).message}`, { hint: 'fix or remove the file (it is the docker CLI\'s config)' });
  }
}

function writeConfig(c: ConfigFile): void {
  const p = configPath();
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
  const tmp = `${p}.berth-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(c, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, p);
}

function helperFor(c: ConfigFile, domain: string): string | undefined {
  return c.credHelpers?.[domain] ?? c.credHelpers?.[authKey(domain)] ?? c.credsStore;
}

function helper(name: string, action: 'get' | 'store' | 'erase', input: string): string {
  const bin = `docker-credential-${name}`;
  const r = spawnSync(bin, [action], { input, encoding: 'utf8' });
  if (r.error) throw new FailedPreconditionError(`cannot run the credential helper ${bin}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`, { hint: `install ${bin} or remove credsStore/credHelpers from ${configPath()}` });
  if (r.status !== 0) {
    const msg = (r.stdout || r.stderr || '').trim();
    if (action === 'get' && /credentials not found/i.test(msg)) return '';
    throw new FailedPreconditionError(`the credential helper ${bin} failed to ${action}: ${msg.slice(0, 200)}`, { hint: `check ${bin}` });
  }
  return r.stdout;
}

/** The stored credentials for a registry domain, if any. */
export function credentialsFor(domain: string): Credentials | undefined {
  const c = readConfig();
  const h = helperFor(c, domain);
  if (h) {
    const out = helper(h, 'get', authKey(domain));
    if (out.trim()) {
      const v = JSON.parse(out) as { Username?: string; Secret?: string };
      if (v.Username === '<token>') return { identitytoken: v.Secret, serveraddress: domain };
      return { username: v.Username, password: v.Secret, serveraddress: domain };
    }
  }
  const e = c.auths?.[authKey(domain)] ?? (domain === 'docker.io' ? c.auths?.['docker.io'] ?? c.auths?.['index.docker.io'] : undefined);
  if (!e) return undefined;
  if (e.identitytoken) return { identitytoken: e.identitytoken, serveraddress: domain };
  if (e.auth) {
    const plain = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = plain.indexOf(':');
    if (i > 0) return { username: plain.slice(0, i), password: plain.slice(i + 1), serveraddress: domain };
  }
  if (e.username) return { username: e.username, password: e.password, serveraddress: domain };
  return undefined;
}

export function storeCredentials(domain: string, creds: { username: string; password: string; identitytoken?: string }): string {
  const c = readConfig();
  const h = helperFor(c, domain);
  if (h) {
    helper(h, 'store', JSON.stringify({ ServerURL: authKey(domain), Username: creds.identitytoken ? '<token>' : creds.username, Secret: creds.identitytoken || creds.password }));
    c.auths = { ...(c.auths ?? {}), [authKey(domain)]: {} };
    writeConfig(c);
    return `the credential helper docker-credential-${h}`;
  }
  c.auths = { ...(c.auths ?? {}), [authKey(domain)]: creds.identitytoken ? { identitytoken: creds.identitytoken } : { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  writeConfig(c);
  return configPath();
}

/** Remove a registry's credentials; false if there were none. */
export function eraseCredentials(domain: string): boolean {
  const c = readConfig();
  const key = authKey(domain);
  const had = !!c.auths?.[key];
  const h = helperFor(c, domain);
  if (h) helper(h, 'erase', key);
  if (had) {
    delete c.auths![key];
    writeConfig(c);
  }
  return had || !!h;
}

/** X-Registry-Auth: Docker's AuthConfig as base64url JSON. */
export function encodeAuth(creds: Credentials | undefined): string | undefined {
  if (!creds) return undefined;
  return Buffer.from(JSON.stringify(creds)).toString('base64url');
}
