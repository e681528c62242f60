import { execFile } from 'node:child_process';
import { FailedPreconditionError, InternalError } from '../../volumes/errors';

/** Run a network tool (ip, iptables-restore, nsenter); its stderr becomes the error's message. */
export function tool(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new FailedPreconditionError(`${cmd} is not installed`, { hint: 'install iproute2, iptables and util-linux (bash .ci/setup does)' }));
      }
      const text = (stderr || err.message).trim().split('\n').slice(0, 6).join('; ');
      reject(new InternalError(`${cmd} ${args.slice(0, 4).join(' ')}: ${text}`, { hint: 'see the daemon log; the host may lack a kernel feature (bridge, veth, nat)' }));
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}
