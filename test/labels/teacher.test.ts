import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { IdIndex } from '../../src/labels/id-index.ts';
import { resolveTeacher, type TeacherView } from '../../src/labels/teacher.ts';
import { impression, labelsConfig, ranker } from './helpers.ts';

function view(r: RankerOutput, imp: Impression | null, teacher: Record<string, unknown> = {}): TeacherView {
  const ix = new IdIndex();
  assert.equal(ix.build(r.items, r.items.length), -1);
  return resolveTeacher(r, imp, labelsConfig({ teacher }).teacher, ix);
}

/** Item ids in label order. */
function ids(v: TeacherView): string[] {
  return Array.from({ length: v.n }, (_, p) => v.items[v.order === null ? p : v.order[p]!]!.item_id);
}

function withObjectives(objs: (Record<string, number> | null)[]): RankerOutput {
  const r = ranker(
    objs.map((_, i) => `i${i}`),
    [5, 4, 3],
  );
  return { ...r, items: r.items.map((it, i) => ({ ...it, objectives: objs[i]! })) };
}

describe('teacher signal', () => {
  test('logits mode uses the score when no objective weights are set', () => {
    const v = view(ranker(['a', 'b', 'c'], [2.5, -1, -3]), null);
    assert.deepEqual([...v.z!], [2.5, -1, -3]);
    assert.equal(v.order, null);
    assert.equal(v.clicked, null);
  });

  test('fuses objectives: z = Σ w_k · objectives[k]', () => {
    const r = withObjectives([
      { ctr: 1, like: 2 },
      { ctr: -1, like: 4, dwell: 9 },
      { ctr: 0, like: 0 },
    ]);
    const v = view(r, null, { objectiveWeights: { ctr: 2, like: 0.5 } });
    // 2·1 + 0.5·2 = 3;  2·(−1) + 0.5·4 = 0;  0
    assert.deepEqual([...v.z!], [3, 0, 0]);
  });

  test("missing objective: LabelInputError by default, the item's score with missingLogits 'score'", () => {
    const r = withObjectives([{ ctr: 1, like: 2 }, { ctr: 3 }, null]);
    const w = { objectiveWeights: { ctr: 1, like: 1 } };
    assert.throws(
      () => view(r, null, w),
      (e: unknown) =>
        isRankdistillError(e, 'LABEL_INPUT_INVALID') &&
        /items\[1\] \(item_id "i1"\) has no objective logit "like".*found objectives \{ctr\}/.test(e.message),
    );
    const v = view(r, null, { ...w, missingLogits: 'score' });
    assert.deepEqual([...v.z!], [3, 4, 3]); // i1 and i2 fall back to their scores 4 and 3
  });

  test('rank mode reads no logits', () => {
    const r = withObjectives([null, null, null]);
    const v = view(r, null, { signal: 'rank', objectiveWeights: { ctr: 1 } });
    assert.equal(v.z, null); // no error although objectives are missing: they are not read
  });
});

describe('order source', () => {
  const r = ranker(['a', 'b', 'c', 'd', 'e'], [5, 4, 3, 2, 1]);
  // Shown (listed out of position order): d at 1, b at 2, x (not a candidate) at 3, a at 4.
  const imp = impression([
    ['b', 2, true],
    ['d', 1, false],
    ['x', 3, true],
    ['a', 4, false],
  ]);

  test('ranker: teacher order, clicks of shown candidates, null when not shown', () => {
    const v = view(r, imp);
    assert.deepEqual(ids(v), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual([...v.clicked!], [0, 1, -1, 0, -1]);
  });

  test('impression: shown candidates by position, then unshown in teacher order; strangers ignored', () => {
    const v = view(r, imp, { orderSource: 'impression' });
    assert.deepEqual(ids(v), ['d', 'b', 'a', 'c', 'e']);
    assert.deepEqual([...v.z!], [2, 4, 5, 3, 1]);
    assert.deepEqual([...v.clicked!], [0, 1, 0, -1, -1]);
  });

  test('impression order without an impression, or with nothing shown, is the ranker order', () => {
    assert.deepEqual(ids(view(r, null, { orderSource: 'impression' })), ['a', 'b', 'c', 'd', 'e']);
    const empty = view(r, impression([]), { orderSource: 'impression' });
    assert.deepEqual(ids(empty), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual([...empty.clicked!], [-1, -1, -1, -1, -1]);
    const onlyStrangers = view(r, impression([['x', 1, true]]), { orderSource: 'impression' });
    assert.deepEqual(ids(onlyStrangers), ['a', 'b', 'c', 'd', 'e']);
  });
});
