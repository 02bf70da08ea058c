/**
 * The processing loop of the labeler's tasks (Kafka Streams' `TaskExecutor.process` and
 * `StreamTask.process`): steps a task's join over what its merge releases, hands the outputs to
 * the collector, and starts the commit when the batch is full or old enough. One pump at a time
 * per task (on the task's lock); the thread lets I/O run between steps.
 */
import { setImmediate as yieldToIo } from 'node:timers/promises';
import type { KafkaConfig } from '../config/schema.ts';
import { type KafkaTask, SIDES } from './kafka-task.ts';
import type { RecordCollector } from './record-collector.ts';
import type { TaskCommitter } from './task-commit.ts';

/** Records per JoinTask.step call: its outputs are encoded (and may be sent ahead) before the next. */
const STEP_CHUNK = 64;
/**
 * The pump lets I/O run (sends, fetches, heartbeats) once the thread has held it this long. Every
 * step (~3 ms at 20 candidates) was too often: each turn of the event loop let kafkajs fetch
 * again, in smaller pieces, and the labeler spent ~10% more CPU per request and the broker ~40%
 * more (bench:label, 96-103 → 87-89 µs/request; broker 22 → 14-16 µs).
 */
const YIELD_MS = 10;

/** Pumps the tasks of one service (one thread: they share when I/O last ran). */
export class TaskPump {
  readonly #k: KafkaConfig;
  readonly #collector: RecordCollector;
  readonly #committer: TaskCommitter;
  /** Called when a pump failed (the task must recover). */
  readonly #onFail: (t: KafkaTask, e: unknown) => void;
  /** When this thread last let I/O run from a pump (performance.now()). */
  #yielded = 0;

  constructor(opts: {
    kafka: KafkaConfig;
    collector: RecordCollector;
    committer: TaskCommitter;
    onFail: (t: KafkaTask, e: unknown) => void;
  }) {
    this.#k = opts.kafka;
    this.#collector = opts.collector;
    this.#committer = opts.committer;
    this.#onFail = opts.onFail;
  }

  /**
   * Queues one pump on the task's lock (fetches and ticks need at most one waiting). Processing
   * and commits run behind the fetch: eachBatch returns once the records are buffered, so kafkajs
   * fetches the next batches while the task processes and its transaction is in flight.
   */
  schedule(t: KafkaTask): void {
    if (t.pumpQueued || t.broken) return;
    t.pumpQueued = true;
    void t
      .run(() => {
        t.pumpQueued = false;
        return this.#pump(t);
      })
      .catch((e: unknown) => this.#onFail(t, e));
  }

  /** Processes what the merge releases; commits when the batch is full or old enough. */
  async #pump(t: KafkaTask): Promise<void> {
    const k = this.#k;
    for (;;) {
      if (t.broken) return;
      for (const side of SIDES) {
        if (t.join.buffered(side) === 0) {
          const pos = t.pos[side];
          t.join.setCaughtUp(side, pos.next !== null && pos.hw !== null && pos.next >= pos.hw);
        }
        if (t.resume[side] !== undefined && !t.overBuffered(side, 0.5)) {
          t.resume[side]!();
          delete t.resume[side];
        }
      }
      t.store.begin();
      const room = k.maxBatchRecords - t.processed;
      const chunk = Math.min(room, STEP_CHUNK);
      const { outputs, processed } = t.join.step(chunk);
      if (processed > 0 && t.processed === 0) t.batchStarted = Date.now();
      t.processed += processed;
      this.#collector.collect(t, outputs);
      // Let I/O run between chunks: without this the loop held the thread for the whole batch,
      // so the send-aheads (and fetches) only progressed once it ended and the commit then
      // waited ~170 ms for them, a stall longer than the batch's processing.
      if (processed === chunk && performance.now() - this.#yielded >= YIELD_MS) {
        await yieldToIo();
        this.#yielded = performance.now();
        if (t.broken) return; // failed meanwhile: its recovery discards the batch
      }
      // Full, or open for the commit interval: records that keep arriving must not stretch a
      // batch (its latency, and the outputs and state it holds in memory until it commits).
      if (
        t.processed >= k.maxBatchRecords ||
        (t.processed > 0 && Date.now() - t.batchStarted >= k.commitIntervalMs)
      ) {
        await this.#committer.commit(t);
        continue;
      }
      if (processed === chunk) continue; // more may be released
      return;
    }
  }
}
