import * as net from 'node:net';
import { resolveLocation } from '../daemon/options';
import { API_VERSION, BERTH_VERSION } from '../version';

/**
 * The `berth` command's entry (bundled alone into dist/src/cli/berth.js by .ci/bundle-cli.js).
 * The calls scripts make most often and that are one plain daemon call (`--version`,
 * `version`, `volume snapshot V [NAME]`, `volume clone SRC NEW`) are answered here with
 * node:net and a few lines of HTTP/1.1: loading commander, node:http and the CLI's ~200
 * modules cost three times Node's own start. Everything else, and any of these with a flag
 * or an odd argument, goes to the whole CLI (./berth-bundle.js, main.ts), which also takes
 * over when no daemon answers (it starts one) and prints a refusal exactly as it would
 * have (the daemon's error through the same table and `berth: … / hint: …`).
 */

/** A call this file can make alone: the request, and what to print of its JSON answer. */
export interface QuickCall {
  method: 'GET' | 'POST';
  /** Without the /v1.41 prefix, with the query. */
  path: string;
  print: (answer: unknown) => string;
}

/** `berth version`'s text, for the daemon's GET /version. */
export function versionText(v: Record<string, string>): string {
  return `Server: berth ${v.Version}\n API version: ${v.ApiVersion} (minimum ${v.MinAPIVersion})\n OS/Arch: ${v.Os}/${v.Arch}\n Kernel: ${v.KernelVersion}\n`;
}

const named = (a: unknown) => (a as { Name: string }).Name + '\n';
const volume = (name: string) => `/berth/v1/volumes/${encodeURIComponent(name)}`;
/** An operand commander would read as an operand: not an option, not `--`, not empty. */
const operand = (a: string | undefined) => a !== undefined && a !== '' && !a.startsWith('-');

/**
 * The call of `args` (after the global options) when it is one of the quick shapes, else
 * undefined. Each is what the command's action in commands/ sends (RemoteVolumeService's
 * snapshot and clone); test/cli/startup.test.ts holds the two paths to the same output.
 */
export function quickCall(args: string[]): QuickCall | undefined {
  const [verb, sub, a, b, ...more] = args;
  if (more.length) return undefined;
  if (verb === 'version' && sub === undefined) return { method: 'GET', path: '/version', print: (v) => versionText(v as Record<string, string>) };
  if (verb !== 'volume' || !operand(a)) return undefined;
  // `snapshot rm|remove|help …` are snapshot's subcommands
  if (sub === 'snapshot' && (b === undefined || operand(b)) && !['rm', 'remove', 'help'].includes(a!)) {
    return { method: 'POST', path: `${volume(a!)}/snapshots${b === undefined ? '' : `?name=${encodeURIComponent(b)}`}`, print: named };
  }
  if (sub === 'clone' && operand(b)) {
    const at = a!.indexOf('@');
    const [src, snap] = at < 0 ? [a!, undefined] : [a!.slice(0, at), a!.slice(at + 1) || undefined];
    const query = new URLSearchParams(snap === undefined ? { name: b! } : { snapshot: snap, name: b! });
    return { method: 'POST', path: `${volume(src)}/clone?${query}`, print: named };
  }
  return undefined;
}

/**
 * Berth's global options before the verb (-H/--host, --root, --no-autostart, as main.ts
 * declares them) and the rest; undefined when anything else comes first.
 */
export function globalOptions(args: string[]): { host?: string; root?: string; rest: string[] } | undefined {
  const g: { host?: string; root?: string } = {};
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if ((a === '-H' || a === '--host' || a === '--root') && i + 1 < args.length) g[a === '--root' ? 'root' : 'host'] = args[++i];
    else if (a.startsWith('--host=')) g.host = a.slice(7);
    else if (a.startsWith('--root=')) g.root = a.slice(7);
    else if (a.startsWith('-H') && a.length > 2 && a[2] !== '=') g.host = a.slice(2);
    else if (a !== '--no-autostart') break;
  }
  return { ...g, rest: args.slice(i) };
}

/** One HTTP/1.1 exchange on a fresh connection; 'unreachable' when the connect failed (nothing was sent). */
export function exchange(socket: string, method: string, p: string): Promise<{ status: number; body: Buffer } | 'unreachable'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let connected = false;
    const s = net.connect(socket, () => {
      connected = true;
      // not end(): berthd's server closes a half-closed connection before a slow answer
      s.write(`${method} /v${API_VERSION}${p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e) => (connected ? reject(e) : resolve('unreachable')));
    s.on('end', () => {
      try {
        resolve(parseAnswer(Buffer.concat(chunks)));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** A whole HTTP/1.1 answer read to the connection's end: its status and its body (chunked or not). */
export function parseAnswer(raw: Buffer): { status: number; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw.subarray(0, Math.max(end, 0)).toString('latin1'));
  if (end < 0 || !m) throw new Error('berthd sent a malformed answer');
  const head = raw.subarray(0, end).toString('latin1').toLowerCase();
  let body = raw.subarray(end + 4);
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    const parts: Buffer[] = [];
    for (let at = 0; ; ) {
      const eol = body.indexOf('\r\n', at);
      const size = eol < 0 ? NaN : parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isFinite(size) || eol + 2 + size > body.length) throw new Error('berthd sent a malformed chunked answer');
      if (size === 0) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else {
    const len = /\r\ncontent-length: *(\d+)/.exec(head);
    if (len) {
      if (body.length < Number(len[1])) throw new Error('berthd closed the connection before its answer ended');
      body = body.subarray(0, Number(len[1]));
    }
  }
  return { status: Number(m[1]), body };
}

type Whole = typeof import('./main');
/** The whole CLI, compiled from V8's compile cache (once per build). */
function whole(): Whole {
  require('node:module').enableCompileCache?.();
  return require('./berth-bundle.js') as Whole;
}

async function quick(argv: string[]): Promise<void> {
  const g = globalOptions(argv.slice(2));
  const rest = g?.rest ?? [];
  if (g && rest.length === 1 && (rest[0] === '--version' || rest[0] === '-v')) return void process.stdout.write(BERTH_VERSION + '\n');
  const call = g && quickCall(rest);
  let socket: string | undefined;
  try {
    if (call) socket = resolveLocation(g).socket;
  } catch {
    // a bad -H: the whole CLI refuses it
  }
  if (!call || socket === undefined) return whole().run();
  let answer: Awaited<ReturnType<typeof exchange>>;
  try {
    answer = await exchange(socket, call.method, call.path);
  } catch (e) {
    return whole().fail(e);
  }
  if (answer === 'unreachable') return whole().run(); // it pings, starts a daemon or says why not
  if (answer.status >= 400) return whole().fail(whole().responseError(answer.status, answer.body));
  let out: string;
  try {
    out = call.print(answer.body.length ? JSON.parse(answer.body.toString('utf8')) : undefined);
  } catch (e) {
    return whole().fail(e);
  }
  process.stdout.write(out);
}

/** The entry of dist/src/cli/berth.js (.ci/bundle-cli.js). */
export function start(): void {
  // src/cli/berth passes a `--` first so node leaves our flags alone (main.ts drops it)
  const argv = process.argv[2] === '--' ? [...process.argv.slice(0, 2), ...process.argv.slice(3)] : process.argv;
  void quick(argv);
}
