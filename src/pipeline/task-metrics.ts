/**
 * The labeler's Prometheus figures of a task: what a committed batch adds (commit latency, batch
 * size, records out, outcome and dead-letter counters, ranker decoding paths — exported only once
 * committed, as deltas since the task's last export) and the per-partition gauges the service's
 * tick sets (open requests, watermark lag).
 */
import type { JoinTask } from '../join/task.ts';
import type { JoinCounters } from '../join/types.ts';
import type { LabelMetrics } from '../metrics/index.ts';
import type { CommittingBatch, KafkaTask } from './kafka-task.ts';

/**
 * Exports what batch `b` of task `t` added, once its transaction committed.
 *
 * @example
 * exportCommitted(metrics, task, batch); // after the Kafka and SQLite commits
 */
export function exportCommitted(m: LabelMetrics, t: KafkaTask, b: CommittingBatch): void {
  m.commitLatency.observe(Number(process.hrtime.bigint() - b.started) / 1e9);
  m.batchRecords.observe(b.processed);
  for (const [topic, n] of b.sentCounts) m.recordsOut.inc({ topic }, n);
  exportCounters(m, t, b.counters, b.paths);
}

/**
 * Sets the task's gauges: requests open in its join state and how far its watermark lags now.
 *
 * @example
 * exportGauges(metrics, task); // every tick
 */
export function exportGauges(m: LabelMetrics, t: KafkaTask): void {
  m.openRequests.set({ partition: String(t.p) }, t.join.stateSize());
  const wm = t.join.watermark();
  if (wm !== null) m.watermarkLag.set({ partition: String(t.p) }, Date.now() - wm);
}

function exportCounters(
  m: LabelMetrics,
  t: KafkaTask,
  c: JoinCounters,
  paths: JoinTask['rankerPaths'],
): void {
  const e = t.exported;
  const inc = (outcome: string, now: number, before: number) => {
    if (now > before) m.outcomes.inc({ outcome }, now - before);
  };
  inc('joined', c.joined, e.joined);
  inc('unmatched', c.unmatched, e.unmatched);
  inc('unmatched_dropped', c.unmatchedDropped, e.unmatchedDropped);
  inc('orphan', c.orphans, e.orphans);
  inc('late', c.late, e.late);
  inc('duplicate', c.duplicates, e.duplicates);
  inc('malformed', c.malformed, e.malformed);
  inc('invalid', c.invalid, e.invalid);
  inc('label_failed', c.labelFailed, e.labelFailed);
  const dl = (reason: string, now: number, before: number) => {
    if (now > before) m.deadLetters.inc({ reason }, now - before);
  };
  dl('MALFORMED', c.malformed, e.malformed);
  dl('INVALID', c.invalid, e.invalid);
  dl('LATE', c.late, e.late);
  dl('ORPHAN', c.orphans, e.orphans);
  dl('LABEL_FAILED', c.labelFailed, e.labelFailed);
  if (c.deadLettersTruncated > e.deadLettersTruncated)
    m.deadLettersTruncated.inc(c.deadLettersTruncated - e.deadLettersTruncated);
  t.exported = structuredClone(c);
  for (const path of ['columns', 'generic'] as const) {
    const d = paths[path] - t.exportedPaths[path];
    if (d > 0) m.rankerPaths.inc({ path }, d);
  }
  t.exportedPaths = { ...paths };
}
