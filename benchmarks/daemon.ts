import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { Transport } from '../src/client/transport';
import { sh } from './lib';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');

/** A berthd of the benchmark's own, on its own root and socket. */
export class BenchDaemon {
  private constructor(readonly root: string, readonly socket: string, private child: ChildProcess) {}

  static async start(work: string): Promise<BenchDaemon> {
    const root = path.join(work, 'root');
    const socket = path.join(root, 'run', 'b.sock');
    fs.mkdirSync(root, { recursive: true });
    const log = fs.openSync(path.join(work, 'daemon.log'), 'a');
    const child = spawn(process.execPath, [CLI, 'daemon', '--root', root, '--host', 'unix://' + socket], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const t = new Transport(socket);
    for (let i = 0; i < 400 && !(await t.ping()); i++) await new Promise((r) => setTimeout(r, 50));
    return new BenchDaemon(root, socket, child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  berth(args: string[]): string {
    return sh(process.execPath, [CLI, '--', '--no-autostart', '-H', 'unix://' + this.socket, ...args]);
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.on('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}
