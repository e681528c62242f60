import { InvalidArgumentError, NotFoundError } from '../../volumes/shared/errors';
import { BuildCache } from './cache';
import type { StageState } from './instructions';
import type { BuildImages, StepDeps } from './ports';

/** What every step shares: the cache probe, the parent image for a step's container, short ids, the RUN failure. */

/** A RUN that exited non-zero: its code travels as errorDetail.code, the CLI's exit status. */
export class StepFailedError extends InvalidArgumentError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message, { hint: "the step's output is above; fix the command and build again" });
  }
}

/**
 * Take the cached image of this step when there is one (not with --no-cache): the stage
 * moves to it and the step is done (true). `key` is BuildCache.key's input after the
 * parent; `createdBy` the history entry the step writes, which --cache-from matches on
 * images that have no parent chain here (loaded or pulled: images/cache-from.ts).
 */
export async function useCache(d: Pick<StepDeps, 'cache' | 'images' | 'req' | 'say'>, st: StageState, key: string, createdBy: string, silent = false): Promise<boolean> {
  if (d.req.noCache) return false;
  let hit = await d.cache.probe(BuildCache.key(st.image, key), (id) => exists(d.images, id), d.req.cacheSources);
  if (!hit && d.req.cacheSources?.length) {
    const h = await d.images.historyCacheHit(st.image, d.req.cacheSources, createdBy, st.config);
    if (h) {
      // As moby's history cache: once a source gave a hit, the next steps look at it only.
      d.req.cacheSources = [h.source];
      hit = h.id;
    }
  }
  if (!hit) return false;
  if (!silent) d.say(` ---> Using cache\n ---> ${short(hit)}\n`);
  st.image = hit;
  return true;
}

/** Record the step's new image as the cache's answer for `key` on the old parent, and move the stage to it. */
export async function advance(d: Pick<StepDeps, 'cache'>, st: StageState, key: string, id: string): Promise<void> {
  await d.cache.record(BuildCache.key(st.image, key), id, st.image);
  st.image = id;
}

const NO_CMD = ['/berth-build-step-never-runs'];

/**
 * A container of `image` that never runs, for COPY/ADD and WORKDIR to write into and to
 * read a root filesystem from. The image's VOLUMEs are not mounted: what is written goes
 * into the image's own filesystem, as Docker's builder writes into a layer, so a COPY
 * into a declared VOLUME is kept in the image.
 */
export async function idleContainer(d: Pick<StepDeps, 'containers'>, image: string): Promise<string> {
  const body = { Image: image, Cmd: NO_CMD, Entrypoint: [], Healthcheck: { Test: ['NONE'] }, HostConfig: { NetworkMode: 'none' } };
  return (await d.containers.create(body, undefined, { imageVolumes: false })).Id;
}

/** The image a step's container starts from: the stage's, or an empty one for FROM scratch. */
export async function stepBase(d: Pick<StepDeps, 'images'>, st: StageState): Promise<string> {
  return st.image ?? (await d.images.commitImageConfig(null, { names: [], config: st.config })).id;
}

export async function exists(images: BuildImages, id: string): Promise<boolean> {
  try {
    await images.inspect(id);
    return true;
  } catch (e) {
    if (e instanceof NotFoundError) return false;
    throw e;
  }
}

export function short(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
