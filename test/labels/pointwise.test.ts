import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { pointwiseItems, positiveWeights } from '../../src/labels/pointwise.ts';
import { arbConfig, arbJoined, impression, labelsConfig, near, ranker, viewOf } from './helpers.ts';

function weights(pointwise: Record<string, unknown>, n: number): number[] {
  const cfg = labelsConfig({ pointwise });
  const r = ranker(Array.from({ length: n }, (_, i) => `i${i}`));
  return pointwiseItems(viewOf(r, null, cfg), cfg.pointwise).map((it) => it.weight);
}

describe('pointwise weights (top K positives, negatives weigh 1)', () => {
  test('reciprocal: w = 1 + a/pos', () => {
    near(weights({ k: 3, weighting: 'reciprocal', a: 1 }, 5), [2, 1.5, 1.3333333333333333, 1, 1]);
    near(weights({ k: 2, weighting: 'reciprocal', a: 3 }, 3), [4, 2.5, 1]);
  });

  test('exponential: K·e^(−pos/λ) / Σ e^(−i/λ) — mean positive weight 1', () => {
    near(
      weights({ k: 3, weighting: 'exponential', lambda: 5 }, 4),
      [1.2052787356000663, 0.98679876686672, 0.8079224975332134, 1],
    );
    near(weights({ k: 2, weighting: 'exponential', lambda: 2 }, 2), [1.2449186624037092, 0.7550813375962909]);
    const cfg = labelsConfig({ pointwise: { k: 7, weighting: 'exponential', lambda: 3 } }).pointwise;
    const mean = [...positiveWeights(cfg)].reduce((a, b) => a + b) / 7;
    assert.ok(Math.abs(mean - 1) < 1e-12, `mean ${mean}`);
  });

  test('dcg: w = 1/log2(pos + 1)', () => {
    near(weights({ k: 4, weighting: 'dcg' }, 5), [1, 0.6309297535714575, 0.5, 0.43067655807339306, 1]);
  });

  test('constant: w = 1', () => {
    near(weights({ k: 2, weighting: 'constant' }, 3), [1, 1, 1]);
  });

  test('labels: top K are 1, the rest 0; ranks 1..n', () => {
    const cfg = labelsConfig({ pointwise: { k: 2 } });
    const items = pointwiseItems(viewOf(ranker(['a', 'b', 'c', 'd']), null, cfg), cfg.pointwise);
    assert.deepEqual(
      items.map((it) => [it.item_id, it.rank, it.label]),
      [
        ['a', 1, 1],
        ['b', 2, 1],
        ['c', 3, 0],
        ['d', 4, 0],
      ],
    );
  });

  test('a list shorter than K: every item is a positive with its rank weight', () => {
    const cfg = labelsConfig({ pointwise: { k: 5 } });
    const items = pointwiseItems(viewOf(ranker(['a', 'b']), null, cfg), cfg.pointwise);
    assert.deepEqual(
      items.map((it) => [it.label, it.weight]),
      [
        [1, 2],
        [1, 1.5],
      ],
    );
  });
});

describe('pointwise logits, soft targets, clicks, features', () => {
  test('teacher_logit and soft target sigmoid(z/T) in logits mode', () => {
    const cfg = labelsConfig({ pointwise: { softTargets: true, temperature: 2 } });
    const items = pointwiseItems(viewOf(ranker(['a', 'b', 'c'], [2, -1, 0]), null, cfg), cfg.pointwise);
    assert.deepEqual(
      items.map((it) => it.teacher_logit),
      [2, -1, 0],
    );
    near(
      items.map((it) => it.soft_target!),
      [0.7310585786300049, 0.3775406687981454, 0.5],
    );
  });

  test('soft targets are null unless enabled, and null in rank mode', () => {
    const off = labelsConfig({});
    assert.equal(pointwiseItems(viewOf(ranker(['a']), null, off), off.pointwise)[0]!.soft_target, null);
    const rank = labelsConfig({ teacher: { signal: 'rank' }, pointwise: { softTargets: true } });
    const it = pointwiseItems(viewOf(ranker(['a']), null, rank), rank.pointwise)[0]!;
    assert.equal(it.soft_target, null);
    assert.equal(it.teacher_logit, null);
  });

  test('soft targets stay finite for huge logits', () => {
    const cfg = labelsConfig({ pointwise: { softTargets: true } });
    const items = pointwiseItems(viewOf(ranker(['a', 'b'], [1e308, -1e308]), null, cfg), cfg.pointwise);
    assert.deepEqual(
      items.map((it) => it.soft_target),
      [1, 0],
    );
  });

  test('clicked comes from the impression for shown items, else null; features are carried', () => {
    const cfg = labelsConfig({});
    const r = ranker(['a', 'b', 'c']);
    const items = pointwiseItems(
      viewOf(
        r,
        impression([
          ['c', 1, true],
          ['a', 2, false],
        ]),
        cfg,
      ),
      cfg.pointwise,
    );
    assert.deepEqual(
      items.map((it) => it.clicked),
      [false, null, true],
    );
    assert.deepEqual(
      items.map((it) => it.features),
      [{ f: 0 }, { f: 1 }, { f: 2 }],
    );
    const unmatched = pointwiseItems(viewOf(r, null, cfg), cfg.pointwise);
    assert.deepEqual(
      unmatched.map((it) => it.clicked),
      [null, null, null],
    );
  });
});

describe('pointwise properties', () => {
  test('weights of positives are non-increasing in rank; negatives weigh 1; one entry per candidate', () => {
    fc.assert(
      fc.property(arbJoined(), arbConfig(), ({ ranker: r, impression: imp }, cfg) => {
        const items = pointwiseItems(viewOf(r, imp, cfg), cfg.pointwise);
        if (items.length !== r.items.length) return false;
        if (new Set(items.map((it) => it.item_id)).size !== items.length) return false;
        for (let p = 0; p < items.length; p++) {
          const it = items[p]!;
          if (it.rank !== p + 1) return false;
          if (it.label === 0 && it.weight !== 1) return false;
          if (p > 0 && it.label === 1 && it.weight > items[p - 1]!.weight) return false;
          if (it.label !== (p < cfg.pointwise.k ? 1 : 0)) return false;
        }
        return true;
      }),
    );
  });
});
