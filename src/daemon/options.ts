import * as path from 'node:path';
import { InvalidArgumentError } from '../../volumes/shared/errors';

/** Where a daemon keeps its data and where it listens. Flags beat env beat defaults. */
export interface DaemonLocation {
  root: string;
  /** The unix socket path (from a `unix:///PATH` host). */
  socket: string;
}

export const DEFAULT_ROOT = '/var/lib/berth';
export const DEFAULT_HOST = 'unix:///run/berth/berth.sock';

export function resolveLocation(flags: { root?: string; host?: string }, env: NodeJS.ProcessEnv = process.env): DaemonLocation {
  const root = path.resolve(flags.root ?? env.BERTH_ROOT ?? DEFAULT_ROOT);
  const host = flags.host ?? env.BERTH_HOST ?? DEFAULT_HOST;
  return { root, socket: socketPath(host) };
}

/** `unix:///run/berth/berth.sock` → `/run/berth/berth.sock`. TCP is refused: no TLS yet. */
export function socketPath(host: string): string {
  if (host.startsWith('unix://')) {
    const p = host.slice('unix://'.length);
    if (!p.startsWith('/')) throw new InvalidArgumentError(`socket path must be absolute: ${host}`, { hint: 'use unix:///absolute/path.sock' });
    return p;
  }
  if (host.startsWith('/')) return host;
  throw new InvalidArgumentError(`unsupported host ${host}`, {
    hint: 'berth listens on a unix socket only (a TCP listener would need TLS): use unix:///PATH',
  });
}
