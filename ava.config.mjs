// The default suite (`npm test`, `npm run test:only -- FILE…`, `.ci/load-check`). The opt-in
// network suite has its own config (ava.network.config.mjs).
//
// ava runs `concurrency` files at once (one worker process each), in the order of the list
// below, and the tests inside one file concurrently. A long file that starts last is the
// suite's tail: the other worker idles while it runs. So the files that take longest on their
// own go first, longest first (the files after them fill the gaps), and the rest follow in
// path order. Rule for this list: a file that takes more than ~30 s alone on 2 cores (or is
// the longest of its area) belongs here, placed by that time. The order is estimated from a
// CI log's per-test times (the slowest test, or for a file that starts a daemon per test,
// three at a time, its summed time / 3); time a file alone with
// `npm run -s test:only -- dist/test/<dir>/<file>.test.js` on an idle machine to place it.
const longestFirst = [
  'build/build-debian', // one gcc multi-stage build, ~80 s
  'api/volumes-crash', // eight daemons (three at a time), each killed mid-step; waits for stale locks
  'interactive/terminal',
  'engine/engine',
  'network/bridge',
  'images/bootstrap',
  'cli/volumes-redis',
  'volumes/btrfs', // the driver suite on btrfs: a loop-backed pool per test, 27 tests
  'volumes/btrfs-pool', // the btrfs-only cases, 10 tests
  'api/branching',
  'network/compose-networks',
  'engine/container-reads',
  'layers/overlay',
  'cli/flag-mapping',
  'volumes/dir',
  'helpers/daemon',
  'api/monitor-faults',
];

const rank = (file) => {
  const m = /dist\/test\/(.+)\.test\.js$/.exec(file.replaceAll('\\', '/'));
  const i = m ? longestFirst.indexOf(m[1]) : -1;
  return i < 0 ? longestFirst.length : i;
};

export default {
  files: ['dist/test/**/*.test.js'],
  timeout: '5m',
  concurrency: 2,
  workerThreads: false,
  sortTestFiles: (a, b) => rank(a) - rank(b) || a.localeCompare(b, 'en', { numeric: true }),
};
