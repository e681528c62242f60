import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { UnavailableError } from '../../volumes/shared/errors';
import { writeFileAtomic } from '../../volumes/shared/atomic';
import { alive } from '../../volumes/shared/process';

/**
 * One daemon per data root. proper-lockfile holds `<root>/berthd.lock`; our pid goes in
 * `<root>/berthd.pid` so a second daemon can say who holds the root. A lock left by a
 * daemon that was SIGKILLed is taken over at once when its pid is gone, rather than after
 * proper-lockfile's staleness timeout, so a crashed daemon restarts without delay.
 */
export async function lockRoot(root: string, onLost: (e: Error) => void): Promise<() => Promise<void>> {
  const lockfilePath = path.join(root, 'berthd.lock');
  const pidFile = path.join(root, 'berthd.pid');
  const opts = { lockfilePath, stale: 10_000, update: 2_000, realpath: false, retries: 0, onCompromised: onLost };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(root, opts);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    const holder = readPid(pidFile);
    // No pid yet but a fresh lock: another daemon is starting right now.
    const starting = holder === undefined && Date.now() - mtimeMs(lockfilePath) < opts.stale;
    if (starting || (holder !== undefined && holder !== process.pid && alive(holder))) {
      throw new UnavailableError(`another berthd (pid ${holder ?? 'starting'}) already owns the data root ${root}`, {
        hint: `use that daemon (its socket), stop it (kill ${holder}), or give this one its own --root`,
      });
    }
    await fs.promises.rm(lockfilePath, { recursive: true, force: true });
    release = await lockfile.lock(root, opts);
  }
  await writeFileAtomic(pidFile, String(process.pid) + '\n', 0o644);
  return async () => {
    await fs.promises.rm(pidFile, { force: true });
    await release().catch(() => undefined);
  };
}

function mtimeMs(p: string): number {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
