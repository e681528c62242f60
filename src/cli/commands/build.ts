import { Command } from 'commander';
import { collect, connect } from '../context';
import { InvalidArgumentError } from '../../../volumes/shared/errors';
import { progressBar } from '../progress';
import { PassThrough } from 'node:stream';
import { goArch } from '../../images/config';

/** `berth build`: docker build's classic form (the daemon's POST /build). */
export function buildCommands(program: Command): void {
  program
    .command('build <PATH>')
    .description('build an image from a Dockerfile (PATH: the context directory, or - for a tar or a Dockerfile on standard input)')
    .option('-t, --tag <name>', 'name the image (repeatable)', collect, [])
    .option('-f, --file <path>', 'the Dockerfile (default: PATH/Dockerfile)')
    .option('--build-arg <key=value>', 'set a build-time variable (repeatable)', collect, [])
    .option('--label <key=value>', 'set a label on the image (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage (and what it needs) only')
    .option('--no-cache', 'do not use the cache')
    .option('--pull', 'pull the base images first (needs a registry client)')
    .option('-q, --quiet', 'print only the image id')
    .option('--network <mode>', 'the network of RUN steps: default, bridge, host or none')
    .option('--add-host <host:ip>', 'add a line to RUN steps\' /etc/hosts (repeatable)', collect, [])
    .option('--cache-from <image>', 'use only these images\' build chains as the cache (repeatable)', collect, [])
    .option('--platform <os/arch>', `build for this platform (berth builds for linux/${goArch()} only)`)
    .addHelpText('after', '\nExamples:\n  berth build -t app:1 .\n  berth build -f docker/Dockerfile --build-arg VERSION=2 --target runtime .\n  berth build - < Dockerfile')
    .action(async (dir: string, o: { tag: string[]; file?: string; buildArg: string[]; label: string[]; target?: string; cache: boolean; pull?: boolean; quiet?: boolean; network?: string; addHost: string[]; cacheFrom: string[]; platform?: string }, cmd: Command) => {
      const ctx = await connect(cmd);
      const pairs = (list: string[], what: string) => {
        const out: Record<string, string> = {};
        for (const kv of list) {
          const i = kv.indexOf('=');
          if (i <= 0) {
            // docker build --build-arg NAME takes the value from the environment.
            if (what === '--build-arg' && i < 0 && process.env[kv] !== undefined) out[kv] = process.env[kv] as string;
            else if (what === '--build-arg' && i < 0) continue;
            else throw new InvalidArgumentError(`${what} ${kv} is not KEY=VALUE`, { hint: `e.g. ${what} VERSION=1.0` });
          } else out[kv.slice(0, i)] = kv.slice(i + 1);
        }
        return out;
      };
      if (dir === '-' && o.file) throw new InvalidArgumentError('-f cannot be combined with a context on standard input', { hint: 'send a tar that holds the Dockerfile, or build from a directory' });
      // loaded here: the context packer (tar-stream) costs every other command's start-up
      const { build, packContext, stdinContext } = require('../../client/build') as typeof import('../../client/build');
      const source = dir === '-' ? await stdinContext(process.stdin) : packContext(dir, o.file);
      const bar = progressBar('Sending build context');
      const counted = new PassThrough({ highWaterMark: 1 << 20 });
      source.tar.on('data', (c: Buffer) => bar.tick(c.length));
      source.tar.on('error', (e) => counted.destroy(e));
      source.tar.pipe(counted);
      let first = true;
      const id = await build(
        ctx.transport,
        { tar: counted, name: source.name },
        { tags: o.tag, dockerfile: source.name, buildArgs: pairs(o.buildArg, '--build-arg'), labels: pairs(o.label, '--label'), target: o.target, noCache: o.cache === false, pull: o.pull, quiet: o.quiet, network: o.network, addHosts: o.addHost, cacheFrom: o.cacheFrom, platform: o.platform },
        (text) => {
          if (first) {
            bar.stop();
            first = false;
          }
          if (!o.quiet) process.stdout.write(text);
        },
      ).finally(() => bar.stop());
      if (o.quiet) process.stdout.write(`${id}\n`);
    });
}
