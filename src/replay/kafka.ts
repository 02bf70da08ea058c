/**
 * The Kafka side of a replay: a time range of the input topics (Kafka record timestamps, resolved
 * per partition with `fetchTopicOffsetsByTimestamp` — Kafka's offsetsForTimes) and topic output.
 *
 * Reading: one consumer in the replay's own group `rankdistill-replay-<id>` (never the live
 * service's), subscribed to both inputs, seeking every partition to the task's position and pausing
 * a side once it reaches the end of its range. As in the live service, a batch is taken only when
 * it was fetched from exactly the task's position (anything else predates a seek), and every
 * partition p of both topics feeds its own {@link TaskRun} — the live service's JoinTask.
 *
 * Topic output: one transactional producer per partition task (`rankdistill-replay-<id>-p<p>`),
 * fenced at start so a killed earlier run's open transaction is aborted; each checkpoint is one
 * transaction with the labels, dead letters and the input offsets for the replay's group. The
 * SQLite store commits after the transaction; if a run died in between, the group's offsets are
 * ahead of the store's checkpoint, and the resumed task reprocesses up to them without producing
 * (the task is deterministic, so it recomputes exactly what that transaction wrote).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { errorMessage, isRankdistillError, RankdistillError } from '../errors.ts';
import { writeFileAtomic } from '../io/files.ts';
import type { Side } from '../join/types.ts';
import { createKafka, createTransactionalProducer } from '../kafka/client.ts';
import { createTopicsAndWait } from '../kafka/topics.ts';
import { logger } from '../log.ts';
import { type RegistrySerde, registrySerdeFromConfig } from '../registry/serde.ts';
import type { ReplayCheckpoint } from './checkpoint.ts';
import type { ReplayContext } from './context.ts';
import { type RunSummary, summarize } from './run-summary.ts';
import { OUTPUT_KINDS, type OutputTopics, type ReplaySink, TopicSink } from './sinks.ts';
import { TaskRun } from './task-run.ts';

const SIDES: readonly Side[] = ['ranker', 'impression'];
/** Buffered records per side above which a partition is paused (as in the live service). */
const MAX_BUFFERED = 20_000;
const log = logger('replay');

/** The input range of every partition, fixed when a replay first starts (range.json). */
export interface KafkaRange {
  partitions: number;
  from: number | null;
  to: number | null;
  /** Per partition: first offset and end offset (exclusive) of each side. */
  start: Array<Record<Side, number>>;
  end: Array<Record<Side, number>>;
}

async function coPartitions(admin: Admin, topics: Record<Side, string>): Promise<number> {
  const existing = new Set(await admin.listTopics());
  const missing = SIDES.map((s) => topics[s]).filter((t) => !existing.has(t));
  if (missing.length > 0) {
    throw new RankdistillError('TOPIC_MISSING', `replay input topic(s) ${missing.join(', ')} do not exist`, {
      details: { topics: missing },
    });
  }
  const md = await admin.fetchTopicMetadata({ topics: [topics.ranker, topics.impression] });
  const count = (t: string) => md.topics.find((x) => x.name === t)?.partitions.length ?? 0;
  const a = count(topics.ranker);
  const b = count(topics.impression);
  if (a !== b) {
    throw new RankdistillError(
      'COPARTITION_MISMATCH',
      `the input topics must be co-partitioned: ${topics.ranker} has ${a} partitions, ${topics.impression} has ${b}`,
      { details: { [topics.ranker]: a, [topics.impression]: b } },
    );
  }
  return a;
}

/**
 * Resolves `[from, to)` to offsets per partition: the first offset whose timestamp is ≥ the time
 * (the end offset when there is none); no `from`: the log start; no `to`: the current end.
 *
 * @example
 * const r = await resolveRange(admin, { ranker: 'ranker-outputs', impression: 'impressions' }, 4, t0, t1);
 */
export async function resolveRange(
  admin: Admin,
  topics: Record<Side, string>,
  partitions: number,
  from: number | undefined,
  to: number | undefined,
): Promise<KafkaRange> {
  const start = Array.from({ length: partitions }, () => ({ ranker: 0, impression: 0 }));
  const end = Array.from({ length: partitions }, () => ({ ranker: 0, impression: 0 }));
  for (const side of SIDES) {
    const topic = topics[side];
    const bounds = await admin.fetchTopicOffsets(topic);
    const low = (p: number) => Number(bounds.find((b) => b.partition === p)?.low ?? 0);
    const high = (p: number) => Number(bounds.find((b) => b.partition === p)?.high ?? 0);
    const at = async (ts: number) => {
      const offs = await admin.fetchTopicOffsetsByTimestamp(topic, ts);
      return (p: number) => Number(offs.find((o) => o.partition === p)?.offset ?? high(p));
    };
    const s = from === undefined ? low : await at(from);
    const e = to === undefined ? high : await at(to);
    for (let p = 0; p < partitions; p++) {
      const st = start[p] as Record<Side, number>;
      const en = end[p] as Record<Side, number>;
      st[side] = Math.max(low(p), s(p));
      en[side] = Math.max(st[side], Math.min(high(p), e(p)));
    }
  }
  return { partitions, from: from ?? null, to: to ?? null, start, end };
}

function loadOrResolveRange(
  ctx: ReplayContext,
  resolve: () => Promise<KafkaRange>,
  partitions: number,
): Promise<KafkaRange> {
  const path = join(ctx.stateDir, 'range.json');
  if (ctx.checkpoints !== null) {
    let saved: KafkaRange | undefined;
    try {
      saved = JSON.parse(readFileSync(path, 'utf8')) as KafkaRange;
    } catch {
      saved = undefined;
    }
    if (saved !== undefined) {
      if (saved.partitions !== partitions) {
        throw new RankdistillError(
          'COPARTITION_MISMATCH',
          `the input topics have ${partitions} partitions now but ${saved.partitions} when this replay started (${path})`,
        );
      }
      return Promise.resolve(saved);
    }
  }
  return resolve().then((r) => {
    if (ctx.checkpoints !== null) writeFileAtomic(path, JSON.stringify(r));
    return r;
  });
}

/**
 * Checks or creates the output topics; returns each one's partition count.
 *
 * @throws RankdistillError TOPIC_MISSING when one is missing and kafka.createTopics is off.
 */
async function ensureOutputTopics(
  admin: Admin,
  cfg: KafkaConfig,
  topics: OutputTopics,
  partitions: number,
): Promise<Record<string, number>> {
  const names = [...new Set(OUTPUT_KINDS.map((k) => topics[k]))];
  const existing = new Set(await admin.listTopics());
  const missing = names.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    if (!cfg.createTopics) {
      throw new RankdistillError(
        'TOPIC_MISSING',
        `replay output topic(s) ${missing.join(', ')} do not exist and kafka.createTopics is off`,
        { details: { topics: missing } },
      );
    }
    await createTopicsAndWait(
      admin,
      missing.map((topic) => ({
        topic,
        numPartitions: partitions,
        replicationFactor: cfg.replicationFactor,
      })),
    );
  }
  for (let attempt = 1; ; attempt++) {
    try {
      const md = await admin.fetchTopicMetadata({ topics: names });
      return Object.fromEntries(md.topics.map((t) => [t.name, t.partitions.length]));
    } catch (e) {
      if (attempt >= 10) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** A transactional producer for partition task p, fenced (a previous owner's open transaction aborted). */
async function taskProducer(kafka: Kafka, ctx: ReplayContext, p: number): Promise<Producer> {
  const producer = createTransactionalProducer(kafka, {
    transactionalId: `${ctx.groupId}-p${p}`,
    transactionTimeout: ctx.opts.config.kafka.transactionTimeoutMs,
  });
  try {
    await producer.connect();
    const fence = await producer.transaction();
    await fence.abort();
  } catch (cause) {
    await producer.disconnect().catch(() => undefined);
    throw new RankdistillError(
      'KAFKA_UNAVAILABLE',
      `cannot start the replay producer: ${errorMessage(cause)}`,
      {
        cause,
      },
    );
  }
  return producer;
}

async function connect(kafka: Kafka): Promise<Admin> {
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (cause) {
    throw new RankdistillError('KAFKA_UNAVAILABLE', `cannot reach Kafka: ${errorMessage(cause)}`, { cause });
  }
  return admin;
}

/**
 * Topic output for a file replay (one task, no input offsets: the output is keyed by user_id and
 * partitioned by key, as the records have no input partition).
 *
 * @example
 * const { sink, close } = await fileInputTopicSink(ctx);
 */
export async function fileInputTopicSink(
  ctx: ReplayContext,
): Promise<{ sink: (ck: ReplayCheckpoint) => ReplaySink; close: () => Promise<void> }> {
  const out = ctx.opts.output;
  if (out.kind !== 'topics') throw new Error('fileInputTopicSink needs topic output');
  const k = ctx.opts.config.kafka;
  const kafka = createKafka(k, 'replay');
  const admin = await connect(kafka);
  let producer: Producer;
  try {
    await ensureOutputTopics(admin, k, out.topics, k.partitions);
    producer = await taskProducer(kafka, ctx, 0);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  return {
    sink: () =>
      new TopicSink({
        partition: 0,
        producer,
        topics: out.topics,
        partitionOf: () => undefined,
        offsets: null,
      }),
    close: () => producer.disconnect().catch(() => undefined),
  };
}

/**
 * Replays the Kafka range of the context into its output.
 *
 * @example
 * const summaries = await replayKafka(ctx);
 */
export async function replayKafka(ctx: ReplayContext): Promise<RunSummary[]> {
  const cfg = ctx.opts.config;
  const k = cfg.kafka;
  const input = ctx.opts.input;
  if (input.kind !== 'kafka') throw new Error('replayKafka needs Kafka input');
  const topics: Record<Side, string> = { ranker: k.topics.rankerOutputs, impression: k.topics.impressions };
  const kafka = createKafka(k, 'replay');
  // Confluent-framed inputs decode through the registry when one is configured.
  const serde = k.inputFormat === 'confluent' ? registrySerdeFromConfig(k) : undefined;
  const admin = await connect(kafka);
  const producers: Producer[] = [];
  const runs: TaskRun[] = [];
  try {
    const n = await coPartitions(admin, topics);
    const range = await loadOrResolveRange(
      ctx,
      () => resolveRange(admin, topics, n, input.from, input.to),
      n,
    );
    const out = ctx.opts.output;
    let outCounts: Record<string, number> = {};
    if (out.kind === 'topics') {
      outCounts = await ensureOutputTopics(admin, k, out.topics, n);
      for (let p = 0; p < n; p++) producers.push(await taskProducer(kafka, ctx, p));
    }
    const total = range.end.reduce((s, e, p) => s + e.ranker + e.impression - sumSides(range.start[p]), 0);
    for (let p = 0; p < n; p++) {
      const sink = (ck: ReplayCheckpoint): ReplaySink =>
        out.kind === 'topics'
          ? new TopicSink({
              partition: p,
              producer: producers[p] as Producer,
              topics: out.topics,
              partitionOf: (t) => (outCounts[t] === n ? p : undefined),
              offsets: { groupId: ctx.groupId, topics },
            })
          : ctx.fileSink(p, ck);
      runs.push(
        TaskRun.open({
          ...ctx.base,
          partition: p,
          storePath: ctx.storePath(p),
          sources: topics,
          inputFormat: k.inputFormat,
          ...(serde === undefined ? {} : { writerFor: serde.writerFor }),
          start: range.start[p] as Record<Side, number>,
          end: range.end[p] as Record<Side, number>,
          sink,
          onStep: () => ctx.progress(runs, total),
        }),
      );
    }
    if (out.kind === 'topics') {
      // Read only after fencing: a killed run's last transaction is completed or aborted by now.
      const committed = await admin.fetchOffsets({
        groupId: ctx.groupId,
        topics: [topics.ranker, topics.impression],
      });
      const at = (t: string, p: number) =>
        Number(committed.find((c) => c.topic === t)?.partitions.find((x) => x.partition === p)?.offset ?? -1);
      for (const run of runs) {
        const c = {
          ranker: at(topics.ranker, run.partition),
          impression: at(topics.impression, run.partition),
        };
        if (!run.done && c.ranker >= 0 && c.impression >= 0) run.catchUpTo(c);
      }
    }
    for (const run of runs) await run.pump();
    if (runs.some((r) => !r.done) && !ctx.opts.signal?.aborted)
      await consume(kafka, ctx, topics, runs, total, serde);
    if (ctx.opts.signal?.aborted) {
      for (const run of runs) await run.flush();
      log.info('replay interrupted; run the same command to continue', {
        checkpoints: runs.map((r) => r.checkpoint.k),
      });
    }
    const summaries: RunSummary[] = [];
    for (const run of runs) summaries.push(await summarize(run));
    return summaries;
  } finally {
    for (const run of runs) await run.close().catch(() => undefined);
    for (const p of producers) await p.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Fetches the writer schemas of a batch; an unreachable registry is retried with backoff (the
 * batch is neither pushed nor resolved meanwhile), never turned into dead letters. False when the
 * batch went stale or the run is over.
 */
async function prefetchWriters(
  serde: RegistrySerde,
  msgs: Array<{ value: Buffer | null }>,
  heartbeat: () => Promise<void>,
  gone: () => boolean,
): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await serde.prefetch(msgs.map((m) => m.value));
      return true;
    } catch (e) {
      if (!isRankdistillError(e, 'SCHEMA_REGISTRY_FAILED')) throw e;
      log.warn('schema registry unavailable; retrying the batch', { attempt, error: errorMessage(e) });
      await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** Math.min(attempt, 5))));
      await heartbeat().catch(() => undefined);
      if (gone()) return false;
    }
  }
}

function sumSides(r: Record<Side, number> | undefined): number {
  return r === undefined ? 0 : r.ranker + r.impression;
}

/** Runs the consumer until every task is done or the signal fires. */
async function consume(
  kafka: Kafka,
  ctx: ReplayContext,
  topics: Record<Side, string>,
  runs: TaskRun[],
  total: number,
  serde?: RegistrySerde,
): Promise<void> {
  const k = ctx.opts.config.kafka;
  const consumer: Consumer = kafka.consumer({
    groupId: ctx.groupId,
    readUncommitted: false,
    sessionTimeout: k.sessionTimeoutMs,
    heartbeatInterval: Math.max(100, Math.floor(k.sessionTimeoutMs / 10)),
    rebalanceTimeout: Math.max(k.sessionTimeoutMs, 10_000),
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
  });
  const sideOf = (topic: string): Side => (topic === topics.ranker ? 'ranker' : 'impression');
  const resume = new Map<string, () => void>();
  let failure: unknown;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  const check = () => {
    if (failure !== undefined || ctx.opts.signal?.aborted || runs.every((r) => r.done)) finish();
  };
  const onAbort = () => finish();
  ctx.opts.signal?.addEventListener('abort', onAbort);
  const pauseSide = (run: TaskRun, side: Side) =>
    consumer.pause([{ topic: topics[side], partitions: [run.partition] }]);
  const advance = async (run: TaskRun, side: Side, next: number) => {
    run.fetch[side] = Math.min(run.end[side], next);
    if (run.fetch[side] >= run.end[side] && !run.ended(side)) {
      run.setEnded(side);
      pauseSide(run, side);
    }
    await run.pump();
    for (const s of SIDES) {
      const key = `${s}/${run.partition}`;
      const r = resume.get(key);
      if (r !== undefined && run.task.buffered(s) < MAX_BUFFERED / 2) {
        resume.delete(key);
        r();
      }
    }
    ctx.progress(runs, total);
    check();
  };
  try {
    await consumer.connect();
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      // Batches of control records only never reach eachBatch; they still move the position.
      const b = e.payload;
      if (b.batchSize !== 0 || b.firstOffset === null) return;
      const run = runs[b.partition];
      const side = sideOf(b.topic);
      if (run === undefined || run.done || run.ended(side) || Number(b.firstOffset) !== run.fetch[side])
        return;
      void advance(run, side, Number(b.lastOffset) + 1).catch((err: unknown) => {
        failure = err;
        check();
      });
    });
    await consumer.subscribe({ topics: [topics.ranker, topics.impression], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, isStale, resolveOffset, pause, heartbeat }) => {
        if (failure !== undefined || ctx.opts.signal?.aborted || isStale()) return;
        const run = runs[batch.partition];
        const side = sideOf(batch.topic);
        if (run === undefined || run.done || run.ended(side)) return;
        const fetched = Number((batch as unknown as { fetchedOffset: string }).fetchedOffset);
        if (fetched !== run.fetch[side] || batch.messages.length === 0) return;
        try {
          const from = run.fetch[side];
          const end = run.end[side];
          const msgs = batch.messages.filter((m) => Number(m.offset) >= from && Number(m.offset) < end);
          const gone = () => failure !== undefined || ctx.opts.signal?.aborted === true || isStale();
          if (serde !== undefined && !(await prefetchWriters(serde, msgs, heartbeat, gone))) return;
          run.push(
            side,
            msgs.map((m) => ({ offset: Number(m.offset), key: m.key, raw: m.value ?? Buffer.alloc(0) })),
          );
          const last = batch.messages[batch.messages.length - 1];
          if (last !== undefined) resolveOffset(last.offset);
          if (run.task.buffered(side) > MAX_BUFFERED && !resume.has(`${side}/${run.partition}`)) {
            resume.set(`${side}/${run.partition}`, pause());
          }
          await advance(run, side, Number(batch.lastOffset()) + 1);
        } catch (e) {
          failure = e;
          check();
        }
      },
    });
    // Start every unfinished side at its task's position; park the finished ones.
    for (const run of runs) {
      for (const side of SIDES) {
        if (run.done || run.ended(side)) pauseSide(run, side);
        else
          consumer.seek({ topic: topics[side], partition: run.partition, offset: String(run.fetch[side]) });
      }
    }
    check();
    await finished;
  } finally {
    ctx.opts.signal?.removeEventListener('abort', onAbort);
    await consumer.disconnect().catch(() => undefined);
  }
  if (failure !== undefined) throw failure;
}
