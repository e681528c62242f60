import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transport } from './transport';
import type {
  BootstrapOptions,
  DeleteItem,
  HistoryItem,
  ImageInspect,
  ImageService,
  ImageSummary,
  ImportOptions,
  Progress,
  ResolvedImage,
  VendorOptions,
} from '../images/service';

const enc = encodeURIComponent;
// Image names may hold '/', which Docker's routes take literally: keep it readable.
const name = (ref: string) => enc(ref).replace(/%2F/gi, '/');

/** The ImageService over the socket: the same interface the daemon serves in-process. */
export class RemoteImageService implements ImageService {
  constructor(private t: Transport) {}

  list(opts: { all?: boolean; filters?: Record<string, string[]> } = {}): Promise<ImageSummary[]> {
    return this.t.json('GET', '/images/json', {
      query: { all: opts.all ? 1 : undefined, filters: opts.filters && Object.keys(opts.filters).length ? JSON.stringify(opts.filters) : undefined },
    });
  }
  inspect(ref: string): Promise<ImageInspect> {
    return this.t.json('GET', `/images/${name(ref)}/json`);
  }
  history(ref: string): Promise<HistoryItem[]> {
    return this.t.json('GET', `/images/${name(ref)}/history`);
  }
  async tag(ref: string, repo: string, tag?: string): Promise<void> {
    (await this.t.request('POST', `/images/${name(ref)}/tag`, { query: { repo, tag } })).resume();
  }
  remove(ref: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    return this.t.json('DELETE', `/images/${name(ref)}`, { query: { force: opts.force ? 1 : undefined, noprune: opts.noprune ? 1 : undefined } });
  }
  async importRootfs(input: Readable, opts: ImportOptions): Promise<{ id: string }> {
    const res = await this.t.request('POST', '/images/create', {
      query: { fromSrc: '-', repo: opts.repo, tag: opts.tag, changes: opts.changes, message: opts.message },
      body: input,
    });
    const msgs = await this.t.messages(res);
    return { id: msgs.map((m) => m.status).filter(Boolean).pop() ?? '' };
  }
  async load(input: Readable, _opts: { progress?: Progress } = {}): Promise<{ loaded: string[] }> {
    const res = await this.t.request('POST', '/images/load', { query: { quiet: 1 }, body: input });
    const msgs = await this.t.messages(res);
    return { loaded: msgs.map((m) => (m.stream ?? '').trim()).filter(Boolean) };
  }
  async save(refs: string[], out: Writable): Promise<void> {
    const res = await this.t.request('GET', '/images/get', { query: { names: refs } });
    await pipeline(res, out);
  }
  async vendor(opts: VendorOptions): Promise<{ id: string }> {
    const res = await this.t.request('POST', '/berth/v1/images/vendor', {
      body: { ref: opts.ref, binaries: opts.binaries, cmd: opts.cmd, entrypoint: opts.entrypoint },
    });
    const msgs = await this.t.messages(res, forward(opts.progress));
    return { id: String(msgs.find((m) => m.aux)?.aux?.ID ?? '') };
  }
  async bootstrap(opts: BootstrapOptions): Promise<{ id: string; cached: boolean }> {
    const res = await this.t.request('POST', '/berth/v1/images/bootstrap', { body: { ref: opts.ref, mirror: opts.mirror } });
    const msgs = await this.t.messages(res, forward(opts.progress));
    const aux = msgs.find((m) => m.aux)?.aux ?? {};
    return { id: String(aux.ID ?? ''), cached: Boolean(aux.Cached) };
  }
  async resolve(ref: string): Promise<ResolvedImage> {
    // Through the API a "pull" of busybox makes it on first use, like resolve in-process.
    const res = await this.t.request('POST', '/images/create', { query: { fromImage: ref } });
    await this.t.messages(res);
    const img = await this.inspect(ref);
    return { id: img.Id, topLayer: img.GraphDriver.Data?.TopLayer ?? '', config: img.Config };
  }
  async close(): Promise<void> {}
}

function forward(progress?: Progress) {
  return (m: { status?: string; id?: string; progressDetail?: { current?: number; total?: number } }) => {
    if (progress && m.status) progress({ status: m.status, id: m.id, current: m.progressDetail?.current, total: m.progressDetail?.total });
  };
}
