/**
 * Matrix products with hand-written gradients that avoid the slow paths of tfjs-backend-wasm 4.22.
 *
 * The built-in gradient of `matMul(a, b)` is `matMul(dy, b, false, true)` and
 * `matMul(a, dy, true, false)`; on wasm a product with a transpose flag is 4–8× slower than
 * transposing explicitly and multiplying (measured: 1024×32 by 1024×64 with transposeA ≈ 10–17 ms,
 * transpose + plain matMul ≈ 1–4 ms), and the gradient of a broadcast bias add (`sum` over axis 0)
 * is slower than a product with a row of ones. These ops compute the same values and gradients with
 * only plain products, on every backend.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * a · b for 2-D a [m, k], b [k, n]; gradients da = dy · bᵀ, db = aᵀ · dy with explicit transposes.
 *
 * @example
 * const logits = matmul(userVecs, tf.transpose(itemVecs));
 */
export const matmul = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (g: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(g, tf.transpose(sb)), tf.matMul(tf.transpose(sa), g)];
    },
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * A dense layer x · k + b (x [m, i], k [i, o], b [o]); the bias gradient is a ones-row product.
 *
 * @example
 * const h = tf.relu(linear(x, kernel, bias));
 */
export const linear = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, k, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  save([x, k]);
  return {
    value: tf.add(tf.matMul(x, k), b) as tf.Tensor2D,
    gradFunc: (g: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [sx, sk] = saved as [tf.Tensor2D, tf.Tensor2D];
      const m = g.shape[0];
      return [
        tf.matMul(g, tf.transpose(sk)),
        tf.matMul(tf.transpose(sx), g),
        tf.reshape(tf.matMul(tf.ones([1, m]), g), [g.shape[1]]),
      ];
    },
  };
}) as (x: tf.Tensor2D, k: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;
