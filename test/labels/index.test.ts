import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeAvro, encodeAvro } from '../../src/contracts/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import * as root from '../../src/index.ts';
import { labelRequest, validateImpression, validateRankerOutput } from '../../src/labels/index.ts';
import { listwiseGrades, listwiseItems } from '../../src/labels/listwise.ts';
import { pairwisePairs } from '../../src/labels/pairwise.ts';
import { pointwiseItems } from '../../src/labels/pointwise.ts';
import { Rng } from '../../src/labels/rng.ts';
import { arbConfig, arbJoined, impression, labelsConfig, ranker, viewOf } from './helpers.ts';

/** Deep copy into plain objects (avsc decodes records into class instances). */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function rejects(fn: () => unknown, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isRankdistillError(e, 'LABEL_INPUT_INVALID'), String(e));
    assert.equal(e.name, 'LabelInputError');
    assert.match(e.message, reason);
    return true;
  });
}

describe('labelRequest records', () => {
  const r = ranker(['a', 'b', 'c']);

  test('headers: id per kind, ts = max of both, matched, model_version and context copied', () => {
    const l = labelRequest({ ranker: r, impression: impression([['b', 1, true]], 2_000) }, labelsConfig());
    for (const [kind, rec] of [
      ['pointwise', l.pointwise],
      ['pairwise', l.pairwise],
      ['listwise', l.listwise],
    ] as const) {
      assert.ok(rec !== null);
      assert.equal(rec.id, `req-1:${kind}`);
      assert.equal(rec.request_id, 'req-1');
      assert.equal(rec.user_id, 'user-1');
      assert.equal(rec.ts, 2_000);
      assert.equal(rec.model_version, 'teacher-v7');
      assert.equal(rec.matched, true);
      assert.deepEqual(rec.context, { hour: 13 });
    }
    const earlier = labelRequest({ ranker: r, impression: impression([], 500) }, labelsConfig());
    assert.equal(earlier.pointwise!.ts, 1_000);
  });

  test('unmatched: matched false, no clicks; empty impression: matched true, no clicks', () => {
    const un = labelRequest({ ranker: r, impression: null }, labelsConfig());
    assert.equal(un.listwise!.matched, false);
    assert.deepEqual(
      un.pointwise!.items.map((it) => it.clicked),
      [null, null, null],
    );
    const empty = labelRequest({ ranker: r, impression: impression([]) }, labelsConfig());
    assert.equal(empty.pointwise!.matched, true);
    assert.deepEqual(
      empty.pointwise!.items.map((it) => it.clicked),
      [null, null, null],
    );
  });

  test('a disabled kind is null', () => {
    const l = labelRequest(
      { ranker: r, impression: null },
      labelsConfig({ pointwise: { enabled: false }, listwise: { enabled: false } }),
    );
    assert.equal(l.pointwise, null);
    assert.equal(l.listwise, null);
    assert.ok(l.pairwise !== null);
  });

  test('defaults on a 7-item list, written out', () => {
    const l = labelRequest(
      { ranker: ranker(['a', 'b', 'c', 'd', 'e', 'f', 'g']), impression: null },
      labelsConfig(),
    );
    assert.deepEqual(
      l.pointwise!.items.map((it) => [it.label, it.weight]),
      [
        [1, 2],
        [1, 1.5],
        [1, 1 + 1 / 3],
        [1, 1.25],
        [1, 1.2],
        [0, 1],
        [0, 1],
      ],
    );
    assert.deepEqual(
      l.listwise!.items.map((it) => [it.grade, it.gain]),
      [
        [5, 31],
        [5, 31],
        [5, 31],
        [5, 31],
        [5, 31],
        [4, 15],
        [4, 15],
      ],
    );
    // topk-vs-below, K=5, m=4: ranks 3..5 have at most 4 items below, so they take all of them.
    const byPos = new Map<number, number[]>();
    for (const p of l.pairwise!.pairs) byPos.set(p.pos_rank, [...(byPos.get(p.pos_rank) ?? []), p.neg_rank]);
    assert.deepEqual(byPos.get(3), [4, 5, 6, 7]);
    assert.deepEqual(byPos.get(4), [5, 6, 7]);
    assert.deepEqual(byPos.get(5), [6, 7]);
    assert.equal(byPos.get(1)!.length, 4);
    assert.equal(l.pairwise!.pairs.length, 4 + 4 + 4 + 3 + 2);
  });
});

describe('labelRequest rejects what it cannot label', () => {
  const r = ranker(['a', 'b']);

  test('NaN / ±∞ scores, with the reason', () => {
    const bad = { ...r, items: [r.items[0]!, { ...r.items[1]!, score: Number.NaN }] };
    rejects(
      () => labelRequest({ ranker: bad, impression: null }, labelsConfig()),
      /invalid RankerOutput: items\[1\]\.score must be finite, found NaN/,
    );
    assert.match(validateRankerOutput(bad)!, /score must be finite/);
  });

  test('features and context are copied as given: validateRankerOutput rejects their NaN', () => {
    const nanFeature = { ...r, items: [{ ...r.items[0]!, features: { f: Number.NaN } }, r.items[1]!] };
    assert.match(validateRankerOutput(nanFeature)!, /items\[0\]\.features\.f must be finite/);
    const l = labelRequest({ ranker: nanFeature, impression: null }, labelsConfig());
    assert.ok(Number.isNaN(l.pointwise!.items[0]!.features!.f));
  });

  test('duplicate item ids in one list', () => {
    rejects(
      () => labelRequest({ ranker: ranker(['a', 'b', 'a']), impression: null }, labelsConfig()),
      /item_id "a" appears twice/,
    );
  });

  test('an invalid impression, or one of another request or user', () => {
    const badPos = impression([['a', 0, true]]);
    rejects(
      () => labelRequest({ ranker: r, impression: badPos }, labelsConfig()),
      /invalid Impression: items\[0\]\.position/,
    );
    assert.match(validateImpression(badPos)!, /position/);
    rejects(
      () =>
        labelRequest({ ranker: r, impression: { ...impression([]), request_id: 'req-2' } }, labelsConfig()),
      /impression request_id "req-2" does not match the ranker output's "req-1"/,
    );
    rejects(
      () => labelRequest({ ranker: r, impression: { ...impression([]), user_id: 'other' } }, labelsConfig()),
      /impression user_id "other" does not match/,
    );
  });

  test('missing logits in logits mode', () => {
    rejects(
      () =>
        labelRequest(
          { ranker: r, impression: null },
          labelsConfig({ teacher: { objectiveWeights: { ctr: 1 } } }),
        ),
      /has no objective logit "ctr"/,
    );
  });

  test('logit-thresholds in rank mode', () => {
    rejects(
      () =>
        labelRequest(
          { ranker: r, impression: null },
          labelsConfig({ teacher: { signal: 'rank' }, listwise: { scheme: 'logit-thresholds' } }),
        ),
      /needs teacher logits/,
    );
  });
});

describe('labelRequest properties', () => {
  test('same input → identical output; ids unique; sizes within caps', () => {
    fc.assert(
      fc.property(arbJoined(), arbConfig(), (req, cfg) => {
        const a = labelRequest(req, cfg);
        const b = labelRequest(structuredClone(req), cfg);
        assert.deepEqual(b, a);
        const n = req.ranker.items.length;
        assert.equal(a.pointwise!.items.length, n);
        assert.equal(a.listwise!.items.length, n);
        assert.equal(new Set(a.pointwise!.items.map((it) => it.item_id)).size, n);
        assert.equal(new Set(a.listwise!.items.map((it) => it.item_id)).size, n);
        assert.ok(a.pairwise!.pairs.length <= cfg.pairwise.maxPairs);
        assert.equal(
          new Set(a.pairwise!.pairs.map((p) => `${p.pos_item}\u0000${p.neg_item}`)).size,
          a.pairwise!.pairs.length,
        );
        assert.equal(new Set([a.pointwise!.id, a.pairwise!.id, a.listwise!.id]).size, 3);
      }),
    );
  });

  test('reused buffers never leak between requests: equal to the generators on a fresh view', () => {
    fc.assert(
      fc.property(arbJoined(60), arbConfig(), (req, cfg) => {
        const l = labelRequest(req, cfg);
        const v = viewOf(req.ranker, req.impression, cfg);
        const g = listwiseGrades(v, cfg.listwise);
        assert.deepEqual(l.pointwise!.items, pointwiseItems(v, cfg.pointwise));
        assert.deepEqual(l.listwise!.items, listwiseItems(v, g));
        assert.deepEqual(
          l.pairwise!.pairs,
          pairwisePairs(v, cfg.pairwise, Rng.forRequest(req.ranker.request_id), g),
        );
      }),
      { numRuns: 150 },
    );
  });

  test('labels encode with encodeAvro and decode equal', () => {
    fc.assert(
      fc.property(arbJoined(20), arbConfig(), (req, cfg) => {
        const l = labelRequest(req, cfg);
        for (const [name, rec] of [
          ['PointwiseLabels', l.pointwise],
          ['PairwiseLabels', l.pairwise],
          ['ListwiseLabels', l.listwise],
        ] as const) {
          const buf = encodeAvro(name, rec as never);
          const back = decodeAvro(name, buf);
          assert.ok(back.ok, back.ok ? '' : back.error.message);
          assert.deepStrictEqual(plain(back.value), plain(rec));
          assert.deepEqual(encodeAvro(name, back.value as never), buf);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('is exported from the package root', () => {
    assert.equal(root.labelRequest, labelRequest);
    assert.equal(root.validateRankerOutput, validateRankerOutput);
    assert.equal(root.validateImpression, validateImpression);
  });
});
