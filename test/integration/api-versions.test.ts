// The start-up ApiVersions check against the real broker behind KAFKA_BROKERS (4.x by default,
// 3.9 in CI's compatibility leg): the broker answers for every API we use, kafkajs' chosen
// version is inside the broker's range for each, and the check the services run passes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import {
  checkBrokerApiVersions,
  chosenVersion,
  compareApiVersions,
  fetchBrokerVersions,
  kafkajsApis,
} from '../../src/kafka/api-versions.ts';
import { brokersFromEnv } from './kafka-env.ts';

const kafka = () =>
  new Kafka({
    clientId: 'rankdistill-api-versions-test',
    brokers: brokersFromEnv(),
    logLevel: logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 200 },
  });

test('the broker serves every API we use at the version kafkajs sends', { timeout: 60_000 }, async () => {
  const broker = await fetchBrokerVersions(kafka());
  assert.ok(broker.size >= 20, `an ApiVersions answer with the broker's APIs (got ${broker.size})`);
  const apis = kafkajsApis();
  for (const a of apis) {
    const r = broker.get(a.key);
    assert.ok(r !== undefined, `the broker offers ${a.name}`);
    const v = chosenVersion(a.versions, r);
    assert.ok(v !== null && v >= r.min && v <= r.max, `${a.name}: v${v} within v${r.min}-v${r.max}`);
  }
  assert.deepEqual(compareApiVersions(broker, apis), []);
  await checkBrokerApiVersions(kafka());
});
