import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { avroType, schemaJson } from '../../src/contracts/index.ts';
import { isRankdistillError, RankdistillError } from '../../src/errors.ts';
import { parseAvroSchema, SchemaRegistryClient, subjectFor } from '../../src/registry/client.ts';
import { newerRankerOutputSchema } from './evolution.ts';
import { FakeRegistry, RECORDED } from './fake-registry.ts';

const SUBJECT = 'ranker-outputs-value';

function isCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(isRankdistillError(e), `expected a RankdistillError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

describe('SchemaRegistryClient against recorded Confluent answers', () => {
  let fake: FakeRegistry;
  let client: SchemaRegistryClient;

  before(async () => {
    fake = await new FakeRegistry().start();
  });
  after(async () => {
    await fake.stop();
  });

  function fresh(options: { retries?: number; timeoutMs?: number } = {}) {
    fake.routes.clear();
    fake.requests.length = 0;
    client = new SchemaRegistryClient({ url: `${fake.url}/`, retries: 0, retryBackoffMs: 1, ...options });
    return fake;
  }

  test('subjects follow TopicNameStrategy', () => {
    assert.equal(subjectFor('ranker-outputs'), 'ranker-outputs-value');
    assert.equal(subjectFor('impressions', 'key'), 'impressions-key');
  });

  test('registerSchema posts the schema as a JSON string with the registry content type and returns the id', async () => {
    fresh().on('POST', `/subjects/${SUBJECT}/versions`, { status: 200, body: { id: 7 } });
    const id = await client.registerSchema(SUBJECT, schemaJson('RankerOutput'));
    assert.equal(id, 7);
    const [req] = fake.requests;
    assert.equal(req?.method, 'POST');
    assert.equal(req?.contentType, 'application/vnd.schemaregistry.v1+json');
    const sent = (req?.body as { schema: string } | undefined)?.schema ?? '';
    assert.equal(typeof sent, 'string');
    assert.deepEqual(JSON.parse(sent), schemaJson('RankerOutput'));
  });

  test('subject names are URL-encoded', async () => {
    fresh().on('POST', '/subjects/a%2Fb-value/versions', { status: 200, body: { id: 1 } });
    assert.equal(await client.registerSchema('a/b-value', '"string"'), 1);
  });

  test('409 on register is SCHEMA_INCOMPATIBLE (not retriable) quoting the registry', async () => {
    fresh().on('POST', `/subjects/${SUBJECT}/versions`, RECORDED.incompatible(SUBJECT));
    await assert.rejects(client.registerSchema(SUBJECT, newerRankerOutputSchema()), (e) => {
      isCode(
        'SCHEMA_INCOMPATIBLE',
        /incompatible with the earlier versions.*HTTP 409.*READER_FIELD_MISSING/,
      )(e);
      assert.equal((e as RankdistillError).retriable, false);
      assert.equal((e as RankdistillError).details.status, 409);
      return true;
    });
  });

  test('422 on register is SCHEMA_INVALID', async () => {
    fresh().on('POST', `/subjects/${SUBJECT}/versions`, RECORDED.invalidSchema());
    await assert.rejects(
      client.registerSchema(SUBJECT, '{"type":"nope"}'),
      isCode('SCHEMA_INVALID', /error_code 42201/),
    );
  });

  test('500 is a retriable SCHEMA_REGISTRY_FAILED naming the request and the answer', async () => {
    fresh().on('POST', `/subjects/${SUBJECT}/versions`, RECORDED.backendError());
    await assert.rejects(client.registerSchema(SUBJECT, '"string"'), (e) => {
      isCode(
        'SCHEMA_REGISTRY_FAILED',
        /POST http:\/\/127\.0\.0\.1:\d+\/subjects\/ranker-outputs-value\/versions/,
      )(e);
      assert.match((e as Error).message, /HTTP 500 \(error_code 50001\): Error in the backend data store/);
      assert.equal((e as RankdistillError).retriable, true);
      return true;
    });
  });

  test('5xx answers are retried, then the success is returned', async () => {
    let calls = 0;
    fresh({ retries: 2 }).on('POST', `/subjects/${SUBJECT}/versions`, () =>
      ++calls < 3 ? RECORDED.backendError() : { status: 200, body: { id: 3 } },
    );
    assert.equal(await client.registerSchema(SUBJECT, '"string"'), 3);
    assert.equal(calls, 3);
  });

  test('a 200 without an id is SCHEMA_REGISTRY_FAILED', async () => {
    fresh().on('POST', `/subjects/${SUBJECT}/versions`, { status: 200, body: { version: 1 } });
    await assert.rejects(
      client.registerSchema(SUBJECT, '"string"'),
      isCode('SCHEMA_REGISTRY_FAILED', /expected \{"id"/),
    );
  });

  test('testCompatibility reads is_compatible and the verbose messages', async () => {
    const path = `/compatibility/subjects/${SUBJECT}/versions/latest`;
    fresh().on('POST', path, {
      status: 200,
      body: { is_compatible: false, messages: ['READER_FIELD_MISSING_DEFAULT_VALUE: region'] },
    });
    assert.deepEqual(await client.testCompatibility(SUBJECT, '"string"'), {
      compatible: false,
      messages: ['READER_FIELD_MISSING_DEFAULT_VALUE: region'],
    });
    await assert.rejects(
      client.checkCompatibility(SUBJECT, '"string"'),
      isCode('SCHEMA_INCOMPATIBLE', /latest version of subject ranker-outputs-value: READER_FIELD_MISSING/),
    );
    fake.on('POST', path, { status: 200, body: { is_compatible: true } });
    await client.checkCompatibility(SUBJECT, '"string"');
  });

  test('compatibility against a subject that does not exist yet (404 40401) passes', async () => {
    fresh().on(
      'POST',
      `/compatibility/subjects/${SUBJECT}/versions/latest`,
      RECORDED.subjectNotFound(SUBJECT),
    );
    assert.deepEqual(await client.testCompatibility(SUBJECT, '"string"'), { compatible: true, messages: [] });
  });

  test('a 404 without a subject error code on compatibility is SCHEMA_REGISTRY_FAILED (wrong URL)', async () => {
    fresh(); // no routes: the fake answers a plain 404, as a wrong base path would
    await assert.rejects(
      client.testCompatibility(SUBJECT, '"string"'),
      isCode('SCHEMA_REGISTRY_FAILED', /HTTP 404/),
    );
  });

  test('setCompatibility puts the level and refuses unknown levels before any request', async () => {
    fresh().on('PUT', `/config/${SUBJECT}`, (req) => ({ status: 200, body: req.body }));
    await client.setCompatibility(SUBJECT, 'FULL');
    assert.deepEqual(fake.requests[0]?.body, { compatibility: 'FULL' });
    await assert.rejects(client.setCompatibility(SUBJECT, 'SIDEWAYS' as never), isCode('CONFIG_INVALID'));
    assert.equal(fake.requests.length, 1);
  });

  test('schemaById returns an avsc type, cached: one request for many lookups', async () => {
    const writer = JSON.stringify(newerRankerOutputSchema());
    fresh().on('GET', '/schemas/ids/42', { status: 200, body: { schema: writer } });
    const [a, b] = await Promise.all([client.schemaById(42), client.schemaById(42)]);
    assert.equal(a, b);
    assert.equal(await client.schemaById(42), a);
    assert.equal(fake.requests.length, 1);
    assert.equal(client.cachedSchemaById(42), a);
    assert.equal(client.cachedSchemaById(43), undefined);
    // The writer resolves against our reader type (the extra field is skipped).
    assert.ok(avroType('RankerOutput').createResolver(a));
  });

  test('schemaById: 404 40403 is SCHEMA_ID_UNKNOWN, 500 is retriable and not cached', async () => {
    fresh().on('GET', '/schemas/ids/99', RECORDED.schemaNotFound(99));
    await assert.rejects(client.schemaById(99), (e) => {
      isCode('SCHEMA_ID_UNKNOWN', /schema id 99 is not registered.*Schema 99 not found/)(e);
      assert.equal((e as RankdistillError).details.schemaId, 99);
      return true;
    });
    fake.on('GET', '/schemas/ids/5', RECORDED.backendError());
    await assert.rejects(client.schemaById(5), isCode('SCHEMA_REGISTRY_FAILED', /GET .*\/schemas\/ids\/5/));
    fake.on('GET', '/schemas/ids/5', { status: 200, body: { schema: '"string"' } });
    assert.equal((await client.schemaById(5)).typeName, 'string');
  });

  test('schemaById refuses non-Avro and unparsable schemas with SCHEMA_INVALID', async () => {
    fresh()
      .on('GET', '/schemas/ids/1', {
        status: 200,
        body: { schema: 'syntax = "proto3";', schemaType: 'PROTOBUF' },
      })
      .on('GET', '/schemas/ids/2', { status: 200, body: { schema: '{"type":"record"}' } });
    await assert.rejects(client.schemaById(1), isCode('SCHEMA_INVALID', /PROTOBUF schema, expected AVRO/));
    await assert.rejects(
      client.schemaById(2),
      isCode('SCHEMA_INVALID', /schema id 2 .* is not a valid Avro schema/),
    );
  });

  test('a registry that never answers times out as SCHEMA_REGISTRY_FAILED', async () => {
    fresh({ timeoutMs: 100 }).on('GET', '/schemas/ids/8', { status: 200, hang: true });
    await assert.rejects(client.schemaById(8), isCode('SCHEMA_REGISTRY_FAILED', /no answer within 100 ms/));
  });

  test('an unreachable registry is SCHEMA_REGISTRY_FAILED after the retries', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const c = new SchemaRegistryClient({ url: `http://127.0.0.1:${port}`, retries: 1, retryBackoffMs: 1 });
    await assert.rejects(
      c.registerSchema(SUBJECT, '"string"'),
      isCode('SCHEMA_REGISTRY_FAILED', /after 2 attempt\(s\)/),
    );
  });

  test('a malformed url is CONFIG_INVALID', () => {
    assert.throws(() => new SchemaRegistryClient({ url: 'not a url' }), isCode('CONFIG_INVALID'));
    assert.throws(() => new SchemaRegistryClient({ url: 'ftp://127.0.0.1/' }), isCode('CONFIG_INVALID'));
  });

  test('parseAvroSchema accepts bare primitive names and refuses garbage', () => {
    assert.equal(parseAvroSchema('string').typeName, 'string');
    assert.throws(
      () => parseAvroSchema('{"type":"map"}'),
      (e) => e instanceof RankdistillError,
    );
  });
});
