import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { initBackend } from '../../src/train/backend.ts';
import { mulberry32 } from '../../src/train/hash.ts';
import { DenseParam, EmbeddingTable, type OptimizerConfig } from '../../src/train/sparse.ts';

/**
 * Dense reference: the same table as a tf.variable, the loss Σ gather(V, rows) ⊙ G (whose gradient
 * w.r.t. V is G scattered and summed into the rows), updated by the tfjs optimizer.
 */
function denseReference(
  init: Float32Array,
  vocab: number,
  d: number,
  steps: { rows: number[]; grads: Float32Array }[],
  opt: OptimizerConfig,
): Float32Array {
  return tf.tidy(() => {
    const v = tf.variable(tf.tensor2d(init, [vocab, d]));
    const o = opt.kind === 'adam' ? tf.train.adam(opt.learningRate) : tf.train.adagrad(opt.learningRate);
    for (const s of steps) {
      o.minimize(() =>
        tf.sum(tf.mul(tf.gather(v, tf.tensor1d(s.rows, 'int32')), tf.tensor2d(s.grads, [s.rows.length, d]))),
      );
    }
    const out = Float32Array.from(v.dataSync());
    o.dispose();
    v.dispose();
    return out;
  });
}

function compare(
  kind: 'adam' | 'adagrad',
  vocab: number,
  d: number,
  stepRows: number[][],
  seed: number,
): void {
  const opt: OptimizerConfig = { kind, learningRate: 0.05 };
  const table = new EmbeddingTable({ dim: d, optimizer: opt, initialCapacity: 2, seed });
  for (let i = 0; i < vocab; i++) table.row(`id${i}`);
  const init = table.values.slice(0, vocab * d);
  const rand = mulberry32(seed);
  const steps = stepRows.map((rows) => ({
    rows,
    grads: Float32Array.from({ length: rows.length * d }, () => rand() * 2 - 1),
  }));
  for (const s of steps) table.applyGradients(s.rows, s.grads);
  const ref = denseReference(init, vocab, d, steps, opt);
  for (let i = 0; i < vocab * d; i++) {
    const a = table.values[i] as number;
    const b = ref[i] as number;
    assert.ok(Math.abs(a - b) <= 1e-5, `element ${i}: sparse ${a}, dense ${b}`);
  }
}

describe('sparse embedding updates equal the dense tfjs reference', () => {
  before(async () => {
    await initBackend('cpu'); // the dense reference needs UnsortedSegmentSum
  });

  test('adagrad: random touched rows with duplicates, untouched rows stay put (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 8 }), {
          minLength: 1,
          maxLength: 5,
        }),
        fc.integer({ min: 1, max: 1000 }),
        (stepRows, seed) => compare('adagrad', 6, 3, stepRows, seed),
      ),
      { numRuns: 25 },
    );
  });

  test('adam: every row touched each step (then lazy Adam is dense Adam), duplicates summed', () => {
    compare(
      'adam',
      5,
      4,
      [
        [0, 1, 2, 3, 4, 4],
        [4, 3, 2, 1, 0, 0, 0],
        [2, 0, 1, 3, 4, 2],
        [0, 1, 2, 3, 4],
      ],
      7,
    );
  });

  test('dense parameter blocks follow tfjs adam', () => {
    const opt: OptimizerConfig = { kind: 'adam', learningRate: 0.1 };
    const p = new DenseParam('w', [3, 2], opt, 3);
    const init = p.values.slice();
    const grads = [Float32Array.of(1, -2, 0.5, 0, 3, -1), Float32Array.of(-1, 0.25, 2, 1, 0, 0)];
    for (const g of grads) p.apply(g);
    const ref = tf.tidy(() => {
      const v = tf.variable(tf.tensor2d(init, [3, 2]));
      const o = tf.train.adam(0.1);
      for (const g of grads) o.minimize(() => tf.sum(tf.mul(v, tf.tensor2d(g, [3, 2]))));
      const out = Float32Array.from(v.dataSync());
      o.dispose();
      v.dispose();
      return out;
    });
    for (let i = 0; i < 6; i++) assert.ok(Math.abs((p.values[i] as number) - (ref[i] as number)) <= 1e-5);
  });
});

describe('EmbeddingTable', () => {
  test('grows by doubling without losing rows', () => {
    const t = new EmbeddingTable({
      dim: 2,
      optimizer: { kind: 'adam', learningRate: 0.1 },
      initialCapacity: 1,
    });
    const first = t.gather([t.row('a')]).slice();
    for (let i = 0; i < 100; i++) t.row(`x${i}`);
    assert.equal(t.size, 101);
    assert.deepEqual(Array.from(t.gather([t.find('a')])), Array.from(first));
    assert.equal(t.find('never-seen'), -1);
    assert.equal(t.ids[0], 'a');
  });

  test('past maxRows new ids hash onto existing rows and are counted', () => {
    const t = new EmbeddingTable({ dim: 2, optimizer: { kind: 'adagrad', learningRate: 0.1 }, maxRows: 4 });
    for (const id of ['a', 'b', 'c', 'd']) t.row(id);
    const r = t.row('e');
    assert.ok(r >= 0 && r < 4);
    assert.equal(t.row('e'), r, 'hashing is stable');
    assert.equal(t.size, 4);
    assert.equal(t.hashedLookups, 2);
  });

  test('restore gives back the same rows and ids', () => {
    const opt: OptimizerConfig = { kind: 'adam', learningRate: 0.1 };
    const t = new EmbeddingTable({ dim: 3, optimizer: opt });
    for (const id of ['a', 'b', 'c']) t.row(id);
    t.applyGradients([0, 2], Float32Array.of(1, 1, 1, -1, -1, -1));
    const s = t.state();
    const u = new EmbeddingTable({ dim: 3, optimizer: opt });
    u.restore(t.ids, {
      values: s.values.slice(),
      slot1: s.slot1.slice(),
      slot2: s.slot2.slice(),
      steps: s.steps.slice(),
    });
    assert.deepEqual(Array.from(u.gather([0, 1, 2])), Array.from(t.gather([0, 1, 2])));
    assert.equal(u.find('c'), 2);
    u.applyGradients([2], Float32Array.of(1, 1, 1));
    t.applyGradients([2], Float32Array.of(1, 1, 1));
    assert.deepEqual(Array.from(u.gather([2])), Array.from(t.gather([2])));
  });
});
