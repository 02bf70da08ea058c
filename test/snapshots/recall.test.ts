import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isRankdistillError } from '../../src/errors.ts';
import { recallFromTable, topK } from '../../src/snapshots/recall.ts';

/** Reference: every score (same float32 accumulation as topK), stable full sort, first k. */
function naive(matrix: Float32Array, dim: number, q: Float32Array, k: number) {
  const n = matrix.length / dim;
  const scores = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    let j = 0;
    for (; j + 3 < dim; j += 4)
      s +=
        matrix[r * dim + j]! * q[j]! +
        matrix[r * dim + j + 1]! * q[j + 1]! +
        matrix[r * dim + j + 2]! * q[j + 2]! +
        matrix[r * dim + j + 3]! * q[j + 3]!;
    for (; j < dim; j++) s += matrix[r * dim + j]! * q[j]!;
    scores[r] = s;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return order.slice(0, k);
}

describe('exact top-k recall', () => {
  test('property: equals a full stable sort of all scores (ties included)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 70 }),
        // small integers make ties frequent
        fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 7 * 60 + 7, maxLength: 7 * 60 + 7 }),
        (dim, n, k, vals) => {
          const matrix = Float32Array.from(vals.slice(0, n * dim));
          const q = Float32Array.from(vals.slice(n * dim, n * dim + dim));
          const top = topK(matrix, dim, q, k);
          assert.deepEqual(Array.from(top.rows), naive(matrix, dim, q, k));
          for (let i = 1; i < top.scores.length; i++) assert.ok(top.scores[i - 1]! >= top.scores[i]!);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('returns ids and scores of the best items', () => {
    const t = { ids: ['a', 'b', 'c'], dim: 2, vectors: Float32Array.of(1, 0, 0, 1, 1, 1) };
    const r = recallFromTable(t, Float32Array.of(1, 2), 2);
    assert.deepEqual(r.ids, ['c', 'b']);
    assert.deepEqual(Array.from(r.scores), [3, 2]);
  });

  test('refuses a query of the wrong dimension or with NaN', () => {
    assert.throws(
      () => topK(new Float32Array(4), 2, new Float32Array(3), 1),
      (e) => isRankdistillError(e, 'TRAIN_INPUT_INVALID'),
    );
    assert.throws(
      () => topK(new Float32Array(4), 2, Float32Array.of(1, Number.NaN), 1),
      (e) => isRankdistillError(e, 'TRAIN_INPUT_INVALID'),
    );
  });
});
