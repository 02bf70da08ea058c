import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { labelRequest } from '../../src/labels/index.ts';
import { listwiseGrades, listwiseItems } from '../../src/labels/listwise.ts';
import { pointwiseItems } from '../../src/labels/pointwise.ts';
import { RECORD_TEMPLATES } from '../../src/labels/shapes.ts';
import { arbConfig, arbJoined, impression, labelsConfig, ranker, viewOf } from './helpers.ts';

describe('record templates (shapes.ts)', () => {
  test('have the keys, in order, of the records the generators emit', () => {
    const cfg = labelsConfig({ pairwise: { weightByDeltaNdcg: true } });
    const r = ranker(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    const l = labelRequest({ ranker: r, impression: impression([['b', 1, true]]) }, cfg);
    const keys = RECORD_TEMPLATES.map((t) => Object.keys(t));
    assert.deepEqual(keys, [
      Object.keys(l.pointwise!.items[0]!),
      Object.keys(l.listwise!.items[0]!),
      Object.keys(l.pairwise!.pairs[0]!),
    ]);
  });
});

describe('listwiseItems sharing the pointwise records of the same view', () => {
  test('equals listwiseItems on the view alone', () => {
    fc.assert(
      fc.property(arbJoined(40), arbConfig(), (req, cfg) => {
        const v = viewOf(req.ranker, req.impression, cfg);
        const g = listwiseGrades(v, cfg.listwise);
        assert.deepStrictEqual(listwiseItems(v, g, pointwiseItems(v, cfg.pointwise)), listwiseItems(v, g));
      }),
      { numRuns: 150 },
    );
  });
});
