import * as fs from 'node:fs';
import { spawn } from 'node:child_process';

/**
 * The nested-JSON burst of issue 18, shared by its test (test/api/robustness-burst.test.ts)
 * and its benchmark (benchmarks/burst.ts): the bodies, and a pinger that times `/_ping`
 * from a process of its own (the sender is busy writing 160 MB of bodies, which would show
 * in its own timings).
 */

/** A 4 MB body of `[`: refused by the depth scan at its 65th byte. */
export function nestedBody(): Buffer {
  return Buffer.alloc(4 * 1024 * 1024 - 16, '[');
}

/** A 4 MB create body, well-formed JSON within the value bound: 100,000 small objects in a member berth does not know, for an image that does not exist. */
export function bigValidBody(): Buffer {
  const item = '{"key":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"},';
  const head = '{"Image":"r18-no-such-image:none","Cmd":["true"],"Junk":[';
  const n = Math.floor((4 * 1024 * 1024 - 64 - head.length) / item.length);
  return Buffer.from(head + item.repeat(n).slice(0, -1) + ']}');
}

/** Ping the daemon on `socket` every `everyMs` until `stop`, which resolves with every ping's time in ms. */
export function pinger(socket: string, everyMs = 20): { stop: () => Promise<number[]> } {
  const script = `
    const http = require('node:http');
    const times = []; let on = true;
    process.stdin.on('data', () => { on = false; });
    const one = () => new Promise((r, j) => { const t = performance.now(); http.get({ socketPath: ${JSON.stringify(socket)}, path: '/_ping' }, (s) => { s.resume(); s.on('end', () => r(performance.now() - t)); }).on('error', j); });
    (async () => { while (on) { times.push(await one()); await new Promise((r) => setTimeout(r, ${everyMs})); } process.stdout.write(JSON.stringify(times)); process.exit(0); })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  const done = new Promise<number[]>((resolve) => child.on('close', () => resolve(JSON.parse(out || '[]') as number[])));
  return {
    stop: async () => {
      child.stdin.end('stop');
      return done;
    },
  };
}

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** VmRSS of process `pid`, in KiB. */
export function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** Samples `pid`'s RSS every 20 ms until `stop()`, which resolves to the peak (KiB), counting `from`. */
export function rssPeak(pid: number, from = rssKiB(pid)): { stop: () => Promise<number> } {
  let peak = from;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, rssKiB(pid));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await sampler;
      return peak;
    },
  };
}
