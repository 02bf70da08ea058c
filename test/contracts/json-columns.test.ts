/**
 * The NDJSON column parsers (parseRankerJson / parseImpressionJson → labelColumnsJson) against the
 * full decode (decodeJson → validate → labelRequest → JSON.stringify): a line they accept must be
 * one the full path accepts, with the same values and byte-identical label lines; anything else
 * must be refused (null: the caller decodes it in full). Over random records written in several
 * JSON styles, corrupted lines, and hand-picked edge cases of the JSON grammar and the contract.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { LabelsConfig } from '../../src/config/schema.ts';
import { decodeJson } from '../../src/contracts/codec.ts';
import type { ImpressionColumns } from '../../src/contracts/impression-columns.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import {
  jsonDecoderOrThrow,
  parseImpressionJson,
  parseRankerJson,
} from '../../src/contracts/json-columns.ts';
import type { RankerColumns } from '../../src/contracts/ranker-columns.ts';
import { columnsSupported, type EncodedLabels } from '../../src/labels/encoded.ts';
import { labelRequest, validateImpression, validateRankerOutput } from '../../src/labels/index.ts';
import { labelColumnsJson } from '../../src/labels/json.ts';
import { arbConfig, assertSameLabels, labelsConfig } from '../labels/helpers.ts';
import { applyByteEdits, arbByteEdits } from './helpers.ts';

const decodeRanker = jsonDecoderOrThrow('RankerOutput');
const decodeImpression = jsonDecoderOrThrow('Impression');

/** The full path's record, or null when it refuses the line (MALFORMED or INVALID). */
function fullRanker(line: Buffer): RankerOutput | null {
  const d = decodeJson('RankerOutput', line);
  return d.ok && validateRankerOutput(d.value) === null ? d.value : null;
}

function fullImpression(line: Buffer): Impression | null {
  const d = decodeJson('Impression', line);
  return d.ok && validateImpression(d.value) === null ? d.value : null;
}

/** The full path's label lines, or the error it throws. */
function generic(r: RankerOutput, imp: Impression | null, cfg: LabelsConfig): EncodedLabels | Error {
  try {
    const l = labelRequest({ ranker: r, impression: imp }, cfg);
    const line = (x: object | null) => (x === null ? null : Buffer.from(JSON.stringify(x)));
    return { pointwise: line(l.pointwise), pairwise: line(l.pairwise), listwise: line(l.listwise) };
  } catch (e) {
    return e as Error;
  }
}

function columns(c: RankerColumns, imp: Impression | null, cfg: LabelsConfig): EncodedLabels | Error {
  try {
    return labelColumnsJson(c, imp, cfg);
  } catch (e) {
    return e as Error;
  }
}

/** The columns hold the values of the full decode (ids, scores, copied texts). */
function assertRankerMatches(cols: RankerColumns, full: RankerOutput): void {
  assert.equal(cols.request_id, full.request_id);
  assert.equal(cols.user_id, full.user_id);
  assert.equal(cols.ts, full.ts);
  assert.equal(cols.model_version, full.model_version);
  assert.equal(cols.n, full.items.length);
  const b = cols.buf;
  assert.equal(b.toString('latin1', cols.userStart, cols.tsStart), full.user_id);
  const ctx = cols.contextStart < 0 ? 'null' : b.toString('latin1', cols.contextStart, cols.contextEnd);
  assert.equal(ctx, JSON.stringify(full.context));
  for (let i = 0; i < cols.n; i++) {
    const it = full.items[i]!;
    const o = cols.offsets;
    assert.equal(b.toString('latin1', o[4 * i]!, o[4 * i + 1]!), it.item_id);
    assert.ok(Object.is(cols.scores[i], it.score), `score ${i}: ${cols.scores[i]} vs ${it.score}`);
    const f = o[4 * i + 2]! < 0 ? 'null' : b.toString('latin1', o[4 * i + 2]!, o[4 * i + 3]!);
    assert.equal(f, JSON.stringify(it.features));
  }
  assert.deepStrictEqual(cols.decoded(), full);
}

function assertImpressionMatches(cols: ImpressionColumns, full: Impression): void {
  assert.equal(cols.request_id, full.request_id);
  assert.equal(cols.user_id, full.user_id);
  assert.equal(cols.ts, full.ts);
  assert.equal(cols.m, full.items.length);
  for (let j = 0; j < cols.m; j++) {
    const it = full.items[j]!;
    assert.equal(cols.buf.toString('latin1', cols.ids[2 * j]!, cols.ids[2 * j + 1]!), it.item_id);
    assert.equal(cols.positions[j], it.position);
    assert.equal(cols.clicked[j] === 1, it.clicked);
  }
  assert.deepStrictEqual(cols.decoded(), full);
}

/**
 * Checks one line each way: accepted by a parser ⇒ accepted by the full path with the same values
 * (and, for ranker outputs, the same label lines under `cfg`). Returns whether the parsers took it.
 */
function checkLine(
  line: Buffer,
  cfg: LabelsConfig = labelsConfig(),
): { ranker: boolean; impression: boolean } {
  const rc = parseRankerJson(line, decodeRanker);
  const rf = fullRanker(line);
  if (rc !== null) {
    assert.ok(rf !== null, `the column parser took a line the full path refuses: ${line.toString()}`);
    assertRankerMatches(rc, rf);
    assertSameLabels(columns(rc, null, cfg), generic(rf, null, cfg));
  }
  const ic = parseImpressionJson(line, decodeImpression);
  const imf = fullImpression(line);
  if (ic !== null) {
    assert.ok(imf !== null, `the column parser took a line the full path refuses: ${line.toString()}`);
    assertImpressionMatches(ic, imf);
  }
  return { ranker: rc !== null, impression: ic !== null };
}

const asciiId = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_:.-]{0,14}$/);
/** Features as producers write them: a few decimals (the column path copies their text). */
const short = fc.integer({ min: -10_000_000, max: 10_000_000 }).map((n) => n / 10_000);
/** Any finite double: 17-digit texts, exponents, tiny and huge values. */
const anyDouble = fc.double({ noNaN: true, noDefaultInfinity: true });
const key = fc.constantFrom('pop', 'cat', 'fresh', 'x', 'len_title', 'a1', '_', 'hour_sin');
const mapOf = (v: fc.Arbitrary<number>) => fc.option(fc.dictionary(key, v, { maxKeys: 5 }), { nil: null });

function arbRankerOf(num: fc.Arbitrary<number>): fc.Arbitrary<RankerOutput> {
  return fc
    .record({
      rid: asciiId,
      user: asciiId,
      ts: fc.integer({ min: 0, max: 2 ** 45 }),
      version: fc.stringMatching(/^[a-z0-9.-]{0,8}$/),
      context: mapOf(num),
      ids: fc.uniqueArray(asciiId, { minLength: 1, maxLength: 60 }),
      scores: fc.array(fc.oneof(num, anyDouble, fc.constantFrom(0, -0, 1e-7, 123456789.123)), {
        minLength: 60,
        maxLength: 60,
      }),
      features: fc.array(mapOf(num), { minLength: 60, maxLength: 60 }),
      objectives: fc.array(mapOf(num), { minLength: 60, maxLength: 60 }),
    })
    .map((o) => ({
      request_id: o.rid,
      user_id: o.user,
      ts: o.ts,
      model_version: o.version,
      context: o.context,
      items: o.ids.map((item_id, i) => ({
        item_id,
        score: o.scores[i]!,
        objectives: o.objectives[i]!,
        features: o.features[i]!,
      })),
    }));
}

/** An impression of some of the ranker output's ids (and strangers), positions in display order or not. */
function arbImpressionFor(r: RankerOutput): fc.Arbitrary<Impression> {
  return fc
    .record({
      take: fc.array(fc.nat(), { maxLength: 12 }),
      strangers: fc.nat(2),
      clicks: fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
      dwell: fc.array(fc.option(fc.nat(100_000), { nil: null }), { minLength: 20, maxLength: 20 }),
      actions: fc.option(fc.array(fc.constantFrom('like', 'share', 'x y'), { maxLength: 2 }), { nil: null }),
      ts: fc.integer({ min: 0, max: 2 ** 45 }),
      reverse: fc.boolean(),
    })
    .map((o) => {
      const shown = [...new Set(o.take.map((t) => r.items[t % r.items.length]!.item_id))];
      for (let s = 0; s < o.strangers; s++) shown.push(`stranger-${s}`);
      const n = shown.length;
      return {
        request_id: r.request_id,
        user_id: r.user_id,
        ts: o.ts,
        items: shown.map((item_id, k) => ({
          item_id,
          position: o.reverse ? n - k : k + 1,
          clicked: o.clicks[k % 20]!,
          dwell_ms: o.dwell[k % 20]!,
          actions: o.actions,
        })),
      };
    });
}

/**
 * JSON texts of a value in several styles: compact (as producers write it), top-level keys
 * reordered, optional null fields left out, whitespace between tokens (JSON.stringify's indent).
 */
const arbStyle = fc.constantFrom('compact', 'reordered', 'omitted', 'spaced', 'tabs');
function styled(v: object, style: string): Buffer {
  switch (style) {
    case 'reordered':
      return Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(v).reverse())));
    case 'omitted':
      return Buffer.from(
        JSON.stringify(v, (k, x) =>
          x === null && ['context', 'features', 'objectives', 'dwell_ms', 'actions'].includes(k)
            ? undefined
            : x,
        ),
      );
    case 'spaced':
      return Buffer.from(JSON.stringify(v, null, 1).replaceAll('\n', ' '));
    case 'tabs':
      return Buffer.from(JSON.stringify(v, null, '\t').replaceAll('\n', '\r'));
    default:
      return Buffer.from(JSON.stringify(v));
  }
}

describe('NDJSON column parsers vs the full decode', () => {
  test('producer-style lines take the column path, with the same values and label lines (any config, any impression)', () => {
    const cfgs = arbConfig().filter(columnsSupported);
    fc.assert(
      fc.property(
        arbRankerOf(short).chain((r) =>
          fc.tuple(fc.constant(r), fc.option(arbImpressionFor(r), { nil: null })),
        ),
        cfgs,
        ([r, imp], cfg) => {
          const line = Buffer.from(JSON.stringify(r));
          const cols = parseRankerJson(line, decodeRanker);
          assert.ok(cols !== null, 'a compact ASCII line with short decimals takes the column path');
          const full = fullRanker(line)!;
          assertRankerMatches(cols, full);
          const expected = generic(full, imp, cfg);
          assertSameLabels(columns(cols, imp, cfg), expected);
          if (imp !== null) {
            const impLine = Buffer.from(JSON.stringify(imp));
            const ic = parseImpressionJson(impLine, decodeImpression);
            assert.ok(ic !== null, 'a compact valid impression takes the column path');
            assertImpressionMatches(ic, fullImpression(impLine)!);
            assertSameLabels(columns(cols, ic, cfg), expected);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('any doubles and JSON styles: what the parsers take matches the full decode', () => {
    fc.assert(
      fc.property(
        arbRankerOf(fc.oneof(short, anyDouble)).chain((r) => fc.tuple(fc.constant(r), arbImpressionFor(r))),
        arbStyle,
        ([r, imp], style) => {
          checkLine(styled(r, style));
          checkLine(styled(imp, style));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('corrupted lines: never accepted unless the full path accepts them, with the same values', () => {
    fc.assert(
      fc.property(
        arbRankerOf(short).chain((r) => fc.tuple(fc.constant(r), arbImpressionFor(r))),
        arbByteEdits,
        fc.array(arbByteEdits, { maxLength: 1 }),
        ([r, imp], edits, more) => {
          checkLine(applyByteEdits(Buffer.from(JSON.stringify(r)), edits));
          checkLine(applyByteEdits(Buffer.from(JSON.stringify(imp)), [...edits, ...(more[0] ?? [])]));
        },
      ),
      { numRuns: 1500 },
    );
  });

  // A ranker output line with `x` spliced in: its fields are ok, `x` is what is tested.
  const rankerWith = (over: {
    head?: string;
    item?: string;
    features?: string;
    score?: string;
    context?: string;
  }) =>
    Buffer.from(
      `{"request_id":"r1","user_id":"u1","ts":5,"model_version":"v1"${over.head ?? ''},"context":${over.context ?? 'null'},"items":[{"item_id":"a","score":${over.score ?? '1.5'},"objectives":null,"features":${over.features ?? '{"f":0.25}'}${over.item ?? ''}},{"item_id":"b","score":0.5}]}`,
    );
  const impressionWith = (item: string, head = '') =>
    Buffer.from(
      `{"request_id":"r1","user_id":"u1","ts":7${head},"items":[{"item_id":"a","position":1,"clicked":true,"dwell_ms":5,"actions":["like"]},${item}]}`,
    );

  const edgeCases: Array<[string, Buffer, 'columns' | 'full' | 'either']> = [
    ['plain line', rankerWith({}), 'columns'],
    [
      'unicode escape in an item id',
      Buffer.from(rankerWith({}).toString().replace('"a"', '"\\u0061"')),
      'full',
    ],
    [
      'escaped quote in the request id',
      Buffer.from(rankerWith({}).toString().replace('"r1"', '"r\\"1"')),
      'full',
    ],
    ['non-ASCII id', Buffer.from(rankerWith({}).toString().replace('"a"', '"é"')), 'full'],
    [
      'invalid UTF-8 in the model version',
      Buffer.concat([
        Buffer.from('{"request_id":"r1","user_id":"u1","ts":5,"model_version":"'),
        Buffer.from([0xff]),
        Buffer.from('","items":[{"item_id":"a","score":1}]}'),
      ]),
      'full',
    ],
    ['exponent in a score', rankerWith({ score: '1.5e2' }), 'columns'],
    ['capital exponent in a score', rankerWith({ score: '15E-1' }), 'columns'],
    ['huge score (Infinity when parsed)', rankerWith({ score: '1e400' }), 'full'],
    ['-0 score', rankerWith({ score: '-0' }), 'columns'],
    ['17-digit score', rankerWith({ score: '0.30000000000000004' }), 'columns'],
    ['22-digit score', rankerWith({ score: '1234567890.123456789012' }), 'columns'],
    ['tiny score', rankerWith({ score: '0.0000000000000000000000000001' }), 'columns'],
    ['exponent in a feature', rankerWith({ features: '{"f":1e-7}' }), 'full'],
    ['-0 feature', rankerWith({ features: '{"f":-0}' }), 'full'],
    ['-0.0 feature', rankerWith({ features: '{"f":-0.0}' }), 'full'],
    ['trailing zero in a feature', rankerWith({ features: '{"f":0.50}' }), 'full'],
    ['1e-6 feature', rankerWith({ features: '{"f":0.000001}' }), 'columns'],
    ['1e-7 feature (printed with an exponent)', rankerWith({ features: '{"f":0.0000001}' }), 'full'],
    ['-1e-6 feature', rankerWith({ features: '{"f":-0.000001}' }), 'columns'],
    ['15 significant digits', rankerWith({ features: '{"f":1234567.12345678}' }), 'columns'],
    ['16 significant digits', rankerWith({ features: '{"f":1234567.123456789}' }), 'full'],
    ['21-digit integer feature', rankerWith({ features: '{"f":100000000000000000000}' }), 'full'],
    ['huge feature', rankerWith({ features: '{"f":1e400}' }), 'full'],
    ['leading zero in a number (invalid JSON)', rankerWith({ features: '{"f":01}' }), 'full'],
    ['lone minus (invalid JSON)', rankerWith({ score: '-' }), 'full'],
    ['dot without digits (invalid JSON)', rankerWith({ score: '1.' }), 'full'],
    ['duplicate feature key', rankerWith({ features: '{"f":1,"f":2}' }), 'full'],
    ['numeric feature key (reordered by JS)', rankerWith({ features: '{"b":1,"2":2}' }), 'full'],
    ['__proto__ feature key', rankerWith({ features: '{"__proto__":1}' }), 'full'],
    ['space inside a map', rankerWith({ features: '{"f": 1}' }), 'full'],
    ['empty map', rankerWith({ features: '{}' }), 'columns'],
    ['context map', rankerWith({ context: '{"hour":0.5,"device":2}' }), 'columns'],
    ['string feature value', rankerWith({ features: '{"f":"1"}' }), 'full'],
    ['null feature value', rankerWith({ features: '{"f":null}' }), 'full'],
    ['duplicate top-level key', rankerWith({ head: ',"ts":6' }), 'full'],
    ['duplicate item key', rankerWith({ item: ',"score":2' }), 'full'],
    ['unknown top-level field', rankerWith({ head: ',"extra":1' }), 'full'],
    ['unknown item field', rankerWith({ item: ',"extra":1' }), 'full'],
    ['string score', rankerWith({ score: '"1.5"' }), 'full'],
    ['boolean score', rankerWith({ score: 'true' }), 'full'],
    ['fractional ts', Buffer.from(rankerWith({}).toString().replace('"ts":5', '"ts":5.5')), 'full'],
    ['ts 5.0', Buffer.from(rankerWith({}).toString().replace('"ts":5', '"ts":5.0')), 'full'],
    ['negative ts', Buffer.from(rankerWith({}).toString().replace('"ts":5', '"ts":-5')), 'full'],
    [
      'ts beyond 2^53',
      Buffer.from(rankerWith({}).toString().replace('"ts":5', '"ts":9007199254740993')),
      'full',
    ],
    ['empty request id', Buffer.from(rankerWith({}).toString().replace('"r1"', '""')), 'full'],
    [
      'missing model_version',
      Buffer.from(rankerWith({}).toString().replace(',"model_version":"v1"', '')),
      'full',
    ],
    [
      'no candidates',
      Buffer.from('{"request_id":"r1","user_id":"u1","ts":5,"model_version":"v","items":[]}'),
      'full',
    ],
    [
      'duplicate candidate',
      Buffer.from(
        '{"request_id":"r1","user_id":"u1","ts":5,"model_version":"v","items":[{"item_id":"a","score":1},{"item_id":"a","score":2}]}',
      ),
      'full',
    ],
    ['trailing comma', Buffer.from(rankerWith({}).toString().replace(']}', ',]}')), 'full'],
    ['trailing garbage', Buffer.concat([rankerWith({}), Buffer.from('x')]), 'full'],
    ['trailing whitespace', Buffer.concat([rankerWith({}), Buffer.from(' \t')]), 'columns'],
    ['leading BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), rankerWith({})]), 'full'],
    [
      'form feed (not JSON whitespace)',
      Buffer.from(rankerWith({}).toString().replace(',"ts"', ',\f"ts"')),
      'full',
    ],
    ['top-level array', Buffer.from('[1,2]'), 'full'],
    ['truncated', rankerWith({}).subarray(0, 60), 'full'],
    ['impression', impressionWith('{"item_id":"b","position":2,"clicked":false}'), 'columns'],
    ['impression, no items', Buffer.from('{"request_id":"r1","user_id":"u1","ts":7,"items":[]}'), 'columns'],
    ['impression, position 0', impressionWith('{"item_id":"b","position":0,"clicked":false}'), 'full'],
    [
      'impression, position 2^31',
      impressionWith('{"item_id":"b","position":2147483648,"clicked":false}'),
      'full',
    ],
    ['impression, repeated position', impressionWith('{"item_id":"b","position":1,"clicked":false}'), 'full'],
    ['impression, repeated item', impressionWith('{"item_id":"a","position":2,"clicked":false}'), 'full'],
    ['impression, clicked as 1', impressionWith('{"item_id":"b","position":2,"clicked":1}'), 'full'],
    [
      'impression, negative dwell',
      impressionWith('{"item_id":"b","position":2,"clicked":true,"dwell_ms":-1}'),
      'full',
    ],
    [
      'impression, fractional dwell',
      impressionWith('{"item_id":"b","position":2,"clicked":true,"dwell_ms":1.5}'),
      'full',
    ],
    [
      'impression, action not a string',
      impressionWith('{"item_id":"b","position":2,"clicked":true,"actions":[1]}'),
      'full',
    ],
    [
      'impression, escaped action',
      impressionWith('{"item_id":"b","position":2,"clicked":true,"actions":["\\n"]}'),
      'full',
    ],
    [
      'impression, extra field',
      impressionWith('{"item_id":"b","position":2,"clicked":true}', ',"x":1'),
      'full',
    ],
  ];

  for (const [name, line, expect] of edgeCases) {
    test(`edge case: ${name}`, () => {
      const took = checkLine(line);
      const any = took.ranker || took.impression;
      if (expect === 'columns') assert.ok(any, 'expected the column path to take it');
      if (expect === 'full') assert.ok(!any, 'expected the full decode to decide');
    });
  }

  test('more candidates and shown items than the scratch arrays start with (they grow)', () => {
    const ids = Array.from({ length: 700 }, (_, i) => `item-${i}`);
    const r: RankerOutput = {
      request_id: 'r-big',
      user_id: 'u-big',
      ts: 9,
      model_version: 'v',
      context: null,
      items: ids.map((item_id, i) => ({
        item_id,
        score: (700 - i) / 8,
        objectives: null,
        features: { f: i / 4 },
      })),
    };
    const imp: Impression = {
      request_id: 'r-big',
      user_id: 'u-big',
      ts: 10,
      items: ids.slice(0, 150).map((item_id, k) => ({
        item_id,
        position: k + 1,
        clicked: k % 3 === 0,
        dwell_ms: null,
        actions: null,
      })),
    };
    const line = Buffer.from(JSON.stringify(r));
    const impLine = Buffer.from(JSON.stringify(imp));
    assert.deepEqual(checkLine(line), { ranker: true, impression: false });
    assert.deepEqual(checkLine(impLine), { ranker: false, impression: true });
    const cols = parseRankerJson(line, decodeRanker)!;
    const ic = parseImpressionJson(impLine, decodeImpression)!;
    const cfg = labelsConfig();
    assertSameLabels(columns(cols, ic, cfg), generic(fullRanker(line)!, fullImpression(impLine)!, cfg));
  });
});
