/**
 * The commit protocol of a task (Kafka Streams' commit path of `TaskExecutor`/`StreamTask`): one
 * Kafka transaction per batch — its outputs, its changelog records (state changes and the input
 * offsets), the consumer offsets (sendOffsets) — then the SQLite commit with the changelog
 * checkpoint it reflects. Also the rollback of a batch that will not commit.
 *
 * The SQLite transaction of a batch stays open until its Kafka transaction committed; a crash in
 * between rolls SQLite back and the restore replays the changelog from the older checkpoint.
 * The next batch is processed while a batch commits: its state changes wait in an in-memory
 * overlay (BufferingStore) and are written to SQLite after the commit, its outputs are sent in
 * the next transaction, so neither the state nor the outputs run ahead of a commit.
 */
import type { KafkaConfig } from '../config/schema.ts';
import { encodeInputOffsets, INPUT_OFFSETS_KEY, type InputOffsets } from '../join/entry-codec.ts';
import { sendOffsetsRetrying } from '../kafka/client.ts';
import type { Logger } from '../log.ts';
import type { LabelMetrics } from '../metrics/index.ts';
import { type CommittingBatch, inputTopic, type KafkaTask, SIDES } from './kafka-task.ts';
import type { RecordCollector } from './record-collector.ts';
import { exportCommitted } from './task-metrics.ts';

/** Commits and rolls back the batches of the tasks of one service. */
export class TaskCommitter {
  readonly #k: KafkaConfig;
  readonly #collector: RecordCollector;
  readonly #metrics: LabelMetrics;
  readonly #log: Logger;
  /** Called when a commit that went on in the background failed (the task must recover). */
  readonly #onFail: (t: KafkaTask, e: unknown) => void;

  constructor(opts: {
    kafka: KafkaConfig;
    collector: RecordCollector;
    metrics: LabelMetrics;
    log: Logger;
    onFail: (t: KafkaTask, e: unknown) => void;
  }) {
    this.#k = opts.kafka;
    this.#collector = opts.collector;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#onFail = opts.onFail;
  }

  /**
   * Starts the batch's commit: one Kafka transaction with its outputs, changelog and offsets, then
   * the SQLite commit ({@link #finish}). Returns once it is under way: the next batch is
   * processed meanwhile, its state changes held in the task's overlay and its sends chained
   * after this commit (they belong to the next transaction). A previous commit still in flight is
   * awaited first (one transaction at a time), and its failure is thrown here.
   */
  async commit(t: KafkaTask): Promise<void> {
    await this.settle(t);
    const k = this.#k;
    const next = { ...t.join.nextOffsets() };
    const offsets = SIDES.filter((s) => next[s] !== null && next[s] !== t.committed[s]).map((s) => ({
      topic: inputTopic(k, s),
      partitions: [{ partition: t.p, offset: String(next[s]) }],
    }));
    // The positions also go to the changelog, in this transaction: a restored task knows them
    // even when the group's offset fetch still answers with older ones (KAFKA-17507).
    let inputOffsets: InputOffsets | undefined;
    if (offsets.length > 0) {
      inputOffsets = {
        ranker: next.ranker ?? t.committed.ranker ?? -1,
        impression: next.impression ?? t.committed.impression ?? -1,
      };
      this.#collector.queue(t, k.topics.changelog, {
        key: INPUT_OFFSETS_KEY,
        value: encodeInputOffsets(inputOffsets),
        partition: t.p,
      });
    }
    const topicMessages = this.#collector.drain(t);
    const changelogCount = topicMessages.find((m) => m.topic === k.topics.changelog)?.messages.length ?? 0;
    if (topicMessages.length === 0 && offsets.length === 0 && t.sending === undefined) {
      t.store.commit();
      t.resetBatch();
      return;
    }
    if (topicMessages.length > 0) t.sending = this.#collector.chainSend(t, topicMessages);
    const batch: CommittingBatch = {
      sending: t.sending,
      offsets,
      next,
      inputOffsets,
      changelogCount,
      sentMeta: t.sentMeta,
      sentCounts: t.sentCounts,
      processed: t.processed,
      counters: structuredClone(t.join.counters),
      paths: { ...t.join.rankerPaths },
      started: process.hrtime.bigint(),
    };
    t.messages = new Map();
    t.pendingBytes = 0;
    t.sentMeta = [];
    t.sentCounts = new Map();
    t.processed = 0;
    t.overlay.buffer();
    const committing = this.#finish(t, batch);
    t.committing = committing;
    t.sending = committing;
    // A failure is handled by the task's recovery; the next commit or discard also sees it.
    committing.catch((e: unknown) => this.#onFail(t, e));
  }

  /** Waits for the commit in flight (rethrowing its failure); after it, no send is pending. */
  async settle(t: KafkaTask): Promise<void> {
    const c = t.committing;
    if (c === undefined) return;
    await c;
    if (t.committing === c) t.committing = undefined;
    if (t.sending === c) t.sending = undefined;
  }

  /** Rolls the open batch back: its transaction (if sends began) is aborted, SQLite rolled back. */
  async discard(t: KafkaTask): Promise<void> {
    // A commit in flight finishes (or fails) first: rolling back then drops only what followed it.
    await t.committing?.catch(() => undefined);
    await t.sending?.catch(() => undefined);
    await t.txn
      ?.abort()
      .catch((e: unknown) => this.#log.warn('aborting a batch failed', { partition: t.p, error: e }));
    t.store.rollback();
    t.overlay.discard();
    t.logged.discardChanges();
    t.join.clearCache();
    t.resetBatch();
  }

  /** Commits a batch's Kafka transaction, then SQLite with the changelog position it reflects. */
  async #finish(t: KafkaTask, b: CommittingBatch): Promise<void> {
    const k = this.#k;
    try {
      await b.sending;
      t.txn ??= await t.producer.transaction();
      if (b.offsets.length > 0)
        await sendOffsetsRetrying(t.txn, { consumerGroupId: k.groupId, topics: b.offsets });
      await t.txn.commit();
    } catch (e) {
      await t.txn?.abort().catch(() => undefined);
      t.txn = undefined;
      throw e;
    }
    t.txn = undefined;
    let checkpoint: number | undefined;
    if (b.changelogCount > 0) {
      const bases = b.sentMeta
        .filter((m) => m.topicName === k.topics.changelog && m.partition === t.p)
        .map((m) => Number(m.baseOffset));
      if (bases.length > 0) checkpoint = Math.min(...bases) + b.changelogCount;
    }
    // SQLite's open transaction holds exactly this batch's changes (the next batch's wait in the
    // overlay): commit it, then write the overlay into the next one.
    if (b.inputOffsets !== undefined) t.store.setInputOffsets(b.inputOffsets);
    t.store.commit(checkpoint);
    t.store.begin();
    t.overlay.apply();
    for (const s of SIDES) if (b.next[s] !== null) t.committed[s] = b.next[s];
    exportCommitted(this.#metrics, t, b);
  }
}
