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

/** The parts of tfjs-backend-wasm 4.22's backend object that {@link readInto} reads. */
interface WasmBackendInternals {
  wasm?: { HEAPF32?: Float32Array };
  dataIdMap?: { get(id: object): { memoryOffset?: number | null } | undefined };
}

/**
 * Copies a float32 tensor's values into `out` (which must hold `t.size` values) and returns `out`.
 * On the wasm backend the values are copied straight out of the wasm heap: `dataSync` there
 * allocates a fresh ArrayBuffer per read (measured ≈ 200 µs for 64k values, mostly page faults of
 * the new buffer, against ≈ 20 µs for this copy into a reused one). Other backends, or a wasm
 * backend whose internals do not look as expected, fall back to `dataSync`.
 *
 * @example
 * const grad = readInto(g, scratch); // scratch reused across steps
 */
export function readInto(t: tf.Tensor, out: Float32Array): Float32Array {
  if (t.dtype === 'float32' && tf.getBackend() === 'wasm') {
    const b = tf.backend() as unknown as WasmBackendInternals;
    const heap = b.wasm?.HEAPF32;
    const offset = b.dataIdMap?.get(t.dataId)?.memoryOffset;
    if (heap !== undefined && typeof offset === 'number') {
      const start = offset >>> 2;
      out.set(heap.subarray(start, start + t.size));
      return out;
    }
  }
  out.set(t.dataSync() as Float32Array);
  return out;
}

/**
 * A float32 tensor of `values`, which the caller may overwrite afterwards (a reused buffer): the
 * wasm backend copies values into its heap when a tensor is made; the cpu and tensorflow backends
 * may keep a reference to the array, so they get a copy.
 *
 * @example
 * const t = fromBuffer(scratch.subarray(0, n * d), [n, d]);
 */
export function fromBuffer(values: Float32Array, shape: [number, number]): tf.Tensor2D {
  return tf.tensor2d(tf.getBackend() === 'wasm' ? values : values.slice(), shape);
}

/** One dense layer of an MLP as plain values: kernel [inDim, outDim] row-major, bias [outDim]. */
export interface LayerValues {
  kernel: Float32Array;
  inDim: number;
  outDim: number;
}

/**
 * Forward pass of an MLP (ReLU hidden layers, linear output), outside any gradient tape: returns
 * every layer's output, `[x, h1, …, out]`, which {@link mlpBackward} needs. One fused
 * matmul + bias (+ ReLU) kernel per layer.
 *
 * @example
 * const acts = mlpForward(x, [k0, k1], [b0, b1]); // acts[2] is the output
 */
export function mlpForward(
  x: tf.Tensor2D,
  kernels: readonly tf.Tensor2D[],
  biases: readonly tf.Tensor1D[],
): tf.Tensor2D[] {
  const acts = [x];
  let h = x;
  const last = kernels.length - 1;
  kernels.forEach((k, l) => {
    h = tf.fused.matMul({
      a: h,
      b: k,
      bias: biases[l] as tf.Tensor1D,
      activation: l < last ? 'relu' : 'linear',
    }) as tf.Tensor2D;
    acts.push(h);
  });
  return acts;
}

/**
 * Row-major [rows, cols] → [cols, rows] in JS, optionally only the first `keepRows` rows, into
 * `out` when given.
 *
 * @example
 * transposeValues(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3); // [1, 4, 2, 5, 3, 6]
 */
export function transposeValues(
  v: Float32Array,
  rows: number,
  cols: number,
  keepRows = rows,
  out: Float32Array = new Float32Array(keepRows * cols),
): Float32Array {
  // column by column: sequential writes (row by row is ≈ 4× slower for [1024, 64], measured)
  for (let c = 0; c < cols; c++) {
    const b = c * keepRows;
    for (let r = 0; r < keepRows; r++) out[b + r] = v[r * cols + c] as number;
  }
  return out;
}

/** Gradients of an MLP, read back as plain values (see {@link mlpBackward}). */
export interface MlpGradients {
  /** dL/dkernel per layer, [inDim, outDim] row-major. */
  kernels: Float32Array[];
  /** dL/dbias per layer. */
  biases: Float32Array[];
  /** dL/dx for the first `inputCols` columns of x, [rows, inputCols] row-major. */
  input: Float32Array;
}

/**
 * Numbered Float32Array buffers reused across calls, each grown on demand: a training step then
 * allocates no [rows, width] array. One pool per owner (a caller must be done with buffer i
 * before its next `get(i, …)`).
 *
 * @example
 * const pool = new BufferPool();
 * const g = pool.get(0, rows * width); // a view of exactly rows * width floats
 */
export class BufferPool {
  readonly #buffers: Float32Array[] = [];

  get(i: number, n: number): Float32Array {
    let b = this.#buffers[i];
    if (b === undefined || b.length < n) {
      b = new Float32Array(n);
      this.#buffers[i] = b;
    }
    return b.subarray(0, n);
  }
}

/** Reused buffers of {@link mlpBackward}. */
const pool = new BufferPool();
const buffer = (i: number, n: number): Float32Array => pool.get(i, n);

/** Transposes [rows, cols] into `out` ([cols, rows]) and returns the column sums. */
function transposeWithSums(v: Float32Array, rows: number, cols: number, out: Float32Array): Float32Array {
  const sums = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    const b = c * rows;
    let s = 0;
    for (let r = 0; r < rows; r++) {
      const x = v[r * cols + c] as number;
      out[b + r] = x;
      s += x;
    }
    sums[c] = s;
  }
  return sums;
}

/**
 * Backward pass of the MLP of {@link mlpForward} for an upstream gradient `g` = dL/dout, written
 * out by hand instead of taped: per layer l (input a = acts[l]),
 *   dK_l = aᵀ · g,  db_l = 1ᵀ · g,  g ← (g · K_lᵀ) ⊙ [a > 0] (the ReLU of the layer below).
 * Why by hand: on tfjs-backend-wasm 4.22 a transpose costs about as much as the product it feeds,
 * a matmul with a transpose flag is several times slower still, and every product re-packs its
 * right operand (XNNPACK "weights": ≈ 0.5 ms for a fresh [1024, 64]), so the taped gradients
 * (transposes, aᵀ · g with the batch as the packed dimension, a ones-row product per bias) cost
 * more than the products themselves. Here g is read into JS once per layer (a heap copy, see
 * {@link readInto}), where its transpose and the bias gradient (column sums) are one loop; dK is
 * (gᵀ · a)ᵀ, at the first layer xᵀ · g instead when g is the narrower (packed) operand; the input gradient
 * only for the `inputCols` columns the caller needs (the embedding, not the hashed features), into
 * `inputOut` when given. Same values as tfjs's autodiff of the MLP
 * (test/train/ops.test.ts, test/train/step.test.ts).
 *
 * @example
 * const acts = mlpForward(x, kernels, biases);
 * const g = mlpBackward(acts, xT, layers, dOut, dim); // g.kernels[0], g.biases[0], g.input
 */
export function mlpBackward(
  acts: readonly tf.Tensor2D[],
  xT: tf.Tensor2D,
  layers: readonly LayerValues[],
  g: tf.Tensor2D,
  inputCols: number,
  inputOut: Float32Array = new Float32Array(g.shape[0] * inputCols),
): MlpGradients {
  const rows = g.shape[0];
  const kernels: Float32Array[] = new Array(layers.length);
  const biases: Float32Array[] = new Array(layers.length);
  let input: Float32Array = new Float32Array(0);
  let up = g;
  // g of the current layer in JS: transposed [out, rows] and its column sums
  const top = layers[layers.length - 1] as LayerValues;
  let upT = buffer(0, rows * top.outDim);
  let db = transposeWithSums(readInto(g, buffer(1, rows * top.outDim)), rows, top.outDim, upT);
  for (let l = layers.length - 1; l >= 0; l--) {
    const { kernel, inDim, outDim } = layers[l] as LayerValues;
    const a = acts[l] as tf.Tensor2D;
    biases[l] = db;
    if (l === 0 && outDim < inDim) kernels[l] = tf.matMul(xT, up).dataSync() as Float32Array;
    else {
      const upTt = fromBuffer(upT, [outDim, rows]);
      kernels[l] = transposeValues(tf.matMul(upTt, a).dataSync() as Float32Array, outDim, inDim);
    }
    if (l > 0) {
      const kT = tf.tensor2d(transposeValues(kernel, inDim, outDim), [outDim, inDim]);
      // the ReLU of layer l − 1: its output a is 0 exactly where its input was ≤ 0
      // the ReLU of layer l − 1: its output a is 0 exactly where its input was ≤ 0 (a mask in
      // wasm: the same loop in JS mispredicts a branch per element, ≈ 4× slower)
      up = tf.mul(tf.matMul(up, kT), tf.step(a)) as tf.Tensor2D;
      upT = buffer(0, rows * inDim);
      db = transposeWithSums(readInto(up, buffer(1, rows * inDim)), rows, inDim, upT);
    } else if (inputCols > 0) {
      const kT = tf.tensor2d(transposeValues(kernel, inDim, outDim, inputCols), [outDim, inputCols]);
      input = readInto(tf.matMul(up, kT), inputOut);
    }
  }
  return { kernels, biases, input };
}
