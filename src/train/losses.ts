/**
 * The student's losses: pure functions, tensors in, scalar tensor out. No I/O; no state but reused
 * scratch buffers; the caller wraps them in `tf.tidy`. Each is differentiable with respect to the
 * scores with the ops every backend has (no gather, no segment sums), so the same code trains on
 * tensorflow, wasm and cpu. The training step uses the two terms it needs most often in their
 * hand-differentiated forms over the user/item vectors ({@link pointwiseBceOfVectors},
 * {@link sampledSoftmaxOfVectors}); the taped forms stay as the reference they are tested against.
 */
import * as tf from '@tensorflow/tfjs';
import { RankdistillError } from '../errors.ts';
import { BufferPool, fromBuffer, readInto } from './ops.ts';

/** Additive logit penalty of masked-out entries: large, but finite so 0 · penalty stays 0. */
const MASKED = -1e9;

/**
 * The λ-mixed target of the pointwise loss: `(1 − λ)·teacher + λ·clicked` where the click is known
 * (`known` = 1), the teacher target alone where it is not.
 *
 * @example
 * mixTargets(tf.tensor1d([0.8]), tf.tensor1d([0]), tf.tensor1d([1]), 0.25); // [0.6]
 */
export function mixTargets(
  teacher: tf.Tensor,
  clicked: tf.Tensor,
  known: tf.Tensor,
  lambda: number,
): tf.Tensor {
  if (lambda === 0) return teacher;
  const mixed = tf.add(tf.mul(teacher, 1 - lambda), tf.mul(clicked, lambda));
  return tf.add(tf.mul(known, mixed), tf.mul(tf.sub(1, known), teacher));
}

/**
 * Weighted binary cross-entropy on logits with soft targets t ∈ [0, 1]:
 * ℓ = softplus(s) − t·s (= −t·log σ(s) − (1−t)·log(1−σ(s)), computed stably), averaged with the
 * weights: Σ w·ℓ / Σ w. Pointwise distillation (Tang & Wang, KDD 2018: position-weighted
 * positives; Hinton et al. 2015: soft targets σ(z/T)).
 *
 * @example
 * weightedBce(tf.tensor1d([0]), tf.tensor1d([1]), tf.tensor1d([1])); // log 2 ≈ 0.6931
 */
export function weightedBce(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor): tf.Scalar {
  const l = tf.sub(tf.softplus(logits), tf.mul(targets, logits));
  return tf.div(tf.sum(tf.mul(weights, l)), tf.maximum(tf.sum(weights), 1e-12)) as tf.Scalar;
}

/**
 * Weighted BPR (Rendle et al., UAI 2009): −log σ(s_pos − s_neg) = softplus(s_neg − s_pos),
 * averaged with the pair weights: Σ w·ℓ / Σ w.
 *
 * @example
 * bprLoss(tf.tensor1d([1]), tf.tensor1d([1]), tf.tensor1d([1])); // log 2
 */
export function bprLoss(pos: tf.Tensor, neg: tf.Tensor, weights: tf.Tensor): tf.Scalar {
  const l = tf.softplus(tf.sub(neg, pos));
  return tf.div(tf.sum(tf.mul(weights, l)), tf.maximum(tf.sum(weights), 1e-12)) as tf.Scalar;
}

/**
 * ListNet top-one cross-entropy (Cao et al., ICML 2007) in the form of TF-Ranking's SoftmaxLoss:
 * the teacher's top-one probabilities are the gains normalised per list, P_t(j) = g_j / Σ_k g_k;
 * the student's are softmax(scores) over the valid entries; loss = −Σ_j P_t(j) log P_s(j),
 * averaged over lists with positive total gain (others carry no signal). `mask` is 1 for real
 * items, 0 for padding. Shapes [lists, L].
 *
 * @example
 * listNetLoss(tf.tensor2d([[0, 0]]), tf.tensor2d([[1, 0]]), tf.tensor2d([[1, 1]])); // log 2
 */
export function listNetLoss(scores: tf.Tensor2D, gains: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  const g = tf.mul(gains, mask);
  const total = tf.sum(g, 1, true);
  const has = tf.cast(tf.greater(total, 0), 'float32');
  const pt = tf.div(g, tf.maximum(total, 1e-12));
  const logps = tf.logSoftmax(tf.add(scores, tf.mul(tf.sub(1, mask), MASKED)));
  const perList = tf.neg(tf.sum(tf.mul(pt, logps), 1, true));
  return tf.div(tf.sum(tf.mul(perList, has)), tf.maximum(tf.sum(has), 1)) as tf.Scalar;
}

/** A copy of `t`'s values outside the gradient tape (tfjs has no stopGradient). */
function detach(t: tf.Tensor): tf.Tensor {
  return tf.tensor(t.dataSync(), t.shape, 'float32');
}

/**
 * NDCG-weighted pairwise logistic loss (LambdaRank's |ΔNDCG| weights, Burges 2010; the
 * "NDCG-Loss2"-like member of LambdaLoss, Wang et al., CIKM 2018): for every pair (i, j) of one
 * list with g_i > g_j,
 *   ℓ_ij = |ΔNDCG_ij| · log(1 + exp(−(s_i − s_j))),
 *   |ΔNDCG_ij| = |g_i − g_j| · |1/log2(1 + r_i) − 1/log2(1 + r_j)| / IDCG,
 * where r is the rank under the student's current scores (no gradient through the ranks) and IDCG
 * the ideal DCG of the list's gains. Summed per list, averaged over lists with IDCG > 0.
 * Shapes [lists, L]; `mask` is 1 for real items.
 *
 * @example
 * // one list, gains [1, 0], equal scores: ranks 1, 2 (ties by position); |ΔNDCG| = 1 − 1/log2 3
 * lambdaLoss(tf.tensor2d([[0, 0]]), tf.tensor2d([[1, 0]]), tf.tensor2d([[1, 1]])); // 0.3691·log 2
 */
export function lambdaLoss(scores: tf.Tensor2D, gains: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  const [, L] = scores.shape;
  const s = detach(scores);
  // rank_i = 1 + #{j valid: s_j > s_i, or s_j = s_i and j < i} (ties broken by position)
  const si = tf.expandDims(s, 2); // [N, L, 1]
  const sj = tf.expandDims(s, 1); // [N, 1, L]
  const idx = tf.range(0, L, 1, 'float32');
  const before = tf.cast(tf.less(tf.expandDims(idx, 1), tf.expandDims(idx, 0)), 'float32'); // [L, L]: j<i at [j,i]
  const jBeforeI = tf.transpose(before); // [i, j] = 1 when j < i
  const beats = tf.add(
    tf.cast(tf.greater(sj, si), 'float32'),
    tf.mul(tf.cast(tf.equal(sj, si), 'float32'), tf.expandDims(jBeforeI, 0)),
  ); // [N, i, j]
  const ranks = tf.add(1, tf.sum(tf.mul(beats, tf.expandDims(mask, 1)), 2)); // [N, L]
  const disc = tf.div(Math.LN2, tf.log(tf.add(1, ranks))); // 1/log2(1+r)
  // ideal DCG: gains sorted descending
  const g = tf.mul(gains, mask);
  const sorted = tf.topk(g, L).values;
  const idealDisc = tf.div(Math.LN2, tf.log(tf.add(2, idx)));
  const idcg = tf.sum(tf.mul(sorted, idealDisc), 1); // [N]
  const has = tf.cast(tf.greater(idcg, 0), 'float32');
  const gi = tf.expandDims(g, 2);
  const gj = tf.expandDims(g, 1);
  const pairMask = tf.mul(
    tf.cast(tf.greater(gi, gj), 'float32'),
    tf.mul(tf.expandDims(mask, 2), tf.expandDims(mask, 1)),
  );
  const delta = tf.div(
    tf.mul(tf.abs(tf.sub(gi, gj)), tf.abs(tf.sub(tf.expandDims(disc, 2), tf.expandDims(disc, 1)))),
    tf.reshape(tf.maximum(idcg, 1e-12), [-1, 1, 1]),
  );
  const w = tf.mul(pairMask, delta); // constants: no gradient flows through ranks or gains
  const diff = tf.sub(tf.expandDims(scores, 2), tf.expandDims(scores, 1)); // s_i − s_j
  const perList = tf.sum(tf.mul(w, tf.softplus(tf.neg(diff))), [1, 2]);
  return tf.div(tf.sum(tf.mul(perList, has)), tf.maximum(tf.sum(has), 1)) as tf.Scalar;
}

/**
 * Sampled softmax with logQ correction (Yi et al., RecSys 2019, "Sampling-bias-corrected neural
 * modeling for large corpus item recommendations"): each row i of `logits` [B, M] scores one
 * anchor (user, positive item) against M candidates — the batch's positives (in-batch negatives)
 * and items sampled from the frequency estimate; the corrected logit is s_ij − log p_j, where p_j
 * is the candidate's estimated sampling probability. Entries with `mask` 0 (the same item or the
 * same request as the anchor, other than the positive itself) are excluded. `labels` is one-hot
 * on the positive. Loss = mean_i −log softmax_j(s_ij − log p_j)[positive].
 *
 * @example
 * sampledSoftmaxLoss(tf.tensor2d([[0, 0]]), tf.tensor1d([0, 0]), tf.tensor2d([[1, 1]]), tf.tensor2d([[1, 0]])); // log 2
 */
export function sampledSoftmaxLoss(
  logits: tf.Tensor2D,
  logQ: tf.Tensor1D,
  mask: tf.Tensor2D,
  labels: tf.Tensor2D,
): tf.Scalar {
  const corrected = tf.add(tf.sub(logits, tf.expandDims(logQ, 0)), tf.mul(tf.sub(1, mask), MASKED));
  const logp = tf.logSoftmax(corrected);
  return tf.neg(tf.mean(tf.sum(tf.mul(labels, logp), 1))) as tf.Scalar;
}

/** Reused buffers of {@link pointwiseBceOfVectors}. */
const bcePool = new BufferPool();
const bceBuffer = (i: number, n: number): Float32Array => bcePool.get(i, n);

/**
 * {@link weightedBce} of the row-wise scores s_i = ⟨u_i, v_i⟩ of the first `n` rows of `users` and
 * `items`, against the λ-mixed targets of {@link mixTargets} (`lambda` with `clicked` and `known`),
 * differentiated by hand in JS: ℓ_i = softplus(s_i) − t_i·s_i, loss = Σ w_i·ℓ_i / max(Σ w, 1e-12),
 * ∂loss/∂s_i = w_i·(σ(s_i) − t_i) / max(Σ w, 1e-12), ∂/∂u_i = ∂loss/∂s_i · v_i and ∂/∂v_i =
 * ∂loss/∂s_i · u_i (rows past n get 0). Why: the taped version is ~30 small kernels (slices, the
 * row-wise product and sum, softplus, the mixing, and their gradients) for ~1k scores; here it is
 * one read of each input and two uploads. Same formula (test/train/losses.test.ts).
 *
 * @example
 * pointwiseBceOfVectors(tf.tensor2d([[0]]), tf.tensor2d([[1]]), 1, Float32Array.of(1), Float32Array.of(0), Float32Array.of(0), Float32Array.of(1), 0); // log 2
 */
export function pointwiseBceOfVectors(
  users: tf.Tensor2D,
  items: tf.Tensor2D,
  n: number,
  targets: Float32Array,
  clicked: Float32Array,
  known: Float32Array,
  weights: Float32Array,
  lambda: number,
): tf.Scalar {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [ut, it, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    const [U, d] = ut.shape;
    const I = it.shape[0];
    if (n > U || n > I || it.shape[1] !== d)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `pointwise scores: expected ${n} rows of equal width, found users ${ut.shape}, items ${it.shape}`,
      );
    const u = readInto(ut, bceBuffer(0, U * d));
    const v = readInto(it, bceBuffer(1, I * d));
    let wSum = 0;
    for (let i = 0; i < n; i++) wSum += weights[i] as number;
    const norm = Math.max(wSum, 1e-12);
    const du = bceBuffer(2, U * d).fill(0);
    const dv = bceBuffer(3, I * d).fill(0);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const o = i * d;
      let sc = 0;
      for (let k = 0; k < d; k++) sc += (u[o + k] as number) * (v[o + k] as number);
      sc = Math.fround(sc);
      const teacher = targets[i] as number;
      const kn = known[i] as number;
      const t =
        lambda === 0
          ? teacher
          : kn * ((1 - lambda) * teacher + lambda * (clicked[i] as number)) + (1 - kn) * teacher;
      const w = weights[i] as number;
      // softplus(s) = max(s, 0) + log1p(exp(−|s|)), stable for any s
      const softplus = Math.max(sc, 0) + Math.log1p(Math.exp(-Math.abs(sc)));
      total += w * (softplus - t * sc);
      const gs = (w * (1 / (1 + Math.exp(-sc)) - t)) / norm;
      for (let k = 0; k < d; k++) {
        du[o + k] = gs * (v[o + k] as number);
        dv[o + k] = gs * (u[o + k] as number);
      }
    }
    const gu = fromBuffer(du, [U, d]);
    const gv = fromBuffer(dv, [I, d]);
    save([gu, gv]);
    return {
      value: tf.scalar(total / norm),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.mul(dy, saved[0] as tf.Tensor),
        tf.mul(dy, saved[1] as tf.Tensor),
      ],
    };
  }) as (u: tf.Tensor2D, v: tf.Tensor2D) => tf.Scalar;
  return f(users, items);
}

/** Scratch of {@link sampledSoftmaxOfVectors}, grown on demand (a step allocates no [B, M] array). */
let scratch = new Float32Array(0);
let scratchT = new Float32Array(0);

/**
 * {@link sampledSoftmaxLoss} of the logits `anchors · candidatesᵀ` ([B, d] · [M, d]ᵀ, M ≥ B) in the
 * in-batch layout: anchor i's positive is candidate i (one-hot labels on the diagonal); `logQ` [M]
 * and `mask` [B, M] (1: a negative or the positive, 0: excluded) are plain arrays. Differentiated
 * by hand: the correction and the mask penalty are one bias array, the softmax p is one kernel, and
 * the loss and G = ∂ℓ/∂s, G_ij = (p_ij − [i = j]) / B, are computed in JS from p; then
 * ∂ℓ/∂anchors = G · C and ∂ℓ/∂candidates = Gᵀ · A with Gᵀ laid out in JS. Why: on tfjs-backend-wasm
 * the taped version is a dozen [B, M] kernels with two `exp` passes, two transposes and a product
 * that packs the whole [B, M] gradient — about a quarter of a training step. Same formula and
 * masking; −log p_ii is taken from p when p_ii ≥ 1e-30 (float32 p carries the relative precision of
 * the log-softmax), otherwise the row's log-softmax is recomputed exactly in float64.
 *
 * @example
 * sampledSoftmaxOfVectors(tf.tensor2d([[1, 0]]), tf.tensor2d([[0, 0], [0, 0]]), Float32Array.of(0, 0), Uint8Array.of(1, 1)); // log 2
 */
export function sampledSoftmaxOfVectors(
  anchors: tf.Tensor2D,
  candidates: tf.Tensor2D,
  logQ: Float32Array,
  mask: Uint8Array,
): tf.Scalar {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [ua, cand, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    const B = ua.shape[0];
    const M = cand.shape[0];
    const n = B * M;
    if (M < B || mask.length !== n || logQ.length !== M)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `in-batch softmax: expected M ≥ B = ${B}, mask ${B}×${M}, logQ ${M}; found M = ${M}, mask ${mask.length}, logQ ${logQ.length}`,
      );
    if (scratch.length < n) {
      scratch = new Float32Array(n);
      scratchT = new Float32Array(n);
    }
    const buf = scratch.subarray(0, n);
    for (let i = 0; i < B; i++) {
      const o = i * M;
      for (let j = 0; j < M; j++) buf[o + j] = (1 - (mask[o + j] as number)) * MASKED - (logQ[j] as number);
    }
    const logits = tf.matMul(ua, tf.transpose(cand));
    const corrected = tf.add(logits, fromBuffer(buf, [B, M]));
    const p = readInto(tf.softmax(corrected), buf);
    let total = 0;
    const invB = 1 / B;
    for (let i = 0; i < B; i++) {
      const o = i * M;
      const pi = p[o + i] as number;
      total -= pi >= 1e-30 ? Math.log(pi) : logSoftmaxAt(readInto(corrected, new Float32Array(n)), o, M, i);
      for (let j = 0; j < M; j++) p[o + j] = (p[o + j] as number) * invB;
      p[o + i] = (p[o + i] as number) - invB;
    }
    const gT = scratchT.subarray(0, n);
    for (let j = 0; j < M; j++) {
      const b = j * B;
      for (let i = 0; i < B; i++) gT[b + i] = p[i * M + j] as number;
    }
    const g = fromBuffer(p, [B, M]);
    const gTt = fromBuffer(gT, [M, B]);
    save([g, gTt, ua, cand]);
    return {
      value: tf.scalar(total / B),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sg, sgT, sa, sc] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        return [tf.mul(dy, tf.matMul(sg, sc)), tf.mul(dy, tf.matMul(sgT, sa))];
      },
    };
  }) as (a: tf.Tensor2D, c: tf.Tensor2D) => tf.Scalar;
  return f(anchors, candidates);
}

/** log-softmax of row `z[o..o+M)` at column k, in float64. */
function logSoftmaxAt(z: Float32Array, o: number, M: number, k: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < M; j++) max = Math.max(max, z[o + j] as number);
  let sum = 0;
  for (let j = 0; j < M; j++) sum += Math.exp((z[o + j] as number) - max);
  return (z[o + k] as number) - max - Math.log(sum);
}

/**
 * The weighted sum of the per-kind losses that are present (config `train.lossWeights`).
 *
 * @example
 * combineLosses([[bce, 1], [bpr, 0.5]]); // bce + 0.5·bpr
 */
export function combineLosses(terms: ReadonlyArray<readonly [tf.Scalar, number]>): tf.Scalar {
  let total: tf.Scalar = tf.scalar(0);
  for (const [l, w] of terms) {
    if (w !== 0) total = tf.add(total, tf.mul(l, w));
  }
  return total;
}
