import { type TestDaemon } from './daemon';
import { runCommand } from './proc';

/**
 * Drive docker-py (Debian's python3-docker) against a test daemon: `script` runs with
 * `docker` imported, `api` (docker.APIClient) and `client` (docker.DockerClient) bound to
 * the daemon's socket at API `version`, and `out(obj)` to hand a result back as JSON.
 * What a test asserts is what docker-py saw.
 */
export async function dockerPy<T = Record<string, unknown>>(d: TestDaemon, script: string, opts: { version?: string; timeout?: number } = {}): Promise<T> {
  const prelude = [
    'import json, sys, docker',
    `api = docker.APIClient(base_url=${JSON.stringify(d.host)}, version=${JSON.stringify(opts.version ?? '1.41')}, timeout=${opts.timeout ?? 60})`,
    `client = docker.DockerClient(base_url=${JSON.stringify(d.host)}, version=${JSON.stringify(opts.version ?? '1.41')}, timeout=${opts.timeout ?? 60})`,
    'def out(o):',
    '    sys.stdout.write("\\n@@RESULT@@" + json.dumps(o, default=repr) + "\\n")',
    '',
  ].join('\n');
  const r = await runCommand('python3', ['-c', prelude + script], { env: d.env });
  const m = /\n@@RESULT@@(.*)\n/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`docker-py script failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(m[1]) as T;
}
