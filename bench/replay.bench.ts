/**
 * Replay throughput, DESIGN.md figure of record "replay": requests/s (ranker outputs in the range
 * per second of wall time) of `replay()` from files and from a Kafka range, each against a
 * same-run baseline that only reads and decodes the same input (no join, no labels, no output):
 *
 * - files: replay of Avro container files into Avro files (the whole command: counting, reading,
 *   decoding, join, labels, part files, final assembly) vs `readRecords` of both files.
 * - kafka: replay of the topics' range into Avro files vs a plain kafkajs consumer (own group)
 *   reading both topics to the end and `decodeAvro`-ing every value. Also into topics (one Kafka
 *   transaction per checkpoint), against the same baseline.
 *
 * Workload: the simulator (seed 3), BENCH_REPLAY_REQUESTS requests [10,000] with 50 candidates
 * and the default fates; the same files are produced to two-partition topics. Kafka figures need a
 * broker: KAFKA_BROKERS, or the shared dev broker's /tmp/rd-dev-kafka/brokers; without one they are
 * skipped (noted in the results). Best of BENCH_REPLAY_TRIALS trials [2] on a shared machine.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { configSchema } from '../src/config/schema.ts';
import { decodeAvro } from '../src/contracts/codec.ts';
import { readRecords } from '../src/io/files.ts';
import { FileSimSink } from '../src/io/sim-sink.ts';
import { replay } from '../src/replay/replay.ts';
import type { SimTruth } from '../src/sim/generate.ts';
import { simulate } from '../src/sim/simulate.ts';
import { type Figure, writeResult } from './lib.ts';

const REQUESTS = Number(process.env.BENCH_REPLAY_REQUESTS ?? 10_000);
const TRIALS = Number(process.env.BENCH_REPLAY_TRIALS ?? 2);
const PARTITIONS = 2;

const work = mkdtempSync(join(tmpdir(), 'rd-bench-replay-'));
const simDir = join(work, 'sim');
const round = (x: number) => Math.round(x);

/** Best wall-clock rate of TRIALS runs, and the rate per second of this process's CPU time. */
async function best(
  fn: (trial: number) => Promise<number>,
): Promise<{ best: number; all: number[]; cpu: number }> {
  const all: number[] = [];
  let cpu = 0;
  for (let t = 0; t < TRIALS; t++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const n = await fn(t);
    all.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
    const c = process.cpuUsage(c0);
    cpu = Math.max(cpu, n / ((c.user + c.system) / 1e6));
  }
  return { best: Math.max(...all), all, cpu };
}

function brokers(): string[] | null {
  const env = process.env.KAFKA_BROKERS;
  if (env !== undefined && env.trim() !== '') return env.split(',').map((b) => b.trim());
  const f = '/tmp/rd-dev-kafka/brokers';
  return existsSync(f) ? [readFileSync(f, 'utf8').trim()] : null;
}

async function main(): Promise<void> {
  await simulate({ seed: 3, requests: REQUESTS, candidates: 50 }, new FileSimSink(simDir, 'avro'));
  const truth = JSON.parse(readFileSync(join(simDir, 'truth.json'), 'utf8')) as SimTruth;
  const requests = truth.counts.records.rankerOutputs;
  const figures: Record<string, Figure> = {};
  const config = configSchema.parse({ metrics: { enabled: false }, store: { dir: join(work, 'state') } });

  // --- files -------------------------------------------------------------------------------
  const base = await best(async () => {
    let n = 0;
    for await (const r of readRecords(join(simDir, 'ranker-outputs.avro'), 'RankerOutput'))
      if (r.result.ok) n++;
    for await (const r of readRecords(join(simDir, 'impressions.avro'), 'Impression')) if (r.result.ok) n++;
    if (n === 0) throw new Error('nothing decoded');
    return requests;
  });
  const files = await best(async (t) => {
    const res = await replay({
      config,
      input: { kind: 'files', dir: simDir },
      output: { kind: 'files', dir: join(work, `out-files-${t}`), format: 'avro' },
      stateDir: join(work, `state-files-${t}`),
    });
    if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
    return requests;
  });
  figures.files_requests_per_s = {
    value: round(files.best),
    unit: 'requests/s',
    baseline: round(base.best),
    ratio: files.best / base.best,
    note: `Avro files → Avro files, ${requests} requests of 50 candidates (${truth.counts.records.impressions} impressions); trials ${files.all.map(round).join(', ')}; per CPU-second ${round(files.cpu)} vs ${round(base.cpu)}; baseline: readRecords (decode) of both files`,
  };
  const dry = await best(async () => {
    await replay({ config, input: { kind: 'files', dir: simDir }, output: { kind: 'dry' } });
    return requests;
  });
  figures.files_dry_run_requests_per_s = {
    value: round(dry.best),
    unit: 'requests/s',
    baseline: round(base.best),
    ratio: dry.best / base.best,
    note: `same input, --dry-run (decode, join, labels; nothing written); per CPU-second ${round(dry.cpu)}`,
  };

  // --- Kafka -------------------------------------------------------------------------------
  const b = brokers();
  if (b === null) {
    figures.kafka_requests_per_s = {
      value: 0,
      unit: 'requests/s',
      note: 'skipped: no broker (KAFKA_BROKERS)',
    };
  } else {
    const id = `${Date.now().toString(36)}`;
    const topics = { rankerOutputs: `rd-bench-replay-ro-${id}`, impressions: `rd-bench-replay-imp-${id}` };
    const kcfg = configSchema.parse({
      metrics: { enabled: false },
      store: { dir: join(work, 'state') },
      kafka: { brokers: b, topics: { ...topics } },
    });
    const kafka = new Kafka({ clientId: 'rd-bench-replay', brokers: b, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const created = [topics.rankerOutputs, topics.impressions];
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: created.map((topic) => ({ topic, numPartitions: PARTITIONS })),
      });
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      for (const [file, topic, name] of [
        ['ranker-outputs.avro', topics.rankerOutputs, 'RankerOutput'],
        ['impressions.avro', topics.impressions, 'Impression'],
      ] as const) {
        let batch: Array<{ key: string | null; value: Buffer; partition?: number }> = [];
        const flush = async () => {
          if (batch.length > 0) await producer.send({ topic, messages: batch, acks: -1 });
          batch = [];
        };
        for await (const r of readRecords(join(simDir, file), name)) {
          batch.push(
            r.result.ok
              ? { key: r.result.value.user_id, value: Buffer.from(r.raw) }
              : { key: null, value: Buffer.from(r.raw), partition: 0 },
          );
          if (batch.length >= 100) await flush();
        }
        await flush();
      }
      await producer.disconnect();
      const ends = new Map<string, number>();
      for (const t of created)
        for (const o of await admin.fetchTopicOffsets(t)) ends.set(`${t}/${o.partition}`, Number(o.high));

      const kbase = await best(async (t) => {
        const consumer = kafka.consumer({ groupId: `rd-bench-replay-base-${id}-${t}`, maxWaitTimeInMs: 100 });
        const pos = new Map<string, number>();
        let decoded = 0;
        await consumer.connect();
        await consumer.subscribe({ topics: created, fromBeginning: true });
        await consumer.run({
          eachBatch: async ({ batch }) => {
            const name = batch.topic === topics.rankerOutputs ? 'RankerOutput' : 'Impression';
            for (const m of batch.messages) if (m.value && decodeAvro(name, m.value).ok) decoded++;
            pos.set(`${batch.topic}/${batch.partition}`, Number(batch.lastOffset()) + 1);
          },
        });
        while (![...ends].every(([k, e]) => (pos.get(k) ?? 0) >= e)) await sleep(5);
        await consumer.disconnect();
        if (decoded === 0) throw new Error('nothing decoded');
        return requests;
      });
      const kfiles = await best(async (t) => {
        const res = await replay({
          config: kcfg,
          input: { kind: 'kafka' },
          output: { kind: 'files', dir: join(work, `out-kafka-${t}`), format: 'avro' },
          stateDir: join(work, `state-kafka-${t}`),
        });
        if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
        return requests;
      });
      figures.kafka_requests_per_s = {
        value: round(kfiles.best),
        unit: 'requests/s',
        baseline: round(kbase.best),
        ratio: kfiles.best / kbase.best,
        note: `Kafka range (${PARTITIONS} partitions, whole topics) → Avro files; trials ${kfiles.all.map(round).join(', ')}; per CPU-second of this process ${round(kfiles.cpu)} vs ${round(kbase.cpu)}; baseline: kafkajs consumer + decodeAvro of every value of both topics`,
      };
      const ktopics = await best(async (t) => {
        const out = {
          pointwise: `rd-bench-replay-pw-${id}-${t}`,
          pairwise: `rd-bench-replay-pa-${id}-${t}`,
          listwise: `rd-bench-replay-lw-${id}-${t}`,
          deadLetter: `rd-bench-replay-dl-${id}-${t}`,
        };
        created.push(...Object.values(out));
        const res = await replay({
          config: kcfg,
          input: { kind: 'kafka' },
          output: { kind: 'topics', topics: out },
          stateDir: join(work, `state-kafka-topics-${t}`),
        });
        if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
        return requests;
      });
      figures.kafka_to_topics_requests_per_s = {
        value: round(ktopics.best),
        unit: 'requests/s',
        baseline: round(kbase.best),
        ratio: ktopics.best / kbase.best,
        note: `Kafka range → new topics, one transaction per ${kcfg.kafka.maxBatchRecords} input records; trials ${ktopics.all.map(round).join(', ')}; per CPU-second ${round(ktopics.cpu)}; same baseline`,
      };
    } finally {
      await admin.deleteTopics({ topics: created }).catch(() => undefined);
      await admin.disconnect();
    }
  }
  writeResult('replay', figures);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
