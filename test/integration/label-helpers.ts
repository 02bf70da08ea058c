// Shared plumbing of the labeling-service broker tests: simulate into files, produce the files'
// records to the input topics, compute the expected labels independently (labelRequest over the
// simulator's records and truth.json), and read topics back with a read_committed consumer.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Admin, type Kafka, Kafka as KafkaClient, logLevel, Partitioners } from 'kafkajs';
import { type Config, configSchema } from '../../src/config/schema.ts';
import { decodeAvro, encodeAvro } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { readRecords } from '../../src/io/files.ts';
import { FileSimSink } from '../../src/io/sim-sink.ts';
import { labelId } from '../../src/labels/encoded.ts';
import { labelRequest } from '../../src/labels/index.ts';
import type { SimTruth } from '../../src/sim/generate.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

export const SENTINEL_PREFIX = '__sentinel-';

export function testKafka(): Kafka {
  return new KafkaClient({
    clientId: 'rd-label-test',
    brokers: brokersFromEnv(),
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100 },
  });
}

/** What a labeling-service suite shares: filled in by the `before` hook {@link labelSuite} adds. */
export interface LabelSuite {
  kafka: Kafka;
  admin: Admin;
  /** Temp dir of the suite (simulated files under `sim/`), removed after it. */
  work: string;
  sim: SimFiles;
  /** Topics to delete after the suite. */
  topics: string[];
}

/**
 * Adds the suite's before/after hooks (call inside `describe`): a connected admin, a temp dir with
 * `requests` simulated requests, and the listed topics deleted at the end.
 */
export function labelSuite(prefix: string, requests: number, seed?: number): LabelSuite {
  const s = { topics: [] as string[] } as unknown as LabelSuite;
  before(async () => {
    s.kafka = testKafka();
    s.admin = s.kafka.admin();
    await s.admin.connect();
    s.work = mkdtempSync(join(tmpdir(), `${prefix}-`));
    s.sim = await simulateFiles(join(s.work, 'sim'), requests, seed);
  });
  after(async () => {
    if (s.topics.length > 0) await s.admin.deleteTopics({ topics: s.topics }).catch(() => undefined);
    await s.admin.disconnect();
    rmSync(s.work, { recursive: true, force: true });
  });
  return s;
}

/** A service config over fresh topic names, with short timeouts for tests. */
export function testConfig(storeDir: string, partitions: number, over: Record<string, unknown> = {}): Config {
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  return configSchema.parse({
    kafka: {
      brokers: brokersFromEnv(),
      groupId: `rd-label-test-${id}`,
      partitions,
      sessionTimeoutMs: 6_000,
      commitIntervalMs: 100,
      maxBatchRecords: 500,
      topics: {
        rankerOutputs: `rd-lt-ro-${id}`,
        impressions: `rd-lt-imp-${id}`,
        pointwise: `rd-lt-pw-${id}`,
        pairwise: `rd-lt-pa-${id}`,
        listwise: `rd-lt-lw-${id}`,
        deadLetter: `rd-lt-dl-${id}`,
        changelog: `rd-lt-cl-${id}`,
      },
      ...over,
    },
    store: { dir: storeDir },
    metrics: { enabled: false },
  });
}

export interface SimFiles {
  dir: string;
  truth: SimTruth;
  rankers: Array<{ raw: Buffer; value: RankerOutput | null }>;
  impressions: Array<{ raw: Buffer; value: Impression | null }>;
}

/** Simulates a small run into Avro container files and reads them back. */
export async function simulateFiles(dir: string, requests: number, seed = 11): Promise<SimFiles> {
  await simulate({ seed, requests, candidates: 20, items: 2_000, users: 300 }, new FileSimSink(dir, 'avro'));
  const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as SimTruth;
  const rankers: SimFiles['rankers'] = [];
  for await (const r of readRecords(join(dir, 'ranker-outputs.avro'), 'RankerOutput')) {
    rankers.push({ raw: r.raw, value: r.result.ok ? r.result.value : null });
  }
  const impressions: SimFiles['impressions'] = [];
  for await (const r of readRecords(join(dir, 'impressions.avro'), 'Impression')) {
    impressions.push({ raw: r.raw, value: r.result.ok ? r.result.value : null });
  }
  return { dir, truth, rankers, impressions };
}

/**
 * Produces the files' records in file order (raw bytes, key user_id, partitioned by key; records
 * that do not decode go to partition 0 without a key), then one far-future sentinel ranker output
 * per partition so every partition's watermark passes every real window.
 */
export async function produceInputs(
  kafka: Kafka,
  cfg: Config,
  sim: SimFiles,
  partitions: number,
  opts: { sentinels?: boolean } = {},
): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const t = cfg.kafka.topics;
  const msgs = <T extends { user_id: string }>(rs: Array<{ raw: Buffer; value: T | null }>) =>
    rs.map((r) =>
      r.value === null ? { key: null, value: r.raw, partition: 0 } : { key: r.value.user_id, value: r.raw },
    );
  for (const [topic, list] of [
    [t.rankerOutputs, msgs(sim.rankers)],
    [t.impressions, msgs(sim.impressions)],
  ] as const) {
    for (let i = 0; i < list.length; i += 500) {
      await producer.send({ topic, messages: list.slice(i, i + 500), acks: -1 });
    }
  }
  if (opts.sentinels !== false) {
    await producer.send({ topic: t.rankerOutputs, messages: sentinels(cfg, sim, partitions), acks: -1 });
  }
  await producer.disconnect();
}

export function sentinels(cfg: Config, sim: SimFiles, partitions: number) {
  const ts = sim.truth.counts.lastTs + 3 * cfg.join.windowMs + cfg.join.allowedLatenessMs + 600_000;
  return Array.from({ length: partitions }, (_, p) => {
    const r: RankerOutput = {
      request_id: `${SENTINEL_PREFIX}${p}`,
      user_id: `sentinel-${p}`,
      ts,
      model_version: 'sentinel',
      context: null,
      items: [{ item_id: 'x', score: 1, objectives: null, features: null }],
    };
    return { key: r.user_id, value: encodeAvro('RankerOutput', r), partition: p };
  });
}

/** id → Avro bytes of every label the truth says must come out, computed with labelRequest. */
export function expectedLabels(cfg: Config, sim: SimFiles): Map<string, Buffer> {
  const rankers = new Map<string, RankerOutput>();
  for (const r of sim.rankers)
    if (r.value && !rankers.has(r.value.request_id)) rankers.set(r.value.request_id, r.value);
  const imps = new Map<string, Impression>();
  for (const r of sim.impressions)
    if (r.value && !imps.has(r.value.request_id)) imps.set(r.value.request_id, r.value);
  const out = new Map<string, Buffer>();
  for (const [rid, t] of Object.entries(sim.truth.requests)) {
    if (t.expect.labels === 'none') continue;
    const ranker = rankers.get(rid);
    if (ranker === undefined) throw new Error(`truth expects labels for ${rid} but no ranker output decodes`);
    const impression = t.expect.labels === 'matched' ? (imps.get(rid) ?? null) : null;
    const l = labelRequest({ ranker, impression }, cfg.labels);
    if (l.pointwise) out.set(l.pointwise.id, encodeAvro('PointwiseLabels', l.pointwise));
    if (l.pairwise) out.set(l.pairwise.id, encodeAvro('PairwiseLabels', l.pairwise));
    if (l.listwise) out.set(l.listwise.id, encodeAvro('ListwiseLabels', l.listwise));
  }
  return out;
}

/** Expected dead-letter reasons (sorted) from truth.json. */
export function expectedDeadReasons(sim: SimFiles): string[] {
  return Object.values(sim.truth.requests)
    .flatMap((t) => t.expect.deadLetters)
    .sort();
}

export interface Received {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer;
}

/** Every committed record of `topics` (read_committed, from the beginning to the current end). */
export async function readAll(
  kafka: Kafka,
  admin: Admin,
  topics: string[],
  timeoutMs = 30_000,
): Promise<Received[]> {
  // Ends are last stable offsets (kafkajs lists read_committed), and a committed transaction's
  // markers land shortly after EndTxn returns: read the ends until two reads 300 ms apart agree,
  // so the last transaction's records are not cut off.
  const readEnds = async (): Promise<Map<string, number>> => {
    const m = new Map<string, number>();
    for (const topic of topics) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        if (Number(o.high) > Number(o.low)) m.set(`${topic}/${o.partition}`, Number(o.high));
      }
    }
    return m;
  };
  let ends = await readEnds();
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const again = await readEnds();
    const same = again.size === ends.size && [...again].every(([k, v]) => ends.get(k) === v);
    ends = again;
    if (same) break;
  }
  const got: Received[] = [];
  if (ends.size === 0) return got;
  const consumer = kafka.consumer({
    groupId: uniqueTopic('rd-label-test-read'),
    readUncommitted: false,
    maxWaitTimeInMs: 100,
  });
  const pos = new Map<string, number>();
  const done = () => [...ends].every(([k, end]) => (pos.get(k) ?? 0) >= end);
  await consumer.connect();
  try {
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      const k = `${e.payload.topic}/${e.payload.partition}`;
      pos.set(k, Math.max(pos.get(k) ?? 0, Number(e.payload.lastOffset) + 1));
    });
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          got.push({
            topic: batch.topic,
            partition: batch.partition,
            offset: Number(m.offset),
            key: m.key,
            value: m.value ?? Buffer.alloc(0),
          });
        }
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline)
        throw new Error(`readAll timed out: ${JSON.stringify([...pos])} of ${JSON.stringify([...ends])}`);
      await sleep(50);
    }
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** Waits until the group committed offsets reach the end of every input partition. */
export async function waitConsumed(
  admin: Admin,
  cfg: Config,
  timeoutMs: number,
  alive?: () => void,
): Promise<void> {
  const t = cfg.kafka.topics;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    alive?.();
    let lagging = 0;
    // A fresh broker answers GROUP_LOAD_IN_PROGRESS while it loads __consumer_offsets: ask again.
    const committed = await admin
      .fetchOffsets({ groupId: cfg.kafka.groupId, topics: [t.rankerOutputs, t.impressions] })
      .catch((e: unknown) => {
        if ((e as { retriable?: boolean }).retriable === true && Date.now() < deadline) return null;
        throw e;
      });
    if (committed === null) {
      await sleep(250);
      continue;
    }
    for (const topic of [t.rankerOutputs, t.impressions]) {
      const ends = await admin.fetchTopicOffsets(topic);
      const c = committed.find((x) => x.topic === topic);
      for (const e of ends) {
        const off = Number(c?.partitions.find((x) => x.partition === e.partition)?.offset ?? -1);
        if (Number(e.high) > 0 && off < Number(e.high)) lagging++;
      }
    }
    if (lagging === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `the service did not consume its inputs in ${timeoutMs} ms (${lagging} partitions behind)`,
      );
    await sleep(250);
  }
}

/** Label id → values received (to spot duplicates), from the three label topics. */
export function labelsById(cfg: Config, recs: Received[]): Map<string, Buffer[]> {
  const t = cfg.kafka.topics;
  const labelTopics = new Set([t.pointwise, t.pairwise, t.listwise]);
  const byId = new Map<string, Buffer[]>();
  for (const r of recs) {
    if (!labelTopics.has(r.topic)) continue;
    const id = labelId(r.value);
    if (id.startsWith(SENTINEL_PREFIX)) continue;
    byId.set(id, [...(byId.get(id) ?? []), r.value]);
  }
  return byId;
}

/** Label ids, as the tests read them. */
export { labelId };

/** Produces only the far-future sentinels (one per partition). */
export async function produceSentinels(
  kafka: Kafka,
  cfg: Config,
  sim: SimFiles,
  partitions: number,
): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  await producer.send({
    topic: cfg.kafka.topics.rankerOutputs,
    messages: sentinels(cfg, sim, partitions),
    acks: -1,
  });
  await producer.disconnect();
}

/**
 * Asserts the label topics hold exactly the expected labels once each, and the dead-letter topic
 * the expected reasons; returns the number of label ids read.
 */
export async function assertExactlyExpected(
  kafka: Kafka,
  admin: Admin,
  cfg: Config,
  sim: SimFiles,
  assert: typeof import('node:assert/strict'),
): Promise<number> {
  const t = cfg.kafka.topics;
  const recs = await readAll(kafka, admin, [t.pointwise, t.pairwise, t.listwise, t.deadLetter]);
  const expected = expectedLabels(cfg, sim);
  const got = labelsById(cfg, recs);
  const dupes = [...got].filter(([, v]) => v.length > 1).map(([id]) => id);
  assert.deepEqual(dupes.slice(0, 10), [], `no label may be duplicated (${dupes.length} were)`);
  const missing = [...expected.keys()].filter((id) => !got.has(id));
  const extra = [...got.keys()].filter((id) => !expected.has(id));
  assert.deepEqual(
    { missing: missing.slice(0, 5), extra: extra.slice(0, 5), nMissing: missing.length },
    { missing: [], extra: [], nMissing: 0 },
  );
  for (const [id, bytes] of expected) assert.ok(got.get(id)?.[0]?.equals(bytes), `label ${id} differs`);
  const reasons = recs
    .filter((r) => r.topic === t.deadLetter)
    .map((r) => {
      const d = decodeAvro('DeadLetter', r.value);
      if (!d.ok) throw d.error;
      return d.value.reason_code;
    })
    .sort();
  assert.deepEqual(reasons, expectedDeadReasons(sim), 'dead letters exactly once each');
  return got.size;
}

/**
 * The group's committed input offsets as a share of the input records (0..1), over both inputs:
 * every partition, or only `partition`.
 */
export async function committedShare(admin: Admin, cfg: Config, partition?: number): Promise<number> {
  const t = cfg.kafka.topics;
  let done = 0;
  let total = 0;
  const committed = await admin.fetchOffsets({
    groupId: cfg.kafka.groupId,
    topics: [t.rankerOutputs, t.impressions],
  });
  for (const topic of [t.rankerOutputs, t.impressions]) {
    for (const e of await admin.fetchTopicOffsets(topic)) {
      if (partition !== undefined && e.partition !== partition) continue;
      total += Number(e.high);
      const c = committed.find((x) => x.topic === topic)?.partitions.find((x) => x.partition === e.partition);
      done += Math.max(0, Number(c?.offset ?? -1));
    }
  }
  return total === 0 ? 0 : done / total;
}

/** Resolves with the child's exit code (null when a signal ended it) once it has exited. */
export function exited(c: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) resolve(c.exitCode);
    else c.once('exit', (code) => resolve(code));
  });
}
