/**
 * The fast paths installed by `boundedTypeHook` (map readers/writers with cached key bytes, the
 * ASCII string writer) and encodeAvro's scratch buffer must give exactly avsc's bytes and values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import avro from 'avsc';
import fc from 'fast-check';
import {
  avroType,
  type ContractName,
  type Contracts,
  decodeAvro,
  encodeAvro,
  schemaJson,
} from '../../src/contracts/index.ts';
import { RankdistillError } from '../../src/errors.ts';

/** avsc without our hook: the reference encoder/decoder. */
const plainTypes = new Map<ContractName, avro.Type>();
function plainType(name: ContractName): avro.Type {
  let t = plainTypes.get(name);
  if (t === undefined) {
    t = avro.Type.forSchema(schemaJson(name), { wrapUnions: 'auto' });
    plainTypes.set(name, t);
  }
  return t;
}

/** Decoded records are avsc record instances: compare as plain data. */
function plain(x: unknown): unknown {
  if (Buffer.isBuffer(x)) return Buffer.from(x);
  if (Array.isArray(x)) return x.map(plain);
  if (x !== null && typeof x === 'object')
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

// Short ASCII, unicode (multi-byte, surrogate pairs) and long strings: every branch of the writer.
const anyString = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ minLength: 60, maxLength: 200 }),
);
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const shapes = [{}, { ctr: 1, like: 2 }, { like: 3, ctr: 4 }, { ctr: 5, like: 6, dwell: 7 }];
// Maps that repeat a few key sequences (the cached-shape path) and arbitrary ones (the generic path).
const anyMap = fc.oneof(
  fc.constantFrom(...shapes),
  fc.dictionary(anyString, finite, { maxKeys: 5 }),
  fc.dictionary(fc.string({ minLength: 64, maxLength: 70 }), finite, { maxKeys: 2 }),
);
const optMap = fc.option(anyMap, { nil: null });

const rankerArb: fc.Arbitrary<Contracts['RankerOutput']> = fc.record({
  request_id: anyString,
  user_id: anyString,
  ts: fc.integer({ min: 0, max: 2 ** 50 }),
  model_version: anyString,
  context: optMap,
  items: fc.array(fc.record({ item_id: anyString, score: finite, objectives: optMap, features: optMap }), {
    maxLength: 6,
  }),
});

const pointwiseArb: fc.Arbitrary<Contracts['PointwiseLabels']> = fc.record({
  id: anyString,
  request_id: anyString,
  user_id: anyString,
  ts: fc.integer({ min: 0, max: 2 ** 50 }),
  model_version: anyString,
  matched: fc.boolean(),
  context: optMap,
  items: fc.array(
    fc.record({
      item_id: anyString,
      rank: fc.integer({ min: 1, max: 1000 }),
      label: fc.integer({ min: 0, max: 1 }),
      weight: finite,
      teacher_logit: fc.option(finite, { nil: null }),
      soft_target: fc.option(finite, { nil: null }),
      clicked: fc.option(fc.boolean(), { nil: null }),
      features: optMap,
    }),
    { maxLength: 6 },
  ),
});

test('encodeAvro writes exactly avsc toBuffer bytes (strings, maps, unions), and decodes back to avsc values', () => {
  fc.assert(
    fc.property(fc.array(rankerArb, { minLength: 1, maxLength: 4 }), (records) => {
      for (const r of records) {
        const ours = encodeAvro('RankerOutput', r);
        const ref = plainType('RankerOutput').toBuffer(r);
        assert.deepEqual(ours, ref);
        const d = decodeAvro('RankerOutput', ref);
        assert.ok(d.ok);
        assert.deepEqual(plain(d.value), plain(plainType('RankerOutput').fromBuffer(ref)));
      }
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.array(pointwiseArb, { minLength: 1, maxLength: 4 }), (records) => {
      for (const r of records) {
        assert.deepEqual(encodeAvro('PointwiseLabels', r), plainType('PointwiseLabels').toBuffer(r));
      }
    }),
    { numRuns: 300 },
  );
});

test('records larger than the scratch buffer and than avsc 1 KiB buffer encode identically', () => {
  for (const n of [1, 50, 5_000, 40_000]) {
    const r: Contracts['RankerOutput'] = {
      request_id: 'r',
      user_id: 'u',
      ts: 1,
      model_version: 'm',
      context: null,
      items: Array.from({ length: n }, (_, i) => ({
        item_id: `item-${i}`,
        score: i,
        objectives: null,
        features: { price: i, ctr7d: 0.5 },
      })),
    };
    const ours = encodeAvro('RankerOutput', r);
    assert.deepEqual(ours, plainType('RankerOutput').toBuffer(r));
    // The returned buffer is the caller's own: the next encode must not overwrite it.
    const copy = Buffer.from(ours);
    encodeAvro('RankerOutput', { ...r, request_id: 'other' });
    assert.deepEqual(ours, copy);
  }
});

/** RankerOutput bytes with one item whose objectives map is written as `mapBytes`. */
function rankerWithMap(mapBytes: number[]): Buffer {
  const str = (s: string) => [s.length * 2, ...Buffer.from(s)];
  const head = [...str('r'), ...str('u'), 2, ...str('m'), 0];
  const score = [...Buffer.alloc(8)];
  const item = [...str('a'), ...score, 2, ...mapBytes, 0];
  return Buffer.from([...head, 2, ...item, 0]);
}

test('maps in several blocks, with block sizes, or with non-canonical key lengths decode like avsc', () => {
  const d1 = [...Buffer.from(new Float64Array([1]).buffer)];
  const d2 = [...Buffer.from(new Float64Array([2]).buffer)];
  const ctr = [6, ...Buffer.from('ctr')];
  const like = [8, ...Buffer.from('like')];
  const dwell = [10, ...Buffer.from('dwell')];
  const cases = [
    [4, ...ctr, ...d1, ...like, ...d2, 0], // one block: primes the cached shape
    [2, ...ctr, ...d1, 2, ...like, ...d2, 0], // two blocks of one
    [3, 26, ...ctr, ...d1, ...like, ...d2, 0], // count -2 with a block size
    [4, 0x86, 0x00, ...Buffer.from('ctr'), ...d1, ...like, ...d2, 0], // key length as two varint bytes
    [4, ...like, ...d2, ...ctr, ...d1, 0], // other key order
    [4, ...ctr, ...d1, ...like, ...d2, 0],
    [4, ...ctr, ...d1, ...like, ...d2, 2, ...dwell, ...d1, 0], // the cached shape, then one more block
  ];
  for (const c of cases) {
    const buf = rankerWithMap(c);
    const ref = plainType('RankerOutput').fromBuffer(buf) as Contracts['RankerOutput'];
    const d = decodeAvro('RankerOutput', buf);
    assert.ok(d.ok, d.ok ? '' : d.error.message);
    assert.deepEqual(plain(d.value), plain(ref));
    assert.deepEqual(
      Object.keys(d.value.items[0]?.objectives ?? {}),
      Object.keys(ref.items[0]?.objectives ?? {}),
    );
  }
  // Truncated inside a map that matches the cached shape: a typed error, not a partial record.
  const whole = rankerWithMap(cases[0] as number[]);
  for (let cut = 12; cut < whole.length; cut++)
    assert.equal(decodeAvro('RankerOutput', whole.subarray(0, cut)).ok, false);
});

test('invalid strings and maps still fail to encode with ENCODE_FAILED naming the field', () => {
  const base: Contracts['RankerOutput'] = {
    request_id: 'r',
    user_id: 'u',
    ts: 1,
    model_version: 'm',
    context: null,
    items: [{ item_id: 'a', score: 1, objectives: { ctr: 1 }, features: null }],
  };
  const bad = [
    { ...base, user_id: 7 },
    { ...base, context: Buffer.from('x') },
    { ...base, context: [1] },
    { ...base, items: [{ ...base.items[0], objectives: { ctr: 'x' } }] },
  ];
  for (const b of bad) {
    assert.throws(
      () => encodeAvro('RankerOutput', b as unknown as Contracts['RankerOutput']),
      (e: unknown) => e instanceof RankdistillError && e.code === 'ENCODE_FAILED',
    );
  }
  assert.ok(avroType('RankerOutput').isValid(base));
  // Optional fields (["null", X] unions) refuse values of another type, as avsc does.
  const item = {
    item_id: 'a',
    rank: 1,
    label: 1,
    weight: 1,
    teacher_logit: null,
    soft_target: null,
    clicked: null,
    features: null,
  };
  const labels = {
    id: 'x',
    request_id: 'r',
    user_id: 'u',
    ts: 1,
    model_version: 'm',
    matched: true,
    context: null,
  };
  for (const over of [
    { clicked: 1 },
    { teacher_logit: '1' },
    { soft_target: true },
    { features: [] },
    { rank: 1.5 },
  ]) {
    const bad = { ...labels, items: [{ ...item, ...over }] };
    assert.throws(
      () => encodeAvro('PointwiseLabels', bad as unknown as Contracts['PointwiseLabels']),
      (e: unknown) => e instanceof RankdistillError && e.code === 'ENCODE_FAILED',
      JSON.stringify(over),
    );
  }
  assert.deepEqual(
    encodeAvro('PointwiseLabels', { ...labels, items: [item] }),
    plainType('PointwiseLabels').toBuffer({ ...labels, items: [item] }),
  );
});
