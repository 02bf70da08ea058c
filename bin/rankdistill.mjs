#!/usr/bin/env node
// Entry point of the `rankdistill` CLI. The sources are TypeScript run through tsx's loader, so
// there is no build step that could drift from src/ (tsx is a runtime dependency for this reason).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
