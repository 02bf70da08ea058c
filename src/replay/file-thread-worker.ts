/**
 * Body of one file replay thread (./file-threads.ts): runs its partitions, posts progress every
 * {@link PROGRESS_MS} and its summaries at the end; `stop` stops it at a checkpoint.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage, isRankdistillError } from '../errors.ts';
import { runFilePartitions } from './file-partitions.ts';
import {
  type FileThreadData,
  type FileThreadMessage,
  type FileThreadRequest,
  fileSinkFor,
  taskStorePath,
  threadCheckpoints,
} from './file-threads.ts';

const PROGRESS_MS = 200;

const port = parentPort;
if (port === null) throw new Error('file-thread-worker.ts runs only as a worker thread');
const d = workerData as FileThreadData;
const post = (m: FileThreadMessage) => port.postMessage(m);
const ac = new AbortController();
port.on('message', (m: FileThreadRequest) => {
  if (m.type === 'stop') ac.abort();
});
let last = 0;
try {
  const summaries = await runFilePartitions({
    config: d.config,
    paths: d.paths,
    partitions: d.partitions,
    mine: d.mine,
    checkpoints: threadCheckpoints(d),
    checkpointEvery: d.checkpointEvery,
    drain: d.drain,
    storePath: (p) => taskStorePath(d.stateDir, p),
    sink: fileSinkFor(d.stateDir, d.format),
    signal: ac.signal,
    onProgress: (processed) => {
      const now = Date.now();
      if (now - last < PROGRESS_MS) return;
      last = now;
      post({ type: 'progress', processed });
    },
  });
  post({ type: 'done', summaries });
} catch (e) {
  post({
    type: 'failed',
    code: isRankdistillError(e) ? e.code : 'THREAD_FAILED',
    message: errorMessage(e),
    details: isRankdistillError(e) ? (e.details ?? {}) : {},
  });
}
port.close();
