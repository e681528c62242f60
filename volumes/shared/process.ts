/**
 * Whether a process with this pid exists: signal 0 checks without delivering anything.
 * EPERM means it exists but belongs to someone else. Used to tell a lock or a pool user
 * left by a killed process from one that is still held.
 */
export function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
