// `rankdistill simulate --kafka` against a real broker: topics are created, both streams are
// produced, consumed back and compared byte for byte with the same run written to Avro files
// (same seed → same records), decoded and compared field by field with the simulator's records.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { decodeAvro } from '../../src/contracts/codec.ts';
import { readRecords } from '../../src/io/files.ts';
import { FileSimSink, simFiles } from '../../src/io/sim-sink.ts';
import { resolveSimOptions, type SimEmission, type SimTruth, Simulation } from '../../src/sim/generate.ts';
import { malformedBytes } from '../../src/sim/malformed.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'rd-sim-kafka-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Consumed {
  partition: number;
  offset: number;
  key: string;
  value: Buffer;
}

const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

async function consumeAll(
  kafka: Kafka,
  topics: string[],
  expected: Record<string, number>,
): Promise<Record<string, Consumed[]>> {
  const got: Record<string, Consumed[]> = Object.fromEntries(topics.map((t) => [t, []]));
  const consumer = kafka.consumer({ groupId: uniqueTopic('sim-check') });
  await consumer.connect();
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
    const done = () => topics.every((t) => (got[t]?.length ?? 0) >= (expected[t] ?? 0));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `timed out: consumed ${topics.map((t) => `${got[t]?.length}/${expected[t]}`).join(', ')}`,
            ),
          ),
        90_000,
      );
      consumer
        .run({
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) {
              got[batch.topic]?.push({
                partition: batch.partition,
                offset: Number(m.offset),
                key: m.key?.toString('utf8') ?? '',
                value: m.value ?? Buffer.alloc(0),
              });
            }
            if (done()) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

test('simulate --kafka: both topics round-trip against the same run to Avro files', async () => {
  const brokers = brokersFromEnv();
  const ro = uniqueTopic('sim-ranker-outputs');
  const imp = uniqueTopic('sim-impressions');
  const opts = { seed: 21, requests: 500, candidates: 50, users: 300, items: 2000, malformedRate: 0.06 };

  // 1. the CLI, into Kafka (topic names through the config's environment overrides)
  const truthDir = join(root, 'kafka-truth');
  const { stdout } = await run(
    process.execPath,
    [
      'bin/rankdistill.mjs',
      'simulate',
      '--kafka',
      '--brokers',
      brokers.join(','),
      '--create-topics',
      '--partitions',
      '3',
      '--seed',
      String(opts.seed),
      '--requests',
      String(opts.requests),
      '--candidates',
      String(opts.candidates),
      '--users',
      String(opts.users),
      '--items',
      String(opts.items),
      '--malformed-rate',
      String(opts.malformedRate),
      '--out',
      truthDir,
    ],
    {
      env: {
        ...process.env,
        RANKDISTILL_KAFKA__TOPICS__RANKER_OUTPUTS: ro,
        RANKDISTILL_KAFKA__TOPICS__IMPRESSIONS: imp,
      },
    },
  );
  assert.match(stdout, /simulated 500 requests \(seed 21\) into kafka .*\(3 partitions\)/);
  assert.match(stdout, new RegExp(`kafka:${ro}: \\d+ records`));

  // 2. the same run to Avro files, and in memory
  const fileDir = join(root, 'files');
  await simulate(opts, new FileSimSink(fileDir, 'avro'));
  const files = simFiles(fileDir, 'avro');
  const truth = JSON.parse(readFileSync(files.truth, 'utf8')) as SimTruth;
  assert.equal(
    readFileSync(join(truthDir, 'truth.json'), 'utf8'),
    readFileSync(files.truth, 'utf8'),
    'the Kafka run writes the same truth as the Avro-file run',
  );
  const sim = new Simulation(resolveSimOptions(opts), 'avro');
  const emissions: SimEmission[] = [...sim.emissions()];

  // 3. consume everything back
  const kafka = new Kafka({ clientId: 'sim-kafka-test', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const md = await admin.fetchTopicMetadata({ topics: [ro, imp] });
  await admin.disconnect();
  assert.deepEqual(
    md.topics.map((t) => t.partitions.length),
    [3, 3],
  );
  const got = await consumeAll(kafka, [ro, imp], {
    [ro]: truth.counts.records.rankerOutputs,
    [imp]: truth.counts.records.impressions,
  });

  for (const [topic, file, name, stream] of [
    [ro, files.rankerOutputs, 'RankerOutput', 'rankerOutputs'],
    [imp, files.impressions, 'Impression', 'impressions'],
  ] as const) {
    const msgs = got[topic]!;
    assert.equal(msgs.length, truth.counts.records[stream], `${topic}: message count`);
    const fileRaw: Buffer[] = [];
    for await (const r of readRecords(file, name)) fileRaw.push(r.raw);
    const mine = emissions.filter((e) => e.stream === stream);
    assert.equal(fileRaw.length, mine.length);

    // keys are user ids; one key → one partition
    const partitionOf = new Map<string, number>();
    for (const m of msgs) {
      const p = partitionOf.get(m.key);
      assert.ok(p === undefined || p === m.partition, `key ${m.key} on two partitions`);
      partitionOf.set(m.key, m.partition);
    }
    // per partition: exactly the file's records for its keys, byte for byte, in arrival order
    for (let p = 0; p < 3; p++) {
      const inKafka = msgs
        .filter((m) => m.partition === p)
        .sort((a, b) => a.offset - b.offset)
        .map((m) => m.value.toString('base64'));
      const expected = mine
        .map((e, k) => ({ e, raw: fileRaw[k]! }))
        .filter(({ e }) => partitionOf.get(e.key) === p)
        .map(({ raw }) => raw.toString('base64'));
      assert.ok(inKafka.length > 0, `partition ${p} of ${topic} is empty`);
      assert.deepEqual(inKafka, expected, `${topic} partition ${p}`);
    }

    // every field round-trips; malformed values are there byte for byte
    const byValue = new Map(msgs.map((m) => [m.value.toString('base64'), m]));
    let malformed = 0;
    for (const e of mine) {
      if (e.malformed !== null) {
        malformed++;
        const bytes = malformedBytes(e.name, e.record, e.malformed, 'avro');
        const m = byValue.get(bytes.toString('base64'));
        assert.ok(m, `${e.malformed.kind} record of ${e.requestId} missing from ${topic}`);
        assert.equal(m.key, e.key);
        continue;
      }
      const m = msgs.find((x) => x.key === e.key && decodedId(x.value, name) === e.requestId);
      assert.ok(m, `${e.requestId} missing from ${topic}`);
      const d =
        name === 'RankerOutput' ? decodeAvro('RankerOutput', m.value) : decodeAvro('Impression', m.value);
      assert.ok(d.ok, `${e.requestId}: ${!d.ok && d.error.message}`);
      assert.deepEqual(plain(d.value), plain(e.record));
    }
    assert.equal(
      malformed,
      Object.values(truth.requests).filter(
        (t) => t.malformed?.side === (stream === 'rankerOutputs' ? 'ranker' : 'impression'),
      ).length,
    );
  }
  assert.ok(truth.counts.fates.malformed > 0 && truth.counts.fates.duplicate >= 0);
});

const idCache = new Map<string, string | null>();
function decodedId(value: Buffer, name: 'RankerOutput' | 'Impression'): string | null {
  const k = value.toString('base64');
  let id = idCache.get(k);
  if (id === undefined) {
    const d = name === 'RankerOutput' ? decodeAvro('RankerOutput', value) : decodeAvro('Impression', value);
    id = d.ok ? d.value.request_id : null;
    idCache.set(k, id);
  }
  return id;
}
