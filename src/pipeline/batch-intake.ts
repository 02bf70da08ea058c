/**
 * Fetched batches into their tasks (Kafka Streams' `StreamThread.addRecordsToTasks` and
 * `RecordQueue`): a batch that continues a task's position is buffered as columns over the fetch's
 * buffer, its offset resolved, and the task's pump scheduled; a partition beyond its buffering
 * bounds is paused until the pump drained it. Confluent-framed input first has its writer schemas
 * fetched (a registry outage is retried, never turned into dead letters).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { errorMessage, isRankdistillError } from '../errors.ts';
import { rawColumns } from '../join/task.ts';
import type { Side } from '../join/types.ts';
import type { Logger } from '../log.ts';
import type { LabelMetrics } from '../metrics/index.ts';
import type { RegistrySerde } from '../registry/serde.ts';
import type { KafkaTask } from './kafka-task.ts';
import type { TaskPump } from './task-pump.ts';

/** Feeds the fetches of one service's consumer to its tasks. */
export class BatchIntake {
  readonly #k: KafkaConfig;
  readonly #serde: RegistrySerde | undefined;
  readonly #metrics: LabelMetrics;
  readonly #log: Logger;
  readonly #pump: TaskPump;
  readonly #tasks: { get(p: number): KafkaTask | undefined };
  /** The consumer in the group (undefined while recovery replaces it). */
  readonly #consumer: () => Consumer | undefined;
  /** True while the service stops or recovers: batches are then left alone. */
  readonly #idle: () => boolean;
  readonly #onFail: (t: KafkaTask, e: unknown) => void;

  constructor(opts: {
    kafka: KafkaConfig;
    serde: RegistrySerde | undefined;
    metrics: LabelMetrics;
    log: Logger;
    pump: TaskPump;
    tasks: { get(p: number): KafkaTask | undefined };
    consumer: () => Consumer | undefined;
    idle: () => boolean;
    onFail: (t: KafkaTask, e: unknown) => void;
  }) {
    this.#k = opts.kafka;
    this.#serde = opts.serde;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#pump = opts.pump;
    this.#tasks = opts.tasks;
    this.#consumer = opts.consumer;
    this.#idle = opts.idle;
    this.#onFail = opts.onFail;
  }

  /** Buffers a batch of task `t`'s partition when it continues the task's position. */
  async push(t: KafkaTask, { batch, isStale, heartbeat, resolveOffset }: EachBatchPayload): Promise<void> {
    if (t.broken) return;
    const side = this.#side(batch.topic);
    const msgs = batch.messages;
    const fetched = await this.#prefetch(msgs, isStale, heartbeat).catch((e: unknown) => {
      this.#onFail(t, e);
      return false;
    });
    if (!fetched || isStale() || t.broken) return;
    const pos = t.pos[side];
    // Only a batch fetched from exactly our position continues the log; anything else was
    // fetched before our last seek (kafkajs' Batch carries the offset it was fetched from).
    const fetchedOffset = Number((batch as unknown as { fetchedOffset: string }).fetchedOffset);
    if (pos.next === null || fetchedOffset !== pos.next || msgs.length === 0) return;
    let bytes = 0;
    for (const m of msgs) bytes += m.value?.length ?? 0;
    // In columns over the fetch's buffer: records as objects, buffered for hundreds of ms, were
    // promoted by the young-generation GC (see MergeChunk).
    for (const cols of rawColumns(msgs)) t.join.pushColumns(side, cols);
    t.avgBytes[side] = bytes / msgs.length;
    this.#metrics.recordsIn.inc({ topic: batch.topic }, msgs.length);
    pos.next = Number(batch.lastOffset()) + 1;
    pos.hw = Number(batch.highWatermark);
    // Moves kafkajs' fetch position (control records after the last message included). Our
    // commits go through the transaction, so this never commits anything by itself.
    resolveOffset(msgs[msgs.length - 1]!.offset);
    if (t.overBuffered(side, 1) && t.resume[side] === undefined)
      t.resume[side] = this.#pause(batch.topic, batch.partition);
    this.#pump.schedule(t);
  }

  /** Control-record-only or aborted-only batches never reach eachBatch; they still move the position. */
  batchEnd(p: {
    topic: string;
    partition: number;
    batchSize: number;
    firstOffset: string | null;
    lastOffset: string;
    highWatermark: string;
  }): void {
    if (p.batchSize !== 0) return;
    const t = this.#tasks.get(p.partition);
    if (t === undefined || t.broken) return;
    const pos = t.pos[this.#side(p.topic)];
    const first = p.firstOffset === null ? null : Number(p.firstOffset);
    if (pos.next === null || first === null || first !== pos.next) return;
    pos.next = Math.max(pos.next, Number(p.lastOffset) + 1);
    pos.hw = Number(p.highWatermark);
    this.#pump.schedule(t);
  }

  /**
   * Pauses fetching a partition; returns its resume. Not eachBatch's `pause()`: the resume that
   * returns shares its closure context with the batch's other callbacks, so holding it kept the
   * whole fetched batch (messages, raw messages, the response buffer) alive until the resume.
   */
  #pause(topic: string, partition: number): () => void {
    const tp = [{ topic, partitions: [partition] }];
    this.#consumer()?.pause(tp);
    return () => this.#consumer()?.resume(tp);
  }

  /**
   * Fetches the writer schemas of a Confluent-framed batch before it reaches its task. A registry
   * outage is retried with backoff (the batch is neither pushed nor resolved meanwhile), never
   * turned into dead letters. False when the batch went stale or the service is stopping.
   */
  async #prefetch(
    msgs: EachBatchPayload['batch']['messages'],
    isStale: () => boolean,
    heartbeat: () => Promise<void>,
  ): Promise<boolean> {
    if (this.#k.inputFormat !== 'confluent' || this.#serde === undefined) return true;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#serde.prefetch(msgs.map((m) => m.value));
        return true;
      } catch (e) {
        if (!isRankdistillError(e, 'SCHEMA_REGISTRY_FAILED')) throw e;
        this.#log.warn('schema registry unavailable; retrying the batch', {
          attempt,
          error: errorMessage(e),
        });
        await sleep(Math.min(5_000, 200 * 2 ** Math.min(attempt, 5)));
        await heartbeat().catch(() => undefined);
        if (this.#idle() || isStale()) return false;
      }
    }
  }

  #side(topic: string): Side {
    return topic === this.#k.topics.rankerOutputs ? 'ranker' : 'impression';
  }
}
