import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type avro from 'avsc';
import { encodeAvro } from '../../src/contracts/codec.ts';
import { schemaJson } from '../../src/contracts/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { SchemaRegistryClient } from '../../src/registry/client.ts';
import { RegistrySerde, registrySerdeFromConfig } from '../../src/registry/serde.ts';
import {
  frameWith,
  newerRankerOutputSchema,
  newerSample,
  olderRankerOutputSchema,
  olderSample,
  plain,
  sampleRanker,
} from './evolution.ts';
import { FakeRegistry, RECORDED } from './fake-registry.ts';

const TOPIC = 'ranker-outputs';
const SUBJECT = `${TOPIC}-value`;
const OURS = 1;
const OLDER = 2;
const NEWER = 3;

describe('RegistrySerde against recorded Confluent answers', () => {
  let fake: FakeRegistry;

  before(async () => {
    fake = await new FakeRegistry().start();
  });
  after(async () => {
    await fake.stop();
  });

  function serde(options: ConstructorParameters<typeof RegistrySerde>[1] = {}): RegistrySerde {
    fake.routes.clear();
    fake.requests.length = 0;
    fake
      .on('GET', `/schemas/ids/${OURS}`, {
        status: 200,
        body: { schema: JSON.stringify(schemaJson('RankerOutput')) },
      })
      .on('GET', `/schemas/ids/${OLDER}`, {
        status: 200,
        body: { schema: JSON.stringify(olderRankerOutputSchema()) },
      })
      .on('GET', `/schemas/ids/${NEWER}`, {
        status: 200,
        body: { schema: JSON.stringify(newerRankerOutputSchema()) },
      })
      .on('GET', '/schemas/ids/77', RECORDED.schemaNotFound(77));
    return new RegistrySerde(new SchemaRegistryClient({ url: fake.url, retries: 0 }), options);
  }

  test('prepareOutput sets the level, checks, registers once; encode frames with the id', async () => {
    const s = serde({ compatibility: 'BACKWARD' });
    fake
      .on('PUT', `/config/${SUBJECT}`, { status: 200, body: { compatibility: 'BACKWARD' } })
      .on('POST', `/compatibility/subjects/${SUBJECT}/versions/latest`, RECORDED.subjectNotFound(SUBJECT))
      .on('POST', `/subjects/${SUBJECT}/versions`, { status: 200, body: { id: OURS } });
    assert.equal(await s.prepareOutput(TOPIC, 'RankerOutput'), OURS);
    assert.equal(await s.prepareOutput(TOPIC, 'RankerOutput'), OURS);
    assert.deepEqual(
      fake.requests.map((r) => `${r.method} ${r.path}`),
      [
        `PUT /config/${SUBJECT}`,
        `POST /compatibility/subjects/${SUBJECT}/versions/latest`,
        `POST /subjects/${SUBJECT}/versions`,
      ],
    );
    const buf = s.encode(TOPIC, 'RankerOutput', sampleRanker);
    assert.equal(buf[0], 0);
    assert.equal(buf.readInt32BE(1), OURS);
    // frame (the column path's framing of bytes it wrote itself) gives the same frame as encode.
    assert.ok(s.frame(TOPIC, 'RankerOutput', encodeAvro('RankerOutput', sampleRanker)).equals(buf));
    await s.prefetch([buf]);
    const r = s.decode('RankerOutput', buf);
    assert.ok(r.ok);
    assert.deepEqual(plain(r.value), sampleRanker);
  });

  test('prepareOutput refuses an incompatible subject before registering', async () => {
    const s = serde();
    fake.on('POST', `/compatibility/subjects/${SUBJECT}/versions/latest`, {
      status: 200,
      body: { is_compatible: false, messages: ['TYPE_MISMATCH at /fields/2'] },
    });
    await assert.rejects(s.prepareOutput(TOPIC, 'RankerOutput'), (e) => {
      assert.ok(isRankdistillError(e, 'SCHEMA_INCOMPATIBLE'));
      assert.match(e.message, /TYPE_MISMATCH at \/fields\/2/);
      return true;
    });
    assert.ok(!fake.requests.some((r) => r.path === `/subjects/${SUBJECT}/versions`));
  });

  test('encode before prepareOutput is ENCODE_FAILED naming the call to make', () => {
    assert.throws(
      () => serde().encode('elsewhere', 'RankerOutput', sampleRanker),
      (e) => isRankdistillError(e, 'ENCODE_FAILED') && /prepareOutput\("elsewhere"/.test(e.message),
    );
    assert.throws(
      () => serde().frame('elsewhere', 'RankerOutput', Buffer.alloc(3)),
      (e) => isRankdistillError(e, 'ENCODE_FAILED') && /prepareOutput\("elsewhere"/.test(e.message),
    );
  });

  test('older and newer writer schemas decode into our reader type (schema evolution)', async () => {
    const s = serde();
    const old = frameWith(olderRankerOutputSchema(), OLDER, olderSample());
    const newer = frameWith(newerRankerOutputSchema(), NEWER, newerSample());
    const ours = frameWith(schemaJson('RankerOutput'), OURS, sampleRanker);
    // Before prefetch the ids are unknown: decode reports it instead of guessing the writer.
    const before = s.decode('RankerOutput', old);
    assert.ok(!before.ok && before.error.code === 'SCHEMA_ID_UNKNOWN');

    await s.prefetch([old, newer, ours, old, newer]);
    assert.equal(fake.requests.length, 3, 'one lookup per distinct id');

    const a = s.decode('RankerOutput', old);
    assert.ok(a.ok, a.ok ? '' : a.error.message);
    assert.deepEqual(plain(a.value), { ...sampleRanker, context: null }); // the missing field takes its default
    const b = s.decode('RankerOutput', newer);
    assert.ok(b.ok, b.ok ? '' : b.error.message);
    assert.deepEqual(plain(b.value), { ...sampleRanker, request_id: 'r-evo-3' }); // region dropped
    assert.ok(!('region' in b.value));
    const c = s.decode('RankerOutput', ours);
    assert.ok(c.ok);
    assert.deepEqual(plain(c.value), sampleRanker);

    await s.prefetch([old, newer]);
    assert.equal(fake.requests.length, 3, 'cached ids are not fetched again');
  });

  test('unknown ids and non-Confluent payloads become decode errors; prefetch does not throw', async () => {
    const s = serde();
    const unknown = frameWith(schemaJson('RankerOutput'), 77, sampleRanker);
    const garbage = Buffer.from('{"not":"avro"}');
    await s.prefetch([unknown, garbage, null, undefined]);
    const u = s.decode('RankerOutput', unknown);
    assert.ok(!u.ok);
    assert.equal(u.error.code, 'SCHEMA_ID_UNKNOWN');
    assert.match(u.error.message, /unknown schema id 77/);
    const g = s.decode('RankerOutput', garbage);
    assert.ok(!g.ok);
    assert.match(g.error.message, /magic byte 0/);
    await s.prefetch([unknown]);
    assert.equal(
      fake.requests.filter((r) => r.path === '/schemas/ids/77').length,
      1,
      'a 404 id is not asked again',
    );
  });

  test('a writer schema that cannot be resolved against ours is a decode error, not a crash', async () => {
    const s = serde();
    const renamed = { ...(schemaJson('RankerOutput') as object), name: 'SomethingElse' } as avro.Schema;
    fake.on('GET', '/schemas/ids/9', { status: 200, body: { schema: JSON.stringify(renamed) } });
    const buf = frameWith(renamed, 9, sampleRanker);
    await s.prefetch([buf]);
    const r = s.decode('RankerOutput', buf);
    assert.ok(!r.ok);
    assert.match(r.error.message, /cannot be resolved/);
  });

  test('a registry failure makes prefetch throw a retriable error (the batch is retried, not dead-lettered)', async () => {
    const s = serde();
    fake.on('GET', '/schemas/ids/5', RECORDED.backendError());
    const buf = frameWith(schemaJson('RankerOutput'), 5, sampleRanker);
    await assert.rejects(
      s.prefetch([buf]),
      (e) => isRankdistillError(e, 'SCHEMA_REGISTRY_FAILED') && e.retriable,
    );
    fake.on('GET', '/schemas/ids/5', {
      status: 200,
      body: { schema: JSON.stringify(schemaJson('RankerOutput')) },
    });
    await s.prefetch([buf]);
    assert.ok(s.decode('RankerOutput', buf).ok);
  });

  test('registrySerdeFromConfig is undefined without a registry url', () => {
    assert.equal(registrySerdeFromConfig({}), undefined);
    assert.ok(registrySerdeFromConfig({ schemaRegistryUrl: fake.url }) instanceof RegistrySerde);
  });
});
