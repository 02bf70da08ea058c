import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { LabelsConfig } from '../../src/config/schema.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { listwiseGrades, listwiseItems } from '../../src/labels/listwise.ts';
import { arbConfig, arbJoined, impression, labelsConfig, ranker, viewOf } from './helpers.ts';

function grades(over: Record<string, unknown>, scores: number[]): number[] {
  const cfg = labelsConfig(over);
  const r = ranker(
    scores.map((_, i) => `i${i}`),
    scores,
  );
  return [...listwiseGrades(viewOf(r, null, cfg), cfg.listwise)];
}

const desc = (n: number) => Array.from({ length: n }, (_, i) => n - i);

describe('listwise buckets', () => {
  test('top bucketSize → maxGrade, next → maxGrade − 1, …, floor 0', () => {
    assert.deepEqual(grades({ listwise: { bucketSize: 2, maxGrade: 2 } }, desc(7)), [2, 2, 1, 1, 0, 0, 0]);
  });

  test('defaults: ranks 1–5 → 5, 6–10 → 4, 11–12 → 3', () => {
    assert.deepEqual(grades({}, desc(12)), [5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 3, 3]);
  });

  test('gain = 2^grade − 1, logits carried; null logits in rank mode', () => {
    const cfg = labelsConfig({ listwise: { bucketSize: 1, maxGrade: 3 } });
    const v = viewOf(ranker(['a', 'b', 'c', 'd', 'e'], [9, 8, 7, 6, 5]), null, cfg);
    assert.deepEqual(listwiseItems(v, listwiseGrades(v, cfg.listwise)), [
      { item_id: 'a', rank: 1, grade: 3, gain: 7, teacher_logit: 9 },
      { item_id: 'b', rank: 2, grade: 2, gain: 3, teacher_logit: 8 },
      { item_id: 'c', rank: 3, grade: 1, gain: 1, teacher_logit: 7 },
      { item_id: 'd', rank: 4, grade: 0, gain: 0, teacher_logit: 6 },
      { item_id: 'e', rank: 5, grade: 0, gain: 0, teacher_logit: 5 },
    ]);
    const rank = labelsConfig({ teacher: { signal: 'rank' } });
    const rv = viewOf(ranker(['a']), null, rank);
    assert.equal(listwiseItems(rv, listwiseGrades(rv, rank.listwise))[0]!.teacher_logit, null);
  });
});

describe('listwise logit-quantiles', () => {
  const q = (levels: number, signal = 'logits') => ({
    teacher: { signal },
    listwise: { scheme: 'logit-quantiles', levels },
  });

  test('equal-frequency bins: grade = L − 1 − ⌊L · #greater / n⌋', () => {
    assert.deepEqual(grades(q(4), [8, 7, 6, 5, 4, 3, 2, 1]), [3, 3, 2, 2, 1, 1, 0, 0]);
    assert.deepEqual(grades(q(6), [3, 2, 1]), [5, 3, 1]); // n < L: some grades unused
    assert.deepEqual(grades(q(6), [42]), [5]);
  });

  test('logits out of rank order are graded by value', () => {
    assert.deepEqual(grades(q(2), [1, 3, 2, 0]), [0, 1, 1, 0]);
  });

  test('ties share the grade of their first member (stable in rank order)', () => {
    assert.deepEqual(grades(q(5), [5, 3, 3, 3, 1]), [4, 3, 3, 3, 0]);
    assert.deepEqual(grades(q(3), [3, 5, 3]), [1, 2, 1]);
    assert.deepEqual(grades(q(3), [0, -0, 0]), [2, 2, 2]);
  });

  test('in impression order, grades still follow the logit values', () => {
    const cfg = labelsConfig({
      teacher: { orderSource: 'impression' },
      listwise: { scheme: 'logit-quantiles', levels: 5 },
    });
    const r = ranker(['a', 'b', 'c', 'd', 'e'], [5, 4, 3, 2, 1]);
    const v = viewOf(
      r,
      impression([
        ['d', 1, false],
        ['b', 2, true],
      ]),
      cfg,
    );
    // label order d, b, a, c, e with logits 2, 4, 5, 3, 1
    assert.deepEqual([...listwiseGrades(v, cfg.listwise)], [1, 3, 4, 2, 0]);
  });

  test('rank mode grades by rank, ignoring the scores', () => {
    assert.deepEqual(grades(q(4, 'rank'), [0, 5, 1, 9, 2, 2, 2, 7]), [3, 3, 2, 2, 1, 1, 0, 0]);
  });
});

describe('listwise logit-thresholds', () => {
  const t = (thresholds: number[]) => ({ listwise: { scheme: 'logit-thresholds', thresholds } });

  test('grade = number of thresholds ≤ z', () => {
    assert.deepEqual(grades(t([-1, 0, 2.5]), [3, 2.5, 0.1, 0, -0.5, -1, -7]), [3, 3, 2, 2, 1, 1, 0]);
    assert.deepEqual(grades(t([2.5, -1, 0]), [3, 0, -7]), [3, 2, 0]); // order of the cut points is irrelevant
    assert.deepEqual(grades(t([]), [3, 0]), [0, 0]);
  });

  test('rank mode is a LabelInputError naming the setting', () => {
    assert.throws(
      () => grades({ ...t([0]), teacher: { signal: 'rank' } }, [1, 0]),
      (e: unknown) =>
        isRankdistillError(e, 'LABEL_INPUT_INVALID') &&
        /'logit-thresholds' needs teacher logits.*'rank'/.test(e.message),
    );
  });
});

describe('listwise properties', () => {
  test('logit-quantiles equal the definition L − 1 − ⌊L · #greater / n⌋ in any order', () => {
    fc.assert(
      fc.property(arbJoined(), arbConfig(), ({ ranker: r, impression: imp }, c) => {
        const cfg: LabelsConfig = {
          ...c,
          teacher: { ...c.teacher, signal: 'logits' },
          listwise: { ...c.listwise, scheme: 'logit-quantiles' },
        };
        const v = viewOf(r, imp, cfg);
        const z = [...v.z!];
        const L = cfg.listwise.levels;
        const expected = z.map((x) => L - 1 - Math.floor((L * z.filter((y) => y > x).length) / z.length));
        assert.deepEqual([...listwiseGrades(v, cfg.listwise)], expected);
      }),
    );
  });

  test('in ranker order with descending logits, grades are non-increasing in rank; gain = 2^g − 1', () => {
    fc.assert(
      fc.property(arbJoined(40, true), arbConfig(), ({ ranker: r, impression: imp }, c) => {
        const cfg: LabelsConfig = { ...c, teacher: { ...c.teacher, orderSource: 'ranker' } };
        const v = viewOf(r, imp, cfg);
        const items = listwiseItems(v, listwiseGrades(v, cfg.listwise));
        for (let p = 0; p < items.length; p++) {
          const it = items[p]!;
          if (!Number.isInteger(it.grade) || it.grade < 0 || it.gain !== 2 ** it.grade - 1) return false;
          if (p > 0 && it.grade > items[p - 1]!.grade) return false;
        }
        return new Set(items.map((it) => it.item_id)).size === r.items.length;
      }),
    );
  });
});
