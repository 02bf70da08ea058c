import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type BrokerVersions,
  chosenVersion,
  compareApiVersions,
  describeMismatch,
  kafkajsApis,
  USED_APIS,
} from '../../src/kafka/api-versions.ts';

const range = (min: number, max: number) => ({ min, max });
const upTo = (n: number) => Array.from({ length: n + 1 }, (_, i) => i);

test('chosenVersion picks min(client max, broker max), like kafkajs, and null below the broker min', () => {
  assert.equal(chosenVersion(upTo(7), range(3, 12)), 7, 'client max below broker max');
  assert.equal(chosenVersion(upTo(11), range(4, 9)), 9, 'broker max below client max');
  assert.equal(chosenVersion(upTo(5), range(5, 9)), 5, 'client max equals broker min');
  assert.equal(chosenVersion(upTo(4), range(5, 9)), null, 'client max below broker min');
  assert.equal(chosenVersion(upTo(4), null), null, 'the broker lacks the API');
  assert.equal(chosenVersion([3, 4], range(0, 2)), null, 'the client has nothing at or below the broker max');
});

test('compareApiVersions reports only the APIs the broker cannot serve, with both ranges', () => {
  const broker: BrokerVersions = new Map([
    [0, range(3, 12)], // Produce: fine
    [1, range(12, 17)], // Fetch: client max 11 < broker min 12
  ]);
  const needed = [
    { name: 'Produce', key: 0, versions: upTo(7) },
    { name: 'Fetch', key: 1, versions: upTo(11) },
    { name: 'GroupCoordinator', key: 10, versions: upTo(3) }, // missing on the broker
  ];
  const out = compareApiVersions(broker, needed);
  assert.deepEqual(out, [
    { api: 'Fetch', key: 1, client: range(0, 11), broker: range(12, 17) },
    { api: 'FindCoordinator', key: 10, client: range(0, 3), broker: null },
  ]);
  assert.equal(describeMismatch(out[0]!), 'Fetch (key 1): kafkajs sends v0-v11, the broker accepts v12-v17');
  assert.match(describeMismatch(out[1]!), /FindCoordinator \(key 10\).*does not offer it/);
});

test('a broker offering everything kafkajs implements passes', () => {
  const apis = kafkajsApis();
  const broker: BrokerVersions = new Map(
    apis.map((a) => [a.key, range(Math.min(...a.versions), Math.max(...a.versions))]),
  );
  assert.deepEqual(compareApiVersions(broker, apis), []);
});

test('kafkajsApis reads the installed kafkajs: every used API, with versions from 0 up', () => {
  const apis = kafkajsApis();
  assert.deepEqual(
    apis.map((a) => a.name),
    [...USED_APIS],
  );
  const produce = apis.find((a) => a.name === 'Produce')!;
  assert.equal(produce.key, 0);
  assert.ok(produce.versions.includes(7), 'kafkajs 2.2.4 sends Produce v7');
  for (const a of apis) assert.ok(a.versions.length > 0, `${a.name} has versions`);
  // Raising every broker minimum above kafkajs' max makes every API a mismatch.
  const tooNew: BrokerVersions = new Map(apis.map((a) => [a.key, range(Math.max(...a.versions) + 1, 99)]));
  assert.equal(compareApiVersions(tooNew, apis).length, apis.length);
});
