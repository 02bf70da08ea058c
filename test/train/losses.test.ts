import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { initBackend } from '../../src/train/backend.ts';
import {
  bprLoss,
  combineLosses,
  lambdaLoss,
  listNetLoss,
  mixTargets,
  pointwiseBceOfVectors,
  sampledSoftmaxLoss,
  sampledSoftmaxOfVectors,
  weightedBce,
} from '../../src/train/losses.ts';

const close = (actual: number, expected: number, tol = 1e-5) =>
  assert.ok(Math.abs(actual - expected) <= tol, `expected ${expected}, found ${actual}`);
const val = (t: tf.Tensor) => t.dataSync()[0] as number;
const sp = (x: number) => Math.log1p(Math.exp(x));

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`losses on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
    });

    test('weighted BCE: (2·softplus(0) + softplus(2) − 0.5·2 + softplus(−1)) / 4', () => {
      // ℓ = softplus(s) − t·s; weights 2, 1, 1
      const l = tf.tidy(() =>
        val(weightedBce(tf.tensor1d([0, 2, -1]), tf.tensor1d([1, 0.5, 0]), tf.tensor1d([2, 1, 1]))),
      );
      close(l, 0.7066210149);
    });

    test('λ-mixed targets use clicks only where known', () => {
      const t = tf.tidy(() =>
        Array.from(
          mixTargets(tf.tensor1d([0.8, 0.3]), tf.tensor1d([0, 1]), tf.tensor1d([1, 0]), 0.25).dataSync(),
        ),
      );
      close(t[0] as number, 0.6); // 0.75·0.8 + 0.25·0
      close(t[1] as number, 0.3); // click unknown: teacher only
    });

    test('BPR: (softplus(−1) + 3·softplus(1)) / 4', () => {
      const l = tf.tidy(() => val(bprLoss(tf.tensor1d([2, 0]), tf.tensor1d([1, 1]), tf.tensor1d([1, 3]))));
      close(l, 1.0632616875);
    });

    test('BPR gradient w.r.t. the positive score is −w·σ(s_neg − s_pos)/Σw', () => {
      const g = tf.tidy(() => {
        const f = (p: tf.Tensor) => bprLoss(p, tf.tensor1d([1]), tf.tensor1d([1]));
        return val(tf.grad(f)(tf.tensor1d([2])));
      });
      close(g, -1 / (1 + Math.exp(1))); // −σ(−1)
    });

    test('ListNet: gains normalised per list, padding masked, zero-gain lists ignored', () => {
      // list 1: P_t = [.75, .25, 0], logsumexp(1, 0, −1) = 1.407606 → 0.657606
      // list 2: P_t = [1, 0] over the two real items → −(2 − logsumexp(2, 5)) = 3.048587
      // list 3: all gains 0 → ignored
      const l = tf.tidy(() =>
        val(
          listNetLoss(
            tf.tensor2d([
              [1, 0, -1],
              [2, 5, 100],
              [3, 1, 2],
            ]),
            tf.tensor2d([
              [3, 1, 0],
              [1, 0, 7],
              [0, 0, 0],
            ]),
            tf.tensor2d([
              [1, 1, 1],
              [1, 1, 0],
              [1, 1, 1],
            ]),
          ),
        ),
      );
      close(l, (0.6576059644 + 3.0485873516) / 2);
    });

    test('NDCG-weighted pairwise logistic: three pairs of one list', () => {
      // scores [.5, 1, 0] → student ranks [2, 1, 3]; gains [3, 1, 0]; IDCG = 3 + 1/log2 3
      // (0,1): 2·|1/log2 3 − 1|/IDCG · softplus(.5); (0,2): 3·|1/log2 3 − 1/2|/IDCG · softplus(−.5);
      // (1,2): 1·|1 − 1/2|/IDCG · softplus(−1)  → 0.2924454421
      const l = tf.tidy(() =>
        val(lambdaLoss(tf.tensor2d([[0.5, 1, 0]]), tf.tensor2d([[3, 1, 0]]), tf.tensor2d([[1, 1, 1]]))),
      );
      close(l, 0.2924454421);
      const idcg = 3 + 1 / Math.log2(3);
      const d2 = 1 / Math.log2(3);
      const expected = (2 * (1 - d2) * sp(0.5) + 3 * (d2 - 0.5) * sp(-0.5) + 1 * 0.5 * sp(-1)) / idcg;
      close(l, expected);
    });

    test('NDCG-weighted loss: ties broken by position, padding ignored', () => {
      const l = tf.tidy(() =>
        val(lambdaLoss(tf.tensor2d([[0, 0, 9]]), tf.tensor2d([[1, 0, 5]]), tf.tensor2d([[1, 1, 0]]))),
      );
      close(l, (1 - 1 / Math.log2(3)) * Math.log(2));
    });

    test('sampled softmax with logQ correction and masking', () => {
      // row 1: corrected [2 − log .5, 1 − log .25, 0 − log .25], positive 0
      // row 2: corrected [.5 − log .5, 1.5 − log .25, masked], positive 1
      const l = tf.tidy(() =>
        val(
          sampledSoftmaxLoss(
            tf.tensor2d([
              [2, 1, 0],
              [0.5, 1.5, 0],
            ]),
            tf.tensor1d([Math.log(0.5), Math.log(0.25), Math.log(0.25)]),
            tf.tensor2d([
              [1, 1, 1],
              [1, 1, 0],
            ]),
            tf.tensor2d([
              [1, 0, 0],
              [0, 1, 0],
            ]),
          ),
        ),
      );
      close(l, 0.4326021861);
    });

    test('the pointwise BCE of vectors equals the taped BCE of the row-wise scores (property)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 8 }),
          fc.integer({ min: 0, max: 3 }),
          fc.integer({ min: 0, max: 3 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 1, max: 1 << 30 }),
          fc.constantFrom(0, 0.3),
          (n, moreU, moreI, d, seed, lambda) => {
            let x = seed;
            const rnd = () => {
              x = (x * 1103515245 + 12345) % 2147483648;
              return x / 2147483648;
            };
            const U = n + moreU;
            const I = n + moreI;
            const u = Float32Array.from({ length: U * d }, () => (rnd() - 0.5) * 6);
            const v = Float32Array.from({ length: I * d }, () => (rnd() - 0.5) * 6);
            const targets = Float32Array.from({ length: n }, () => rnd());
            const clicked = Float32Array.from({ length: n }, () => (rnd() < 0.5 ? 1 : 0));
            const known = Float32Array.from({ length: n }, () => (rnd() < 0.5 ? 1 : 0));
            const weights = Float32Array.from({ length: n }, () => rnd() * 2);
            tf.tidy(() => {
              const ut = tf.tensor2d(u, [U, d]);
              const vt = tf.tensor2d(v, [I, d]);
              const up = tf.scalar(0.8);
              const ref = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => {
                const sc = tf.sum(tf.mul(tf.slice(a, [0, 0], [n, -1]), tf.slice(b, [0, 0], [n, -1])), 1);
                const t = mixTargets(tf.tensor1d(targets), tf.tensor1d(clicked), tf.tensor1d(known), lambda);
                return tf.mul(weightedBce(sc, t, tf.tensor1d(weights)), up);
              })([ut, vt]);
              const ours = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
                tf.mul(
                  pointwiseBceOfVectors(
                    a as tf.Tensor2D,
                    b as tf.Tensor2D,
                    n,
                    targets,
                    clicked,
                    known,
                    weights,
                    lambda,
                  ),
                  up,
                ),
              )([ut, vt]);
              close(val(ours.value), val(ref.value), 1e-5);
              for (const [k, g] of ours.grads.entries()) {
                const mine = g.dataSync();
                const theirs = (ref.grads[k] as tf.Tensor).dataSync();
                for (let i = 0; i < mine.length; i++) close(mine[i] as number, theirs[i] as number, 1e-5);
              }
            });
          },
        ),
        { numRuns: 60 },
      );
    });

    test('the sampled softmax of vectors gives the hand-computed value too', () => {
      // anchors · Iᵀ: the same logits as above
      const l = tf.tidy(() =>
        val(
          sampledSoftmaxOfVectors(
            tf.tensor2d([
              [2, 1, 0],
              [0.5, 1.5, 0],
            ]),
            tf.eye(3) as tf.Tensor2D,
            Float32Array.of(Math.log(0.5), Math.log(0.25), Math.log(0.25)),
            Uint8Array.of(1, 1, 1, 1, 1, 0),
          ),
        ),
      );
      close(l, 0.4326021861);
    });

    test('the sampled softmax of vectors equals the taped one in value and gradients (property)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 6 }),
          fc.integer({ min: 0, max: 5 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 1, max: 1 << 30 }),
          fc.boolean(),
          (B, extra, d, seed, far) => {
            const M = B + extra;
            let x = seed;
            const rnd = () => {
              x = (x * 1103515245 + 12345) % 2147483648;
              return x / 2147483648;
            };
            // `far`: vectors long enough that some positives get a softmax below 1e-30
            const scale = far ? 12 : 1.5;
            const ua = Float32Array.from({ length: B * d }, () => (rnd() - 0.5) * scale);
            const cand = Float32Array.from({ length: M * d }, () => (rnd() - 0.5) * scale);
            const logQ = Float32Array.from({ length: M }, () => Math.log(0.01 + rnd()));
            const mask = Uint8Array.from({ length: B * M }, () => (rnd() < 0.3 ? 0 : 1));
            const labels = new Float32Array(B * M);
            for (let i = 0; i < B; i++) {
              labels[i * M + i] = 1; // anchor i's positive is candidate i
              mask[i * M + i] = 1;
            }
            tf.tidy(() => {
              const a = tf.tensor2d(ua, [B, d]);
              const c = tf.tensor2d(cand, [M, d]);
              const up = tf.scalar(1.7);
              const ref = tf.valueAndGrads((a_: tf.Tensor, c_: tf.Tensor) =>
                tf.mul(
                  sampledSoftmaxLoss(
                    tf.matMul(a_ as tf.Tensor2D, c_ as tf.Tensor2D, false, true),
                    tf.tensor1d(logQ),
                    tf.tensor2d(Float32Array.from(mask), [B, M]),
                    tf.tensor2d(labels, [B, M]),
                  ),
                  up,
                ),
              )([a, c]);
              const ours = tf.valueAndGrads((a_: tf.Tensor, c_: tf.Tensor) =>
                tf.mul(sampledSoftmaxOfVectors(a_ as tf.Tensor2D, c_ as tf.Tensor2D, logQ, mask), up),
              )([a, c]);
              close(val(ours.value), val(ref.value), 1e-4 * Math.max(1, Math.abs(val(ref.value))));
              for (const [k, g] of ours.grads.entries()) {
                const mine = g.dataSync();
                const theirs = (ref.grads[k] as tf.Tensor).dataSync();
                for (let i = 0; i < mine.length; i++) close(mine[i] as number, theirs[i] as number, 1e-4);
              }
            });
          },
        ),
        { numRuns: 60 },
      );
    });

    test('combineLosses is the weighted sum of the terms with non-zero weight', () => {
      const l = tf.tidy(() =>
        val(
          combineLosses([
            [tf.scalar(2), 1],
            [tf.scalar(3), 0.5],
            [tf.scalar(100), 0],
          ]),
        ),
      );
      close(l, 3.5);
    });
  });
}
