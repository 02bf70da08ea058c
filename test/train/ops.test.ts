import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/train/backend.ts';
import { linear, matmul, mlpBackward, mlpForward, readInto, transposeValues } from '../../src/train/ops.ts';

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

for (const backend of ['wasm', 'cpu'] as const) {
  test(`mlpForward/mlpBackward give tfjs's MLP output and gradients (${backend})`, async () => {
    await initBackend(backend);
    tf.tidy(() => {
      const rows = 7;
      const sizes = [5, 6, 3, 4]; // input 5, hidden 6 and 3, output 4
      const x = tf.randomNormal([rows, sizes[0] as number], 0, 1, 'float32', 1) as tf.Tensor2D;
      const ks: tf.Tensor2D[] = [];
      const bs: tf.Tensor1D[] = [];
      for (let l = 0; l + 1 < sizes.length; l++) {
        ks.push(
          tf.randomNormal(
            [sizes[l] as number, sizes[l + 1] as number],
            0,
            1,
            'float32',
            10 + l,
          ) as tf.Tensor2D,
        );
        bs.push(tf.randomNormal([sizes[l + 1] as number], 0, 0.5, 'float32', 20 + l) as tf.Tensor1D);
      }
      const up = tf.randomNormal([rows, 4], 0, 1, 'float32', 4) as tf.Tensor2D;
      const forward = (x_: tf.Tensor, ...w: tf.Tensor[]) => {
        let h = x_ as tf.Tensor2D;
        for (let l = 0; l < ks.length; l++) {
          h = tf.add(tf.matMul(h, w[2 * l] as tf.Tensor2D), w[2 * l + 1] as tf.Tensor1D);
          if (l < ks.length - 1) h = tf.relu(h);
        }
        return h;
      };
      const w = ks.flatMap((k, l) => [k, bs[l] as tf.Tensor1D]);
      const refGrads = tf.grads((x_, ...w_) => tf.sum(tf.mul(forward(x_, ...w_), up)))([x, ...w]);
      const acts = mlpForward(x, ks, bs);
      close((acts[ks.length] as tf.Tensor).dataSync(), forward(x, ...w).dataSync());
      const xv = x.dataSync() as Float32Array;
      const xT = tf.tensor2d(transposeValues(xv, rows, 5), [5, rows]);
      const layers = ks.map((k) => ({
        kernel: k.dataSync() as Float32Array,
        inDim: k.shape[0],
        outDim: k.shape[1],
      }));
      const g = mlpBackward(acts, xT, layers, up, 3); // the input gradient of the first 3 columns only
      for (const [l, k] of g.kernels.entries()) close(k, (refGrads[1 + 2 * l] as tf.Tensor).dataSync());
      for (const [l, b] of g.biases.entries()) close(b, (refGrads[2 + 2 * l] as tf.Tensor).dataSync());
      const dx = (refGrads[0] as tf.Tensor).dataSync();
      const dx3 = new Float32Array(rows * 3);
      for (let r = 0; r < rows; r++) for (let c = 0; c < 3; c++) dx3[r * 3 + c] = dx[r * 5 + c] as number;
      close(g.input, dx3);
    });
  });

  test(`readInto copies a tensor's values into a reused buffer (${backend})`, async () => {
    await initBackend(backend);
    const out = new Float32Array(10).fill(-1);
    tf.tidy(() => {
      const t = tf.add(tf.tensor1d([1, 2, 3, 4]), 0.5);
      readInto(t, out);
    });
    assert.deepEqual(Array.from(out), [1.5, 2.5, 3.5, 4.5, -1, -1, -1, -1, -1, -1]);
  });
}
