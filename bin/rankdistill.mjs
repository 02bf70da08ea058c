#!/usr/bin/env node
// Entry point of the `rankdistill` CLI. It runs the compiled JavaScript in dist/ (built by
// `npm run build`, which `npm ci` runs through the `prepare` script), so production starts without
// a TypeScript loader. It runs the TypeScript sources through tsx instead when there is no dist/
// (a checkout installed with --omit=dev, which has no compiler), when dist/ is older than a file
// under src/ (a developer edited the sources and did not rebuild: running the stale build would
// test code that is not the code on disk), or when RD_FROM_SOURCE=1.
import { existsSync, readdirSync, statSync } from 'node:fs';

// A SIGTERM/SIGINT while the sources load (seconds under load) stops nothing that has started:
// exit 0 at once. Dropped when the command's action begins; commands that handle signals install
// their own handlers there, the others get Node's default again.
const early = () => process.exit(0);
process.on('SIGTERM', early);
process.on('SIGINT', early);

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
process.exitCode = await main(process.argv, () => {
  process.off('SIGTERM', early);
  process.off('SIGINT', early);
});
// The command has finished. A handle still open (a client's socket or retry timer after a failed
// start, a stop that gave up at kafka.stopTimeoutMs) must not keep the process alive: unref'd, this
// only fires when something else holds the event loop.
setTimeout(() => process.exit(), 1_000).unref();
