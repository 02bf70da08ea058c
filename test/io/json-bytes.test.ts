/**
 * jsonBytes (src/io/json-bytes.ts) against Buffer.from(JSON.stringify(v)): the same bytes for any
 * plain value, null (the caller's fallback) for what it does not handle, and the same bytes for
 * every label record labelRequest makes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { jsonBytes, NUMBER_MAX, numberAt } from '../../src/io/json-bytes.ts';
import { labelRequest } from '../../src/labels/index.ts';
import { arbConfig, arbJoined } from '../labels/helpers.ts';

function same(v: unknown): void {
  const got = jsonBytes(v);
  assert.ok(got !== null, `jsonBytes gave null for ${JSON.stringify(v)}`);
  assert.equal(got.toString('utf8'), JSON.stringify(v));
  assert.ok(got.equals(Buffer.from(JSON.stringify(v), 'utf8')));
}

/** Strings of any UTF-16 units: lone surrogates, controls, quotes, backslashes, non-ASCII. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.string({ maxLength: 20 }),
  fc.constantFrom('', '"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', 'é', '😀', '</script>'),
);
/** Numbers incl. the edges: -0, NaN, ±Infinity, int32 bounds, huge and tiny doubles. */
const anyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.integer({ min: -(2 ** 53), max: 2 ** 53 }),
  fc.constantFrom(
    0,
    -0,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    2147483647,
    -2147483648,
    2147483648,
    -2147483649,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    Number.EPSILON,
    1e21,
    1e-7,
    123e-20,
    0.1 + 0.2,
  ),
);
/** Plain values, with undefined members (left out of objects, null in arrays). */
const { value: anyValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    anyString,
    anyNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.oneof(tie('value'), fc.constant(undefined)), { maxLength: 5 }),
    fc.dictionary(anyString, fc.oneof(tie('value'), fc.constant(undefined)), { maxKeys: 5 }),
  ),
}));

describe('jsonBytes', () => {
  test('property: the bytes of JSON.stringify for arbitrary strings', () => {
    fc.assert(fc.property(anyString, same), { numRuns: 2000 });
  });

  test('property: the bytes of JSON.stringify for arbitrary numbers', () => {
    fc.assert(fc.property(anyNumber, same), { numRuns: 2000 });
  });

  test('property: numberAt writes Number.prototype.toString for short decimals, their neighbours and any double', () => {
    const buf = Buffer.alloc(NUMBER_MAX + 8);
    const bits = new Float64Array(1);
    const lo = new Uint32Array(bits.buffer);
    const decimal = fc
      .record({
        m: fc.oneof(
          fc.integer({ min: -(10 ** 9), max: 10 ** 9 }),
          fc.integer({ min: -(2 ** 53), max: 2 ** 53 }),
        ),
        d: fc.integer({ min: 0, max: 22 }),
        step: fc.integer({ min: -2, max: 2 }), // the value itself or a neighbouring double
      })
      .map(({ m, d, step }) => {
        bits[0] = m / 10 ** d;
        lo[0] = (lo[0]! + step) >>> 0;
        return bits[0];
      });
    const near = fc
      .constantFrom(2 ** 50, 2 ** 53, 1e-6, 1000, 2 ** 31)
      .chain((edge) => fc.double({ min: edge * (1 - 1e-9), max: edge * (1 + 1e-9), noNaN: true }));
    fc.assert(
      fc.property(fc.oneof(decimal, near, fc.double(), anyNumber), (x) => {
        const end = numberAt(buf, 0, x);
        assert.equal(buf.toString('latin1', 0, end), JSON.stringify(x));
      }),
      { numRuns: 20_000 },
    );
  });

  test('property: the bytes of JSON.stringify for arbitrary plain values (ids and numbers as keys too)', () => {
    fc.assert(fc.property(anyValue, same), { numRuns: 1000 });
  });

  test('property: many records in a row (slab refills) each keep their own bytes', () => {
    fc.assert(
      fc.property(fc.array(anyValue, { minLength: 1, maxLength: 60 }), (vs) => {
        const views = vs.map((v) => jsonBytes(v));
        for (const [i, v] of vs.entries()) assert.equal(views[i]?.toString('utf8'), JSON.stringify(v));
      }),
      { numRuns: 100 },
    );
    // A record bigger than a slab, then small ones after it.
    const big = { s: 'x'.repeat(600_000), n: Array.from({ length: 5000 }, (_, i) => i / 7) };
    const a = jsonBytes(big);
    const b = jsonBytes({ after: true });
    assert.equal(a?.toString('utf8'), JSON.stringify(big));
    assert.equal(b?.toString('utf8'), '{"after":true}');
  });

  test('null for what is not plain data, and the next record is unaffected', () => {
    for (const v of [
      undefined,
      () => 1,
      Symbol('s'),
      10n,
      Buffer.from('ab'),
      new Date(0),
      { toJSON: () => 'x' },
      { a: [1, { b: Buffer.from('x') }] },
      new Map([[1, 2]]),
    ]) {
      assert.equal(jsonBytes(v), null, String(typeof v));
    }
    same({ ok: 1 });
  });

  test('property: every label record labelRequest makes, byte for byte', () => {
    fc.assert(
      fc.property(arbJoined(60), arbConfig(), (joined, cfg) => {
        const labels = labelRequest(joined, cfg);
        for (const rec of [labels.pointwise, labels.pairwise, labels.listwise]) if (rec !== null) same(rec);
      }),
      { numRuns: 300 },
    );
  });
});
