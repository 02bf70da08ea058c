/**
 * The labeling service over Kafka — the data-flow picture of DESIGN.md:
 *
 *   ranker-outputs[p] ─┐  co-partitioned consumer group (partition p of both → one member)
 *                      ├─► task p: PartitionMerge → JoinOperator (SQLite store + changelog) → labeler
 *   impressions[p] ────┘        │
 *                               └─► ONE Kafka transaction per batch (producer `${groupId}-task-${p}`):
 *                                   labels.{pointwise,pairwise,listwise}, dead letters,
 *                                   changelog[p] (state changes and the input offsets),
 *                                   consumer offsets (sendOffsets) → commit,
 *                                   then SQLite commit with the new changelog checkpoint.
 *
 * Exactly once, the way Kafka Streams did it before EOS v2: one transactional producer per task, so
 * when a partition moves, the new owner's InitProducerId fences the old owner (its pending
 * transaction is completed or aborted before the new owner restores state and reads offsets).
 * The SQLite transaction of a batch stays open until its Kafka transaction committed; a crash in
 * between rolls SQLite back and the restore replays the changelog from the older checkpoint.
 * The next batch is processed while a batch commits: its state changes wait in an in-memory
 * overlay (BufferingStore) and are written to SQLite after the commit, its outputs are sent in
 * the next transaction, so neither the state nor the outputs run ahead of a commit.
 *
 * Any transactional failure (fenced, timed out, broker error) aborts, throws the task state away
 * and restarts the consumer: the group rebalances, tasks restore from their changelogs and resume
 * from the committed offsets, so no label is lost or duplicated.
 *
 * Output partitions: when a label / dead-letter topic has as many partitions as the inputs, the
 * outputs of input partition p go to partition p (the same partition the user_id key would
 * select with the default partitioner, and deterministic even for inputs produced with explicit
 * partitions); otherwise they are partitioned by key (murmur2, Java-compatible).
 */
import { join } from 'node:path';
import { setTimeout as sleep, setImmediate as yieldToIo } from 'node:timers/promises';
import type {
  Admin,
  ConfigResourceTypes,
  Consumer,
  EachBatchPayload,
  Kafka,
  Message,
  Producer,
  RecordMetadata,
  TopicMessages,
  Transaction,
} from 'kafkajs';
import type { Config } from '../config/schema.ts';
import { encodeAvro } from '../contracts/codec.ts';
import type { Impression } from '../contracts/index.ts';
import type { RankerColumns } from '../contracts/ranker-columns.ts';
import type { ContractName, Contracts } from '../contracts/schemas.ts';
import { errorMessage, isRankdistillError, RankdistillError } from '../errors.ts';
import { BufferingStore } from '../join/buffering-store.ts';
import { ChangeRecordingStore } from '../join/changelog.ts';
import { encodeInputOffsets, INPUT_OFFSETS_KEY, type InputOffsets } from '../join/entry-codec.ts';
import { JoinTask, rawColumns } from '../join/task.ts';
import {
  emptyCounters,
  type JoinCounters,
  OUTPUT_CONTRACT,
  type Side,
  type TaskOutput,
} from '../join/types.ts';
import { explainKafkaError, kafkaAccessFailure } from '../kafka/access.ts';
import { aclsForRole } from '../kafka/acls.ts';
import { checkBrokerApiVersions } from '../kafka/api-versions.ts';
import { coPartitionedAssigner } from '../kafka/assigner.ts';
import { createKafka, createTransactionalProducer, sendOffsetsRetrying } from '../kafka/client.ts';
import { restoreFromChangelog } from '../kafka/restore.ts';
import { ensureTopics, type TopicLayout } from '../kafka/topics.ts';
import { assertMarkerRoom, explainTooLarge, isTooLargeError } from '../kafka/txn-markers.ts';
import { columnsSupported, labelColumnsEncoded } from '../labels/encoded.ts';
import { labelRequest } from '../labels/index.ts';
import { type Logger, logger } from '../log.ts';
import { LabelMetrics, type MetricsServer, serveMetrics } from '../metrics/index.ts';
import { type RegistrySerde, registrySerdeFromConfig } from '../registry/serde.ts';
import { SqliteJoinStore } from '../store/sqlite-store.ts';
import { type OutcomeCounts, sumCounters } from './outcomes.ts';

/** Records per JoinTask.step call: its outputs are encoded (and may be sent ahead) before the next. */
const STEP_CHUNK = 64;
/**
 * The pump lets I/O run (sends, fetches, heartbeats) once the thread has held it this long. Every
 * step (~3 ms at 20 candidates) was too often: each turn of the event loop let kafkajs fetch
 * again, in smaller pieces, and the labeler spent ~10% more CPU per request and the broker ~40%
 * more (bench:label, 96-103 → 87-89 µs/request; broker 22 → 14-16 µs).
 */
const YIELD_MS = 10;
/** Buffered records per side above which the partition is paused (Kafka Streams' buffered.records.per.partition). */
const MAX_BUFFERED = 4_000;
/** Buffered input bytes per side above which the partition is paused (large lists bound memory first). */
const MAX_BUFFERED_BYTES = 8 * 2 ** 20;
/**
 * Encoded output bytes of an open batch after which they are sent ahead in the batch's transaction,
 * so the produce round trips overlap with processing the rest of the batch instead of all
 * following it at commit time.
 */
const SEND_AHEAD_BYTES = 256 * 1024;

interface Position {
  /** Next offset the consumer will fetch (after everything fetched so far, control records included). */
  next: number | null;
  /** High watermark from the latest fetch. */
  hw: number | null;
}

/** A batch whose commit is in flight (taken off the task, which goes on with the next batch). */
interface CommittingBatch {
  /** Its sends (the last link of the chain). */
  sending: Promise<void> | undefined;
  offsets: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;
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
class KafkaTask {
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
}

/** What {@link LabelService} needs besides the config. */
export interface LabelServiceOptions {
  metrics?: LabelMetrics;
  /** Wall clock for dead-letter times. */
  now?: () => number;
  /**
   * Group members started together with this one (the stream threads of a process). While the
   * first assignment gives this member more than its share, it waits up to
   * {@link BALANCE_WAIT_MS} for the others to join instead of opening tasks it is about to lose
   * (fencing, restoring and then discarding work).
   */
  peers?: number;
}

/** kafkajs' ConfigResourceTypes.TOPIC (Kafka's resource type 2); the enum is not an ESM export. */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/** Longest wait at start for the peers' join to balance the assignment. */
const BALANCE_WAIT_MS = 10_000;

/**
 * The labeling service. `start()` resolves once the consumer runs; `stop()` finishes the open
 * transactions and disconnects.
 *
 * @example
 * const svc = new LabelService(loadConfig());
 * await svc.start();
 * // ...
 * await svc.stop();
 */
export class LabelService {
  readonly config: Config;
  readonly metrics: LabelMetrics;
  readonly #kafka: Kafka;
  readonly #log: Logger = logger('label-service');
  readonly #now: () => number;
  #admin: Admin | undefined;
  #consumer: Consumer | undefined;
  #layout: TopicLayout | undefined;
  readonly #tasks = new Map<number, KafkaTask>();
  readonly #closing = new Set<Promise<unknown>>();
  readonly #opening = new Map<number, Promise<void>>();
  #assigned = new Set<number>();
  #generation = 0;
  #joined = false;
  #running = false;
  #stopping = false;
  /** The start in flight (or done): a stop waits for it, and it gives up at its next step. */
  #starting: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  /**
   * Per partition: its committed offsets as last seen and since when they have not moved while it
   * had input to process. Kept across task restarts (a task failing over and over on the same
   * record never commits), dropped when the partition is revoked.
   */
  readonly #progress = new Map<number, { offsets: string; since: number; lagging: boolean }>();
  /** Partitions already logged as stuck (logged once, until they move again). */
  readonly #stuckLogged = new Set<number>();
  #recovering: Promise<void> | undefined;
  /** Rejected with the explained error when the cluster refuses our credentials or an ACL. */
  readonly #fatal: Promise<never>;
  #rejectFatal: (e: unknown) => void = () => undefined;
  #fatalSeen = false;
  readonly #peers: number;
  #startedAt = 0;
  /** Until when batches are left unprocessed, waiting for the peers' join (0: not waiting). */
  #holdUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Counters of tasks that were closed, so totals survive rebalances. */
  #retired: JoinCounters[] = [];
  #restored = 0;
  /** When this thread last let I/O run from a pump (performance.now()). */
  #yielded = 0;
  /** Schema registry serde, when `kafka.schemaRegistryUrl` is set. */
  readonly #serde: RegistrySerde | undefined;
  /** Bound on a dead letter's original bytes ({@link #deadLetterBound}). */
  #deadLetterMax: number;

  constructor(config: Config, opts: LabelServiceOptions = {}) {
    this.config = config;
    this.metrics = opts.metrics ?? new LabelMetrics();
    this.#now = opts.now ?? Date.now;
    this.#peers = opts.peers ?? 1;
    this.#kafka = createKafka(config.kafka, 'labeler');
    this.#fatal = new Promise<never>((_resolve, reject) => {
      this.#rejectFatal = reject;
    });
    this.#fatal.catch(() => undefined); // observed through failed()
    this.#serde = registrySerdeFromConfig(config.kafka);
    this.#deadLetterMax = config.kafka.deadLetterMaxBytes;
    if (config.kafka.outputFormat === 'confluent' && this.#serde === undefined) {
      throw new RankdistillError(
        'CONFIG_INVALID',
        'kafka.outputFormat confluent needs kafka.schemaRegistryUrl (the schema ids come from a registry); set it, or use outputFormat avro',
      );
    }
  }

  /**
   * Rejects when the cluster refuses the credentials or an ACL (KAFKA_AUTHENTICATION_FAILED,
   * KAFKA_AUTHORIZATION_FAILED naming the permission): rejoining cannot fix those, so the service
   * stops recovering and the process should exit.
   */
  failed(): Promise<never> {
    return this.#fatal;
  }

  /**
   * True while the consumer is in the group, not recovering, and no partition is stuck (input to
   * process and no committed progress for `metrics.stuckPartitionMs`): a partition that fails on
   * every attempt makes the service unhealthy steadily, not only during each recovery.
   */
  healthy(): boolean {
    return (
      this.#running && this.#joined && this.#recovering === undefined && this.stuckPartitions().length === 0
    );
  }

  /** Partitions with input to process and no committed progress for `metrics.stuckPartitionMs`. */
  stuckPartitions(): number[] {
    const now = Date.now();
    const limit = this.config.metrics.stuckPartitionMs;
    return [...this.#progress]
      .filter(([, e]) => e.lagging && now - e.since >= limit)
      .map(([p]) => p)
      .sort((a, b) => a - b);
  }

  /** Outcome counts since start (processed, including batches later rolled back). */
  counts(): OutcomeCounts {
    return sumCounters([...this.#retired, ...[...this.#tasks.values()].map((t) => t.join.counters)]);
  }

  /** Changelog records replayed into local stores since start. */
  restoredRecords(): number {
    return this.#restored;
  }

  /** Partitions this instance currently owns. */
  assignedPartitions(): number[] {
    return [...this.#assigned].sort((a, b) => a - b);
  }

  /**
   * Checks and creates topics, then joins the group and starts consuming.
   *
   * @throws RankdistillError COPARTITION_MISMATCH, TOPIC_MISSING
   */
  start(): Promise<void> {
    this.#starting ??= this.#start().catch((e: unknown) => {
      if (isRankdistillError(e) || !(e instanceof Error) || !e.name.startsWith('KafkaJS')) throw e;
      throw new RankdistillError(
        'KAFKA_UNAVAILABLE',
        `the label service could not start: Kafka brokers ${this.config.kafka.brokers.join(',')}: ${e.message}`,
        { cause: e },
      );
    });
    return this.#starting;
  }

  /** Throws ABORTED when a stop came in during start-up (the stop tears down what was built). */
  #abortIfStopping(): void {
    if (this.#stopping)
      throw new RankdistillError('ABORTED', 'the label service was stopped during start-up');
  }

  async #start(): Promise<void> {
    this.#abortIfStopping();
    this.#admin = this.#kafka.admin();
    await this.#admin.connect();
    this.#abortIfStopping();
    await checkBrokerApiVersions(this.#kafka);
    this.#abortIfStopping();
    this.#layout = await ensureTopics(this.#admin, this.config.kafka);
    this.#deadLetterMax = await this.#deadLetterBound();
    await assertMarkerRoom(this.#admin, this.config.kafka);
    await this.#prepareOutputs();
    this.#abortIfStopping();
    this.#running = true;
    this.#startedAt = Date.now();
    await this.#startConsumer();
    // A stop that came in while the consumer joined waited for this: it disconnects the consumer.
    this.#abortIfStopping();
    const interval = Math.max(10, Math.floor(this.config.kafka.commitIntervalMs / 2));
    this.#timer = setInterval(() => this.#tick(), interval);
    this.#log.info('label service started', {
      groupId: this.config.kafka.groupId,
      partitions: this.#layout.partitions,
      topics: this.config.kafka.topics,
    });
  }

  /**
   * Commits what was processed, leaves the group, closes the stores. During start-up it waits for
   * the start to reach its next step (which then fails with ABORTED) and tears down what it built:
   * a member that joined the group is never left behind.
   */
  stop(): Promise<void> {
    this.#stopping = true;
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    if (this.#timer) clearInterval(this.#timer);
    await this.#recovering?.catch(() => undefined);
    await this.#consumer
      ?.disconnect()
      .catch((e: unknown) => this.#log.warn('consumer disconnect failed', { error: e }));
    for (const t of [...this.#tasks.values()]) await this.#closeTask(t, true);
    await Promise.allSettled([...this.#closing]);
    await this.#admin?.disconnect().catch(() => undefined);
    this.#running = false;
    this.#log.info('label service stopped', { counts: this.counts() });
  }

  async #startConsumer(): Promise<void> {
    const k = this.config.kafka;
    const consumer = this.#kafka.consumer({
      groupId: k.groupId,
      readUncommitted: false,
      partitionAssigners: [coPartitionedAssigner],
      sessionTimeout: k.sessionTimeoutMs,
      heartbeatInterval: Math.max(100, Math.floor(k.sessionTimeoutMs / 10)),
      rebalanceTimeout: Math.max(k.sessionTimeoutMs, 10_000),
      maxWaitTimeInMs: Math.min(250, k.commitIntervalMs),
      allowAutoTopicCreation: false,
    });
    this.#consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (e) => this.#onGroupJoin(e.payload.memberAssignment));
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => this.#onBatchEnd(e.payload));
    consumer.on(consumer.events.CRASH, (e) => {
      this.#joined = false;
      // Retried by kafkajs (a broker restart does this a few times per member): not an alarm.
      if (e.payload.restart) {
        this.#log.info('consumer crashed; kafkajs restarts it', { error: errorMessage(e.payload.error) });
        return;
      }
      this.#log.error('consumer crashed', { error: e.payload.error, restart: false });
      this.#scheduleRecovery(e.payload.error);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [k.topics.rankerOutputs, k.topics.impressions], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Tasks work in parallel (one awaits its transaction while another processes); batches of
      // one task are serialized by its lock.
      partitionsConsumedConcurrently: Math.min(8, 2 * (this.#layout?.partitions ?? 1)),
      eachBatch: (payload) => this.#eachBatch(payload),
    });
  }

  #side(topic: string): Side {
    return topic === this.config.kafka.topics.rankerOutputs ? 'ranker' : 'impression';
  }

  #onGroupJoin(assignment: Record<string, number[]>): void {
    const next = new Set(assignment[this.config.kafka.topics.rankerOutputs] ?? []);
    this.#generation++;
    this.#joined = true;
    this.#assigned = next;
    for (const p of [...this.#progress.keys()]) {
      if (!next.has(p)) {
        this.#progress.delete(p);
        this.#stuckLogged.delete(p);
      }
    }
    const share = Math.ceil((this.#layout?.partitions ?? next.size) / this.#peers);
    this.#holdUntil =
      this.#tasks.size === 0 && next.size > share && Date.now() < this.#startedAt + BALANCE_WAIT_MS
        ? this.#startedAt + BALANCE_WAIT_MS
        : 0;
    this.#log.info('partitions assigned', {
      partitions: [...next].sort((a, b) => a - b),
      generation: this.#generation,
    });
    for (const t of [...this.#tasks.values()]) {
      // Revoked: close (the pending batch is discarded; the new owner fences us anyway).
      // Kept: kafkajs reset its fetch positions to the committed offsets, so rewind the task too.
      if (!next.has(t.p)) this.#closeTaskAsync(t, false);
      else void t.run(() => this.#rewind(t));
    }
  }

  /** Drops the task's uncommitted batch and buffers and seeks both inputs to the committed offsets. */
  async #rewind(t: KafkaTask): Promise<void> {
    await this.#discardBatch(t);
    t.join.reset();
    for (const side of ['ranker', 'impression'] as const) {
      const off = t.committed[side];
      t.pos[side] = { next: off, hw: t.pos[side].hw };
      if (off !== null)
        this.#consumer?.seek({ topic: this.#topic(side), partition: t.p, offset: String(off) });
      t.resume[side]?.();
      delete t.resume[side];
    }
  }

  #topic(side: Side): string {
    return side === 'ranker' ? this.config.kafka.topics.rankerOutputs : this.config.kafka.topics.impressions;
  }

  /** Control-record-only or aborted-only batches never reach eachBatch; they still move the position. */
  #onBatchEnd(p: {
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
    this.#schedulePump(t);
  }

  /**
   * Queues one pump on the task's lock (fetches and ticks need at most one waiting). Processing
   * and commits run behind the fetch: eachBatch returns once the records are buffered, so kafkajs
   * fetches the next batches while the task processes and its transaction is in flight.
   */
  #schedulePump(t: KafkaTask): void {
    if (t.pumpQueued || t.broken) return;
    t.pumpQueued = true;
    void t
      .run(() => {
        t.pumpQueued = false;
        return this.#pump(t);
      })
      .catch((e: unknown) => this.#fail(t, e));
  }

  async #eachBatch({ batch, isStale, heartbeat, resolveOffset }: EachBatchPayload): Promise<void> {
    if (this.#stopping || this.#recovering !== undefined || isStale()) return;
    const p = batch.partition;
    if (!this.#assigned.has(p)) return;
    if (this.#holdUntil > Date.now()) {
      // More than our share while peers are still joining: leave the batch (it is fetched again).
      await sleep(50);
      return;
    }
    const t = this.#tasks.get(p);
    if (t === undefined) {
      // New task: fence, restore, seek to committed offsets. This batch is stale after the seek.
      // Batches of both inputs may arrive concurrently: one opening per partition.
      let opening = this.#opening.get(p);
      if (opening === undefined) {
        opening = this.#openTask(p, heartbeat)
          .catch((e: unknown) => {
            this.#noteNoProgress(p);
            this.#scheduleRecovery(e, { partition: p, opening: true });
          })
          .finally(() => this.#opening.delete(p));
        this.#opening.set(p, opening);
      }
      await opening;
      return;
    }
    if (t.broken) return;
    const side = this.#side(batch.topic);
    const msgs = batch.messages;
    const fetched = await this.#prefetch(msgs, isStale, heartbeat).catch((e: unknown) => {
      this.#fail(t, e);
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
    this.metrics.recordsIn.inc({ topic: batch.topic }, msgs.length);
    pos.next = Number(batch.lastOffset()) + 1;
    pos.hw = Number(batch.highWatermark);
    // Moves kafkajs' fetch position (control records after the last message included). Our
    // commits go through the transaction, so this never commits anything by itself.
    resolveOffset(msgs[msgs.length - 1]!.offset);
    if (this.#overBuffered(t, side, 1) && t.resume[side] === undefined)
      t.resume[side] = this.#pause(batch.topic, p);
    this.#schedulePump(t);
  }

  /**
   * Pauses fetching a partition; returns its resume. Not eachBatch's `pause()`: the resume that
   * returns shares its closure context with the batch's other callbacks, so holding it kept the
   * whole fetched batch (messages, raw messages, the response buffer) alive until the resume.
   */
  #pause(topic: string, partition: number): () => void {
    const tp = [{ topic, partitions: [partition] }];
    this.#consumer?.pause(tp);
    return () => this.#consumer?.resume(tp);
  }

  /** Whether a side holds more than `fraction` of the buffering bounds (records or bytes). */
  #overBuffered(t: KafkaTask, side: Side, fraction: number): boolean {
    const n = t.join.buffered(side);
    return n > MAX_BUFFERED * fraction || n * t.avgBytes[side] > MAX_BUFFERED_BYTES * fraction;
  }

  async #openTask(p: number, heartbeat: () => Promise<void>): Promise<void> {
    const k = this.config.kafka;
    const generation = this.#generation;
    const producer = createTransactionalProducer(this.#kafka, {
      transactionalId: `${k.groupId}-task-${p}`,
      transactionTimeout: k.transactionTimeoutMs,
    });
    await producer.connect();
    let store: SqliteJoinStore | undefined;
    try {
      // InitProducerId: fences a previous owner of this task and completes its open transaction.
      const fence = await producer.transaction();
      await fence.abort();
      store = SqliteJoinStore.open(join(this.config.store.dir, `${k.groupId}`, `task-${p}.sqlite`));
      const restored = await restoreFromChangelog({
        kafka: this.#kafka,
        admin: this.#admin!,
        topic: k.topics.changelog,
        partition: p,
        store,
        heartbeat,
      });
      this.metrics.restoredRecords.inc(restored.records);
      this.#restored += restored.records;
      const overlay = new BufferingStore(store);
      const logged = new ChangeRecordingStore(overlay);
      const labels = this.config.labels;
      const joinTask = new JoinTask({
        partition: p,
        topics: { ranker: k.topics.rankerOutputs, impression: k.topics.impressions },
        store: logged,
        join: this.config.join,
        label: (req) => labelRequest(req, labels),
        inputFormat: k.inputFormat,
        ...(k.inputFormat === 'confluent' && this.#serde ? { writerFor: this.#serde.writerFor } : {}),
        // Plain Avro input: ranker outputs go the column path (no decoded objects; labels written
        // as bytes). Confluent frames may carry another writer schema, so they stay generic.
        ...(k.inputFormat === 'avro' && columnsSupported(labels)
          ? { columns: (r: RankerColumns, imp: Impression | null) => labelColumnsEncoded(r, imp, labels) }
          : {}),
        now: this.#now,
        deadLetterMaxBytes: this.#deadLetterMax,
      });
      const t = new KafkaTask(p, store, overlay, joinTask, logged, producer);
      // Committed offsets are read only now, after fencing: the previous owner's last transaction
      // has been completed or aborted, so they match the restored changelog.
      const committed = await this.#admin!.fetchOffsets({
        groupId: k.groupId,
        topics: [k.topics.rankerOutputs, k.topics.impressions],
      });
      // The positions the restored state belongs to, from the changelog's input-offsets record:
      // the group's answer can lag them (KAFKA-17507, brokers before 3.9.1), never lead them,
      // unless an operator moved the group's offsets forward (then those win).
      const positions = store.inputOffsets();
      const repair: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> = [];
      for (const side of ['ranker', 'impression'] as const) {
        const topic = this.#topic(side);
        const ends = await this.#admin!.fetchTopicOffsets(topic);
        const end = ends.find((x) => x.partition === p);
        const c = committed.find((x) => x.topic === topic)?.partitions.find((x) => x.partition === p);
        const low = Number(end?.low ?? 0);
        const group = c === undefined ? -1 : Number(c.offset);
        const fromLog = positions?.[side] ?? -1;
        if (fromLog > group) {
          this.#log.warn('the group’s committed offset lags the changelog’s; resuming from the changelog’s', {
            topic,
            partition: p,
            group,
            changelog: fromLog,
          });
          repair.push({ topic, partitions: [{ partition: p, offset: String(fromLog) }] });
        }
        const off = Math.max(low, group, fromLog);
        t.committed[side] = off;
        t.pos[side] = { next: off, hw: Number(end?.high ?? 0) };
      }
      if (repair.length > 0) {
        // Bring the group's offsets up to the changelog's (lag monitoring reads them, and an
        // input with nothing new would otherwise keep the stale ones), in a transaction of our own.
        const txn = await producer.transaction();
        try {
          await sendOffsetsRetrying(txn, { consumerGroupId: k.groupId, topics: repair });
          await txn.commit();
        } catch (e) {
          await txn.abort().catch(() => undefined);
          throw e;
        }
      }
      if (generation !== this.#generation && !this.#assigned.has(p)) {
        throw new Error(`partition ${p} was revoked while its task opened`);
      }
      this.#tasks.set(p, t);
      for (const side of ['ranker', 'impression'] as const) {
        this.#consumer?.seek({ topic: this.#topic(side), partition: p, offset: String(t.committed[side]) });
      }
      this.#log.info('task ready', { partition: p, committed: t.committed, entries: joinTask.stateSize() });
    } catch (e) {
      store?.close();
      await producer.disconnect().catch(() => undefined);
      throw e;
    }
  }

  /** Processes what the merge releases; commits when the batch is full or old enough. */
  async #pump(t: KafkaTask): Promise<void> {
    const k = this.config.kafka;
    for (;;) {
      if (t.broken) return;
      for (const side of ['ranker', 'impression'] as const) {
        if (t.join.buffered(side) === 0) {
          const pos = t.pos[side];
          t.join.setCaughtUp(side, pos.next !== null && pos.hw !== null && pos.next >= pos.hw);
        }
        if (t.resume[side] !== undefined && !this.#overBuffered(t, side, 0.5)) {
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
      this.#collect(t, outputs);
      if (t.pendingBytes >= SEND_AHEAD_BYTES) this.#sendAhead(t);
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
        await this.#commit(t);
        continue;
      }
      if (processed === chunk) continue; // more may be released
      return;
    }
  }

  #tick(): void {
    // Also while recovering: a partition that fails on every attempt spends most time there.
    for (const p of this.stuckPartitions()) this.#logStuck(p);
    if (this.#stopping || this.#recovering !== undefined) return;
    for (const t of this.#tasks.values()) {
      if (t.broken) continue;
      this.#trackProgress(t);
      this.#schedulePump(t);
      this.metrics.openRequests.set({ partition: String(t.p) }, t.join.stateSize());
      const wm = t.join.watermark();
      if (wm !== null) this.metrics.watermarkLag.set({ partition: String(t.p) }, Date.now() - wm);
    }
  }

  /**
   * Notes whether the task's committed offsets moved, and whether it has input to process
   * (unfetched records, fetched but unprocessed ones, processed but uncommitted ones). A partition with input and
   * no progress for `metrics.stuckPartitionMs` makes {@link healthy} false (logged once).
   */
  #trackProgress(t: KafkaTask): void {
    const now = Date.now();
    const offsets = `${t.committed.ranker}/${t.committed.impression}`;
    const processed = t.join.nextOffsets();
    const lagging =
      t.processed > 0 ||
      t.committing !== undefined ||
      (['ranker', 'impression'] as const).some((s) => {
        const pos = t.pos[s];
        return (
          t.join.buffered(s) > 0 ||
          (processed[s] !== null && processed[s] !== t.committed[s]) ||
          (pos.next !== null && pos.hw !== null && pos.next < pos.hw)
        );
      });
    const e = this.#progress.get(t.p);
    if (e === undefined || e.offsets !== offsets || !lagging) {
      this.#progress.set(t.p, { offsets, since: now, lagging });
      if (this.#stuckLogged.delete(t.p)) this.#log.info('partition makes progress again', { partition: t.p });
      return;
    }
    e.lagging = true;
  }

  /** Marks a partition as having input that could not be processed (a task that failed to open). */
  #noteNoProgress(p: number): void {
    const e = this.#progress.get(p);
    if (e === undefined) this.#progress.set(p, { offsets: 'unopened', since: Date.now(), lagging: true });
    else e.lagging = true;
  }

  /** Logs a partition {@link stuckPartitions} lists, once until it moves again. */
  #logStuck(p: number): void {
    const e = this.#progress.get(p);
    if (e === undefined || this.#stuckLogged.has(p)) return;
    const ms = Date.now() - e.since;
    this.#stuckLogged.add(p);
    const t = this.#tasks.get(p);
    this.#log.error(
      'partition stuck: input to process and no committed progress; /health reports unhealthy',
      {
        partition: p,
        seconds: Math.round(ms / 1000),
        topics: [this.config.kafka.topics.rankerOutputs, this.config.kafka.topics.impressions],
        ...(t === undefined
          ? {}
          : {
              committed: t.committed,
              highWatermarks: { ranker: t.pos.ranker.hw, impression: t.pos.impression.hw },
            }),
      },
    );
  }

  /** Encodes a step's outputs into the batch's messages. */
  #collect(t: KafkaTask, outputs: TaskOutput[]): void {
    const k = this.config.kafka;
    for (const o of outputs) {
      switch (o.kind) {
        case 'pointwise':
          this.#add(
            t,
            k.topics.pointwise,
            o.key,
            this.#encode(k.topics.pointwise, 'PointwiseLabels', o.value),
          );
          break;
        case 'pairwise':
          this.#add(t, k.topics.pairwise, o.key, this.#encode(k.topics.pairwise, 'PairwiseLabels', o.value));
          break;
        case 'listwise':
          this.#add(t, k.topics.listwise, o.key, this.#encode(k.topics.listwise, 'ListwiseLabels', o.value));
          break;
        case 'encoded': {
          const topic = k.topics[o.label];
          this.#add(t, topic, o.key, this.#frame(topic, OUTPUT_CONTRACT[o.label], o.bytes));
          break;
        }
        case 'deadLetter':
          this.#add(t, k.topics.deadLetter, o.key, this.#encode(k.topics.deadLetter, 'DeadLetter', o.value));
          break;
      }
    }
  }

  #add(t: KafkaTask, topic: string, key: Buffer | null, value: Buffer): void {
    const layout = this.#layout!;
    const m: Message =
      layout.outputPartitions[topic] === layout.partitions ? { key, value, partition: t.p } : { key, value };
    this.#queue(t, topic, m);
    t.pendingBytes += value.length;
  }

  /**
   * Sends the batch's outputs so far in its transaction (opened here if needed), chained after the
   * earlier send-aheads, without waiting: the commit awaits the chain. A failure surfaces there
   * (the transaction is then aborted and the task recovers as for any commit failure).
   */
  #sendAhead(t: KafkaTask): void {
    const topicMessages = [...t.messages].map(([topic, messages]) => ({ topic, messages }));
    t.messages = new Map();
    t.pendingBytes = 0;
    t.sending = this.#chainSend(t, topicMessages);
  }

  /** Chains a send of `topicMessages` in the task's transaction after its earlier sends. */
  #chainSend(t: KafkaTask, topicMessages: TopicMessages[]): Promise<void> {
    // This batch's records, taken now: the sends may complete after the batch went to its commit
    // and the task moved on to the next batch (whose records must not receive these).
    const sentMeta = t.sentMeta;
    const sentCounts = t.sentCounts;
    const chain = (t.sending ?? Promise.resolve()).then(async () => {
      t.txn ??= await t.producer.transaction();
      // Several bounded sends: one produce request must stay under the broker's message.max.bytes.
      for (const chunk of chunkMessages(topicMessages)) {
        sentMeta.push(...(await t.txn.sendBatch({ topicMessages: chunk, acks: -1 })));
      }
      for (const tm of topicMessages)
        sentCounts.set(tm.topic, (sentCounts.get(tm.topic) ?? 0) + tm.messages.length);
    });
    chain.catch(() => undefined); // awaited (and handled) by the commit or the discard
    return chain;
  }

  #messages(t: KafkaTask): TopicMessages[] {
    const k = this.config.kafka;
    for (const c of t.logged.drainChanges()) {
      this.#queue(t, k.topics.changelog, { key: c.key, value: c.value, partition: t.p });
    }
    return [...t.messages].map(([topic, messages]) => ({ topic, messages }));
  }

  #queue(t: KafkaTask, topic: string, m: Message): void {
    const list = t.messages.get(topic);
    if (list === undefined) t.messages.set(topic, [m]);
    else list.push(m);
  }

  /**
   * `kafka.deadLetterMaxBytes`, lowered to fit the dead-letter topic's `max.message.bytes` (less
   * 16 KiB for the dead letter's other fields and the batch framing).
   */
  async #deadLetterBound(): Promise<number> {
    const k = this.config.kafka;
    let res: Awaited<ReturnType<Admin['describeConfigs']>>;
    try {
      res = await this.#admin!.describeConfigs({
        resources: [{ type: TOPIC_RESOURCE, name: k.topics.deadLetter, configNames: ['max.message.bytes'] }],
        includeSynonyms: false,
      });
    } catch (e) {
      // Least privilege (docs/OPERATIONS.md) grants no DESCRIBE_CONFIGS: the configured bound then
      // stands on its own, as it must fit the broker's default max.message.bytes (1 MiB) anyway.
      if (kafkaAccessFailure(e)?.kind !== 'authorization') throw e;
      this.#log.warn(
        'cannot read the dead-letter topic max.message.bytes (no DESCRIBE_CONFIGS ACL); dead letters are bounded by kafka.deadLetterMaxBytes alone',
        { topic: k.topics.deadLetter, bytes: k.deadLetterMaxBytes },
      );
      return k.deadLetterMaxBytes;
    }
    const entry = res.resources[0]?.configEntries.find((c) => c.configName === 'max.message.bytes');
    const topicMax = Number(entry?.configValue);
    if (!Number.isFinite(topicMax) || topicMax <= 0) return k.deadLetterMaxBytes;
    return Math.max(1_024, Math.min(k.deadLetterMaxBytes, topicMax - 16 * 1024));
  }

  /** Registers our output schemas (outputFormat confluent): labels and dead letters carry their ids. */
  async #prepareOutputs(): Promise<void> {
    const k = this.config.kafka;
    if (k.outputFormat !== 'confluent' || this.#serde === undefined) return;
    await this.#serde.prepareOutput(k.topics.pointwise, 'PointwiseLabels');
    await this.#serde.prepareOutput(k.topics.pairwise, 'PairwiseLabels');
    await this.#serde.prepareOutput(k.topics.listwise, 'ListwiseLabels');
    await this.#serde.prepareOutput(k.topics.deadLetter, 'DeadLetter');
  }

  /** Plain Avro bytes of a record as the output format wants them (Confluent: framed with the topic's schema id). */
  #frame(topic: string, name: ContractName, body: Buffer): Buffer {
    return this.#serde !== undefined && this.config.kafka.outputFormat === 'confluent'
      ? this.#serde.frame(topic, name, body)
      : body;
  }

  #encode<N extends ContractName>(topic: string, name: N, value: Contracts[N]): Buffer {
    return this.#serde !== undefined && this.config.kafka.outputFormat === 'confluent'
      ? this.#serde.encode(topic, name, value)
      : encodeAvro(name, value);
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
    if (this.config.kafka.inputFormat !== 'confluent' || this.#serde === undefined) return true;
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
        if (this.#stopping || this.#recovering !== undefined || isStale()) return false;
      }
    }
  }

  /**
   * Starts the batch's commit: one Kafka transaction with its outputs, changelog and offsets, then
   * the SQLite commit ({@link #finishCommit}). Returns once it is under way: the next batch is
   * processed meanwhile, its state changes held in the task's overlay and its sends chained
   * after this commit (they belong to the next transaction). A previous commit still in flight is
   * awaited first (one transaction at a time), and its failure is thrown here.
   */
  async #commit(t: KafkaTask): Promise<void> {
    await this.#settleCommit(t);
    const k = this.config.kafka;
    const next = { ...t.join.nextOffsets() };
    const offsets = (['ranker', 'impression'] as const)
      .filter((s) => next[s] !== null && next[s] !== t.committed[s])
      .map((s) => ({ topic: this.#topic(s), partitions: [{ partition: t.p, offset: String(next[s]) }] }));
    // The positions also go to the changelog, in this transaction: a restored task knows them
    // even when the group's offset fetch still answers with older ones (KAFKA-17507).
    let inputOffsets: InputOffsets | undefined;
    if (offsets.length > 0) {
      inputOffsets = {
        ranker: next.ranker ?? t.committed.ranker ?? -1,
        impression: next.impression ?? t.committed.impression ?? -1,
      };
      this.#queue(t, k.topics.changelog, {
        key: INPUT_OFFSETS_KEY,
        value: encodeInputOffsets(inputOffsets),
        partition: t.p,
      });
    }
    const topicMessages = this.#messages(t);
    const changelogCount = topicMessages.find((m) => m.topic === k.topics.changelog)?.messages.length ?? 0;
    if (topicMessages.length === 0 && offsets.length === 0 && t.sending === undefined) {
      t.store.commit();
      this.#resetBatch(t);
      return;
    }
    if (topicMessages.length > 0) t.sending = this.#chainSend(t, topicMessages);
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
    const committing = this.#finishCommit(t, batch);
    t.committing = committing;
    t.sending = committing;
    // A failure is handled by the task's recovery; the next commit or discard also sees it.
    committing.catch((e: unknown) => this.#fail(t, e));
  }

  /** Waits for the commit in flight (rethrowing its failure); after it, no send is pending. */
  async #settleCommit(t: KafkaTask): Promise<void> {
    const c = t.committing;
    if (c === undefined) return;
    await c;
    if (t.committing === c) t.committing = undefined;
    if (t.sending === c) t.sending = undefined;
  }

  /** Commits a batch's Kafka transaction, then SQLite with the changelog position it reflects. */
  async #finishCommit(t: KafkaTask, b: CommittingBatch): Promise<void> {
    const k = this.config.kafka;
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
    for (const s of ['ranker', 'impression'] as const) if (b.next[s] !== null) t.committed[s] = b.next[s];
    this.metrics.commitLatency.observe(Number(process.hrtime.bigint() - b.started) / 1e9);
    this.metrics.batchRecords.observe(b.processed);
    for (const [topic, n] of b.sentCounts) this.metrics.recordsOut.inc({ topic }, n);
    this.#exportCounters(t, b.counters, b.paths);
  }

  #exportCounters(t: KafkaTask, c: JoinCounters, paths: JoinTask['rankerPaths']): void {
    const e = t.exported;
    const inc = (outcome: string, now: number, before: number) => {
      if (now > before) this.metrics.outcomes.inc({ outcome }, now - before);
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
      if (now > before) this.metrics.deadLetters.inc({ reason }, now - before);
    };
    dl('MALFORMED', c.malformed, e.malformed);
    dl('INVALID', c.invalid, e.invalid);
    dl('LATE', c.late, e.late);
    dl('ORPHAN', c.orphans, e.orphans);
    dl('LABEL_FAILED', c.labelFailed, e.labelFailed);
    if (c.deadLettersTruncated > e.deadLettersTruncated)
      this.metrics.deadLettersTruncated.inc(c.deadLettersTruncated - e.deadLettersTruncated);
    t.exported = structuredClone(c);
    for (const path of ['columns', 'generic'] as const) {
      const d = paths[path] - t.exportedPaths[path];
      if (d > 0) this.metrics.rankerPaths.inc({ path }, d);
    }
    t.exportedPaths = { ...paths };
  }

  #resetBatch(t: KafkaTask): void {
    t.messages = new Map();
    t.pendingBytes = 0;
    t.txn = undefined;
    t.sending = undefined;
    t.committing = undefined;
    t.sentMeta = [];
    t.sentCounts = new Map();
    t.processed = 0;
  }

  /** Rolls the open batch back: its transaction (if sends began) is aborted, SQLite rolled back. */
  async #discardBatch(t: KafkaTask): Promise<void> {
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
    this.#resetBatch(t);
  }

  #fail(t: KafkaTask, e: unknown): void {
    if (t.broken) return;
    t.broken = true;
    if (this.#tasks.get(t.p) !== t) {
      // Already revoked and closing: the new owner fenced its producer, which is what failed.
      // Its batch is discarded by the close; the rest of this member is fine.
      this.#log.info('a revoked task failed while closing; its batch is discarded', {
        partition: t.p,
        error: errorMessage(e),
      });
      return;
    }
    // Name the batch that failed: its partition and the input offsets it covered.
    this.#scheduleRecovery(e, {
      partition: t.p,
      topics: [this.#topic('ranker'), this.#topic('impression')],
      committed: t.committed,
      fetchedUpTo: { ranker: t.pos.ranker.next, impression: t.pos.impression.next },
    });
  }

  /** Closes a task: commit its batch (graceful) or discard it, disconnect, close SQLite. */
  async #closeTask(t: KafkaTask, commit: boolean): Promise<void> {
    this.#tasks.delete(t.p);
    this.#retired.push(t.join.counters);
    await t.run(async () => {
      if (commit && !t.broken && t.processed > 0) {
        try {
          await this.#commit(t);
          await this.#settleCommit(t);
        } catch (e) {
          this.#log.warn('final commit failed; the batch will be reprocessed', { partition: t.p, error: e });
          await this.#discardBatch(t);
        }
      } else await this.#discardBatch(t);
      t.broken = true;
      await t.producer.disconnect().catch(() => undefined);
      t.store.close();
    });
  }

  #closeTaskAsync(t: KafkaTask, commit: boolean): void {
    const p = this.#closeTask(t, commit).catch((e: unknown) =>
      this.#log.warn('closing a task failed', { partition: t.p, error: e }),
    );
    this.#closing.add(p);
    void p.finally(() => this.#closing.delete(p));
  }

  /**
   * Recovery from a transactional or consumer failure: leave the group, drop every task's
   * uncommitted state, rejoin. Restores and committed offsets make it exactly once.
   */
  #scheduleRecovery(e: unknown, where: Record<string, unknown> = {}): void {
    const access = kafkaAccessFailure(e);
    if (access !== undefined && access.kind !== 'connection') {
      // A missing ACL or refused credentials: rejoining would fail the same way, forever.
      if (this.#fatalSeen) return;
      this.#fatalSeen = true;
      this.#joined = false;
      void explainKafkaError(e, {
        kafka: this.config.kafka,
        grants: aclsForRole('labeler', this.config),
        role: 'labeler',
      }).then((err) => {
        this.#log.error('the cluster refused access; stopping', { error: errorMessage(err) });
        this.#rejectFatal(err);
      });
      return;
    }
    if (this.#stopping || this.#recovering !== undefined) return;
    this.#joined = false;
    for (const t of this.#tasks.values()) if (!t.broken) this.#trackProgress(t);
    this.#log.warn('recovering from a failure: rejoining the group with fresh tasks', {
      error: errorMessage(e),
      ...where,
    });
    if (isTooLargeError(e) && this.#admin) void explainTooLarge(this.#admin, this.config.kafka, this.#log);
    this.#recovering = (async () => {
      await sleep(0);
      const consumer = this.#consumer;
      this.#consumer = undefined;
      await consumer?.disconnect().catch(() => undefined);
      for (const t of [...this.#tasks.values()]) await this.#closeTask(t, false);
      await Promise.allSettled([...this.#closing]);
      for (let attempt = 1; !this.#stopping; attempt++) {
        try {
          await sleep(Math.min(5_000, 200 * attempt));
          await this.#startConsumer();
          return;
        } catch (err) {
          this.#log.warn('restarting the consumer failed', { attempt, error: errorMessage(err) });
        }
      }
    })().finally(() => {
      this.#recovering = undefined;
    });
  }
}

/** Bytes of record values per produce request (the broker's default message.max.bytes is 1 MiB). */
const MAX_REQUEST_BYTES = 512 * 1024;

/**
 * Splits topic messages into groups of at most {@link MAX_REQUEST_BYTES} value bytes (a larger
 * single message goes alone), keeping the order of each topic's messages.
 *
 * @example
 * chunkMessages([{ topic: 't', messages }]).length; // number of sendBatch calls
 */
export function chunkMessages(all: TopicMessages[], maxBytes = MAX_REQUEST_BYTES): TopicMessages[][] {
  const chunks: TopicMessages[][] = [];
  let cur: TopicMessages[] = [];
  let bytes = 0;
  for (const tm of all) {
    let part: Message[] = [];
    for (const m of tm.messages) {
      const size = (m.value === null || m.value === undefined ? 0 : Buffer.byteLength(m.value)) + 64;
      if (bytes + size > maxBytes && bytes > 0) {
        if (part.length > 0) cur.push({ topic: tm.topic, messages: part });
        chunks.push(cur);
        cur = [];
        part = [];
        bytes = 0;
      }
      part.push(m);
      bytes += size;
    }
    if (part.length > 0) cur.push({ topic: tm.topic, messages: part });
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/**
 * Runs the service until `stopSignal` aborts (default: SIGTERM/SIGINT): metrics endpoint, graceful
 * stop bounded by `kafka.stopTimeoutMs`. A stop during start-up stops the start (no member is left
 * in the group) and returns normally; a fatal start-up error closes the metrics endpoint and is
 * thrown, so the process exits non-zero at once instead of being held alive by the endpoint.
 *
 * @example
 * await runLabelService(loadConfig());
 */
export async function runLabelService(config: Config, stopSignal?: AbortSignal): Promise<void> {
  const log = logger('label-service');
  // Imported here: label-threads imports this module (its threads run LabelService).
  const { createLabelRunner } = await import('./label-threads.ts');
  const svc = createLabelRunner(config);
  let server: MetricsServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= stopWithin(svc, config.kafka.stopTimeoutMs, log);
    return stopping;
  };
  let signalled = false;
  const ac = new AbortController();
  const signal = stopSignal ?? ac.signal;
  const onSignal = (sig: NodeJS.Signals) => ac.abort(sig);
  if (stopSignal === undefined) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const stopped = new Promise<void>((resolve) => {
    const onAbort = () => {
      log.info('signal received, stopping', { signal: signal.reason, withinMs: config.kafka.stopTimeoutMs });
      signalled = true;
      void stop().finally(resolve);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  const access = { kafka: config.kafka, grants: aclsForRole('labeler', config), role: 'labeler' };
  try {
    if (config.metrics.enabled) {
      server = await serveMetrics(svc.metrics, config.metrics.port, () => svc.healthy(), config.metrics.host);
      log.info('metrics listening', { port: server.port, url: `http://127.0.0.1:${server.port}/metrics` });
    }
    // A stop during start-up resolves `stopped` within kafka.stopTimeoutMs even when the start is
    // still waiting (for a group join, a broker): do not wait for the start beyond that.
    const starting = svc.start();
    starting.catch(() => undefined);
    try {
      if ((await Promise.race([starting.then(() => 'started' as const), stopped])) !== 'started') return;
    } catch (e) {
      // Stopped by a signal while starting: not a failure.
      if (signalled) return await stopped;
      throw e;
    }
    // A stream thread dying fails the runner: stop the others and fail, so the process is restarted.
    await Promise.race([stopped, svc.failed()]);
  } catch (e) {
    // A stream thread died, or the cluster refused access: stop the others and fail, so the
    // process exits non-zero (with the missing permission named).
    await stop();
    throw await explainKafkaError(e, access);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await server?.close();
  }
}

/**
 * `svc.stop()`, given at most `ms`: past it a warning is logged and this resolves anyway (the
 * caller exits; open transactions are aborted by the partitions' next owner, and the member
 * leaves the group at its session timeout).
 */
async function stopWithin(svc: { stop(): Promise<void> }, ms: number, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  const res = await Promise.race([
    svc.stop().catch((e: unknown) => log.warn('stop failed', { error: e })),
    late,
  ]);
  clearTimeout(timer);
  if (res === 'late') {
    log.warn('stop did not finish in kafka.stopTimeoutMs; exiting anyway', { ms });
  }
}
