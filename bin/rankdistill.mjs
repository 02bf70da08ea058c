#!/usr/bin/env node
// Entry point of the `rankdistill` CLI. The sources are TypeScript run through tsx's loader, so
// there is no build step that could drift from src/ (tsx is a runtime dependency for this reason).
import { register } from 'tsx/esm/api';

// A SIGTERM/SIGINT while the sources load (seconds under load) stops nothing that has started:
// exit 0 at once. Dropped when the command's action begins; commands that handle signals install
// their own handlers there, the others get Node's default again.
const early = () => process.exit(0);
process.on('SIGTERM', early);
process.on('SIGINT', early);
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv, () => {
  process.off('SIGTERM', early);
  process.off('SIGINT', early);
});
// The command has finished. A handle still open (a client's socket or retry timer after a failed
// start, a stop that gave up at kafka.stopTimeoutMs) must not keep the process alive: unref'd, this
// only fires when something else holds the event loop.
setTimeout(() => process.exit(), 1_000).unref();
