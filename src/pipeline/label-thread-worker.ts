/**
 * Body of one labeler stream thread: a {@link LabelService} (its own consumer-group member,
 * transactional producers and SQLite stores) driven by messages from {@link LabelThreads}.
 *
 * Thread → parent: `started` | `failed` (start error), `status` every {@link STATUS_MS} (counts,
 * health, partitions), `metrics` (answer to a scrape), `stopped` (after a graceful stop, with the
 * final status).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import { errorMessage, isRankdistillError } from '../errors.ts';
import { LabelService } from './label-service.ts';
import type { ThreadMessage, ThreadRequest, ThreadStatus } from './label-threads.ts';

/**
 * Interval of status messages: bounds how stale the parent's counts and health are. At 25 ms the
 * status (counts summed, partitions sorted, the message cloned) was ~1.7% of each stream
 * thread's profile in bench:label's 2-thread runs (#29); nothing reads it that often (health
 * checks, the counts logged at stop, which come with the final status).
 */
const STATUS_MS = 100;

const port = parentPort;
if (port === null) throw new Error('label-thread-worker.ts runs only as a worker thread');
const { config } = workerData as { config: Config; entry: string };
const svc = new LabelService(config, { peers: config.kafka.streamThreads });
const post = (m: ThreadMessage) => port.postMessage(m);
const status = (): ThreadStatus => ({
  counts: svc.counts(),
  healthy: svc.healthy(),
  partitions: svc.assignedPartitions(),
});

let timer: NodeJS.Timeout | undefined;
port.on('message', (m: ThreadRequest) => {
  if (m.type === 'metrics') {
    svc.metrics.registry.getMetricsAsJSON().then(
      (json) => post({ type: 'metrics', id: m.id, json }),
      (e: unknown) => post({ type: 'metrics', id: m.id, json: [], error: errorMessage(e) }),
    );
  } else if (m.type === 'stop') {
    if (timer) clearInterval(timer);
    void svc.stop().finally(() => {
      post({ type: 'stopped', status: status() });
      port.close();
    });
  }
});

try {
  await svc.start();
  post({ type: 'started', status: status() });
  // A refused ACL or credentials after start: report it (the parent fails the run) and stop.
  svc.failed().catch(async (e: unknown) => {
    post({
      type: 'failed',
      code: isRankdistillError(e) ? e.code : 'THREAD_FAILED',
      message: errorMessage(e),
      details: isRankdistillError(e) ? (e.details ?? {}) : {},
    });
    await svc.stop().catch(() => undefined);
  });
  timer = setInterval(() => post({ type: 'status', status: status() }), STATUS_MS);
} catch (e) {
  post({
    type: 'failed',
    code: isRankdistillError(e) ? e.code : 'THREAD_FAILED',
    message: errorMessage(e),
    details: isRankdistillError(e) ? (e.details ?? {}) : {},
  });
  await svc.stop().catch(() => undefined);
  port.close();
}
