import * as fs from 'node:fs';

/** O_CLOEXEC as /proc/PID/fdinfo's octal "flags:" line shows it. */
const O_CLOEXEC = 0o2000000;

/**
 * Close the descriptors above 2 that berthd inherited without close-on-exec (`npm start`
 * leaves a pipe at fd 251, a shell may leave others). Left open, every process berthd
 * starts would inherit them too — the monitors, which outlive berthd, runc — and the
 * caller's pipe would never read EOF. Node's own descriptors are all close-on-exec, so
 * a descriptor without the flag is one berthd did not open. Run first in the daemon's
 * entry, before anything is spawned. Returns the descriptors closed.
 */
export function closeInheritedFds(): number[] {
  const ipc = Number(process.env.NODE_CHANNEL_FD); // Node's IPC channel, if a parent gave one
  let names: string[];
  try {
    names = fs.readdirSync('/proc/self/fd');
  } catch {
    return []; // no /proc: nothing to go by
  }
  const closed: number[] = [];
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2 || fd === ipc) continue;
    let info: string;
    try {
      info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // the directory listing's own descriptor, closed by now
    }
    const flags = /^flags:\s*([0-7]+)$/m.exec(info);
    if (!flags || parseInt(flags[1], 8) & O_CLOEXEC) continue;
    try {
      fs.closeSync(fd);
      closed.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return closed;
}
