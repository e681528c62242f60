import * as path from 'node:path';
import type { ContainerRecord } from './container-record';
import { readLogs } from './logs';

/** A tty container's terminal, as a run (launch.ts) and a reconnect (recovery.ts) open it. */

/** HostConfig.ConsoleSize ([height, width], Docker's) as the pty's first size. */
export function consoleSize(hc: ContainerRecord['HostConfig']): { height: number; width: number } | undefined {
  const cs = hc.ConsoleSize as unknown;
  if (!Array.isArray(cs) || cs.length !== 2) return undefined;
  const [h, w] = cs.map(Number);
  return h > 0 && w > 0 && h <= 10000 && w <= 10000 ? { height: h, width: w } : undefined;
}

/**
 * A socket of the monitor's (attach, watch: both in the container's directory), reachable
 * whatever the length of the container's path (sun_path holds 107 bytes): through the
 * monitor's working directory, which it sets to that directory.
 */
export function attachPath(socket: string, monitorPid: number): string {
  return Buffer.byteLength(socket) < 100 ? socket : `/proc/${monitorPid}/cwd/${path.basename(socket)}`;
}

/** A tty container's recent output from its log (the last 1000 entries), to rebuild its screen. */
export async function logTail(log: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const e of readLogs(log, { tail: 1000 })) parts.push(e.log);
  return Buffer.concat(parts);
}
