import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/train/backend.ts';
import { linear, matmul } from '../../src/train/ops.ts';

const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) < 1e-4, `at ${i}: ${a[i]} vs ${b[i]}`);
};

for (const backend of ['wasm', 'cpu'] as const) {
  test(`matmul and linear give tfjs's values and gradients (${backend})`, async () => {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.randomNormal([5, 3], 0, 1, 'float32', 1) as tf.Tensor2D;
      const k = tf.randomNormal([3, 4], 0, 1, 'float32', 2) as tf.Tensor2D;
      const b = tf.randomNormal([4], 0, 1, 'float32', 3) as tf.Tensor1D;
      const up = tf.randomNormal([5, 4], 0, 1, 'float32', 4);
      // a non-trivial upstream gradient through relu and a weighted sum
      const ours = tf.grads((x_, k_, b_) =>
        tf.sum(tf.mul(tf.relu(linear(x_ as tf.Tensor2D, k_ as tf.Tensor2D, b_ as tf.Tensor1D)), up)),
      )([x, k, b]);
      const ref = tf.grads((x_, k_, b_) =>
        tf.sum(tf.mul(tf.relu(tf.add(tf.matMul(x_ as tf.Tensor2D, k_ as tf.Tensor2D), b_)), up)),
      )([x, k, b]);
      for (const [i, g] of ours.entries()) close(g.dataSync(), (ref[i] as tf.Tensor).dataSync());
      close(linear(x, k, b).dataSync(), tf.add(tf.matMul(x, k), b).dataSync());
      const m1 = tf.grads((a_, c_) => tf.sum(tf.mul(matmul(a_ as tf.Tensor2D, c_ as tf.Tensor2D), up)))([
        x,
        k,
      ]);
      const m2 = tf.grads((a_, c_) => tf.sum(tf.mul(tf.matMul(a_ as tf.Tensor2D, c_ as tf.Tensor2D), up)))([
        x,
        k,
      ]);
      for (const [i, g] of m1.entries()) close(g.dataSync(), (m2[i] as tf.Tensor).dataSync());
    });
  });
}
