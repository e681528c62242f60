import { spawn, spawnSync } from 'node:child_process';

/**
 * The suite's two ways to run a host command, named by what the caller wants:
 * - `runCommand`: run it and look at the outcome (exit code, stdout, stderr); never throws
 *   on a failing command, so a test can assert the failure.
 * - `stdoutOf`: a setup step that must succeed (mkfifo, tar, a helper tool): its stdout,
 *   or a throw that carries the command and its stderr.
 */

export interface CommandResult {
  /** The exit code; -1 when it was killed by a signal (a timeout included). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to its stdin, which is then closed (no input: stdin is closed at once). */
  input?: Buffer | string;
  /** SIGKILL it after this many ms (a hang guard; it then ends with code -1). */
  timeout?: number;
}

export function runCommand(cmd: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = opts.timeout ? setTimeout(() => child.kill('SIGKILL'), opts.timeout) : undefined;
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
  });
}

export function stdoutOf(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr}`);
  return r.stdout;
}
