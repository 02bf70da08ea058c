/**
 * labelJson (src/labels/json.ts) against Buffer.from(JSON.stringify(record)): the same bytes for
 * every label record the real labelers make (ids needing escapes, non-ASCII, feature maps of any
 * keys and doubles), for the same records decoded by avsc, and null (the caller's generic path)
 * or still the same bytes for records not shaped as the labelers build them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { LabelsConfig } from '../../src/config/schema.ts';
import { decode, encodeAvro } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { labelRequest } from '../../src/labels/index.ts';
import { labelJson } from '../../src/labels/json.ts';
import { arbConfig, arbJoined, labelsConfig, ranker } from './helpers.ts';

const CONTRACT = {
  pointwise: 'PointwiseLabels',
  pairwise: 'PairwiseLabels',
  listwise: 'ListwiseLabels',
} as const;

function same(name: string, v: unknown): void {
  const got = labelJson(name, v);
  assert.ok(got !== null, `labelJson gave null for ${JSON.stringify(v)}`);
  const want = Buffer.from(JSON.stringify(v), 'utf8');
  if (!got.equals(want)) assert.equal(got.toString('utf8'), want.toString('utf8'));
}

/** Null (generic path) or exactly JSON.stringify's bytes. */
function nullOrSame(name: string, v: unknown): void {
  const got = labelJson(name, v);
  if (got !== null) assert.equal(got.toString('utf8'), JSON.stringify(v));
}

/** Strings of any UTF-16 units: controls, quotes, backslashes, lone surrogates, non-ASCII. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.string({ maxLength: 12 }),
  fc.constantFrom('"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', 'é', '😀', '</script>'),
);
/** Finite doubles (validation rejects the others in features): edges, short decimals, any. */
const anyFinite = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc
    .record({ m: fc.integer({ min: -(10 ** 9), max: 10 ** 9 }), d: fc.integer({ min: 0, max: 12 }) })
    .map(({ m, d }) => m / 10 ** d),
  fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
  fc.constantFrom(0, -0, 1e-6, 9.99e-7, 1e-7, 1e21, 2 ** 50, 2 ** 53, 0.1 + 0.2, 1 / 3, 123e-20, 5e-324),
);
const anyMap = fc.option(fc.dictionary(anyString, anyFinite, { maxKeys: 4 }), { nil: null });

/** A joined request of arbtrary ids, versions and feature maps (ids stay unique per request). */
const arbRequest = fc
  .record({
    joined: arbJoined(30),
    idPrefix: anyString,
    requestId: anyString.filter((s) => s.length > 0),
    userId: anyString.filter((s) => s.length > 0),
    version: anyString,
    context: anyMap,
    features: fc.array(anyMap, { minLength: 30, maxLength: 30 }),
  })
  .map(({ joined, idPrefix, requestId, userId, version, context, features }) => {
    const id = (old: string) => `${idPrefix}${old}`;
    const r: RankerOutput = {
      ...joined.ranker,
      request_id: requestId,
      user_id: userId,
      model_version: version,
      context,
      items: joined.ranker.items.map((it, i) => ({
        ...it,
        item_id: id(it.item_id),
        features: features[i] ?? null,
      })),
    };
    const imp: Impression | null =
      joined.impression === null
        ? null
        : {
            ...joined.impression,
            request_id: requestId,
            user_id: userId,
            items: joined.impression.items.map((it) => ({ ...it, item_id: id(it.item_id) })),
          };
    return { ranker: r, impression: imp };
  });

function records(req: { ranker: RankerOutput; impression: Impression | null }, cfg: LabelsConfig) {
  const l = labelRequest(req, cfg);
  return (['pointwise', 'pairwise', 'listwise'] as const).flatMap((k) =>
    l[k] === null ? [] : [{ name: CONTRACT[k], value: l[k] as unknown }],
  );
}

describe('labelJson', () => {
  test('property: the bytes of JSON.stringify for every record the labelers make', () => {
    fc.assert(
      fc.property(arbRequest, arbConfig(), (req, cfg) => {
        for (const r of records(req, cfg)) same(r.name, r.value);
      }),
      { numRuns: 400 },
    );
  });

  test('property: records decoded by avsc (Avro → NDJSON output) give the same bytes', () => {
    fc.assert(
      fc.property(arbRequest, arbConfig(), (req, cfg) => {
        for (const r of records(req, cfg)) {
          // Avro strings are UTF-8: lone surrogates do not survive, so compare with what decoding gives.
          const d = decode(r.name, encodeAvro(r.name, r.value as never), 'avro');
          assert.ok(d.ok);
          same(r.name, d.value);
        }
      }),
      { numRuns: 100 },
    );
  });

  test('non-finite doubles (Avro allows them) are written as null, as JSON.stringify does', () => {
    const cfg = labelsConfig({ pointwise: { softTargets: true } });
    const l = labelRequest({ ranker: ranker(['a', 'b', 'c']), impression: null }, cfg);
    const pw = structuredClone(l.pointwise)!;
    pw.items[0]!.teacher_logit = Number.NaN;
    pw.items[1]!.soft_target = Number.POSITIVE_INFINITY;
    pw.items[2]!.features = { x: Number.NEGATIVE_INFINITY, y: -0 };
    pw.context = { c: Number.NaN };
    same('PointwiseLabels', pw);
    assert.match(labelJson('PointwiseLabels', pw)!.toString(), /"teacher_logit":null/);
    const lw = structuredClone(l.listwise)!;
    lw.items[0]!.gain = Number.NaN;
    same('ListwiseLabels', lw);
    const pr = structuredClone(l.pairwise)!;
    pr.pairs[0]!.weight = Number.NEGATIVE_INFINITY;
    same('PairwiseLabels', pr);
  });

  test('records not shaped as the labelers build them: null, or still the same bytes', () => {
    const l = labelRequest(
      { ranker: ranker(['a', 'b', 'c', 'd', 'e', 'f', 'g']), impression: null },
      labelsConfig(),
    );
    const pw = l.pointwise!;
    const { id, ...rest } = pw;
    const variants: Array<[string, unknown]> = [
      ['PointwiseLabels', { ...rest, id }], // id last: another key order
      ['PointwiseLabels', { ...pw, extra: 1 }],
      ['PointwiseLabels', { ...pw, ts: undefined }],
      ['PointwiseLabels', { ...pw, ts: '5' }],
      ['PointwiseLabels', { ...pw, toJSON: () => 'x' }],
      ['PointwiseLabels', { ...pw, context: new Map([['a', 1]]) }],
      ['PointwiseLabels', { ...pw, context: { a: '1' } }],
      ['PointwiseLabels', { ...pw, items: [{ ...pw.items[0], rank: undefined }] }],
      ['PointwiseLabels', { ...pw, items: [pw.items[0], { ...pw.items[1], features: [1, 2] }] }],
      ['PointwiseLabels', { ...pw, items: [pw.items[0], null] }],
      ['PointwiseLabels', { ...pw, items: [pw.items[0], { ...pw.items[1], clicked: 1 }] }],
      ['PointwiseLabels', { ...pw, items: [{ rank: 1, ...pw.items[0] }] }],
      ['ListwiseLabels', pw],
      ['PairwiseLabels', l.listwise],
      ['ListwiseLabels', { ...l.listwise, items: [{ ...l.listwise!.items[0], teacher_logit: 'x' }] }],
      ['PairwiseLabels', { ...l.pairwise, pairs: [{ ...l.pairwise!.pairs[0], pos_item: 3 }] }],
      ['DeadLetter', pw],
      ['PointwiseLabels', null],
      ['PointwiseLabels', 'x'],
    ];
    for (const [name, v] of variants) nullOrSame(name, v);
    for (const [name, v] of variants.slice(0, 5)) assert.equal(labelJson(name, v), null, JSON.stringify(v));
    assert.equal(labelJson('DeadLetter', pw), null);
    same('PointwiseLabels', pw); // the writer is unaffected by the records it gave up on
  });

  test('records one after another, and one larger than the initial buffer, keep their bytes', () => {
    const cfg = labelsConfig({ pointwise: { softTargets: true } });
    const ids = Array.from({ length: 3000 }, (_, i) => `item-${i}`);
    const big = labelRequest(
      {
        ranker: ranker(
          ids,
          ids.map((_, i) => -i / 7),
        ),
        impression: null,
      },
      cfg,
    );
    const small = labelRequest({ ranker: ranker(['x', 'y']), impression: null }, cfg);
    for (const l of [small, big, small, big]) {
      for (const k of ['pointwise', 'pairwise', 'listwise'] as const) same(CONTRACT[k], l[k]);
    }
    assert.ok(labelJson('PointwiseLabels', big.pointwise)!.length > 256 * 1024);
  });
});
