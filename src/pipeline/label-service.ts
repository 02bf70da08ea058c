/**
 * The labeling service over Kafka (Kafka Streams' `StreamThread`): one consumer-group member and
 * its loop — start and stop, group membership, fetched batches into their tasks, the periodic
 * tick, and recovery from a failure. The data-flow picture of DESIGN.md:
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
 * The other rooms of the house (tasks, their opening, pump, outputs, commits) are mapped in
 * docs/OPERATIONS.md, "The labeler's files".
 *
 * Any transactional failure (fenced, timed out, broker error) aborts, throws the task state away
 * and restarts the consumer: the group rebalances, tasks restore from their changelogs and resume
 * from the committed offsets, so no label is lost or duplicated.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Config } from '../config/schema.ts';
import { errorMessage, isRankdistillError, RankdistillError } from '../errors.ts';
import { checkBrokerApiVersions } from '../kafka/api-versions.ts';
import { coPartitionedAssigner } from '../kafka/assigner.ts';
import { createKafka } from '../kafka/client.ts';
import { ensureTopics, type TopicLayout } from '../kafka/topics.ts';
import { assertMarkerRoom, explainTooLarge, isTooLargeError } from '../kafka/txn-markers.ts';
import { type Logger, logger } from '../log.ts';
import { LabelMetrics } from '../metrics/index.ts';
import { type RegistrySerde, registrySerdeFromConfig } from '../registry/serde.ts';
import { AccessRefusal } from './access-refusal.ts';
import { BatchIntake } from './batch-intake.ts';
import { inputTopic, type KafkaTask } from './kafka-task.ts';
import type { OutcomeCounts } from './outcomes.ts';
import { deadLetterBound, prepareOutputs } from './output-setup.ts';
import { PartitionProgress } from './partition-progress.ts';
import { RecordCollector } from './record-collector.ts';
import { TaskCommitter } from './task-commit.ts';
import { TaskManager } from './task-manager.ts';
import { exportGauges } from './task-metrics.ts';
import { TaskPump } from './task-pump.ts';

export { chunkMessages } from './record-collector.ts';

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
  #admin: Admin | undefined;
  #consumer: Consumer | undefined;
  #layout: TopicLayout | undefined;
  readonly #tasks: TaskManager;
  /** Built at start, once the topics' layout is known. */
  #committer: TaskCommitter | undefined;
  #pump: TaskPump | undefined;
  #intake: BatchIntake | undefined;
  #joined = false;
  #running = false;
  #stopping = false;
  /** The start in flight (or done): a stop waits for it, and it gives up at its next step. */
  #starting: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  readonly #progress: PartitionProgress;
  #recovering: Promise<void> | undefined;
  readonly #refusal: AccessRefusal;
  readonly #peers: number;
  #startedAt = 0;
  /** Until when batches are left unprocessed, waiting for the peers' join (0: not waiting). */
  #holdUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Schema registry serde, when `kafka.schemaRegistryUrl` is set. */
  readonly #serde: RegistrySerde | undefined;
  /** Bound on a dead letter's original bytes ({@link deadLetterBound}). */
  #deadLetterMax: number;

  constructor(config: Config, opts: LabelServiceOptions = {}) {
    this.config = config;
    this.metrics = opts.metrics ?? new LabelMetrics();
    this.#peers = opts.peers ?? 1;
    this.#kafka = createKafka(config.kafka, 'labeler');
    this.#refusal = new AccessRefusal(config, this.#log);
    this.#serde = registrySerdeFromConfig(config.kafka);
    this.#deadLetterMax = config.kafka.deadLetterMaxBytes;
    if (config.kafka.outputFormat === 'confluent' && this.#serde === undefined) {
      throw new RankdistillError(
        'CONFIG_INVALID',
        'kafka.outputFormat confluent needs kafka.schemaRegistryUrl (the schema ids come from a registry); set it, or use outputFormat avro',
      );
    }
    this.#progress = new PartitionProgress(config.metrics.stuckPartitionMs, config.kafka, this.#log);
    this.#tasks = new TaskManager({
      config,
      kafka: this.#kafka,
      metrics: this.metrics,
      log: this.#log,
      serde: this.#serde,
      now: opts.now ?? Date.now,
      admin: () => this.#admin!,
      consumer: () => this.#consumer,
      committer: () => this.#committer!,
      deadLetterMaxBytes: () => this.#deadLetterMax,
      onOpenFailed: (p, e) => {
        this.#progress.noteNoProgress(p);
        this.#scheduleRecovery(e, { partition: p, opening: true });
      },
    });
  }

  /**
   * Rejects when the cluster refuses the credentials or an ACL (KAFKA_AUTHENTICATION_FAILED,
   * KAFKA_AUTHORIZATION_FAILED naming the permission): rejoining cannot fix those, so the service
   * stops recovering and the process should exit.
   */
  failed(): Promise<never> {
    return this.#refusal.refused;
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
    return this.#progress.stuck();
  }

  /** Outcome counts since start (processed, including batches later rolled back). */
  counts(): OutcomeCounts {
    return this.#tasks.counts();
  }

  /** Changelog records replayed into local stores since start. */
  restoredRecords(): number {
    return this.#tasks.restoredRecords();
  }

  /** Partitions this instance currently owns. */
  assignedPartitions(): number[] {
    return this.#tasks.assignedPartitions();
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
    this.#deadLetterMax = await deadLetterBound(this.#admin, this.config.kafka, this.#log);
    await assertMarkerRoom(this.#admin, this.config.kafka);
    await prepareOutputs(this.#serde, this.config.kafka);
    const collector = new RecordCollector(this.config.kafka, this.#layout, this.#serde);
    const onFail = (t: KafkaTask, e: unknown) => this.#fail(t, e);
    this.#committer = new TaskCommitter({
      kafka: this.config.kafka,
      collector,
      metrics: this.metrics,
      log: this.#log,
      onFail,
    });
    this.#pump = new TaskPump({ kafka: this.config.kafka, collector, committer: this.#committer, onFail });
    this.#intake = new BatchIntake({
      kafka: this.config.kafka,
      serde: this.#serde,
      metrics: this.metrics,
      log: this.#log,
      pump: this.#pump,
      tasks: this.#tasks,
      consumer: () => this.#consumer,
      idle: () => this.#stopping || this.#recovering !== undefined,
      onFail,
    });
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
    await this.#tasks.closeAll(true);
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
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => this.#intake?.batchEnd(e.payload));
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

  #onGroupJoin(assignment: Record<string, number[]>): void {
    const next = new Set(assignment[this.config.kafka.topics.rankerOutputs] ?? []);
    const generation = this.#tasks.assign(next);
    this.#joined = true;
    this.#progress.retain(next);
    const share = Math.ceil((this.#layout?.partitions ?? next.size) / this.#peers);
    this.#holdUntil =
      this.#tasks.size === 0 && next.size > share && Date.now() < this.#startedAt + BALANCE_WAIT_MS
        ? this.#startedAt + BALANCE_WAIT_MS
        : 0;
    this.#log.info('partitions assigned', {
      partitions: [...next].sort((a, b) => a - b),
      generation,
    });
    this.#tasks.reconcile();
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, isStale, heartbeat } = payload;
    if (this.#stopping || this.#recovering !== undefined || isStale()) return;
    const p = batch.partition;
    if (!this.#tasks.owns(p)) return;
    if (this.#holdUntil > Date.now()) {
      // More than our share while peers are still joining: leave the batch (it is fetched again).
      await sleep(50);
      return;
    }
    const t = this.#tasks.get(p);
    if (t === undefined) {
      // New task: fence, restore, seek to committed offsets. This batch is stale after the seek.
      await this.#tasks.open(p, heartbeat);
      return;
    }
    await this.#intake!.push(t, payload);
  }

  #tick(): void {
    // Also while recovering: a partition that fails on every attempt spends most time there.
    for (const p of this.stuckPartitions()) this.#progress.logStuck(p, this.#tasks.get(p));
    if (this.#stopping || this.#recovering !== undefined) return;
    for (const t of this.#tasks.tasks()) {
      if (t.broken) continue;
      this.#progress.track(t);
      this.#pump!.schedule(t);
      exportGauges(this.metrics, t);
    }
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
      topics: [inputTopic(this.config.kafka, 'ranker'), inputTopic(this.config.kafka, 'impression')],
      committed: t.committed,
      fetchedUpTo: { ranker: t.pos.ranker.next, impression: t.pos.impression.next },
    });
  }

  /**
   * Recovery from a transactional or consumer failure: leave the group, drop every task's
   * uncommitted state, rejoin. Restores and committed offsets make it exactly once.
   */
  #scheduleRecovery(e: unknown, where: Record<string, unknown> = {}): void {
    // A missing ACL or refused credentials: rejoining would fail the same way, forever.
    const refused = this.#refusal.check(e);
    if (refused === 'first') this.#joined = false;
    if (refused !== undefined) return;
    if (this.#stopping || this.#recovering !== undefined) return;
    this.#joined = false;
    for (const t of this.#tasks.tasks()) if (!t.broken) this.#progress.track(t);
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
      await this.#tasks.closeAll(false);
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
