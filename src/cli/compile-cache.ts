import * as nodeModule from 'node:module';

/**
 * V8's compile cache for the CLI and the daemon (Node ≥ 22.1; a no-op before): each module
 * is compiled once per build instead of on every `berth` call. Imported first by main.ts so
 * the modules after it are cached. The cache lives in Node's default place (the OS temp
 * directory, or NODE_COMPILE_CACHE), is keyed on each file's content, and a failure to use
 * it only costs the compile.
 */
nodeModule.enableCompileCache?.();
