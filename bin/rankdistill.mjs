#!/usr/bin/env node
// Entry point of the `rankdistill` CLI. The sources are TypeScript run through tsx's loader, so
// there is no build step that could drift from src/ (tsx is a runtime dependency for this reason).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
// The command has finished. A handle still open (a client's socket or retry timer after a failed
// start, a stop that gave up at kafka.stopTimeoutMs) must not keep the process alive: unref'd, this
// only fires when something else holds the event loop.
setTimeout(() => process.exit(), 1_000).unref();
