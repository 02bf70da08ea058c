import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { ItemPair } from '../../src/contracts/index.ts';
import { listwiseGrades } from '../../src/labels/listwise.ts';
import { pairwisePairs } from '../../src/labels/pairwise.ts';
import { Rng } from '../../src/labels/rng.ts';
import { arbConfig, arbJoined, labelsConfig, near, ranker, viewOf } from './helpers.ts';

const letters = (n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + i));

function pairs(
  pairwise: Record<string, unknown>,
  n: number,
  extra: Record<string, unknown> = {},
): ItemPair[] {
  const cfg = labelsConfig({ ...extra, pairwise });
  const v = viewOf(ranker(letters(n)), null, cfg);
  return pairwisePairs(v, cfg.pairwise, Rng.forRequest('req-1'), listwiseGrades(v, cfg.listwise));
}

const ranks = (ps: ItemPair[]) => ps.map((p) => [p.pos_rank, p.neg_rank]);

describe('pairwise adjacent', () => {
  test('(r, r + 1) with items and weight 1', () => {
    assert.deepEqual(pairs({ strategy: 'adjacent' }, 4), [
      { pos_item: 'a', neg_item: 'b', pos_rank: 1, neg_rank: 2, weight: 1 },
      { pos_item: 'b', neg_item: 'c', pos_rank: 2, neg_rank: 3, weight: 1 },
      { pos_item: 'c', neg_item: 'd', pos_rank: 3, neg_rank: 4, weight: 1 },
    ]);
  });

  test('respects the minimum rank gap and the cap', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'adjacent', minRankGap: 2 }, 5)), [
      [1, 3],
      [2, 4],
      [3, 5],
    ]);
    assert.deepEqual(ranks(pairs({ strategy: 'adjacent', maxPairs: 2 }, 6)), [
      [1, 2],
      [2, 3],
    ]);
  });
});

describe('pairwise topk-vs-below', () => {
  test('takes every item below when at most m are eligible', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'topk-vs-below', k: 2, m: 4 }, 4)), [
      [1, 2],
      [1, 3],
      [1, 4],
      [2, 3],
      [2, 4],
    ]);
  });

  test('only negatives at least minRankGap below; stops when none are left', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'topk-vs-below', k: 5, m: 4, minRankGap: 3 }, 5)), [
      [1, 4],
      [1, 5],
      [2, 5],
    ]);
  });

  test('stops at maxPairs', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'topk-vs-below', k: 2, m: 4, maxPairs: 3 }, 4)), [
      [1, 2],
      [1, 3],
      [1, 4],
    ]);
  });

  test('samples m of the items below, seeded by request_id (pinned: changing it changes published labels)', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'topk-vs-below', k: 2, m: 3 }, 10)), [
      [1, 6],
      [1, 7],
      [1, 8],
      [2, 4],
      [2, 5],
      [2, 8],
    ]);
  });
});

describe('pairwise sampled', () => {
  test('all valid pairs, in order, when there are at most maxPairs', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'sampled', minRankGap: 2 }, 4)), [
      [1, 3],
      [1, 4],
      [2, 4],
    ]);
  });

  test('maxPairs distinct pairs with the gap, seeded by request_id (pinned)', () => {
    assert.deepEqual(ranks(pairs({ strategy: 'sampled', maxPairs: 6, minRankGap: 2 }, 10)), [
      [2, 6],
      [2, 7],
      [3, 5],
      [4, 6],
      [4, 10],
      [5, 9],
    ]);
  });
});

describe('pairwise sampling paths', () => {
  test('large lists (pair space > 2^20) still give distinct sorted pairs, deterministically', () => {
    const cfg = labelsConfig({ pairwise: { strategy: 'sampled', maxPairs: 40, minRankGap: 1 } });
    const ids = Array.from({ length: 1500 }, (_, i) => `i${i}`);
    const v = viewOf(ranker(ids), null, cfg);
    const a = pairwisePairs(v, cfg.pairwise, Rng.forRequest('big'), null);
    assert.deepEqual(pairwisePairs(v, cfg.pairwise, Rng.forRequest('big'), null), a);
    assert.equal(a.length, 40);
    const keys = a.map((p) => p.pos_rank * 10_000 + p.neg_rank);
    assert.deepEqual(
      keys,
      [...keys].sort((x, y) => x - y),
    );
    assert.equal(new Set(keys).size, 40);
    assert.ok(a.every((p) => p.neg_rank > p.pos_rank && p.neg_rank <= 1500));
  });
});

describe('pairwise edge cases and weights', () => {
  test('a single item, or a list no longer than the gap, has no pairs', () => {
    for (const strategy of ['topk-vs-below', 'adjacent', 'sampled']) {
      assert.deepEqual(pairs({ strategy }, 1), [], strategy);
      assert.deepEqual(pairs({ strategy, minRankGap: 3 }, 3), [], strategy);
    }
  });

  test('|ΔNDCG| weights from the listwise grades (gains 3, 1, 0, 0)', () => {
    const ps = pairs({ strategy: 'adjacent', weightByDeltaNdcg: true }, 4, {
      listwise: { bucketSize: 1, maxGrade: 2 },
    });
    // IDCG = 3·1 + 1/log2(3); (1,2): 2·(1 − 1/log2 3)/IDCG; (2,3): (1/log2 3 − 1/2)/IDCG; (3,4): equal gains → 0.
    near(
      ps.map((p) => p.weight),
      [0.20329241900949327, 0.036059566683346686, 0],
    );
    assert.deepEqual(ranks(ps), ranks(pairs({ strategy: 'adjacent' }, 4))); // weighting never changes the pairs
  });

  test('all-zero grades give weight 0, not NaN', () => {
    const ps = pairs({ strategy: 'adjacent', weightByDeltaNdcg: true }, 3, {
      listwise: { scheme: 'logit-thresholds', thresholds: [] },
    });
    assert.deepEqual(
      ps.map((p) => p.weight),
      [0, 0],
    );
  });
});

describe('pairwise properties', () => {
  test('pos outranks neg by ≥ gap, items match their ranks, unique, within caps, deterministic', () => {
    fc.assert(
      fc.property(arbJoined(), arbConfig(), ({ ranker: r, impression: imp }, cfg) => {
        const v = viewOf(r, imp, cfg);
        const g = listwiseGrades(v, cfg.listwise);
        const ps = pairwisePairs(v, cfg.pairwise, Rng.forRequest(r.request_id), g);
        const again = pairwisePairs(v, cfg.pairwise, Rng.forRequest(r.request_id), g);
        assert.deepEqual(again, ps);
        const pw = cfg.pairwise;
        assert.ok(ps.length <= pw.maxPairs);
        if (pw.strategy === 'topk-vs-below') assert.ok(ps.length <= pw.k * pw.m);
        const idAt = (rank: number) => v.items[v.order === null ? rank - 1 : v.order[rank - 1]!]!.item_id;
        const seen = new Set<string>();
        for (const p of ps) {
          assert.ok(p.neg_rank - p.pos_rank >= pw.minRankGap, JSON.stringify(p));
          assert.ok(p.pos_rank >= 1 && p.neg_rank <= r.items.length);
          assert.equal(p.pos_item, idAt(p.pos_rank));
          assert.equal(p.neg_item, idAt(p.neg_rank));
          assert.notEqual(p.pos_item, p.neg_item);
          assert.ok(p.weight >= 0 && p.weight <= 1 && Number.isFinite(p.weight));
          const key = `${p.pos_rank}/${p.neg_rank}`;
          assert.ok(!seen.has(key), `duplicate pair ${key}`);
          seen.add(key);
        }
        // Enough pairs: every strategy fills up to its cap when the list allows it.
        const n = r.items.length;
        const L = n - pw.minRankGap;
        if (pw.strategy === 'sampled')
          assert.equal(ps.length, Math.min(pw.maxPairs, L > 0 ? (L * (L + 1)) / 2 : 0));
        if (pw.strategy === 'adjacent') assert.equal(ps.length, Math.min(pw.maxPairs, Math.max(0, L)));
      }),
    );
  });
});
