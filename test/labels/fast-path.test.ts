/**
 * labelRequest's fast path (validation hashing ids and copying scores into reused buffers, shared
 * logit values between pointwise and listwise records) against the generators on a fresh view
 * built the plain way, on lists long enough to grow every reused buffer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { labelRequest } from '../../src/labels/index.ts';
import { listwiseGrades, listwiseItems } from '../../src/labels/listwise.ts';
import { pairwisePairs } from '../../src/labels/pairwise.ts';
import { pointwiseItems } from '../../src/labels/pointwise.ts';
import { Rng } from '../../src/labels/rng.ts';
import { arbConfig, impression, labelsConfig, ranker, viewOf } from './helpers.ts';

function longRequest(n: number, seed: number, suffix: string) {
  const ids = Array.from({ length: n }, (_, i) => `${(i * 7919 + seed) % 100_003}${suffix}`);
  const scores = ids.map((_, i) => Math.sin(i + seed) * 5);
  const r = ranker(ids, scores);
  const shown = ids.slice(0, 12).map((id, k): [string, number, boolean] => [id, 12 - k, k % 3 === 0]);
  return { ranker: r, impression: impression(shown) };
}

describe('labelRequest fast path vs the generators on a plain view', () => {
  test('long lists (buffer growth), quick-hash and full-hash ids, every config', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 700 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.constantFrom('', '-catalog-product-en'),
        arbConfig(),
        (n, seed, suffix, cfg) => {
          const req = longRequest(n, seed, suffix);
          const l = labelRequest(req, cfg);
          const v = viewOf(req.ranker, req.impression, cfg);
          const g = listwiseGrades(v, cfg.listwise);
          assert.deepStrictEqual(l.pointwise!.items, pointwiseItems(v, cfg.pointwise));
          assert.deepStrictEqual(l.listwise!.items, listwiseItems(v, g));
          assert.deepStrictEqual(
            l.pairwise!.pairs,
            pairwisePairs(v, cfg.pairwise, Rng.forRequest(req.ranker.request_id), g),
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  test('a bad score after a long valid request is still rejected with its index', () => {
    const cfg = labelsConfig();
    labelRequest(longRequest(500, 1, ''), cfg);
    const bad = longRequest(300, 2, '');
    bad.ranker.items[250]!.score = Number.NaN;
    assert.throws(() => labelRequest(bad, cfg), /items\[250\]\.score must be finite, found NaN/);
  });
});
