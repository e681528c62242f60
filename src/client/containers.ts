import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { callerFileQuery, type CallerFile } from '../../volumes/shared/caller-file';
import { Transport } from './transport';
import { Demuxer } from '../api/stdcopy';
import type {
  ContainerInspect,
  ContainerService,
  ContainerSummary,
  CreateBody,
  ExecConfig,
  ExecInspect,
  LogOptions,
  OutputChunk,
  WaitCondition,
} from '../engine/service';
import type { ImageConfigFields } from '../images/service';

const id = encodeURIComponent;

/** The ContainerService over the socket: the same interface the daemon serves in-process. */
export class RemoteContainerService implements ContainerService {
  constructor(private t: Transport) {}

  /** `platform`: the image must be held for it (else NOT_FOUND, and the caller pulls it). */
  create(body: CreateBody, name?: string, opts: { platform?: string } = {}): Promise<{ Id: string; Warnings: string[] }> {
    return this.t.json('POST', '/containers/create', { query: { name, platform: opts.platform }, body });
  }
  /** berth's extension: the iptables rules a container made from `body` would get; creates nothing. */
  networkPlan(body: CreateBody): Promise<{ Rules: string[]; Warnings: string[] }> {
    return this.t.json('POST', '/berth/v1/network/plan', { body });
  }
  async start(ref: string): Promise<boolean> {
    const res = await this.t.request('POST', `/containers/${id(ref)}/start`);
    res.resume();
    return res.statusCode !== 304;
  }
  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<boolean> {
    const res = await this.t.request('POST', `/containers/${id(ref)}/stop`, { query: { t: opts.timeout, signal: opts.signal } });
    res.resume();
    return res.statusCode !== 304;
  }
  async restart(ref: string, opts: { timeout?: number } = {}): Promise<void> {
    (await this.t.request('POST', `/containers/${id(ref)}/restart`, { query: { t: opts.timeout } })).resume();
  }
  async kill(ref: string, signal?: string): Promise<void> {
    (await this.t.request('POST', `/containers/${id(ref)}/kill`, { query: { signal } })).resume();
  }
  async pause(ref: string): Promise<void> {
    (await this.t.request('POST', `/containers/${id(ref)}/pause`)).resume();
  }
  async unpause(ref: string): Promise<void> {
    (await this.t.request('POST', `/containers/${id(ref)}/unpause`)).resume();
  }
  /**
   * Resolves once the daemon has registered the wait (headers received); `result` resolves
   * when the condition is met. (Wrapped in an object: an async function returning a bare
   * promise would flatten it and wait for the exit.)
   */
  async waitRegistered(ref: string, condition: WaitCondition = 'not-running'): Promise<{ result: Promise<{ StatusCode: number; Error: { Message: string } | null }>; cancel: () => void }> {
    const res = await this.t.request('POST', `/containers/${id(ref)}/wait`, { query: { condition } });
    const result = (async () => {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    })();
    result.catch(() => undefined);
    return { result, cancel: () => res.destroy() };
  }
  async wait(ref: string, condition: WaitCondition = 'not-running'): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    return (await this.waitRegistered(ref, condition)).result;
  }
  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    (await this.t.request('DELETE', `/containers/${id(ref)}`, { query: { force: opts.force ? 1 : undefined, v: opts.volumes ? 1 : undefined } })).resume();
  }
  list(opts: { all?: boolean; limit?: number; size?: boolean; filters?: Record<string, string[]> } = {}): Promise<ContainerSummary[]> {
    return this.t.json('GET', '/containers/json', {
      query: {
        all: opts.all ? 1 : undefined,
        limit: opts.limit,
        size: opts.size ? 1 : undefined,
        filters: opts.filters && Object.keys(opts.filters).length ? JSON.stringify(opts.filters) : undefined,
      },
    });
  }
  inspect(ref: string): Promise<ContainerInspect> {
    return this.t.json('GET', `/containers/${id(ref)}/json`);
  }
  async rename(ref: string, newName: string): Promise<void> {
    (await this.t.request('POST', `/containers/${id(ref)}/rename`, { query: { name: newName } })).resume();
  }
  top(ref: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    return this.t.json('GET', `/containers/${id(ref)}/top`, { query: { ps_args: psArgs } });
  }
  prune(filters: Record<string, string[]> = {}): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    return this.t.json('POST', '/containers/prune', { query: { filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined } });
  }
  async *logs(ref: string, opts: LogOptions): AsyncIterable<OutputChunk> {
    const info = await this.inspect(ref);
    // As the engine reads LogOptions: neither stream named means both, else only those named.
    const both = opts.stdout === undefined && opts.stderr === undefined;
    const res = await this.t.request('GET', `/containers/${id(ref)}/logs`, {
      query: {
        follow: opts.follow ? 1 : undefined,
        stdout: both || opts.stdout ? 1 : 0,
        stderr: both || opts.stderr ? 1 : 0,
        since: opts.since,
        until: opts.until,
        timestamps: opts.timestamps ? 1 : undefined,
        tail: opts.tail,
      },
    });
    opts.signal?.addEventListener('abort', () => res.destroy());
    yield* chunks(res, !!info.Config.Tty);
  }
  /** `tty`, when the caller knows it (it just created the container), saves an inspect. */
  async attach(ref: string, opts: { stdin?: Readable; stdout?: boolean; stderr?: boolean; logs?: boolean; stream?: boolean; tty?: boolean }): Promise<AsyncIterable<OutputChunk>> {
    const tty = opts.tty ?? !!(await this.inspect(ref)).Config.Tty;
    const socket = await this.t.hijack('POST', `/containers/${id(ref)}/attach`, {
      query: { stream: opts.stream === false ? 0 : 1, stdin: opts.stdin ? 1 : 0, stdout: opts.stdout === false ? 0 : 1, stderr: opts.stderr === false ? 0 : 1, logs: opts.logs ? 1 : 0 },
    });
    if (opts.stdin) {
      // Half-close when our input ends, so the container sees EOF (StdinOnce).
      opts.stdin.on('data', (c: Buffer) => socket.write(c));
      opts.stdin.on('end', () => socket.end());
    }
    return chunks(socket, tty);
  }
  execCreate(ref: string, cfg: ExecConfig): Promise<{ Id: string }> {
    return this.t.json('POST', `/containers/${id(ref)}/exec`, { body: { AttachStdout: true, AttachStderr: true, ...cfg } });
  }
  async execStart(execId: string, io: { stdin?: Readable; stdout?: Writable; stderr?: Writable }): Promise<number> {
    const socket = await this.t.hijack('POST', `/exec/${id(execId)}/start`, { body: { Detach: false, Tty: false } });
    if (io.stdin) {
      io.stdin.on('data', (c: Buffer) => socket.write(c));
      io.stdin.on('end', () => socket.end());
    } else socket.end();
    await pipeline(
      socket,
      new Demuxer({ stdout: (b) => void io.stdout?.write(b), stderr: (b) => void io.stderr?.write(b) }),
    );
    const info = await this.execInspect(execId);
    return info.ExitCode ?? 0;
  }
  execInspect(execId: string): Promise<ExecInspect> {
    return this.t.json('GET', `/exec/${id(execId)}/json`);
  }
  commit(ref: string, opts: { repo?: string; tag?: string; comment?: string; author?: string; changes?: string[]; pause?: boolean; config?: Partial<ImageConfigFields> }): Promise<{ Id: string }> {
    return this.t.json('POST', '/commit', {
      query: { container: ref, repo: opts.repo, tag: opts.tag, comment: opts.comment, author: opts.author, changes: opts.changes, pause: opts.pause === false ? 0 : undefined },
      body: opts.config ?? {},
    });
  }
  async export(ref: string, out: Writable, to?: CallerFile): Promise<void> {
    if (to) {
      await this.t.json('GET', `/containers/${id(ref)}/export`, { query: callerFileQuery(to) });
      out.end();
      return;
    }
    await pipeline(await this.t.request('GET', `/containers/${id(ref)}/export`), out);
  }
  async close(): Promise<void> {}
}

/** A framed (non-tty) or raw (tty) output stream as OutputChunks. */
async function* chunks(src: Readable, tty: boolean): AsyncIterable<OutputChunk> {
  if (tty) {
    for await (const c of src) yield { stream: 'stdout', data: c as Buffer, time: '' };
    return;
  }
  const out = new PassThrough({ objectMode: true });
  const demux = new Demuxer({
    stdout: (b) => void out.write({ stream: 'stdout', data: b, time: '' }),
    stderr: (b) => void out.write({ stream: 'stderr', data: b, time: '' }),
  });
  pipeline(src, demux).then(
    () => out.end(),
    (e) => out.destroy(e),
  );
  for await (const c of out) yield c as OutputChunk;
}
