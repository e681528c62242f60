// `npm run test:network`: the opt-in tests that need the internet (a Debian mirror). The
// default suite (ava.config.mjs) never runs them: their files end in .network.ts.
export default {
  files: ['dist/test/**/*.network.js'],
  timeout: '20m',
  concurrency: 1,
  workerThreads: false,
};
