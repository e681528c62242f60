import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { InternalError } from '../../volumes/shared/errors';
import type { PathStat, PutOptions } from '../engine/archive';
import { Transport } from './transport';

const id = encodeURIComponent;
const STAT_HEADER = 'x-docker-container-path-stat';

/** /containers/{id}/archive over the socket (what `berth cp` uses). */
export class RemoteArchive {
  constructor(private t: Transport) {}

  async stat(ref: string, path: string): Promise<PathStat> {
    const res = await this.t.request('HEAD', `/containers/${id(ref)}/archive`, { query: { path } });
    res.resume();
    return decodeStat(res);
  }

  async get(ref: string, path: string): Promise<{ stat: PathStat; stream: IncomingMessage }> {
    const res = await this.t.request('GET', `/containers/${id(ref)}/archive`, { query: { path } });
    return { stat: decodeStat(res), stream: res };
  }

  async put(ref: string, path: string, tar: Readable, opts: PutOptions = {}): Promise<void> {
    const res = await this.t.request('PUT', `/containers/${id(ref)}/archive`, {
      query: { path, copyUIDGID: opts.copyUIDGID ? 1 : undefined, noOverwriteDirNonDir: opts.noOverwriteDirNonDir ? 1 : undefined },
      body: tar,
    });
    res.resume();
  }
}

function decodeStat(res: IncomingMessage): PathStat {
  const h = res.headers[STAT_HEADER];
  if (typeof h !== 'string') throw new InternalError('the daemon sent no path stat', { hint: 'is this a Docker Engine API daemon?' });
  return JSON.parse(Buffer.from(h, 'base64').toString('utf8')) as PathStat;
}
