// Schema evolution through a real Confluent-compatible Schema Registry and a real broker:
// RankerOutput records written by an OLDER producer (no `context` field), by us, and by a NEWER
// producer (an extra `region` field with a default) are registered under one subject, produced
// to a topic in the Confluent wire format, consumed back and all decoded through the registry
// into our reader type.
//
// Needs SCHEMA_REGISTRY_URL (the base of the Confluent REST API) and KAFKA_BROKERS; `npm test`
// starts both (scripts/schema-registry-local.sh, scripts/kafka-local.sh). By hand:
//   eval "$(bash scripts/kafka-local.sh start)"; eval "$(bash scripts/schema-registry-local.sh start)"
//   node --import tsx --test test/integration/schema-registry.test.ts
//   bash scripts/schema-registry-local.sh stop; bash scripts/kafka-local.sh stop
// A missing SCHEMA_REGISTRY_URL fails the test: a registry that was never started must not pass.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type avro from 'avsc';
import { type Admin, Kafka, logLevel, Partitioners } from 'kafkajs';
import { schemaJson } from '../../src/contracts/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { SchemaRegistryClient, subjectFor } from '../../src/registry/client.ts';
import { RegistrySerde } from '../../src/registry/serde.ts';
import {
  frameWith,
  newerRankerOutputSchema,
  newerSample,
  olderRankerOutputSchema,
  olderSample,
  plain,
  sampleRanker,
} from '../registry/evolution.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

const SCHEMA_REGISTRY_URL_MISSING =
  'SCHEMA_REGISTRY_URL is not set: start the local registry with scripts/schema-registry-local.sh start ' +
  '(npm test does) or point SCHEMA_REGISTRY_URL at a Confluent-compatible registry';

function registryUrlFromEnv(): string {
  const url = (process.env.SCHEMA_REGISTRY_URL ?? '').trim();
  if (url === '') throw new Error(SCHEMA_REGISTRY_URL_MISSING);
  return url;
}

describe('Schema registry (SCHEMA_REGISTRY_URL) with the broker (KAFKA_BROKERS)', () => {
  let url = '';
  let kafka: Kafka | undefined;
  let admin: Admin | undefined;
  const topics: string[] = [];

  before(async () => {
    url = registryUrlFromEnv();
    kafka = new Kafka({
      clientId: 'rankdistill-registry-test',
      brokers: brokersFromEnv(),
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3_000,
      retry: { retries: 5, initialRetryTime: 200 },
    });
    admin = kafka.admin();
    await admin.connect();
  });

  after(async () => {
    if (admin) {
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {});
      await admin.disconnect();
    }
  });

  test('older and newer writer schemas both decode through the registry into our reader type', async () => {
    assert.ok(kafka && admin, 'the before() hook did not connect');
    const topic = uniqueTopic('rd-registry-evolution');
    const subject = subjectFor(topic);
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    topics.push(topic);

    // --- producers: older, ours, newer — each registered under the subject in turn -------------
    const producerSide = new SchemaRegistryClient({ url });
    // FULL: each version can read the previous one's data and vice versa (new fields have defaults).
    await producerSide.setCompatibility(subject, 'FULL');
    const olderId = await producerSide.registerSchema(subject, olderRankerOutputSchema());
    const ourSerde = new RegistrySerde(producerSide);
    const ourId = await ourSerde.prepareOutput(topic, 'RankerOutput'); // checks, then registers
    await producerSide.checkCompatibility(subject, newerRankerOutputSchema());
    const newerId = await producerSide.registerSchema(subject, newerRankerOutputSchema());
    assert.equal(
      new Set([olderId, ourId, newerId]).size,
      3,
      `three distinct ids, got ${olderId}, ${ourId}, ${newerId}`,
    );
    // Registering an existing schema again is idempotent.
    assert.equal(await producerSide.registerSchema(subject, olderRankerOutputSchema()), olderId);

    const ours = { ...sampleRanker, request_id: 'r-evo-2' };
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      await producer.send({
        topic,
        messages: [
          { key: 'u-1', value: frameWith(olderRankerOutputSchema(), olderId, olderSample()) },
          { key: 'u-1', value: ourSerde.encode(topic, 'RankerOutput', ours) },
          { key: 'u-1', value: frameWith(newerRankerOutputSchema(), newerId, newerSample()) },
        ],
      });
    } finally {
      await producer.disconnect();
    }

    // --- consumer: a fresh client with an empty cache, as a service would start ----------------
    const values = await consumeValues(kafka, topic, 3);
    const consumerSide = new RegistrySerde(new SchemaRegistryClient({ url }));
    await consumerSide.prefetch(values);
    const decoded = values.map((v) => consumerSide.decode('RankerOutput', v));
    for (const d of decoded) assert.ok(d.ok, d.ok ? '' : d.error.message);
    const got = decoded.map((d) => (d.ok ? plain(d.value) : undefined));
    assert.deepEqual(got, [
      { ...sampleRanker, context: null }, // older writer: the field it lacks takes our default
      ours,
      { ...sampleRanker, request_id: 'r-evo-3' }, // newer writer: its extra field is dropped
    ]);
    assert.ok(!('region' in (got[2] as object)));
    const writer = consumerSide.client.cachedSchemaById(newerId) as avro.types.RecordType;
    assert.ok(
      writer.fields.some((f) => f.name === 'region'),
      'the writer schema came from the registry',
    );
  });

  test('an incompatible schema is refused by the compatibility check and by registration', async () => {
    const subject = subjectFor(uniqueTopic('rd-registry-incompatible'));
    const client = new SchemaRegistryClient({ url });
    await client.setCompatibility(subject, 'BACKWARD');
    await client.registerSchema(subject, schemaJson('RankerOutput'));
    // A new required field without a default cannot read the data already written.
    const breaking = structuredClone(schemaJson('RankerOutput')) as unknown as { fields: object[] };
    breaking.fields.push({ name: 'tenant', type: 'string' });
    const result = await client.testCompatibility(subject, breaking as unknown as avro.Schema);
    assert.equal(result.compatible, false);
    await assert.rejects(
      client.checkCompatibility(subject, breaking as unknown as avro.Schema),
      (e) => isRankdistillError(e, 'SCHEMA_INCOMPATIBLE') && e.message.includes(subject),
    );
    await assert.rejects(
      client.registerSchema(subject, breaking as unknown as avro.Schema),
      (e) => isRankdistillError(e, 'SCHEMA_INCOMPATIBLE') && /HTTP 409/.test(e.message),
    );
  });

  test('an id the registry never issued is SCHEMA_ID_UNKNOWN', async () => {
    const client = new SchemaRegistryClient({ url });
    await assert.rejects(client.schemaById(2_000_000_000), (e) => isRankdistillError(e, 'SCHEMA_ID_UNKNOWN'));
  });
});

/** Reads `n` values of `topic` from the beginning with a fresh consumer group. */
async function consumeValues(kafka: Kafka, topic: string, n: number): Promise<Buffer[]> {
  const consumer = kafka.consumer({ groupId: uniqueTopic('rd-registry-test-group') });
  const values: Buffer[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${values.length} of ${n} records arrived in 20 s`)),
        20_000,
      );
      void consumer
        .run({
          eachMessage: async ({ message }) => {
            if (message.value) values.push(message.value);
            if (values.length >= n) {
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
  return values;
}
