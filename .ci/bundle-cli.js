// The `berth` command as two files, made by `npm run build` after tsc:
//  - dist/src/cli/berth.js, from src/cli/quick.ts: what src/cli/berth and the wrapper
//    .ci/setup writes run. It answers a few plain calls with node:net alone and hands the
//    rest to
//  - dist/src/cli/berth-bundle.js, the whole CLI (src/cli/main.ts) in one file: one file to
//    read and compile instead of ~200 modules, which was most of a call's start-up.
// dist/src/cli/main.js stays the unbundled CLI (the daemon runs from it).
//
// What the CLI loads only on some paths (the daemon, the network plan, the build packer,
// the registry client, cp's tar code: each a `require()` inside a function) stays outside
// the bundle, required from tsc's output beside it, so a plain call never reads it. The
// bundles sit in dist/src/cli/ like main.js, so their __dirname-relative paths are main.js's.
// No source map: Node would read it on every call (the stack of BERTH_DEBUG names bundle
// lines; run dist/src/cli/main.js to see the sources).
const fs = require('node:fs');
const path = require('node:path');

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist', 'src', 'cli');

let esbuild;
try {
  esbuild = require('esbuild');
} catch {
  // node_modules from before esbuild was a devDependency: berth runs main.js (src/cli/berth
  // falls back to it) until `npm ci` (.ci/setup) brings esbuild; no stale bundle stays
  for (const f of ['berth.js', 'berth-bundle.js']) fs.rmSync(path.join(cli, f), { force: true });
  process.stderr.write('berth build: esbuild is not installed (run `npm ci`); the CLI runs unbundled\n');
  process.exit(0);
}

/** A `require('./x')` inside a function of ours: left to Node, pointed at tsc's output of ./x. */
const lazyRequires = {
  name: 'lazy-requires-stay-outside',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\//, namespace: 'file' }, (args) => {
      if (args.kind !== 'require-call' || args.importer.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const source = path.resolve(args.resolveDir, args.path);
      let rel = path.relative(cli, path.join(repo, 'dist', path.relative(repo, source)));
      if (!rel.startsWith('.')) rel = './' + rel;
      return { path: rel, external: true };
    });
  },
};

const bundle = (entry, out) =>
  esbuild.build({
    stdin: { contents: entry, resolveDir: path.join(repo, 'src', 'cli'), loader: 'ts' },
    outfile: path.join(cli, out),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // native (node-pty) and what is only required on a terminal stay in node_modules
    external: ['node-pty', 'cli-progress'],
    plugins: [lazyRequires],
    logLevel: 'warning',
    legalComments: 'none',
  });

Promise.all([bundle("require('./quick').start();", 'berth.js'), bundle("module.exports = require('./main');", 'berth-bundle.js')]).catch(() => process.exit(1));
