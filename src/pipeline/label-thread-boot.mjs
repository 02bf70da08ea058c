// Entry of a labeler stream thread (src/pipeline/label-threads.ts). The sources are TypeScript run
// through tsx, and a worker thread does not inherit a loader registered with tsx's API in the
// parent, so the thread registers it itself (the parent starts it with no execArgv).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
