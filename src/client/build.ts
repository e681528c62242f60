import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import ignore from '@balena/dockerignore';
import * as tar from 'tar-stream';
import { InvalidArgumentError } from '../../volumes/shared/errors';
import { packDir } from '../../volumes/archive/pack';
import type { Transport } from './transport';

/**
 * `berth build`'s side of POST /build: the context directory packed as the docker CLI
 * packs it (.dockerignore applied here, so ignored files are never sent; the Dockerfile
 * and .dockerignore always go), or a tar/Dockerfile read from standard input, and the
 * JSON stream read back. A failed RUN's exit status becomes the error's exitCode.
 */

export interface BuildArgs {
  tags?: string[];
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  pull?: boolean;
  quiet?: boolean;
  /** RUN containers' network: default, bridge, host or none (networkmode). */
  network?: string;
  /** host:ip entries for RUN containers' /etc/hosts (extrahosts). */
  addHosts?: string[];
  /** Images whose build chains the cache may use (cachefrom). */
  cacheFrom?: string[];
  platform?: string;
}

/** The context of directory `dir` as a tar stream; `dockerfile` (a path) names the Dockerfile. */
export function packContext(dir: string, dockerfile?: string): { tar: Readable; name: string } {
  const root = path.resolve(dir);
  if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
    throw new InvalidArgumentError(`unable to prepare context: path "${dir}" not found`, { hint: 'give the directory to build from, or - to read a tar or a Dockerfile from standard input' });
  }
  const dfPath = dockerfile ? path.resolve(dockerfile) : path.join(root, 'Dockerfile');
  if (!fs.existsSync(dfPath)) throw new InvalidArgumentError(`Cannot locate specified Dockerfile: ${dockerfile ?? 'Dockerfile'}`, { hint: 'put a Dockerfile in the context or name one with -f' });
  const rel = path.relative(root, dfPath);
  const inside = !rel.startsWith('..') && !path.isAbsolute(rel);
  const name = inside ? rel.split(path.sep).join('/') : '.berth-dockerfile';
  const ignoreFile = path.join(root, '.dockerignore');
  let skip: ((rel: string, isDir: boolean) => boolean) | undefined;
  if (fs.existsSync(ignoreFile)) {
    const text = fs.readFileSync(ignoreFile, 'utf8');
    const ig = ignore().add(text);
    const exceptions = text.split('\n').some((l) => l.trim().startsWith('!'));
    skip = (p, isDir) => p !== name && p !== '.dockerignore' && ig.ignores(p) && !(isDir && (exceptions || name.startsWith(p + '/')));
  }
  const body = packDir(root, { skip });
  if (inside) return { tar: body, name };
  // A Dockerfile outside the context goes in first under a name of its own, as the docker CLI does.
  return { tar: Readable.from(withFirst(name, fs.readFileSync(dfPath), body)), name };
}

async function* withFirst(name: string, data: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  // One entry packed alone, its two end-of-archive blocks cut, then the rest of the tar.
  const one = tar.pack();
  one.entry({ name, mode: 0o644, size: data.length, mtime: new Date() }, data);
  one.finalize();
  const parts: Buffer[] = [];
  for await (const c of one as AsyncIterable<Buffer>) parts.push(c);
  const all = Buffer.concat(parts);
  yield all.subarray(0, all.length - 1024);
  for await (const c of rest) yield c as Buffer;
}

/** Standard input as a context: a tar (plain or compressed) as it is, anything else a Dockerfile alone. */
export async function stdinContext(input: Readable): Promise<{ tar: Readable; name: string }> {
  const chunks: Buffer[] = [];
  let n = 0;
  const it = input[Symbol.asyncIterator]();
  let done = false;
  while (n < 512 && !done) {
    const r = await it.next();
    if (r.done) done = true;
    else {
      chunks.push(r.value as Buffer);
      n += (r.value as Buffer).length;
    }
  }
  const head = Buffer.concat(chunks);
  const isTar = (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') || (head[0] === 0x1f && head[1] === 0x8b) || head.subarray(0, 3).toString('latin1') === 'BZh' || head[0] === 0xfd;
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    if (!done) for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as Buffer;
  }
  if (isTar) return { tar: Readable.from(all()), name: 'Dockerfile' };
  const parts: Buffer[] = [];
  for await (const c of all()) parts.push(c);
  const data = Buffer.concat(parts);
  const empty = new Readable({ read() { this.push(Buffer.alloc(1024)); this.push(null); } });
  return { tar: Readable.from(withFirst('Dockerfile', data, empty)), name: 'Dockerfile' };
}

/** Run a build; `onStream` gets the progress text. Resolves with the image id. */
export async function build(t: Transport, ctx: { tar: Readable; name: string }, a: BuildArgs, onStream: (text: string) => void): Promise<string> {
  const res = await t.request('POST', '/build', {
    query: {
      dockerfile: ctx.name,
      t: a.tags ?? [],
      buildargs: a.buildArgs && Object.keys(a.buildArgs).length ? JSON.stringify(a.buildArgs) : undefined,
      labels: a.labels && Object.keys(a.labels).length ? JSON.stringify(a.labels) : undefined,
      target: a.target,
      nocache: a.noCache ? 1 : undefined,
      pull: a.pull ? 1 : undefined,
      q: a.quiet ? 1 : undefined,
      networkmode: a.network,
      extrahosts: a.addHosts?.length ? a.addHosts.join(',') : undefined,
      cachefrom: a.cacheFrom?.length ? JSON.stringify(a.cacheFrom) : undefined,
      platform: a.platform,
    },
    body: ctx.tar,
  });
  let id = '';
  await t.messages(res, (m) => {
    if (typeof m.aux?.ID === 'string') id = m.aux.ID;
    if (m.stream) onStream(m.stream);
  });
  return id;
}
