import * as fs from 'node:fs';

/** mountinfo escapes space, tab, newline and backslash in paths as \ooo octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Mount points at or below `dir` (its real path, so a symlinked tmpdir matches), deepest
 * first, each once: the order to unmount them in.
 */
export function mountsUnder(dir: string): string[] {
  let root = dir;
  try {
    root = fs.realpathSync(dir);
  } catch {
    // gone already: nothing can be mounted under it, but match the name anyway
  }
  const points = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescapeMountinfo(l.split(' ')[4] ?? ''))
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}
