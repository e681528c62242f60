import * as http from 'node:http';

/** What a raw API call answered: the status and the body as JSON (a body that is not JSON as `message`). */
export interface RawAnswer {
  status: number;
  json: { message?: string; code?: string; hint?: string; Id?: string } & Record<string, unknown>;
}

/**
 * One HTTP request to a daemon's socket, without berth's client: for tests and benchmarks that
 * send bodies the client would never send, and read any answer (it never throws on a status).
 */
export function rawCall(socket: string, method: string, path: string, body?: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const headers: Record<string, string | number> = data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {};
    const req = http.request({ socketPath: socket, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: RawAnswer['json'] = {};
        try {
          json = text ? JSON.parse(text) : {};
        } catch {
          json = { message: text };
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}
