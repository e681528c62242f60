import * as fs from 'node:fs';
import * as path from 'node:path';

/** A build context directory `<work>/<name>` with these files (a value of null makes a directory). */
export function writeContext(work: string, name: string, files: Record<string, string | null>): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, body] of Object.entries(files)) {
    const p = path.join(dir, f);
    fs.mkdirSync(body === null ? p : path.dirname(p), { recursive: true });
    if (body !== null) fs.writeFileSync(p, body);
  }
  return dir;
}
