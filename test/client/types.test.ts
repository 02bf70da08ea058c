import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeLabel,
  LABEL_CONTRACT,
  LABEL_KINDS,
  LabelDecodeError,
  subscribeLabels,
} from '../../src/client/index.ts';
import { encodeAvro, encodeConfluent } from '../../src/contracts/index.ts';
import type { PairwiseLabels } from '../../src/contracts/types.gen.ts';
import { DecodeError, isRankdistillError, RankdistillError } from '../../src/errors.ts';

const pairwiseArb = fc.record({
  id: fc.string(),
  request_id: fc.string(),
  user_id: fc.string(),
  ts: fc.integer({ min: 0, max: 2 ** 50 }),
  model_version: fc.string(),
  matched: fc.boolean(),
  context: fc.constant(null),
  pairs: fc.array(
    fc.record({
      pos_item: fc.string(),
      neg_item: fc.string(),
      pos_rank: fc.integer({ min: 1, max: 1000 }),
      neg_rank: fc.integer({ min: 1, max: 1000 }),
      weight: fc.double({ noNaN: true, noDefaultInfinity: true }),
    }),
    { maxLength: 5 },
  ),
}) satisfies fc.Arbitrary<PairwiseLabels>;

test('decodeLabel inverts encodeAvro and encodeConfluent for every pairwise record', () => {
  fc.assert(
    fc.property(pairwiseArb, (r) => {
      const a = decodeLabel('pairwise', encodeAvro('PairwiseLabels', r), 'avro');
      const c = decodeLabel('pairwise', encodeConfluent('PairwiseLabels', r, 7), 'confluent');
      assert.ok(a.ok && c.ok);
      assert.deepEqual(JSON.parse(JSON.stringify(a.value)), JSON.parse(JSON.stringify(r)));
      assert.deepEqual(JSON.parse(JSON.stringify(c.value)), JSON.parse(JSON.stringify(r)));
    }),
    { numRuns: 50 },
  );
});

test('decodeLabel never throws on garbage and says why', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(...LABEL_KINDS), (bytes, kind) => {
      const r = decodeLabel(kind, Buffer.from(bytes), 'avro');
      if (!r.ok) assert.ok(r.error instanceof DecodeError);
    }),
  );
  const r = decodeLabel('pointwise', Buffer.from('nope!!'), 'confluent');
  assert.ok(!r.ok);
  assert.match(r.error.message, /PointwiseLabels: .*magic byte/);
});

test('every label kind maps to its contract', () => {
  assert.deepEqual(LABEL_CONTRACT, {
    pointwise: 'PointwiseLabels',
    pairwise: 'PairwiseLabels',
    listwise: 'ListwiseLabels',
  });
});

test('LabelDecodeError names topic, partition and offset and keeps the decoder code', () => {
  const cause = new DecodeError('x: bad', { code: 'VALIDATION_FAILED' });
  const e = new LabelDecodeError(
    'listwise',
    { source: 'labels.listwise', partition: 2, offset: '41' },
    cause,
  );
  assert.ok(e instanceof RankdistillError);
  assert.equal(e.name, 'LabelDecodeError');
  assert.equal(e.code, 'VALIDATION_FAILED');
  assert.equal(e.cause, cause);
  assert.equal(
    e.message,
    'undecodable ListwiseLabels at topic labels.listwise partition 2 offset 41: x: bad',
  );
  assert.deepEqual(
    { ...e.details },
    { kind: 'listwise', source: 'labels.listwise', partition: 2, offset: '41' },
  );
});

test('subscribeLabels rejects bad options at once, without connecting', () => {
  const usage = (e: unknown) => isRankdistillError(e, 'USAGE');
  assert.throws(() => subscribeLabels({ brokers: [], kind: 'pointwise', groupId: 'g' }), usage);
  assert.throws(() => subscribeLabels({ brokers: ['127.0.0.1:1'], kind: 'pointwise', groupId: '' }), usage);
  assert.throws(
    () => subscribeLabels({ brokers: ['127.0.0.1:1'], kind: 'nope' as 'pointwise', groupId: 'g' }),
    usage,
  );
  assert.throws(
    () => subscribeLabels({ brokers: ['127.0.0.1:1'], kind: 'pairwise', groupId: 'g', commitEvery: 0 }),
    usage,
  );
});

test('a subscription that never started closes without touching the network', async () => {
  const sub = subscribeLabels({ brokers: ['127.0.0.1:1'], kind: 'pointwise', groupId: 'g' });
  await sub.close();
  assert.deepEqual(await sub.next(), { done: true, value: undefined });
  assert.deepEqual(sub.stats, { delivered: 0, skipped: 0 });
});
