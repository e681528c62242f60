import * as fs from 'node:fs';
import { InvalidArgumentError, UnavailableError } from '../../../volumes/shared/errors';
import type { Reference } from '../reference';
import type { RegistrySession } from './client';
import { header, registryError } from './client';
import type { Descriptor } from './manifest';
import { perId } from './pull';
import { withHeldLayers } from '../held-layers';
import type { PushResult, TransferOptions } from './service';
import type { PushableImage, RegistrySink } from './sink';
import { discard } from './transport';

/**
 * One push, in the distribution spec's order: every blob first (layers, then the config),
 * the manifest last, so a registry never holds a manifest whose blobs are missing.
 *
 * - **HEAD first.** A blob the repository has is not sent ("Layer already exists").
 * - **Mount.** A blob the image was pulled with from another repository of the same
 *   registry is mounted from there (POST ?mount=&from=): no bytes move.
 * - **Upload.** Blobs up to `chunkSize` go in one PUT (monolithic); bigger ones in PATCH
 *   chunks of `chunkSize` with Content-Range, then a closing PUT ?digest=.
 * - **Manifest format.** berth pushes the manifest it stores, byte for byte: the OCI image
 *   manifest berth writes for images it makes (import, commit, build: OCI is what every
 *   registry in scope takes — distribution ≥ 2.7, Docker Hub, Harbor, GHCR, ECR, GCR,
 *   Quay, Zot — and carries annotations), and for a pulled or loaded image the manifest it
 *   came with (Docker schema2 stays schema2). Re-encoding would change the manifest's
 *   digest, so `name@digest` would stop naming the same bytes after a round trip. The one
 *   exception: a layer held under another blob (held-layers.ts) that the registry neither
 *   has nor can mount is sent as that blob, in an OCI manifest rewritten to name it.
 */

export interface PushContext {
  session: RegistrySession;
  sink: RegistrySink;
  concurrency: number;
  chunkSize: number;
}

export async function pushImage(ctx: PushContext, ref: Reference, localRef: string, opts: TransferOptions = {}): Promise<PushResult> {
  const say = opts.progress ?? (() => undefined);
  const { session, sink } = ctx;
  if (ref.digest) {
    throw new InvalidArgumentError(`cannot push a digest reference ${JSON.stringify(`${ref.repo}@${ref.digest}`)}`, { hint: 'push by name and tag, e.g. berth push myreg:5000/app:v1' });
  }
  const tag = ref.tag ?? 'latest';
  const img = await sink.pushable(localRef);
  say({ status: `The push refers to repository [${ref.name.replace(/^docker\.io\//, 'docker.io/')}]` });
  return sink.hold(async () => {
    const blobs: Array<Descriptor & { heldAs?: Descriptor }> = [...img.layers, img.config];
    const seen = new Set<string>();
    const todo = blobs.filter((b) => !seen.has(b.digest) && seen.add(b.digest));
    // A layer held under another blob (held-layers.ts): the original if the registry has it
    // or can mount it, else the held blob, named in a rewritten manifest.
    const sentFor = new Map<string, Descriptor>();
    const shown = img.layers.map((l) => short(l.digest));
    for (const id of [...new Set(shown)].reverse()) say({ status: 'Preparing', progressDetail: {}, id });
    const mountFrom = sourcesOf(sink, img, ref);
    const throttled = perId(say);
    let next = 0;
    const work: Promise<void>[] = [];
    const one = async (): Promise<void> => {
      for (;;) {
        const b = todo[next++];
        if (!b) return;
        const isLayer = b !== img.config;
        const id = short(b.digest);
        const progress = (size: number) => (done: number) => isLayer && throttled({ status: 'Pushing', progressDetail: { current: done, total: size }, id }, done >= size);
        let status = await pushBlob(ctx, ref.path, b, b.heldAs ? undefined : ctx.sink.content.path(b.digest), mountFrom, progress(b.size), opts.signal);
        if (status === undefined && b.heldAs) {
          status = await pushBlob(ctx, ref.path, b.heldAs, ctx.sink.content.path(b.heldAs.digest), mountFrom, progress(b.heldAs.size), opts.signal);
          sentFor.set(b.digest, b.heldAs);
        }
        if (isLayer) say({ status: status as string, progressDetail: {}, id });
      }
    };
    for (let i = 0; i < ctx.concurrency; i++) work.push(one());
    const results = await Promise.allSettled(work);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;

    const stored = await (await img.read(img.manifest.digest)).toArray().then((c) => Buffer.concat(c as Buffer[]));
    const m = withHeldLayers(stored, img.manifest.mediaType, img.layers.map((l) => sentFor.get(l.digest) ?? l));
    const manifest = m.bytes;
    const res = await session.request('PUT', `/v2/${ref.path}/manifests/${tag}`, {
      scope: `repository:${ref.path}:pull,push`,
      headers: { 'Content-Type': m.mediaType, 'Content-Length': String(manifest.length) },
      body: manifest,
      what: `manifest ${ref.repo}:${tag}`,
      signal: opts.signal,
    });
    discard(res);
    await sink.addRepoDigest(img.id, `${ref.repo}@${m.digest}`);
    say({ status: `${tag}: digest: ${m.digest} size: ${manifest.length}` });
    say({ progressDetail: {}, aux: { Tag: tag, Digest: m.digest, Size: manifest.length } });
    return { tag, digest: m.digest, size: manifest.length };
  });
}

/** Repositories on the same registry this image's blobs can be mounted from. */
function sourcesOf(sink: RegistrySink, img: PushableImage, ref: Reference): string[] {
  const held = sink.find(img.id);
  const out: string[] = [];
  for (const rd of held?.repoDigests ?? []) {
    const repo = rd.slice(0, rd.indexOf('@'));
    const domain = repo.includes('/') && /[.:]|^localhost\//.test(repo) ? repo.slice(0, repo.indexOf('/')) : 'docker.io';
    if (domain !== ref.domain) continue;
    const path = domain === 'docker.io' ? (repo.includes('/') ? repo : `library/${repo}`) : repo.slice(domain.length + 1);
    if (path !== ref.path && !out.includes(path)) out.push(path);
  }
  return out;
}

/**
 * One blob into `repo` from `file` (HEAD first: a blob the repository holds is not sent;
 * then a mount from one of `mountFrom`, else an upload). Answers Docker's status word;
 * without a `file` (a blob berth does not hold), undefined when it would have to upload.
 */
export async function pushBlob(
  ctx: Pick<PushContext, 'session' | 'chunkSize'>,
  repo: string,
  b: Descriptor,
  file: string | undefined,
  mountFrom: string[],
  onBytes: (done: number) => void,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const { session } = ctx;
  const scope = `repository:${repo}:pull,push`;
  const head = await session.request('HEAD', `/v2/${repo}/blobs/${b.digest}`, { scope, ok: [404], what: `blob ${b.digest}`, signal });
  discard(head);
  if (head.status === 200) return 'Layer already exists';
  let location: string | undefined;
  for (const from of mountFrom) {
    const res = await session.request('POST', `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(b.digest)}&from=${encodeURIComponent(from)}`, {
      scope: `${scope} repository:${from}:pull`,
      what: `mount of blob ${b.digest}`,
      signal,
    });
    discard(res);
    if (res.status === 201) return `Mounted from ${from}`;
    location = header(res, 'location'); // 202: the registry started an ordinary upload instead
    break;
  }
  if (file === undefined) {
    // A mount answered 202 (an upload began): give it back; the registry expires it anyway.
    if (location) await session.request('DELETE', location, { scope, ok: [204, 404], what: `upload of blob ${b.digest}`, signal }).then(discard, () => undefined);
    return undefined;
  }
  if (!location) {
    const res = await session.request('POST', `/v2/${repo}/blobs/uploads/`, { scope, what: `upload of blob ${b.digest}`, signal });
    discard(res);
    location = header(res, 'location');
  }
  if (!location) throw new UnavailableError(`registry ${session.domain} started an upload without a Location`, { hint: 'the registry misbehaves; check it' });
  if (b.size <= ctx.chunkSize) {
    const res = await session.request('PUT', withDigest(location, b.digest), {
      scope,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) },
      body: await fs.promises.readFile(file),
      what: `blob ${b.digest}`,
      signal,
    });
    discard(res);
    onBytes(b.size);
    return 'Pushed';
  }
  let done = 0;
  while (done < b.size) {
    const end = Math.min(b.size, done + ctx.chunkSize);
    const start = done;
    const res = await session.request('PATCH', location, {
      scope,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start), 'Content-Range': `${start}-${end - 1}` },
      body: () => fs.createReadStream(file, { start, end: end - 1 }),
      ok: [202],
      what: `blob ${b.digest}`,
      signal,
    });
    discard(res);
    if (res.status !== 202) throw await registryError(session.domain, `blob ${b.digest}`, res);
    location = header(res, 'location') ?? location;
    done = end;
    onBytes(done);
  }
  const res = await session.request('PUT', withDigest(location, b.digest), { scope, headers: { 'Content-Length': '0' }, body: Buffer.alloc(0), what: `blob ${b.digest}`, signal });
  discard(res);
  return 'Pushed';
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
