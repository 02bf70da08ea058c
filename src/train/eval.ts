/**
 * Agreement of the student with the teacher on held-out requests — the metrics of the snapshot
 * gate (DESIGN.md "Student and snapshots"):
 *
 * - `recall_at_100_of_top10`: the share of the teacher's top 10 that the student retrieves in its
 *   top 100 over the WHOLE catalog (every known item scored: user_vec · item_table, the recall
 *   stage's real job). Items the student has never seen cannot be retrieved and count as misses.
 * - `ndcg_at_10`: NDCG@10 of the student's order of the request's candidates against the teacher's
 *   grades (gain 2^grade − 1), i.e. how well it would pre-rank the teacher's candidate set.
 * - `auc`: where clicks exist, the mean per-request AUC of student scores for clicked vs shown but
 *   not clicked candidates (requests with both classes).
 *
 * Every metric ranks by the SERVED score, the one a snapshot exports and `rankdistill recall`
 * serves: served user vector · served item row ({@link servedScore}), which includes the exposure
 * prior `beta · logQ(item)` when the model carries one (StudentModel.servedItemVectors).
 */
import * as tf from '@tensorflow/tfjs';
import type { EvalRequest } from './examples.ts';
import { fnv1a } from './hash.ts';
import type { StudentModel } from './model.ts';

export interface EvalOptions {
  /** Teacher top K [10]. */
  k?: number;
  /** Student top N over the catalog [100]. */
  n?: number;
  /** NDCG cut-off [10]. */
  ndcgAt?: number;
  /** Requests scored per matrix product [64]. */
  chunk?: number;
  /** Called with each request's index and its retrieved top N ids (for further metrics, e.g. benches). */
  onTop?: (request: number, retrieved: ReadonlySet<string>) => void;
}

export interface EvalMetrics {
  recall_at_100_of_top10: number;
  ndcg_at_10: number;
  /** Present when some request had both clicked and unclicked candidates. */
  auc?: number;
  eval_requests: number;
  [name: string]: number | undefined;
}

/**
 * THE score of the student: the dot product of a served user vector (offset `uo` in `users`) and a
 * served item row (offset `io` in `items`), both `dim` wide — the user vector ends in a constant 1
 * and the item row in the prior `beta · logQ(item)`, so this is ⟨u, v_i⟩ + beta · logQ(i). The
 * snapshot's `items` table holds the same rows; src/snapshots/recall.ts ranks by the same product.
 *
 * @example
 * servedScore(Float32Array.of(0.5, 1), 0, Float32Array.of(2, -1.2), 0, 2); // 0.5·2 + 1·(−1.2) = −0.2
 */
export function servedScore(
  users: Float32Array,
  uo: number,
  items: Float32Array,
  io: number,
  dim: number,
): number {
  let s = 0;
  for (let k = 0; k < dim; k++) s += (users[uo + k] as number) * (items[io + k] as number);
  return s;
}

/**
 * NDCG@k of `order` (item ids, best first) against `grades` (missing = 0).
 *
 * @example
 * ndcgAt(['a', 'b'], new Map([['a', 1], ['b', 3]]), 10); // < 1: b should come first
 */
export function ndcgAt(order: readonly string[], grades: ReadonlyMap<string, number>, k: number): number {
  const disc = (i: number) => 1 / Math.log2(i + 2);
  let dcg = 0;
  for (let i = 0; i < Math.min(k, order.length); i++)
    dcg += (2 ** (grades.get(order[i] as string) ?? 0) - 1) * disc(i);
  const ideal = [...grades.values()].sort((a, b) => b - a);
  let idcg = 0;
  for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += (2 ** (ideal[i] as number) - 1) * disc(i);
  return idcg > 0 ? dcg / idcg : 0;
}

/**
 * AUC of scores for positives vs negatives (ties count one half); NaN without both classes.
 *
 * @example
 * auc([0.9, 0.1], [true, false]); // 1
 */
export function auc(scores: readonly number[], labels: readonly boolean[]): number {
  let pos = 0;
  let neg = 0;
  let wins = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!labels[i]) continue;
    pos++;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j]) continue;
      const a = scores[i] as number;
      const b = scores[j] as number;
      wins += a > b ? 1 : a === b ? 0.5 : 0;
    }
  }
  for (const l of labels) if (!l) neg++;
  return pos === 0 || neg === 0 ? Number.NaN : wins / (pos * neg);
}

/**
 * Evaluates the student on held-out requests (see the module comment for the metrics).
 *
 * @example
 * const m = evaluate(model, heldOut.requests()); // { recall_at_100_of_top10: 0.42, ndcg_at_10: 0.7, ... }
 */
export function evaluate(
  model: StudentModel,
  requests: readonly EvalRequest[],
  o: EvalOptions = {},
): EvalMetrics {
  const K = o.k ?? 10;
  const N = o.n ?? 100;
  const cut = o.ndcgAt ?? 10;
  const chunk = o.chunk ?? 64;
  const M = model.items.size;
  const d = model.servedDim;
  const Fc = model.opts.contextBuckets;
  if (requests.length === 0 || M === 0) return { recall_at_100_of_top10: 0, ndcg_at_10: 0, eval_requests: 0 };
  const itemVecs = model.servedItemVectors();
  const ids = model.items.ids;
  const topN = Math.min(N, M);
  let recallSum = 0;
  let ndcgSum = 0;
  let aucSum = 0;
  let aucCount = 0;
  const itemsT = tf.tidy(() => tf.transpose(tf.tensor2d(itemVecs, [M, d]))); // [d, M]: plain matMul below
  try {
    for (let start = 0; start < requests.length; start += chunk) {
      const part = requests.slice(start, start + chunk);
      const rows = Int32Array.from(part, (r) => model.users.find(r.user));
      const ctx = new Float32Array(part.length * Fc);
      part.forEach((r, i) => {
        ctx.set(r.ctx, i * Fc);
      });
      const uv = model.servedUserVectors(rows, ctx, model.requestHistories(part));
      const top = tf.tidy(() => {
        const scores = tf.matMul(tf.tensor2d(uv, [part.length, d]), itemsT);
        return tf.topk(scores, topN).indices.dataSync() as Int32Array;
      });
      part.forEach((r, i) => {
        const retrieved = new Set<string>();
        for (let j = 0; j < topN; j++) retrieved.add(ids[top[i * topN + j] as number] as string);
        o.onTop?.(start + i, retrieved);
        const teacherTop = r.teacher.slice(0, K);
        let hit = 0;
        for (const id of teacherTop) if (retrieved.has(id)) hit++;
        recallSum += teacherTop.length > 0 ? hit / teacherTop.length : 0;
        // candidate scores
        const scored = r.teacher.map((id) => {
          const row = model.items.find(id);
          return { id, s: row < 0 ? Number.NEGATIVE_INFINITY : servedScore(uv, i * d, itemVecs, row * d, d) };
        });
        // ties (e.g. an unknown user scores every item alike) are broken by a hash of the id, never
        // by the teacher's order, which would credit the student with the teacher's ranking
        const order = [...scored]
          .map((x) => ({ ...x, h: fnv1a(x.id, 0x71e) }))
          .sort((a, b) => b.s - a.s || a.h - b.h)
          .map((x) => x.id);
        ndcgSum += ndcgAt(order, r.grades, cut);
        if (r.clicks.size > 0) {
          const shown = scored.filter((x) => r.clicks.has(x.id));
          const a = auc(
            shown.map((x) => x.s),
            shown.map((x) => r.clicks.get(x.id) === true),
          );
          if (!Number.isNaN(a)) {
            aucSum += a;
            aucCount++;
          }
        }
      });
    }
  } finally {
    itemsT.dispose();
  }
  const out: EvalMetrics = {
    recall_at_100_of_top10: recallSum / requests.length,
    ndcg_at_10: ndcgSum / requests.length,
    eval_requests: requests.length,
  };
  if (aucCount > 0) out.auc = aucSum / aucCount;
  return out;
}

/**
 * The prior weight beta of the served score with the best recall of the teacher's top 10 on
 * `validation` (requests never trained on and not the evaluation set), over `grid`; ties go to the
 * smaller beta. Leaves `model.prior` set to the chosen beta and returns every beta's recall.
 *
 * @example
 * const { beta } = chooseBeta(model, (id) => freq.logQ(id), validation.requests(), [0, 0.5, 1, 2]);
 */
export function chooseBeta(
  model: StudentModel,
  logQ: (id: string) => number,
  validation: readonly EvalRequest[],
  grid: readonly number[],
): { beta: number; recall: Record<string, number> } {
  let best = { beta: grid[0] ?? 0, recall: Number.NEGATIVE_INFINITY };
  const recall: Record<string, number> = {};
  for (const beta of [...grid].sort((a, b) => a - b)) {
    model.prior = { beta, logQ };
    const r = evaluate(model, validation).recall_at_100_of_top10;
    recall[String(beta)] = r;
    if (r > best.recall) best = { beta, recall: r };
  }
  model.prior = { beta: best.beta, logQ };
  return { beta: best.beta, recall };
}
