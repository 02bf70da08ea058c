// The labeling service with a real Confluent-compatible schema registry (SCHEMA_REGISTRY_URL) and a
// real broker (KAFKA_BROKERS): inputs are Confluent-framed with writer schemas registered in the
// registry — every third ranker output by an OLDER producer (RankerOutput without `context`), the
// rest and the impressions with ours, one ranker output with an id the registry never issued — and
// the service runs with inputFormat confluent + outputFormat confluent. The label topics, read
// through `subscribeLabels({ format: 'confluent', schemaRegistryUrl })`, must hold exactly
// `labelRequest` of the decoded inputs (the older records with context null), and the dead-letter
// topic (registry-framed too) the simulator's bad records plus one SCHEMA_ID_UNKNOWN.
//
// By hand: eval "$(bash scripts/schema-registry-local.sh start --dir /tmp/rd-registry)";
//   KAFKA_BROKERS=... node --import tsx --test test/integration/registry-service.test.ts
// A missing SCHEMA_REGISTRY_URL or KAFKA_BROKERS fails the test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Admin, type Kafka, Partitioners } from 'kafkajs';
import { LABEL_CONTRACT, subscribeLabels } from '../../src/client/index.ts';
import { encodeAvro, encodeConfluent } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { schemaJson } from '../../src/contracts/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { LabelService } from '../../src/pipeline/label-service.ts';
import { SchemaRegistryClient, subjectFor } from '../../src/registry/client.ts';
import { RegistrySerde } from '../../src/registry/serde.ts';
import { replay } from '../../src/replay/replay.ts';
import { frameWith, olderRankerOutputSchema } from '../registry/evolution.ts';
import {
  expectedDeadReasons,
  expectedLabels,
  readAll,
  SENTINEL_PREFIX,
  type SimFiles,
  sentinels,
  simulateFiles,
  testConfig,
  testKafka,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 2;
const REQUESTS = 100;
const UNKNOWN_ID = 2_000_000_001;

function registryUrlFromEnv(): string {
  const url = (process.env.SCHEMA_REGISTRY_URL ?? '').trim();
  if (url === '') {
    throw new Error(
      'SCHEMA_REGISTRY_URL is not set: start the local registry with scripts/schema-registry-local.sh start ' +
        '(scripts/test.sh does) or point SCHEMA_REGISTRY_URL at a Confluent-compatible registry',
    );
  }
  return url;
}

/** Confluent frame of plain Avro bytes written with the schema registered under `id`. */
function frame(id: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeInt32BE(id, 1);
  return Buffer.concat([head, body]);
}

describe('label service with a schema registry (SCHEMA_REGISTRY_URL, KAFKA_BROKERS)', {
  timeout: 90_000,
}, () => {
  let url = '';
  let kafka: Kafka;
  let admin: Admin;
  let work: string;
  const topicsToDelete: string[] = [];

  before(async () => {
    url = registryUrlFromEnv();
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    work = mkdtempSync(join(tmpdir(), 'rd-registry-svc-'));
  });

  after(async () => {
    if (topicsToDelete.length > 0)
      await admin?.deleteTopics({ topics: topicsToDelete }).catch(() => undefined);
    await admin?.disconnect();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('outputFormat confluent without a registry URL is refused with a clear message', () => {
    const cfg = testConfig(join(work, 'no-registry'), 1, { outputFormat: 'confluent' });
    assert.throws(
      () => new LabelService(cfg),
      (e: unknown) =>
        isRankdistillError(e, 'CONFIG_INVALID') &&
        /kafka\.outputFormat confluent needs kafka\.schemaRegistryUrl/.test(e.message),
    );
  });

  test('older and current writer schemas in, registry-framed labels out equal labelRequest of the decoded inputs', async () => {
    const sim = await simulateFiles(join(work, 'sim'), REQUESTS, 23);
    const cfg = testConfig(join(work, 'state'), PARTITIONS, {
      inputFormat: 'confluent',
      outputFormat: 'confluent',
      schemaRegistryUrl: url,
    });
    const t = cfg.kafka.topics;
    topicsToDelete.push(...Object.values(t));

    // --- producers: register the writer schemas of the input subjects ---------------------------
    const producerSide = new SchemaRegistryClient({ url });
    await producerSide.setCompatibility(subjectFor(t.rankerOutputs), 'FULL');
    const olderId = await producerSide.registerSchema(subjectFor(t.rankerOutputs), olderRankerOutputSchema());
    const rankerId = await producerSide.registerSchema(
      subjectFor(t.rankerOutputs),
      schemaJson('RankerOutput'),
    );
    const impressionId = await producerSide.registerSchema(
      subjectFor(t.impressions),
      schemaJson('Impression'),
    );
    assert.notEqual(olderId, rankerId);

    // Re-frame the simulator's records; what the service decodes is what the labels are made of.
    let older = 0;
    const rankers: SimFiles['rankers'] = sim.rankers.map((r, i) => {
      if (r.value === null) return r; // malformed bytes stay as they are: MALFORMED dead letters
      if (i % 3 === 0) {
        older++;
        const { context: _dropped, ...rest } = r.value;
        const value: RankerOutput = { ...r.value, context: null };
        return { raw: frameWith(olderRankerOutputSchema(), olderId, rest), value };
      }
      return { raw: encodeConfluent('RankerOutput', r.value, rankerId), value: r.value };
    });
    const impressions: SimFiles['impressions'] = sim.impressions.map((r) =>
      r.value === null
        ? r
        : { raw: encodeConfluent('Impression', r.value as Impression, impressionId), value: r.value },
    );
    const framed: SimFiles = { ...sim, rankers, impressions };
    assert.ok(older > 20, `enough records from the older writer (${older})`);

    const svc = new LabelService(cfg);
    await svc.start(); // creates the topics, registers the output schemas
    try {
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      const msgs = <T extends { user_id: string }>(rs: Array<{ raw: Buffer; value: T | null }>) =>
        rs.map((r) =>
          r.value === null
            ? { key: null, value: r.raw, partition: 0 }
            : { key: r.value.user_id, value: r.raw },
        );
      await producer.send({ topic: t.rankerOutputs, messages: msgs(rankers), acks: -1 });
      await producer.send({ topic: t.impressions, messages: msgs(impressions), acks: -1 });
      // A record framed with an id the registry never issued: a dead letter, not a stuck service.
      const stray = encodeAvro('RankerOutput', { ...(rankers.find((r) => r.value)?.value as RankerOutput) });
      await producer.send({
        topic: t.rankerOutputs,
        messages: [{ key: 'stray', value: frame(UNKNOWN_ID, stray), partition: 1 }],
        acks: -1,
      });
      // Far-future sentinels (framed with our id) move every partition's watermark past the windows.
      await producer.send({
        topic: t.rankerOutputs,
        messages: sentinels(cfg, sim, PARTITIONS).map((m) => ({ ...m, value: frame(rankerId, m.value) })),
        acks: -1,
      });
      await producer.disconnect();
      await waitConsumed(admin, cfg, 45_000);
    } finally {
      await svc.stop();
    }

    // --- labels through the client library, decoded via the registry ---------------------------
    const expected = expectedLabels(cfg, framed);
    assert.ok(expected.size > 2 * REQUESTS, `most requests produce labels (${expected.size})`);
    // How many committed label messages each topic holds (transaction markers take offsets too).
    const raw = await readAll(kafka, admin, [t.pointwise, t.pairwise, t.listwise]);
    const got = new Map<string, Buffer>();
    for (const kind of ['pointwise', 'pairwise', 'listwise'] as const) {
      const want = raw.filter((r) => r.topic === t[kind]).length;
      assert.ok(want > 0, `${kind} labels were written`);
      assert.ok(
        raw.filter((r) => r.topic === t[kind]).every((r) => r.value[0] === 0),
        `${kind} labels are Confluent-framed`,
      );
      const sub = subscribeLabels({
        brokers: cfg.kafka.brokers,
        kind,
        groupId: `${cfg.kafka.groupId}-read-${kind}`,
        topic: t[kind],
        format: 'confluent',
        schemaRegistryUrl: url,
        commitEvery: 1_000,
      });
      let seen = 0;
      try {
        for await (const m of sub) {
          seen++;
          if (!m.value.id.startsWith(SENTINEL_PREFIX)) {
            assert.ok(!got.has(m.value.id), `label ${m.value.id} delivered once`);
            got.set(m.value.id, encodeAvro(LABEL_CONTRACT[kind], m.value as never));
          }
          if (seen >= want) break;
        }
      } finally {
        await sub.close();
      }
      assert.equal(seen, want, `every ${kind} label decoded through the registry`);
    }
    const missing = [...expected.keys()].filter((id) => !got.has(id));
    const extra = [...got.keys()].filter((id) => !expected.has(id));
    assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5) }, { missing: [], extra: [] });
    for (const [id, bytes] of expected) assert.ok(got.get(id)?.equals(bytes), `label ${id} differs`);

    // --- dead letters: registry-framed, the simulator's bad records plus the unknown id ---------
    const recs = await readAll(kafka, admin, [t.deadLetter]);
    const reader = new RegistrySerde(new SchemaRegistryClient({ url }));
    await reader.prefetch(recs.map((r) => r.value));
    const dead = recs.map((r) => {
      assert.equal(r.value[0], 0, 'dead letters are Confluent-framed');
      const d = reader.decode('DeadLetter', r.value);
      assert.ok(d.ok, d.ok ? '' : d.error.message);
      return d.value;
    });
    assert.deepEqual(
      dead.map((d) => d.reason_code).sort(),
      [...expectedDeadReasons(sim), 'SCHEMA_ID_UNKNOWN'].sort(),
      'one dead letter per bad record; the unknown schema id is named as such',
    );
    const unknown = dead.find((d) => d.reason_code === 'SCHEMA_ID_UNKNOWN');
    assert.match(unknown?.reason ?? '', new RegExp(`unknown schema id ${UNKNOWN_ID}`));

    // --- replay's Kafka path decodes through the registry too: same outcomes as the service -----
    const r = await replay({
      config: cfg,
      input: { kind: 'kafka' },
      output: { kind: 'dry' },
      stateDir: join(work, 'replay'),
    });
    assert.equal(r.status, 'complete');
    const { duplicates: _d1, ...live } = svc.counts();
    const { duplicates: _d2, ...replayed } = r.counts;
    assert.deepEqual(replayed, live, 'replay over the same framed inputs counts what the service did');
  });
});
