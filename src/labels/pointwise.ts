/**
 * Pointwise distillation labels: the teacher's top K are positives, the rest negatives, and a
 * positive's loss weight grows with its rank (rank 1 matters most).
 *
 * Position weights of a positive at rank r (1-based), negatives always weigh 1:
 * - reciprocal   w_r = 1 + a / r
 * - exponential  w_r = K · e^(−r/λ) / Σ_{i=1..K} e^(−i/λ)
 *     Tang & Wang, "Ranking Distillation", KDD 2018, §3.3 (position importance w_r ∝ e^(−r/λ)).
 *     The authors' code (graytowne/rank_distill, distill_caser.py) normalizes the K weights to
 *     sum to 1; we scale that by K so the MEAN positive weight is 1, comparable to the weight 1 of
 *     the negatives. The table depends on the configured K, not on the list length, so a short
 *     list gets the same weight per rank as a long one.
 * - dcg          w_r = 1 / log2(r + 1)
 * - constant     w_r = 1
 *
 * Soft target (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015): sigmoid(z/T)
 * of the teacher logit z at temperature T, when enabled and only in `logits` mode (null in
 * `rank` mode: there is no logit). `clicked` is the impression's ground truth for shown items.
 */

import type { LabelsConfig } from '../config/schema.ts';
import type { PointwiseItem } from '../contracts/index.ts';
import { discountTable } from './ndcg.ts';
import './shapes.ts'; // output records keep Tagged numeric fields (see shapes.ts)
import type { TeacherView } from './teacher.ts';

type PointwiseConfig = LabelsConfig['pointwise'];

let cached: { weighting: string; k: number; a: number; lambda: number; table: Float64Array } | null = null;

/**
 * Weights of the positives at ranks 1..K (index rank − 1), computed once per configuration.
 *
 * @example
 * positiveWeights({ ...cfg, weighting: 'reciprocal', k: 3, a: 1 }); // [2, 1.5, 1.333…]
 */
export function positiveWeights(cfg: PointwiseConfig): Float64Array {
  const c = cached;
  if (
    c !== null &&
    c.weighting === cfg.weighting &&
    c.k === cfg.k &&
    c.a === cfg.a &&
    c.lambda === cfg.lambda
  ) {
    return c.table;
  }
  const k = cfg.k;
  const t = new Float64Array(k);
  switch (cfg.weighting) {
    case 'reciprocal':
      for (let r = 1; r <= k; r++) t[r - 1] = 1 + cfg.a / r;
      break;
    case 'exponential': {
      let sum = 0;
      for (let r = 1; r <= k; r++) sum += Math.exp(-r / cfg.lambda);
      for (let r = 1; r <= k; r++) t[r - 1] = (k * Math.exp(-r / cfg.lambda)) / sum;
      break;
    }
    case 'dcg': {
      const d = discountTable(k);
      for (let r = 1; r <= k; r++) t[r - 1] = d[r - 1]!;
      break;
    }
    case 'constant':
      t.fill(1);
      break;
  }
  cached = { weighting: cfg.weighting, k, a: cfg.a, lambda: cfg.lambda, table: t };
  return t;
}

/**
 * Numerically stable logistic function (the soft target; shared with the column writers).
 *
 * @example
 * sigmoid(0); // 0.5
 */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * One PointwiseItem per candidate, in label order.
 *
 * @example
 * const items = pointwiseItems(view, cfg.pointwise);
 * items[0]; // { item_id, rank: 1, label: 1, weight: 2, teacher_logit, soft_target, clicked, features }
 */
export function pointwiseItems(view: TeacherView, cfg: PointwiseConfig): PointwiseItem[] {
  const n = view.n;
  const w = positiveWeights(cfg);
  const k = Math.min(cfg.k, n);
  const z = view.z;
  const clicked = view.clicked;
  const items = view.items;
  const order = view.order;
  const soft = z !== null && cfg.softTargets === true; // a boolean, so the loop tests no truthiness
  const invT = 1 / cfg.temperature;
  const out = new Array<PointwiseItem>(n);
  for (let p = 0; p < n; p++) {
    const it = items[order === null ? p : order[p]!]!;
    const c = clicked === null ? -1 : clicked[p]!;
    const logit = z === null ? null : z[p]!;
    out[p] = {
      item_id: it.item_id,
      rank: p + 1,
      label: p < k ? 1 : 0,
      weight: p < k ? w[p]! : 1,
      teacher_logit: logit,
      soft_target: soft ? sigmoid(z[p]! * invT) : null,
      clicked: c === -1 ? null : c === 1,
      features: it.features,
    };
  }
  return out;
}
