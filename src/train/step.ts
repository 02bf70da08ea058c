/**
 * One training step: units → input rows → loss → gradients → sparse and dense updates.
 *
 * Layout. Every score the losses need is a dot product of a user slot and an item slot that sit
 * at the same position of two flat slot lists, so the towers run once over all user slots and
 * once over all item slots, and the parts are recovered with slices — never with `gather`, whose
 * gradient needs `UnsortedSegmentSum` (absent on tfjs-backend-wasm 4.22):
 *
 *   user slots: [ point (n) | pair (q) | list (l) | anchors (a) ]
 *   item slots: [ point (n) | pos (q) | neg (q) | list (l·L) | anchors (a) | sampled (s) ]
 *
 * The rows of both tables are copied into two input tensors; tfjs differentiates the summed loss
 * with respect to those inputs and the dense weights (`tf.valueAndGrads`), and the table gradients
 * are written back to the touched rows only (duplicates summed in sparse.ts). O(batch) per step.
 *
 * In-batch negatives (Yi et al., RecSys 2019): anchors are the step's positives — pointwise items
 * labelled 1, the pos item of each pair, the top-graded item of each list — each scored against all
 * anchors' items and `s` items sampled from the frequency estimate, with logits corrected by
 * −log p. Candidates of the same request or the same item as the anchor (other than the anchor's
 * own) are masked: they are not negatives.
 */
import * as tf from '@tensorflow/tfjs';
import type { ListUnit, PairUnit, PointUnit, Unit } from './examples.ts';
import type { FrequencyEstimator } from './frequency.ts';
import {
  bprLoss,
  combineLosses,
  lambdaLoss,
  listNetLoss,
  mixTargets,
  sampledSoftmaxLoss,
  weightedBce,
} from './losses.ts';
import type { StudentModel } from './model.ts';
import { matmul } from './ops.ts';

export interface LossOptions {
  weights: { pointwise: number; pairwise: number; listwise: number; negatives: number };
  listwiseLoss: 'listnet' | 'lambda';
  groundTruthLambda: number;
  inBatchNegatives: boolean;
  sampledNegatives: number;
  /** Most anchors of the negatives loss per step. */
  maxAnchors: number;
}

/** The flat inputs of one step (plain arrays; tensors are made in {@link trainStep}). */
export interface StepPlan {
  userRows: Int32Array;
  ctx: Float32Array;
  itemRows: Int32Array;
  itemFeat: Float32Array;
  point: {
    n: number;
    targets: Float32Array;
    clicked: Float32Array;
    known: Float32Array;
    weights: Float32Array;
  };
  pair: { q: number; weights: Float32Array };
  list: { l: number; L: number; gains: Float32Array; mask: Float32Array };
  neg: { a: number; s: number; logQ: Float32Array; mask: Float32Array; labels: Float32Array };
  /** Positive item ids of this step (fed to the frequency estimate). */
  anchorItems: string[];
}

/**
 * Lays out one step's units (see the module comment). Grows the id tables for new ids and records
 * item features carried by pointwise labels.
 *
 * @example
 * const plan = buildPlan(model, units, freq, lossOptions, Math.random);
 */
export function buildPlan(
  model: StudentModel,
  units: readonly Unit[],
  freq: FrequencyEstimator,
  o: LossOptions,
  rand: () => number,
): StepPlan {
  const points: PointUnit[] = [];
  const pairs: PairUnit[] = [];
  const lists: ListUnit[] = [];
  for (const u of units) {
    if (u.kind === 'point') points.push(u);
    else if (u.kind === 'pair') pairs.push(u);
    else lists.push(u);
  }
  const Fc = model.opts.contextBuckets;
  const Fi = model.opts.itemFeatureBuckets;
  const n = points.length;
  const q = pairs.length;
  const l = lists.length;
  let L = 0;
  for (const x of lists) L = Math.max(L, x.items.length);

  // anchors: (request, positive item), unique per step
  const anchors: { req: Unit['req']; item: string }[] = [];
  if (o.inBatchNegatives || o.sampledNegatives > 0) {
    const seen = new Set<string>();
    const push = (req: Unit['req'], item: string) => {
      const key = `${req.requestId}\u0000${item}`;
      if (seen.has(key) || anchors.length >= o.maxAnchors) return;
      seen.add(key);
      anchors.push({ req, item });
    };
    for (const p of points) if (p.positive) push(p.req, p.item);
    for (const p of pairs) push(p.req, p.pos);
    for (const x of lists) {
      let best = 0;
      for (let i = 1; i < x.items.length; i++)
        if ((x.gains[i] as number) > (x.gains[best] as number)) best = i;
      push(x.req, x.items[best] as string);
    }
  }
  const anchorItems = anchors.map((a) => a.item);
  const sampled = o.sampledNegatives > 0 && anchors.length > 0 ? freq.sample(o.sampledNegatives, rand) : [];
  const a = anchors.length;
  const s = sampled.length;

  const U = n + q + l + a;
  const I = n + 2 * q + l * L + a + s;
  const userRows = new Int32Array(U);
  const ctx = new Float32Array(U * Fc);
  const itemRows = new Int32Array(I);
  const itemFeat = new Float32Array(I * Fi);
  let us = 0;
  let is = 0;
  const user = (r: Unit['req']) => {
    userRows[us] = model.users.row(r.user);
    if (Fc > 0) ctx.set(r.ctx, us * Fc);
    us++;
  };
  const item = (id: string, features?: Float32Array) => {
    itemRows[is++] = model.itemRow(id, features);
  };

  const targets = new Float32Array(n);
  const clicked = new Float32Array(n);
  const known = new Float32Array(n);
  const pw = new Float32Array(n);
  points.forEach((p, i) => {
    user(p.req);
    item(p.item, p.features);
    targets[i] = p.target;
    clicked[i] = p.clicked;
    known[i] = p.known;
    pw[i] = p.weight;
  });
  const qw = new Float32Array(q);
  pairs.forEach((p, i) => {
    user(p.req);
    qw[i] = p.weight;
  });
  for (const p of pairs) item(p.pos);
  for (const p of pairs) item(p.neg);
  const gains = new Float32Array(l * L);
  const lmask = new Float32Array(l * L);
  lists.forEach((x, i) => {
    user(x.req);
    for (let j = 0; j < L; j++) {
      const id = x.items[j];
      if (id === undefined) {
        itemRows[is++] = -1; // padding: zero row, masked out of the loss, never updated
      } else {
        item(id);
        gains[i * L + j] = x.gains[j] as number;
        lmask[i * L + j] = 1;
      }
    }
  });
  for (const an of anchors) user(an.req);
  for (const an of anchors) item(an.item);
  for (const id of sampled) item(id);
  model.gatherItemFeatures(itemRows, itemFeat);

  // negatives: logQ after observing this step's positives (Yi et al. update, then correct)
  const M = a + s;
  const logQ = new Float32Array(M);
  const nmask = new Float32Array(a * M);
  const labels = new Float32Array(a * M);
  if (a > 0) {
    freq.observe(anchorItems);
    for (let j = 0; j < a; j++) logQ[j] = freq.logQ(anchors[j]?.item as string);
    for (let j = 0; j < s; j++) logQ[a + j] = freq.logQ(sampled[j] as string);
    for (let i = 0; i < a; i++) {
      const ai = anchors[i] as (typeof anchors)[number];
      labels[i * M + i] = 1;
      for (let j = 0; j < M; j++) {
        let ok = true;
        if (j !== i) {
          if (j < a) {
            const aj = anchors[j] as (typeof anchors)[number];
            ok = aj.item !== ai.item && aj.req.requestId !== ai.req.requestId;
          } else ok = sampled[j - a] !== ai.item;
        }
        nmask[i * M + j] = ok ? 1 : 0;
      }
    }
  }
  return {
    userRows,
    ctx,
    itemRows,
    itemFeat,
    point: { n, targets, clicked, known, weights: pw },
    pair: { q, weights: qw },
    list: { l, L, gains, mask: lmask },
    neg: { a, s, logQ, mask: nmask, labels },
    anchorItems,
  };
}

/** Rows of a 2-D tensor [start, start + count). */
function rows(t: tf.Tensor2D, start: number, count: number): tf.Tensor2D {
  return tf.slice(t, [start, 0], [count, -1]);
}

/** The summed loss of a plan as a function of the input rows and dense weights. */
function lossOf(
  model: StudentModel,
  p: StepPlan,
  o: LossOptions,
): (ue: tf.Tensor, ie: tf.Tensor, ...w: tf.Tensor[]) => tf.Scalar {
  const Fc = model.opts.contextBuckets;
  const Fi = model.opts.itemFeatureBuckets;
  const { n, targets, clicked, known, weights } = p.point;
  const { q } = p.pair;
  const { l, L } = p.list;
  const { a, s } = p.neg;
  return (ue, ie, ...w) => {
    const U = p.userRows.length;
    const I = p.itemRows.length;
    const uv = model.userTower(ue as tf.Tensor2D, tf.tensor2d(p.ctx, [U, Fc]), w);
    const iv = model.itemTower(ie as tf.Tensor2D, tf.tensor2d(p.itemFeat, [I, Fi]), w);
    const terms: [tf.Scalar, number][] = [];
    let u0 = 0;
    let i0 = 0;
    if (n > 0) {
      const sc = tf.sum(tf.mul(rows(uv, u0, n), rows(iv, i0, n)), 1);
      const t = mixTargets(
        tf.tensor1d(targets),
        tf.tensor1d(clicked),
        tf.tensor1d(known),
        o.groundTruthLambda,
      );
      terms.push([weightedBce(sc, t, tf.tensor1d(weights)), o.weights.pointwise]);
    }
    u0 += n;
    i0 += n;
    if (q > 0) {
      const uq = rows(uv, u0, q);
      const sp = tf.sum(tf.mul(uq, rows(iv, i0, q)), 1);
      const sn = tf.sum(tf.mul(uq, rows(iv, i0 + q, q)), 1);
      terms.push([bprLoss(sp, sn, tf.tensor1d(p.pair.weights)), o.weights.pairwise]);
    }
    u0 += q;
    i0 += 2 * q;
    if (l > 0) {
      const ul = tf.expandDims(rows(uv, u0, l), 1); // [l, 1, o]
      const il = tf.reshape(rows(iv, i0, l * L), [l, L, -1]);
      const sc = tf.sum(tf.mul(ul, il), 2) as tf.Tensor2D;
      const g = tf.tensor2d(p.list.gains, [l, L]);
      const m = tf.tensor2d(p.list.mask, [l, L]);
      const loss = o.listwiseLoss === 'lambda' ? lambdaLoss(sc, g, m) : listNetLoss(sc, g, m);
      terms.push([loss, o.weights.listwise]);
    }
    u0 += l;
    i0 += l * L;
    if (a > 0) {
      const M = a + s;
      const logits = matmul(rows(uv, u0, a), tf.transpose(rows(iv, i0, M)));
      const loss = sampledSoftmaxLoss(
        logits,
        tf.tensor1d(p.neg.logQ),
        tf.tensor2d(p.neg.mask, [a, M]),
        tf.tensor2d(p.neg.labels, [a, M]),
      );
      terms.push([loss, o.weights.negatives]);
    }
    return combineLosses(terms);
  };
}

/**
 * Runs one step of a plan: forward, gradients, sparse + dense updates. Returns the loss. Leaves no
 * tensor behind.
 *
 * @example
 * const loss = trainStep(model, buildPlan(model, units, freq, o, rand), o);
 */
export function trainStep(model: StudentModel, p: StepPlan, o: LossOptions): number {
  const U = p.userRows.length;
  const I = p.itemRows.length;
  if (U === 0) return 0;
  let loss = 0;
  tf.tidy(() => {
    const ue = tf.tensor2d(model.users.gather(p.userRows), [U, model.users.dim]);
    const ie = tf.tensor2d(model.items.gather(p.itemRows), [I, model.items.dim]);
    const w = model.denseTensors();
    const { value, grads } = tf.valueAndGrads(lossOf(model, p, o))([ue, ie, ...w]);
    loss = value.dataSync()[0] as number;
    const [gu, gi, ...gw] = grads;
    model.users.applyGradients(p.userRows, (gu as tf.Tensor).dataSync() as Float32Array);
    model.items.applyGradients(p.itemRows, (gi as tf.Tensor).dataSync() as Float32Array);
    gw.forEach((g, k) => {
      model.dense[k]?.apply(g.dataSync() as Float32Array);
    });
  });
  return loss;
}
