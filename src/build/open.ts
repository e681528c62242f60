import * as fs from 'node:fs';
import { ContainerArchive } from '../engine/archive';
import type { Engine } from '../engine/engine';
import type { ImageStore } from '../images/store';
import { Builder } from './builder';
import { BuildCache } from './cache';
import { isBusyboxRef } from '../images/busybox';
import { parseReference } from '../images/reference';
import type { Credentials } from '../images/registry/auth';
import type { RegistryService } from '../images/registry/service';

/** Wire the builder to the engine and the image store (the daemon's one call). */
export async function openBuilder(opts: { root: string; tmpDir: string; engine: Engine; images: ImageStore; registry?: RegistryService }): Promise<Builder> {
  await fs.promises.mkdir(opts.root, { recursive: true, mode: 0o700 });
  const access = opts.engine.access();
  const archive = new ContainerArchive(access);
  const { images } = opts;
  return new Builder({
    containers: opts.engine,
    files: {
      put: (ref, p, input, o) => archive.put(ref, p, input, o),
      stat: (ref, p) => archive.stat(ref, p),
      withRootfs: (ref, fn) => access.withRootfs(ref, fn),
    },
    images: {
      resolve: (ref) => images.resolve(ref),
      inspect: (ref) => images.inspect(ref),
      tag: (ref, repo, tag) => images.tag(ref, repo, tag),
      commitImageConfig: (parent, spec) => images.commitImageConfig(parent, spec),
      historyCacheHit: (parent, sources, createdBy, config) => images.historyCacheHit(parent, sources, createdBy, config),
      ids: async () => new Set((await images.list({ all: true })).map((i) => i.Id)),
      ...(opts.registry ? { pull: pullWith(opts.registry) } : {}),
    },
    cache: await BuildCache.open(opts.root),
    tmpDir: opts.tmpDir,
  });
}

/**
 * A pull during a build: the credentials for the image's registry come from the build's
 * X-Registry-Config (auth configs keyed by registry, Docker Hub's as its index URL). The
 * built-in busybox is made on the host, never pulled (as POST /images/create does).
 */
function pullWith(registry: RegistryService) {
  return async (ref: string, o: { auth?: Record<string, unknown> }): Promise<void> => {
    if (isBusyboxRef(ref)) return;
    const domain = parseReference(ref).domain;
    const hub = domain === 'docker.io';
    const auth = Object.entries(o.auth ?? {}).find(([k]) => {
      const host = k.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      return host === domain || (hub && (host === 'index.docker.io' || host === 'registry-1.docker.io' || host === 'docker.io'));
    })?.[1] as Credentials | undefined;
    await registry.pull(ref, { auth });
  };
}
