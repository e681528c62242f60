import type { Command } from 'commander';
import { resolveLocation, DaemonLocation } from '../daemon/options';
import { Transport, ensureDaemon } from '../client/transport';
import { RemoteImageService } from '../client/images';
import { RemoteContainerService } from '../client/containers';
import { RemoteVolumeService } from '../client/volumes';

/** What every client command needs: where the daemon is, and a connection to it. */
export interface CliContext {
  loc: DaemonLocation;
  transport: Transport;
  images: RemoteImageService;
  containers: RemoteContainerService;
  volumes: RemoteVolumeService;
}

export async function connect(cmd: Command): Promise<CliContext> {
  const g = cmd.optsWithGlobals() as { host?: string; root?: string; autostart?: boolean };
  const loc = resolveLocation(g);
  const transport = new Transport(loc.socket);
  if (g.autostart !== false) await ensureDaemon(transport, loc.root);
  return { loc, transport, images: new RemoteImageService(transport), containers: new RemoteContainerService(transport), volumes: new RemoteVolumeService(transport) };
}

/** Repeatable option collector for commander: -c A -c B → ['A', 'B']. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}
