#!/usr/bin/env node
// Entry point of the `rankdistill` CLI. It runs the compiled JavaScript in dist/ (built by
// `npm run build`, which `npm ci` runs through the `prepare` script), so production starts without
// a TypeScript loader. It runs the TypeScript sources through tsx instead when there is no dist/
// (a checkout installed with --omit=dev, which has no compiler), when dist/ is older than a file
// under src/ (a developer edited the sources and did not rebuild: running the stale build would
// test code that is not the code on disk), or when RD_FROM_SOURCE=1.
import { existsSync, readdirSync, statSync } from 'node:fs';

// One SIGTERM/SIGINT listener for the whole life of the process, never removed while a command
// runs. Removing the last listener of a signal closes Node's signal watcher, and a command's
// listener added right after opens a new one: a SIGTERM arriving later was then sometimes lost
// (the labeler kept running after "label service started"; 4 stops in 12 hung, 0 in 12 without
// the hand-over). So: while the sources load a signal exits 0 at once (nothing has started);
// once the action of a command that handles signals begins, it has its own listeners (this one
// then does nothing; alone, it falls back to Node's default action). For the other commands it is
// dropped there, so Node's default action applies even while their work blocks the event loop.
const HANDLES_SIGNALS = new Set(['label', 'replay', 'train', 'up']);
let loading = true;
const relay = (sig) => {
  if (loading) process.exit(0);
  if (process.listenerCount(sig) > 1) return;
  process.off(sig, relay);
  process.kill(process.pid, sig);
};
process.on('SIGTERM', relay);
process.on('SIGINT', relay);

const stamp = new URL('../dist/.build-stamp', import.meta.url);
const srcDir = new URL('../src/', import.meta.url);

/** Newest modification time (ms) of a file under `dir`. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(`${e.parentPath ?? e.path}/${e.name}`).mtimeMs);
  }
  return t;
}

function useDist() {
  if (process.env.RD_FROM_SOURCE === '1' || !existsSync(stamp)) return false;
  // An installed package carries dist/ only; a checkout carries both and may have moved on.
  return !existsSync(srcDir) || newest(srcDir) <= statSync(stamp).mtimeMs;
}

let main;
if (useDist()) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv, (_program, action) => {
  loading = false;
  if (HANDLES_SIGNALS.has(action?.name())) return;
  process.off('SIGTERM', relay);
  process.off('SIGINT', relay);
});
// The command has finished. A handle still open (a client's socket or retry timer after a failed
// start, a stop that gave up at kafka.stopTimeoutMs) must not keep the process alive: unref'd, this
// only fires when something else holds the event loop.
setTimeout(() => process.exit(), 1_000).unref();
