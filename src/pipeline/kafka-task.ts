/**
 * One task of the labeler (Kafka Streams' `StreamTask`): the state of input partition p —
 * its join task over the SQLite store (with the overlay and the change recording), its
 * transactional producer, its fetch positions and committed offsets, and the open batch (encoded
 * outputs, sends, the commit in flight). Behaviour lives in the modules that drive it: the pump
 * (task-pump.ts), the collector (record-collector.ts), the commit protocol (task-commit.ts).
 */
import type { Message, Producer, RecordMetadata, Transaction } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import type { BufferingStore } from '../join/buffering-store.ts';
import type { ChangeRecordingStore } from '../join/changelog.ts';
import type { InputOffsets } from '../join/entry-codec.ts';
import type { JoinTask } from '../join/task.ts';
import { emptyCounters, type JoinCounters, type Side } from '../join/types.ts';
import type { SqliteJoinStore } from '../store/sqlite-store.ts';

/** Both inputs, in the order tasks visit them. */
export const SIDES = ['ranker', 'impression'] as const;

/** The input topic of a side. */
export function inputTopic(k: KafkaConfig, side: Side): string {
  return side === 'ranker' ? k.topics.rankerOutputs : k.topics.impressions;
}

/** Buffered records per side above which the partition is paused (Kafka Streams' buffered.records.per.partition). */
const MAX_BUFFERED = 4_000;
/** Buffered input bytes per side above which the partition is paused (large lists bound memory first). */
const MAX_BUFFERED_BYTES = 8 * 2 ** 20;

export interface Position {
  /** Next offset the consumer will fetch (after everything fetched so far, control records included). */
  next: number | null;
  /** High watermark from the latest fetch. */
  hw: number | null;
}

/** Offsets to commit, as the transaction's sendOffsets takes them. */
export type TopicOffsets = Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;

/** A batch whose commit is in flight (taken off the task, which goes on with the next batch). */
export interface CommittingBatch {
  /** Its sends (the last link of the chain). */
  sending: Promise<void> | undefined;
  offsets: TopicOffsets;
  /** Next offsets per side once it is committed. */
  next: Record<Side, number | null>;
  /** Its changelog's input-offsets record (when it moves offsets), also kept in SQLite's meta. */
  inputOffsets: InputOffsets | undefined;
  changelogCount: number;
  sentMeta: RecordMetadata[];
  sentCounts: Map<string, number>;
  processed: number;
  /** Counters as of its end (exported when it commits). */
  counters: JoinCounters;
  paths: { columns: number; generic: number };
  started: bigint;
}

/** Runtime of one task: join task, its store, its transactional producer and its batch. */
export class KafkaTask {
  readonly p: number;
  readonly store: SqliteJoinStore;
  /** Over `store`: holds the next batch's state changes while the previous batch commits. */
  readonly overlay: BufferingStore;
  readonly logged: ChangeRecordingStore;
  readonly join: JoinTask;
  readonly producer: Producer;
  readonly pos: Record<Side, Position> = {
    ranker: { next: null, hw: null },
    impression: { next: null, hw: null },
  };
  /** Offsets committed in Kafka (next to consume) per side. */
  committed: Record<Side, number | null> = { ranker: null, impression: null };
  /**
   * The batch's encoded outputs by topic (first-output order). Outputs are encoded as each step
   * returns them, so label objects die young instead of surviving until the commit.
   */
  messages = new Map<string, Message[]>();
  /** Value bytes in {@link messages}. */
  pendingBytes = 0;
  /** The batch's Kafka transaction, opened by the first send-ahead (or at commit). */
  txn: Transaction | undefined;
  /** Chain of the batch's send-aheads (one produce request in flight, in output order). */
  sending: Promise<void> | undefined;
  /**
   * The previous batch's commit while it is in flight (Kafka transaction, then SQLite); this
   * batch's sends chain after it, and this batch's commit waits for it.
   */
  committing: Promise<void> | undefined;
  /** Record metadata of the sends so far (changelog base offsets give the checkpoint). */
  sentMeta: RecordMetadata[] = [];
  /** Records sent per topic in the open transaction (exported as records out once it commits). */
  sentCounts = new Map<string, number>();
  /** Average input record size per side (bytes), for the byte bound on buffering. */
  avgBytes: Record<Side, number> = { ranker: 0, impression: 0 };
  /** A pump is queued on the lock (fetches only schedule one). */
  pumpQueued = false;
  processed = 0;
  batchStarted = 0;
  broken = false;
  resume: Partial<Record<Side, () => void>> = {};
  /** Counters already exported to Prometheus. */
  exported: JoinCounters = emptyCounters();
  /** Ranker decoding paths already exported. */
  exportedPaths = { columns: 0, generic: 0 };
  #lock: Promise<unknown> = Promise.resolve();

  constructor(
    p: number,
    store: SqliteJoinStore,
    overlay: BufferingStore,
    join: JoinTask,
    logged: ChangeRecordingStore,
    producer: Producer,
  ) {
    this.p = p;
    this.store = store;
    this.overlay = overlay;
    this.join = join;
    this.logged = logged;
    this.producer = producer;
  }

  /** Runs `fn` after every earlier call finished (one batch at a time per task). */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.#lock.then(fn, fn);
    this.#lock = r.catch(() => undefined);
    return r;
  }

  /** Whether a side holds more than `fraction` of the buffering bounds (records or bytes). */
  overBuffered(side: Side, fraction: number): boolean {
    const n = this.join.buffered(side);
    return n > MAX_BUFFERED * fraction || n * this.avgBytes[side] > MAX_BUFFERED_BYTES * fraction;
  }

  /** Forgets the open batch (after it committed or was rolled back). */
  resetBatch(): void {
    this.messages = new Map();
    this.pendingBytes = 0;
    this.txn = undefined;
    this.sending = undefined;
    this.committing = undefined;
    this.sentMeta = [];
    this.sentCounts = new Map();
    this.processed = 0;
  }
}
