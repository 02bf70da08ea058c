/**
 * `subscribeLabels`: the label topics as an async iterator of typed, decoded messages, for
 * downstream trainers.
 *
 * Guarantees:
 * - isolation read_committed: only labels of committed labeler transactions are seen (aborted
 *   ones never are), as DESIGN.md "Exactly once" requires of every reader;
 * - commit after processing: a message's offset is committed only once the caller has pulled the
 *   NEXT message (so it finished the previous one), or called `commit()` / `close()`. A crash
 *   therefore re-delivers at most the message(s) in flight — at-least-once, never a skip;
 * - backpressure: nothing is read ahead of the caller beyond one kafkajs fetch; memory stays
 *   bounded by `maxBytes` whatever the lag.
 *
 * How: kafkajs `consumer.run({ eachBatch })` with auto-resolve off. The batch handler hands one
 * message at a time to the iterator and waits — heartbeating, so a slow trainer keeps its
 * partitions — until the iterator acknowledges it; then it resolves the offset and lets kafkajs'
 * runner commit (`autoCommitThreshold` = `commitEvery`). kafkajs' runner stays the one place that
 * decides about heartbeats and commits (STYLE.md); we only decide WHEN an offset is resolved.
 * Resolving through the batch's `resolveOffset` also moves past the control record that ends
 * each transaction, so a transactional topic never leaves the group stuck one offset short.
 */
import { type Consumer, type EachBatchPayload, Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { type Config, parseConfig } from '../config/index.ts';
import { DecodeError, errorMessage, isRankdistillError, RankdistillError } from '../errors.ts';
import { kafkaSecurity } from '../kafka/security.ts';
import { type RegistrySerde, registrySerdeFromConfig } from '../registry/serde.ts';
import {
  assertLabelKind,
  decodeLabel,
  LabelDecodeError,
  type LabelKind,
  type LabelsByKind,
  type LabelWireFormat,
} from './types.ts';

/** One decoded label message and where it came from. */
export interface LabelMessage<K extends LabelKind = LabelKind> {
  kind: K;
  /** The decoded label record (PointwiseLabels, PairwiseLabels or ListwiseLabels by `kind`). */
  value: LabelsByKind[K];
  /** Message key (the user_id), or null. */
  key: string | null;
  topic: string;
  partition: number;
  /** Kafka offset (int64 as a decimal string, as kafkajs gives it). */
  offset: string;
  /** Message timestamp, ms since the epoch. */
  timestamp: number;
}

/** Options of {@link subscribeLabels}. */
export interface SubscribeLabelsOptions<K extends LabelKind> {
  /** Bootstrap brokers, host:port. */
  brokers: string[];
  kind: K;
  /** Consumer group: the committed position survives restarts under this id. */
  groupId: string;
  /** Where a group without committed offsets starts. Default `earliest`. */
  from?: 'earliest' | 'latest';
  /** Label topic. Default: `kafka.topics.<kind>` of `config` (or of the default config). */
  topic?: string;
  /** Wire format of the label records. Default: `kafka.outputFormat` of `config` (`avro`). */
  format?: LabelWireFormat;
  /**
   * Confluent-compatible schema registry: with format `confluent`, each fetched batch's writer
   * schemas are fetched from it and records are decoded by schema resolution (so labels written
   * with an older or newer compatible schema still decode). Default: `kafka.schemaRegistryUrl` of
   * `config`; without one, the writer is assumed to be our own schema.
   */
  schemaRegistryUrl?: string;
  /**
   * An undecodable message: `throw` (default) makes the iterator reject with a
   * {@link LabelDecodeError} naming topic/partition/offset and closes the subscription without
   * committing it (a restart meets it again); `skip-and-report` calls `report` and moves on (the
   * skipped offset is committed with the next processed message).
   */
  onInvalid?: 'throw' | 'skip-and-report';
  /** Called for every skipped message under `onInvalid: 'skip-and-report'`. */
  report?: (error: LabelDecodeError) => void;
  /**
   * Commit once this many messages were processed (and at the end of every fetched batch).
   * Default 1: a crash re-delivers only the message in flight. Larger values trade duplicates
   * after a crash for fewer commit round trips.
   */
  commitEvery?: number;
  /**
   * Config whose topic names and output format are the defaults, and whose `kafka.ssl`,
   * `kafka.sasl` and `kafka.schemaRegistryAuth` secure the connections (e.g. `loadConfig()`).
   */
  config?: Config;
  /** Kafka client id. Default `rankdistill-label-client`. */
  clientId?: string;
  /** Consumer group session timeout. Default 30000 (broker minimum is usually 6000). */
  sessionTimeoutMs?: number;
  /** Most bytes one fetch may return (bounds the memory held ahead of the caller). Default 1 MiB. */
  maxBytes?: number;
  /**
   * Longest a fetch waits on the broker for new labels. Default 500: `close()` waits for the
   * fetch in flight, so this bounds how long closing an idle subscription takes.
   */
  maxWaitMs?: number;
}

/** Counters of a subscription. */
export interface SubscriptionStats {
  /** Messages handed to the caller. */
  delivered: number;
  /** Messages skipped as undecodable (`skip-and-report`). */
  skipped: number;
}

/** The iterator returned by {@link subscribeLabels}. */
export interface LabelSubscription<K extends LabelKind> extends AsyncIterableIterator<LabelMessage<K>> {
  /**
   * Marks every message received so far as processed and commits it now.
   * Call it before `break`ing out of a `for await` if the last message was processed.
   */
  commit(): Promise<void>;
  /** Commits like {@link commit}, then leaves the group and disconnects. Idempotent. */
  close(): Promise<void>;
  /**
   * Disconnects WITHOUT committing the message in flight (it is re-delivered to the group).
   * `for await` calls this on `break` and on a throw from the loop body — the body may have
   * failed, so the message is not assumed processed. Call `commit()` first if it was.
   */
  return(): Promise<IteratorResult<LabelMessage<K>, undefined>>;
  readonly stats: Readonly<SubscriptionStats>;
}

type AckMode = 'processed' | 'commit' | 'cancel';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A message handed from the batch handler to the iterator, and the handler's wait for its ack. */
interface Slot<K extends LabelKind> {
  msg: LabelMessage<K>;
  ack: Deferred<AckMode>;
  acked: boolean;
  /** Resolved once a `commit` ack was committed (or the slot was dropped). */
  committed: Deferred<void>;
}

/** How often the handler heartbeats while the caller holds a message (kafkajs default interval). */
const HEARTBEAT_EVERY_MS = 3_000;

/**
 * Subscribes to a label topic. Nothing connects until the first `next()`.
 *
 * @example
 * const labels = subscribeLabels({ brokers: ['127.0.0.1:9092'], kind: 'pairwise', groupId: 'bpr-trainer' });
 * for await (const m of labels) {
 *   for (const p of m.value.pairs) await trainStep(p.pos_item, p.neg_item, p.weight);
 * } // each message is committed when the loop pulls the next one
 */
export function subscribeLabels<K extends LabelKind>(
  options: SubscribeLabelsOptions<K>,
): LabelSubscription<K> {
  return new Subscription(options);
}

class Subscription<K extends LabelKind> implements LabelSubscription<K> {
  readonly stats: SubscriptionStats = { delivered: 0, skipped: 0 };
  private readonly kind: K;
  private readonly topic: string;
  private readonly format: LabelWireFormat;
  private readonly serde: RegistrySerde | undefined;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private started: Promise<void> | undefined;
  /** Offered by the handler, not yet pulled by the caller. */
  private buffered: Slot<K> | undefined;
  /** Pulled by the caller, not yet acknowledged. */
  private current: Slot<K> | undefined;
  /** A `next()` waiting for the handler's next offer. */
  private reader: Deferred<void> | undefined;
  private failure: unknown;
  private closing = false;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: SubscribeLabelsOptions<K>) {
    assertLabelKind(options.kind);
    if (!Array.isArray(options.brokers) || options.brokers.length === 0) {
      throw new RankdistillError('USAGE', 'subscribeLabels: brokers must list at least one host:port', {
        details: { brokers: options.brokers },
      });
    }
    if (typeof options.groupId !== 'string' || options.groupId === '') {
      throw new RankdistillError('USAGE', 'subscribeLabels: groupId must be a non-empty string');
    }
    const commitEvery = options.commitEvery ?? 1;
    if (!Number.isInteger(commitEvery) || commitEvery < 1) {
      throw new RankdistillError('USAGE', `commitEvery must be a positive integer, found ${commitEvery}`);
    }
    const config = options.config ?? parseConfig({});
    this.kind = options.kind;
    this.topic = options.topic ?? config.kafka.topics[options.kind];
    this.format = options.format ?? config.kafka.outputFormat;
    const registryUrl = options.schemaRegistryUrl ?? config.kafka.schemaRegistryUrl;
    this.serde =
      this.format === 'confluent'
        ? registrySerdeFromConfig({
            schemaRegistryUrl: registryUrl,
            schemaRegistryAuth: config.kafka.schemaRegistryAuth,
          })
        : undefined;
    this.kafka = new Kafka({
      clientId: options.clientId ?? 'rankdistill-label-client',
      brokers: options.brokers,
      logLevel: logLevel.NOTHING,
      // TLS and SASL of options.config's kafka.ssl / kafka.sasl.
      ...kafkaSecurity(config.kafka),
    });
    this.consumer = this.kafka.consumer({
      groupId: options.groupId,
      readUncommitted: false,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: HEARTBEAT_EVERY_MS,
      maxBytes: options.maxBytes ?? 1024 * 1024,
      maxWaitTimeInMs: options.maxWaitMs ?? 500,
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      if (!e.payload.restart) {
        this.fail(
          new RankdistillError(
            'KAFKA_UNAVAILABLE',
            `label consumer of ${this.topic} crashed: ${errorMessage(e.payload.error)}`,
            { cause: e.payload.error, details: { topic: this.topic, groupId: options.groupId } },
          ),
        );
      }
    });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<LabelMessage<K>, undefined>> {
    if (this.reader !== undefined) {
      throw new RankdistillError('USAGE', 'next() called while a previous next() is still pending');
    }
    // Pulling the next message means the previous one was processed.
    if (this.current !== undefined) this.acknowledge(this.current, 'processed');
    this.current = undefined;
    if (this.closing) return this.finish();
    this.started ??= this.start();
    await this.started;
    for (;;) {
      if (this.failure !== undefined) {
        const failure = this.failure;
        this.failure = undefined;
        await this.stop();
        throw failure;
      }
      if (this.closing) return this.finish();
      const slot = this.buffered;
      if (slot !== undefined) {
        this.buffered = undefined;
        this.current = slot;
        this.stats.delivered += 1;
        return { done: false, value: slot.msg };
      }
      this.reader = deferred();
      try {
        await this.reader.promise;
      } finally {
        this.reader = undefined;
      }
    }
  }

  async commit(): Promise<void> {
    const slot = this.current;
    if (slot === undefined || slot.acked) return;
    this.acknowledge(slot, 'commit');
    await slot.committed.promise;
  }

  async close(): Promise<void> {
    if (!this.closing) await this.commit();
    await this.stop();
  }

  async return(): Promise<IteratorResult<LabelMessage<K>, undefined>> {
    await this.stop();
    return { done: true, value: undefined };
  }

  private async finish(): Promise<IteratorResult<LabelMessage<K>, undefined>> {
    await this.stop();
    return { done: true, value: undefined };
  }

  private async start(): Promise<void> {
    try {
      // kafkajs would retry a missing topic for seconds and then fail with a protocol error;
      // one metadata call says it plainly and at once.
      const admin = this.kafka.admin();
      let topics: string[];
      try {
        await admin.connect();
        topics = await admin.listTopics();
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
      if (!topics.includes(this.topic)) {
        this.fail(
          new RankdistillError(
            'TOPIC_MISSING',
            `label topic ${this.topic} does not exist at ${this.options.brokers.join(',')}: start the labeler (it creates its topics) or create the topic, then subscribe again`,
            { details: { topic: this.topic } },
          ),
        );
        return;
      }
      await this.consumer.connect();
      await this.consumer.subscribe({
        topics: [this.topic],
        fromBeginning: (this.options.from ?? 'earliest') === 'earliest',
      });
      await this.consumer.run({
        autoCommit: true,
        autoCommitThreshold: this.options.commitEvery ?? 1,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: (payload) => this.onBatch(payload),
      });
    } catch (cause) {
      this.fail(
        new RankdistillError(
          'KAFKA_UNAVAILABLE',
          `cannot subscribe to ${this.topic} at ${this.options.brokers.join(',')}: ${errorMessage(cause)}`,
          { cause, details: { topic: this.topic, groupId: this.options.groupId } },
        ),
      );
    }
  }

  /** The kafkajs batch handler: hands messages over one at a time, in offset order. */
  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } = payload;
    if (!(await this.prefetch(batch.messages, heartbeat, () => this.closing || !isRunning() || isStale())))
      return;
    for (const m of batch.messages) {
      if (this.closing || !isRunning() || isStale()) return;
      const decoded = this.decode(batch.topic, batch.partition, m);
      if (decoded instanceof LabelDecodeError) {
        if ((this.options.onInvalid ?? 'throw') === 'throw') {
          this.fail(decoded);
          return;
        }
        this.stats.skipped += 1;
        this.options.report?.(decoded);
        resolveOffset(m.offset);
        await commitOffsetsIfNecessary();
        continue;
      }
      const slot: Slot<K> = { msg: decoded, ack: deferred(), acked: false, committed: deferred() };
      this.offer(slot);
      let mode: AckMode;
      try {
        mode = await this.waitForAck(slot, heartbeat);
      } catch (e) {
        // A rebalance (or a lost coordinator) while the caller held the message: drop it; the
        // partition's new owner re-reads it from the last commit (at-least-once).
        this.drop(slot);
        throw e;
      }
      if (mode === 'cancel') {
        slot.committed.resolve();
        return;
      }
      resolveOffset(m.offset);
      try {
        if (mode === 'commit') await commitOffsetsIfNecessary(payload.uncommittedOffsets());
        else await commitOffsetsIfNecessary();
      } finally {
        slot.committed.resolve();
      }
    }
  }

  private decode(topic: string, partition: number, m: KafkaMessage): LabelMessage<K> | LabelDecodeError {
    const where = { source: topic, partition, offset: m.offset };
    const r =
      m.value === null
        ? ({ ok: false, error: new DecodeError('expected a label record, found a null value') } as const)
        : decodeLabel(this.kind, m.value, this.format, this.serde?.writerFor);
    if (!r.ok) return new LabelDecodeError(this.kind, where, r.error);
    return {
      kind: this.kind,
      value: r.value,
      key: m.key === null ? null : m.key.toString('utf8'),
      topic,
      partition,
      offset: m.offset,
      timestamp: Number(m.timestamp),
    };
  }

  /**
   * Fetches the writer schemas of a batch from the registry (format `confluent` with a registry).
   * An unreachable registry is retried with backoff, heartbeating, never reported as undecodable
   * labels. False when the subscription is closing or the batch went stale.
   */
  private async prefetch(
    messages: KafkaMessage[],
    heartbeat: () => Promise<void>,
    gone: () => boolean,
  ): Promise<boolean> {
    if (this.serde === undefined) return true;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.serde.prefetch(messages.map((m) => m.value));
        return true;
      } catch (e) {
        if (!isRankdistillError(e, 'SCHEMA_REGISTRY_FAILED')) throw e;
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** Math.min(attempt, 5))));
        await heartbeat();
        if (gone()) return false;
      }
    }
  }

  private offer(slot: Slot<K>): void {
    this.buffered = slot;
    this.reader?.resolve();
  }

  private acknowledge(slot: Slot<K>, mode: AckMode): void {
    if (slot.acked) return;
    slot.acked = true;
    slot.ack.resolve(mode);
  }

  private drop(slot: Slot<K>): void {
    if (this.buffered === slot) this.buffered = undefined;
    slot.acked = true;
    slot.committed.resolve();
  }

  /** Waits for the caller to acknowledge `slot`, heartbeating meanwhile. */
  private async waitForAck(slot: Slot<K>, heartbeat: () => Promise<void>): Promise<AckMode> {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((resolve) => {
        timer = setTimeout(() => resolve('tick'), HEARTBEAT_EVERY_MS);
      });
      const r = await Promise.race([slot.ack.promise, tick]);
      clearTimeout(timer);
      if (r !== 'tick') return r;
      await heartbeat();
    }
  }

  private fail(error: unknown): void {
    if (this.failure === undefined && !this.closing) this.failure = error;
    this.reader?.resolve();
  }

  /** Cancels the handler's wait, leaves the group, disconnects. Idempotent. */
  private stop(): Promise<void> {
    this.closing = true;
    this.stopped ??= (async () => {
      for (const slot of [this.current, this.buffered]) {
        if (slot !== undefined && !slot.acked) this.acknowledge(slot, 'cancel');
      }
      this.buffered = undefined;
      this.reader?.resolve();
      if (this.started !== undefined) await this.consumer.disconnect().catch(() => {});
    })();
    return this.stopped;
  }
}
