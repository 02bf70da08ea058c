/**
 * One training step: units → input rows → loss → gradients → sparse and dense updates.
 *
 * Layout. Every score the losses need is a dot product of a user slot and an item slot that sit
 * at the same position of two flat slot lists, so the towers run once over all user slots and
 * once over all item slots, and the parts are recovered with slices — never with `gather`, whose
 * gradient needs `UnsortedSegmentSum` (absent on tfjs-backend-wasm 4.22):
 *
 *   user slots: [ point (n, positives first) | pair (q) | list (l) ]
 *   item slots: [ point (n) | pos (q) | neg (q) | list (l·L, top-gain item first) | sampled (s) ]
 *
 * The anchors of the negatives loss are slices of those same slots (the pointwise positives, the
 * pairs' pos items, the first item of each list), so they cost no extra tower rows.
 *
 * The user input is the same for every unit of a request, so the plan holds one user input row
 * per distinct request and each user slot points at its request's row (`userOf`).
 *
 * Two-tower ({@link twoTowerStep}): the towers run once over the distinct user rows and once over
 * the item slots, by hand (ops.ts `mlpForward`/`mlpBackward`); the user vectors are copied out to
 * the slots; only the loss head is taped (`tf.valueAndGrads` with respect to the slot vectors), and
 * its pointwise and in-batch-softmax terms are themselves differentiated by hand (losses.ts). The
 * slots' user gradients are summed per request before the user tower's backward. Other models
 * ({@link trainStepAutodiff}): the rows are expanded to one per slot and tfjs differentiates the
 * whole loss with respect to the input rows and the dense weights. Either way the table gradients
 * are written back to the touched rows only (duplicates summed in sparse.ts). O(batch) per step.
 *
 * Why by hand on wasm (profiles of bench/train.bench.ts, tfjs-backend-wasm 4.22): transposes cost
 * ≈ 5 ns per value, products with a transpose flag and Gather are several times slower than plain
 * products, every product re-packs its right operand, and `dataSync` allocates a fresh buffer;
 * the taped step spent more time there than in the products themselves.
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
  pointwiseBceOfVectors,
  sampledSoftmaxOfVectors,
} from './losses.ts';
import type { StudentModel } from './model.ts';
import { fromBuffer, type LayerValues, mlpBackward, mlpForward, readInto, transposeValues } from './ops.ts';
import type { DenseParam, EmbeddingTable } from './sparse.ts';

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
  /** User slots (U): the index of each slot's request in {@link userRows} / {@link userIn}. */
  userOf: Int32Array;
  /** Table row of each distinct request of the step (units of one request share it). */
  userRows: Int32Array;
  /** User input rows [distinct requests, d + Fc] (embedding ‖ context). */
  userIn: Float32Array;
  itemRows: Int32Array;
  /** Item input rows [I, dI + Fi] (embedding ‖ features). */
  itemIn: Float32Array;
  point: {
    n: number;
    targets: Float32Array;
    clicked: Float32Array;
    known: Float32Array;
    weights: Float32Array;
  };
  pair: { q: number; weights: Float32Array };
  list: { l: number; L: number; gains: Float32Array; mask: Float32Array };
  /** Anchors: the first aP point slots, aQ pair slots, aL list slots; s sampled item slots. */
  neg: {
    aP: number;
    aQ: number;
    aL: number;
    s: number;
    logQ: Float32Array;
    /** [a, M]: 1 where candidate j is a negative of anchor i (or its positive, j = i). */
    mask: Uint8Array;
  };
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
  const pos: PointUnit[] = [];
  const negs: PointUnit[] = [];
  const firstPairs: PairUnit[] = [];
  const morePairs: PairUnit[] = [];
  const seenPos = new Set<string>();
  const lists: ListUnit[] = [];
  for (const u of units) {
    if (u.kind === 'point') (u.positive ? pos : negs).push(u);
    else if (u.kind === 'pair') {
      // the first pair of each (request, pos item) comes first: those are the anchors
      const k = `${u.req.requestId}\u0000${u.pos}`;
      if (seenPos.has(k)) morePairs.push(u);
      else {
        seenPos.add(k);
        firstPairs.push(u);
      }
    } else lists.push(u);
  }
  const points = pos.concat(negs);
  const pairs = firstPairs.concat(morePairs);
  const Fc = model.opts.contextBuckets;
  const n = points.length;
  const q = pairs.length;
  const l = lists.length;
  let L = 0;
  for (const x of lists) L = Math.max(L, x.items.length);

  const wantNeg = o.inBatchNegatives || o.sampledNegatives > 0;
  const maxA = wantNeg ? o.maxAnchors : 0;
  const aP = Math.min(pos.length, maxA);
  const aQ = Math.min(firstPairs.length, maxA - aP);
  const aL = Math.min(l, maxA - aP - aQ);
  const a = aP + aQ + aL;
  const sampled = o.sampledNegatives > 0 && a > 0 ? freq.sample(o.sampledNegatives, rand) : [];
  const s = sampled.length;

  const U = n + q + l;
  const I = n + 2 * q + l * L + s;
  // the user input is the same for every unit of a request (its user id and context): one row
  // per distinct request, computed once by the tower
  const userOf = new Int32Array(U);
  const requestRow = new Map<Unit['req'], number>();
  const distinctRows = new Int32Array(U);
  const ctx = new Float32Array(U * Fc);
  const itemRows = new Int32Array(I);
  let us = 0;
  let is = 0;
  const withHistory = model.historyWidth > 0;
  const histories: (readonly string[])[] = [];
  const userIds = model.opts.userIds !== false;
  const user = (r: Unit['req']) => {
    let k = requestRow.get(r);
    if (k === undefined) {
      k = requestRow.size;
      requestRow.set(r, k);
      distinctRows[k] = userIds ? model.users.row(r.user) : -1;
      if (Fc > 0) ctx.set(r.ctx, k * Fc);
      if (withHistory) histories.push(r.history ?? []);
    }
    userOf[us++] = k;
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
  const listTop: string[] = [];
  lists.forEach((x, i) => {
    user(x.req);
    // the top-gain item goes first (the list's anchor); the losses do not depend on item order
    let best = 0;
    for (let j = 1; j < x.items.length; j++) if ((x.gains[j] as number) > (x.gains[best] as number)) best = j;
    listTop.push(x.items[best] as string);
    for (let j = 0; j < L; j++) {
      const src = j === 0 ? best : j === best ? 0 : j;
      const id = x.items[src];
      if (id === undefined) {
        itemRows[is++] = -1; // padding: zero row, masked out of the loss, never updated
      } else {
        item(id);
        gains[i * L + j] = x.gains[src] as number;
        lmask[i * L + j] = 1;
      }
    }
  });
  for (const id of sampled) item(id);

  // anchors and their masks: a candidate is a negative unless it is the same item or comes from
  // the same request as the anchor (then it may well be a positive too)
  // compared as integers: item rows and per-step request numbers
  const anchorItems: string[] = [];
  const reqNo = new Map<string, number>();
  const M = a + s;
  const candRow = new Int32Array(M);
  const anchorReq = new Int32Array(a);
  const addAnchor = (item: string, slot: number, requestId: string) => {
    const k = anchorItems.length;
    anchorItems.push(item);
    candRow[k] = itemRows[slot] as number;
    let r = reqNo.get(requestId);
    if (r === undefined) {
      r = reqNo.size;
      reqNo.set(requestId, r);
    }
    anchorReq[k] = r;
  };
  for (let i = 0; i < aP; i++)
    addAnchor((points[i] as PointUnit).item, i, (points[i] as PointUnit).req.requestId);
  for (let i = 0; i < aQ; i++)
    addAnchor((pairs[i] as PairUnit).pos, n + i, (pairs[i] as PairUnit).req.requestId);
  for (let i = 0; i < aL; i++)
    addAnchor(listTop[i] as string, n + 2 * q + i * L, (lists[i] as ListUnit).req.requestId);
  for (let j = 0; j < s; j++) candRow[a + j] = itemRows[I - s + j] as number;
  const logQ = new Float32Array(M);
  const nmask = new Uint8Array(a * M);
  if (a > 0) {
    // Yi et al.: update the estimate with this step's positives, then correct with it
    freq.observe(anchorItems);
    const lq = new Map<string, number>();
    const logq = (id: string) => {
      let v = lq.get(id);
      if (v === undefined) {
        v = freq.logQ(id);
        lq.set(id, v);
      }
      return v;
    };
    for (let j = 0; j < a; j++) logQ[j] = logq(anchorItems[j] as string);
    for (let j = 0; j < s; j++) logQ[a + j] = logq(sampled[j] as string);
    for (let i = 0; i < a; i++) {
      const ai = candRow[i] as number;
      const ri = anchorReq[i] as number;
      const row = i * M;
      for (let j = 0; j < a; j++) nmask[row + j] = candRow[j] !== ai && anchorReq[j] !== ri ? 1 : 0;
      for (let j = a; j < M; j++) nmask[row + j] = candRow[j] !== ai ? 1 : 0;
      nmask[row + i] = 1;
    }
  }
  const userRows = distinctRows.slice(0, requestRow.size);
  return {
    userOf,
    userRows,
    userIn: model.userInput(
      userRows,
      ctx.subarray(0, requestRow.size * Fc),
      undefined,
      withHistory ? model.poolHistory(histories) : undefined,
    ),
    itemRows,
    itemIn: model.itemInput(itemRows),
    point: { n, targets, clicked, known, weights: pw },
    pair: { q, weights: qw },
    list: { l, L, gains, mask: lmask },
    neg: { aP, aQ, aL, s, logQ, mask: nmask },
    anchorItems,
  };
}

/** Rows of a 2-D tensor [start, start + count). */
function rows(t: tf.Tensor2D, start: number, count: number): tf.Tensor2D {
  if (start === 0 && count === t.shape[0]) return t;
  return tf.slice(t, [start, 0], [count, -1]);
}

/** The summed loss of a plan as a function of the user and item vectors (the towers' outputs). */
function headOf(p: StepPlan, o: LossOptions, od: number): (uv: tf.Tensor, iv: tf.Tensor) => tf.Scalar {
  const { n, targets, clicked, known, weights } = p.point;
  const { q } = p.pair;
  const { l, L } = p.list;
  const { aP, aQ, aL, s } = p.neg;
  const I = p.itemRows.length;
  return (uvt, ivt) => {
    const uv = uvt as tf.Tensor2D;
    const iv = ivt as tf.Tensor2D;
    const terms: [tf.Scalar, number][] = [];
    if (n > 0) {
      const loss = pointwiseBceOfVectors(uv, iv, n, targets, clicked, known, weights, o.groundTruthLambda);
      terms.push([loss, o.weights.pointwise]);
    }
    if (q > 0) {
      const uq = rows(uv, n, q);
      const sp = tf.sum(tf.mul(uq, rows(iv, n, q)), 1);
      const sn = tf.sum(tf.mul(uq, rows(iv, n + q, q)), 1);
      terms.push([bprLoss(sp, sn, tf.tensor1d(p.pair.weights)), o.weights.pairwise]);
    }
    let il: tf.Tensor3D | undefined;
    if (l > 0) {
      const ul = tf.expandDims(rows(uv, n + q, l), 1); // [l, 1, o]
      il = tf.reshape(rows(iv, n + 2 * q, l * L), [l, L, od]);
      const sc = tf.sum(tf.mul(ul, il), 2) as tf.Tensor2D;
      const g = tf.tensor2d(p.list.gains, [l, L]);
      const m = tf.tensor2d(p.list.mask, [l, L]);
      const loss = o.listwiseLoss === 'lambda' ? lambdaLoss(sc, g, m) : listNetLoss(sc, g, m);
      terms.push([loss, o.weights.listwise]);
    }
    const a = aP + aQ + aL;
    if (a > 0) {
      const us: tf.Tensor2D[] = [];
      const is: tf.Tensor2D[] = [];
      if (aP > 0) {
        us.push(rows(uv, 0, aP));
        is.push(rows(iv, 0, aP));
      }
      if (aQ > 0) {
        us.push(rows(uv, n, aQ));
        is.push(rows(iv, n, aQ));
      }
      if (aL > 0 && il !== undefined) {
        us.push(rows(uv, n + q, aL));
        is.push(tf.reshape(tf.slice(il, [0, 0, 0], [aL, 1, od]), [aL, od]));
      }
      if (s > 0) is.push(rows(iv, I - s, s));
      const ua = us.length === 1 ? (us[0] as tf.Tensor2D) : tf.concat(us, 0);
      const cand = is.length === 1 ? (is[0] as tf.Tensor2D) : tf.concat(is, 0);
      const loss = sampledSoftmaxOfVectors(ua, cand, p.neg.logQ, p.neg.mask);
      terms.push([loss, o.weights.negatives]);
    }
    return combineLosses(terms);
  };
}

/** The summed loss of a plan as a function of the input rows and dense weights. */
function lossOf(
  model: StudentModel,
  p: StepPlan,
  o: LossOptions,
): (ue: tf.Tensor, ie: tf.Tensor, ...w: tf.Tensor[]) => tf.Scalar {
  const head = headOf(p, o, model.outDim);
  return (ue, ie, ...w) => head(model.userTower(ue as tf.Tensor2D, w), model.itemTower(ie as tf.Tensor2D, w));
}

/**
 * Runs one step of a plan: forward, gradients, sparse + dense updates. Returns the loss. Leaves no
 * tensor behind. Two-tower models take {@link twoTowerStep}; others {@link trainStepAutodiff}.
 *
 * @example
 * const loss = trainStep(model, buildPlan(model, units, freq, o, rand), o);
 */
export function trainStep(model: StudentModel, p: StepPlan, o: LossOptions): number {
  return model.opts.kind === 'two-tower' ? twoTowerStep(model, p, o) : trainStepAutodiff(model, p, o);
}

/**
 * One step with tfjs differentiating the whole loss (towers included) with respect to the input
 * rows and the dense weights: works for every model kind; the reference of {@link twoTowerStep}.
 *
 * @example
 * const loss = trainStepAutodiff(model, buildPlan(model, units, freq, o, rand), o);
 */
export function trainStepAutodiff(model: StudentModel, p: StepPlan, o: LossOptions): number {
  const U = p.userOf.length;
  const I = p.itemRows.length;
  if (U === 0) return 0;
  let loss = 0;
  tf.tidy(() => {
    const uw = model.userInputWidth;
    const iw = model.itemInputWidth;
    // one input row per user slot (the table update sums the duplicates' gradients)
    const rows = new Int32Array(U);
    const userIn = new Float32Array(U * uw);
    p.userOf.forEach((k, i) => {
      rows[i] = p.userRows[k] as number;
      userIn.set(p.userIn.subarray(k * uw, k * uw + uw), i * uw);
    });
    const ue = tf.tensor2d(userIn, [U, uw]);
    const ie = tf.tensor2d(p.itemIn, [I, iw]);
    const w = model.denseTensors();
    const { value, grads } = tf.valueAndGrads(lossOf(model, p, o))([ue, ie, ...w]);
    loss = value.dataSync()[0] as number;
    const [gu, gi, ...gw] = grads;
    // the table gradient is the first d columns of each input row's gradient
    model.users.applyGradients(rows, (gu as tf.Tensor).dataSync() as Float32Array, uw);
    model.items.applyGradients(p.itemRows, (gi as tf.Tensor).dataSync() as Float32Array, iw);
    gw.forEach((g, k) => {
      model.dense[k]?.apply(g.dataSync() as Float32Array);
    });
  });
  return loss;
}

/** Reused buffer of {@link twoTowerStep}: the transposed input rows, then the table gradient. */
let scratch = new Float32Array(0);
/** Reused buffer of {@link twoTowerStep}: the head's gradient per user slot. */
let slotScratch = new Float32Array(0);

/**
 * One two-tower step with the towers run and differentiated by hand ({@link mlpForward},
 * {@link mlpBackward}) and only the loss head taped: tfjs differentiates the loss with respect to
 * the user and item vectors, and the MLP gradients follow from those. Same gradients as
 * {@link trainStepAutodiff} (test/train/step.test.ts) with fewer, cheaper kernels: fused
 * matmul + bias + ReLU forward, no transposes of activations that JS can lay out, no tape.
 *
 * @example
 * const loss = twoTowerStep(model, buildPlan(model, units, freq, o, rand), o);
 */
export function twoTowerStep(model: StudentModel, p: StepPlan, o: LossOptions): number {
  const U = p.userRows.length;
  const slots = p.userOf.length;
  const I = p.itemRows.length;
  if (slots === 0) return 0;
  const layers = model.opts.hidden.length + 1;
  let loss = 0;
  tf.tidy(() => {
    const tower = (x: Float32Array, n: number, width: number, first: number) => {
      const kernels: tf.Tensor2D[] = [];
      const biases: tf.Tensor1D[] = [];
      const values: LayerValues[] = [];
      for (let l = 0; l < layers; l++) {
        const k = model.dense[first + 2 * l] as DenseParam;
        const b = model.dense[first + 2 * l + 1] as DenseParam;
        const [inDim, outDim] = k.shape as [number, number];
        kernels.push(tf.tensor2d(k.values, [inDim, outDim]));
        biases.push(tf.tensor1d(b.values));
        values.push({ kernel: k.values, inDim, outDim });
      }
      const acts = mlpForward(tf.tensor2d(x, [n, width]), kernels, biases);
      return { acts, values, out: acts[layers] as tf.Tensor2D };
    };
    const uw = model.userInputWidth;
    const iw = model.itemInputWidth;
    const ut = tower(p.userIn, U, uw, 0);
    const it = tower(p.itemIn, I, iw, 2 * layers);

    const od = model.outDim;
    // the head sees one user vector per slot; the tower ran once per distinct request
    // (copied in JS: tfjs-backend-wasm's Gather costs ≈ 1 ms for [1024, 32])
    if (slotScratch.length < slots * od) slotScratch = new Float32Array(slots * od);
    const distinct = readInto(ut.out, new Float32Array(U * od));
    for (let i = 0; i < slots; i++) {
      const b = (p.userOf[i] as number) * od;
      for (let c = 0; c < od; c++) slotScratch[i * od + c] = distinct[b + c] as number;
    }
    const uv = fromBuffer(slotScratch.subarray(0, slots * od), [slots, od]);
    const { value, grads } = tf.valueAndGrads(headOf(p, o, od))([uv, it.out]);
    loss = value.dataSync()[0] as number;
    const [guSlots, gi] = grads as [tf.Tensor2D, tf.Tensor2D];
    // ∂/∂(distinct user vectors): the slots' gradients summed per request
    const gs = readInto(guSlots, slotScratch);
    const sum = new Float32Array(U * od);
    for (let i = 0; i < slots; i++) {
      const b = (p.userOf[i] as number) * od;
      const o2 = i * od;
      for (let c = 0; c < od; c++) sum[b + c] = (sum[b + c] as number) + (gs[o2 + c] as number);
    }
    const gu = tf.tensor2d(sum, [U, od]);
    const apply = (
      t: typeof ut,
      x: Float32Array,
      n: number,
      width: number,
      g: tf.Tensor2D,
      table: EmbeddingTable,
      rowsOf: Int32Array,
      first: number,
    ) => {
      if (scratch.length < n * width) scratch = new Float32Array(n * width);
      const xT = fromBuffer(transposeValues(x, n, width, n, scratch.subarray(0, n * width)), [width, n]);
      const grad = mlpBackward(t.acts, xT, t.values, g, table.dim, scratch.subarray(0, n * table.dim));
      // the table gradient is the embedding columns of the input gradient
      table.applyGradients(rowsOf, grad.input, table.dim);
      for (let l = 0; l < layers; l++) {
        model.dense[first + 2 * l]?.apply(grad.kernels[l] as Float32Array);
        model.dense[first + 2 * l + 1]?.apply(grad.biases[l] as Float32Array);
      }
    };
    apply(ut, p.userIn, U, uw, gu, model.users, p.userRows, 0);
    apply(it, p.itemIn, I, iw, gi, model.items, p.itemRows, 2 * layers);
  });
  return loss;
}
