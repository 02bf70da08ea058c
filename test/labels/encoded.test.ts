/**
 * The column path (parseRankerColumns → labelColumnsEncoded) against the generic path
 * (decodeAvro → validateRankerOutput → labelRequest → encodeAvro): the same bytes, the same
 * errors, and columns only for records the generic path accepts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { LabelsConfig } from '../../src/config/schema.ts';
import { decodeAvro, encodeAvro } from '../../src/contracts/codec.ts';
import { parseImpressionColumns } from '../../src/contracts/impression-columns.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { parseRankerColumns, RankerColumns } from '../../src/contracts/ranker-columns.ts';
import { isRankdistillError } from '../../src/errors.ts';
import {
  columnsSupported,
  type EncodedLabels,
  labelColumnsEncoded,
  labelId,
} from '../../src/labels/encoded.ts';
import { labelRequest, validateRankerOutput } from '../../src/labels/index.ts';
import { applyByteEdits, arbByteEdits } from '../contracts/helpers.ts';
import { arbConfig, arbRanker, assertSameLabels, labelsConfig } from './helpers.ts';

function decodeImpression(b: Buffer): Impression {
  const d = decodeAvro('Impression', b);
  if (!d.ok) throw d.error;
  return d.value;
}

function decodeRanker(b: Buffer): RankerOutput {
  const d = decodeAvro('RankerOutput', b);
  if (!d.ok) throw d.error;
  return d.value;
}

/** The generic path's bytes, or the error it throws. */
function generic(r: RankerOutput, imp: Impression | null, cfg: LabelsConfig): EncodedLabels | Error {
  try {
    const l = labelRequest({ ranker: r, impression: imp }, cfg);
    return {
      pointwise: l.pointwise && encodeAvro('PointwiseLabels', l.pointwise),
      pairwise: l.pairwise && encodeAvro('PairwiseLabels', l.pairwise),
      listwise: l.listwise && encodeAvro('ListwiseLabels', l.listwise),
    };
  } catch (e) {
    return e as Error;
  }
}

function columns(c: RankerColumns, imp: Impression | null, cfg: LabelsConfig): EncodedLabels | Error {
  try {
    return labelColumnsEncoded(c, imp, cfg);
  } catch (e) {
    return e as Error;
  }
}

const asciiId = fc.stringMatching(/^[a-z][a-z0-9_-]{0,14}$/);
const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true });
const featureMap = fc.option(
  fc.dictionary(fc.constantFrom('price', 'ctr7d', 'age', 'x', 'len_title'), finite, { maxKeys: 4 }),
  { nil: null },
);

/** Requests whose ids are ASCII and maps canonical: the column path must take them. */
const arbRequest = fc
  .record({
    rid: asciiId,
    user: asciiId,
    ts: fc.integer({ min: 0, max: 2 ** 45 }),
    version: fc.stringMatching(/^[a-z0-9.-]{0,8}$/),
    context: featureMap,
    ids: fc.uniqueArray(asciiId, { minLength: 1, maxLength: 120 }),
    scores: fc.array(fc.oneof(finite, fc.constantFrom(0, 1, -1, 2.5)), { minLength: 120, maxLength: 120 }),
    features: fc.array(featureMap, { minLength: 120, maxLength: 120 }),
    objectives: fc.boolean(),
    imp: fc.option(
      fc.record({
        take: fc.array(fc.nat(), { maxLength: 12 }),
        strangers: fc.nat(2),
        clicks: fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
        ts: fc.integer({ min: 0, max: 2 ** 45 }),
        reverse: fc.boolean(),
      }),
      { nil: null },
    ),
  })
  .map((o): { ranker: RankerOutput; impression: Impression | null } => {
    const ranker: RankerOutput = {
      request_id: o.rid,
      user_id: o.user,
      ts: o.ts,
      model_version: o.version,
      context: o.context,
      items: o.ids.map((item_id, i) => ({
        item_id,
        score: o.scores[i]!,
        objectives: o.objectives ? { ctr: i } : null,
        features: o.features[i]!,
      })),
    };
    if (o.imp === null) return { ranker, impression: null };
    const shown = [...new Set(o.imp.take.map((t) => o.ids[t % o.ids.length]!))];
    for (let s = 0; s < o.imp.strangers; s++) shown.push(`stranger-${s}`);
    const n = shown.length;
    return {
      ranker,
      impression: {
        request_id: o.rid,
        user_id: o.user,
        ts: o.imp.ts,
        items: shown.map((item_id, k) => ({
          item_id,
          position: o.imp!.reverse ? n - k : k + 1,
          clicked: o.imp!.clicks[k % 20]!,
          dwell_ms: null,
          actions: null,
        })),
      },
    };
  });

/** Request r1 of user u1 with the one candidate `a` (score 1), with the given objectives. */
function oneItem(objectives: Record<string, number> | null): RankerOutput {
  return {
    request_id: 'r1',
    user_id: 'u1',
    ts: 5,
    model_version: 'v',
    context: null,
    items: [{ item_id: 'a', score: 1, objectives, features: null }],
  };
}

const arbSupportedConfig = arbConfig().filter(columnsSupported);

describe('column path vs generic path', () => {
  test('same label bytes (or the same error) for every request and config', () => {
    fc.assert(
      fc.property(arbRequest, arbSupportedConfig, ({ ranker, impression }, cfg) => {
        const raw = encodeAvro('RankerOutput', ranker);
        const cols = parseRankerColumns(raw, decodeRanker);
        assert.ok(cols !== null, 'a canonical ASCII record takes the column path');
        assert.deepStrictEqual(cols.decoded(), decodeRanker(raw));
        assert.equal(cols.n, ranker.items.length);
        const expected = generic(decodeRanker(raw), impression, cfg);
        assertSameLabels(columns(cols, impression, cfg), expected);
        if (impression !== null) {
          // The impression held as columns too (its ids matched as bytes): the same labels.
          const impCols = parseImpressionColumns(encodeAvro('Impression', impression), decodeImpression);
          assert.ok(impCols !== null, 'a valid ASCII impression takes the column path');
          assertSameLabels(columns(cols, impCols, cfg), expected);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('labels kept across many requests keep their bytes (records are views of shared slabs)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(arbRequest, fc.boolean()), { minLength: 1, maxLength: 20 }),
        arbSupportedConfig,
        (reqs, cfg) => {
          // The requests over and over until their labels filled several 256-KB slabs, so that
          // slabs run out at all sorts of places inside records. Every label is kept to the end.
          const kept: Array<[EncodedLabels | Error, EncodedLabels | Error]> = [];
          let bytes = 0;
          for (let k = 0; bytes < 1_200_000; k++) {
            const [{ ranker, impression }, mismatch] = reqs[k % reqs.length]!;
            // Some requests fail half-way (a mismatched impression): what they wrote is skipped.
            const imp = mismatch && impression !== null ? { ...impression, user_id: 'other' } : impression;
            const raw = encodeAvro('RankerOutput', ranker);
            const cols = parseRankerColumns(raw, decodeRanker)!;
            const got = columns(cols, imp, cfg);
            kept.push([got, generic(decodeRanker(raw), imp, cfg)]);
            bytes += 64; // errors write little: bounds the loop when every request fails
            if (!(got instanceof Error))
              for (const b of [got.pointwise, got.pairwise, got.listwise]) bytes += b?.length ?? 0;
          }
          for (const [a, b] of kept) assertSameLabels(a, b);
        },
      ),
      { numRuns: 25 },
    );
  });

  test('a mismatched or bad impression throws what labelRequest throws', () => {
    const cfg = labelsConfig();
    const ranker = oneItem(null);
    const cols = parseRankerColumns(encodeAvro('RankerOutput', ranker), decodeRanker)!;
    const imp = (over: Partial<Impression>): Impression => ({
      request_id: 'r1',
      user_id: 'u1',
      ts: 6,
      items: [{ item_id: 'a', position: 1, clicked: true, dwell_ms: null, actions: null }],
      ...over,
    });
    for (const bad of [imp({ request_id: 'r2' }), imp({ user_id: 'u2' }), imp({ ts: -1 })]) {
      const a = columns(cols, bad, cfg);
      assert.ok(a instanceof Error, 'the column path rejects it');
      assertSameLabels(a, generic(ranker, bad, cfg));
    }
  });

  test('columns only for records the generic path decodes and accepts, with the same labels', () => {
    // Byte flips, truncations and insertions of valid records: whenever the column parser accepts
    // the bytes, the generic path must decode them to a valid record and label it identically.
    const cfg = labelsConfig();
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(arbRequest, arbByteEdits, ({ ranker, impression }, edits) => {
        const raw = applyByteEdits(encodeAvro('RankerOutput', ranker), edits);
        const cols = parseRankerColumns(raw, decodeRanker);
        if (cols === null) {
          rejected++;
          return;
        }
        accepted++;
        const d = decodeAvro('RankerOutput', raw);
        assert.ok(d.ok, 'the generic path decodes what the column path accepted');
        assert.equal(validateRankerOutput(d.value), null);
        assert.equal(cols.request_id, d.value.request_id);
        assert.equal(cols.ts, d.value.ts);
        const imp =
          impression === null
            ? null
            : { ...impression, request_id: d.value.request_id, user_id: d.value.user_id };
        assertSameLabels(columns(cols, imp, cfg), generic(d.value, imp, cfg));
      }),
      { numRuns: 1500 },
    );
    assert.ok(
      accepted > 0 && rejected > 0,
      `both outcomes seen (accepted ${accepted}, rejected ${rejected})`,
    );
  });

  test('records that must take the generic path are refused', () => {
    const base: RankerOutput = {
      request_id: 'r1',
      user_id: 'u1',
      ts: 5,
      model_version: 'v',
      context: { hour: 3 },
      items: [
        { item_id: 'a', score: 1, objectives: null, features: { f: 1 } },
        { item_id: 'b', score: 0, objectives: null, features: null },
      ],
    };
    const parse = (r: RankerOutput) => parseRankerColumns(encodeAvro('RankerOutput', r), decodeRanker);
    assert.ok(parse(base) instanceof RankerColumns);
    const cases: Array<[string, RankerOutput]> = [
      ['non-ASCII id', { ...base, items: [{ ...base.items[0]!, item_id: 'é' }] }],
      ['duplicate ids', { ...base, items: [base.items[0]!, { ...base.items[1]!, item_id: 'a' }] }],
      ['NaN score', { ...base, items: [{ ...base.items[0]!, score: Number.NaN }] }],
      [
        'infinite feature',
        { ...base, items: [{ ...base.items[0]!, features: { f: Number.POSITIVE_INFINITY } }] },
      ],
      ['NaN objective', { ...base, items: [{ ...base.items[0]!, objectives: { ctr: Number.NaN } }] }],
      ['infinite context', { ...base, context: { hour: Number.NEGATIVE_INFINITY } }],
      ['index-like key (JS reorders it)', { ...base, context: { b: 1, '7': 2 } }],
      ['empty request id', { ...base, request_id: '' }],
      ['empty item id', { ...base, items: [{ ...base.items[0]!, item_id: '' }] }],
      ['no items', { ...base, items: [] }],
    ];
    for (const [name, r] of cases) assert.equal(parse(r), null, name);
    const raw = encodeAvro('RankerOutput', base);
    assert.equal(
      parseRankerColumns(Buffer.concat([raw, Buffer.from([0])]), decodeRanker),
      null,
      'trailing byte',
    );
    assert.equal(parseRankerColumns(raw.subarray(0, raw.length - 1), decodeRanker), null, 'truncated');
    // The context map written as two blocks (legal Avro, but not how avsc writes it): copying those
    // bytes would not be what the generic path writes.
    const ctxAt = 1 + 2 + 1 + 2 + 1 + 1 + 2; // rid, uid, ts, version, then the union branch byte
    assert.equal(raw[ctxAt - 1], 2, 'union branch of the context map');
    const twoBlocks = Buffer.concat([
      raw.subarray(0, ctxAt),
      Buffer.from([2, 2, 0x61, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]), // block 1: {"a": 1}
      raw.subarray(ctxAt),
    ]);
    const d = decodeAvro('RankerOutput', twoBlocks);
    assert.ok(
      d.ok && d.value.context !== null && Object.keys(d.value.context).length === 2,
      'still valid Avro',
    );
    assert.equal(parseRankerColumns(twoBlocks, decodeRanker), null, 'two-block map');
  });

  test('objective fusion needs the candidate objects: not supported, and refused if called', () => {
    const cfg = labelsConfig({ teacher: { objectiveWeights: { ctr: 1 } } });
    assert.equal(columnsSupported(cfg), false);
    assert.equal(columnsSupported(labelsConfig()), true);
    const cols = parseRankerColumns(encodeAvro('RankerOutput', oneItem({ ctr: 2 })), decodeRanker)!;
    assert.throws(
      () => labelColumnsEncoded(cols, null, cfg),
      (e) => isRankdistillError(e, 'CONFIG_INVALID'),
    );
  });
});

describe('labelId', () => {
  test('fast-check: reads the id of every label record as its Avro decoding does', () => {
    fc.assert(
      fc.property(
        arbRanker(8),
        // any id, including multi-byte characters and lengths past one varint byte
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 120 }),
        (r, requestId) => {
          const l = labelRequest(
            { ranker: { ...r, request_id: requestId }, impression: null },
            labelsConfig(),
          );
          for (const [name, rec] of [
            ['PointwiseLabels', l.pointwise],
            ['PairwiseLabels', l.pairwise],
            ['ListwiseLabels', l.listwise],
          ] as const) {
            if (rec === null) continue;
            assert.equal(labelId(encodeAvro(name, rec)), rec.id);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
