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
 * The score a snapshot serves, as a recall service computes it: the user vector of a request dot
 * the exported item table's row (`rankdistill recall`, any ANN index over `items.f32`). Every
 * quality figure — the trainer's held-out metrics, the gate's paired comparison, the live gauge —
 * is computed through {@link servedScorer}, and the snapshot's `items` table is its `items`
 * (src/snapshots/student.ts), so what is measured is what is served (a prior column or a history
 * input added to the served score changes all of them at once).
 */
export interface ServedScorer {
  /** The exported item table: row r of `vectors` (`ids.length × dim`, row-major) is item `ids[r]`. */
  items: { ids: readonly string[]; dim: number; vectors: Float32Array };
  /** Row of an item in `items` (-1: unknown, never retrieved). */
  itemRow(id: string): number;
  /**
   * Served user vectors `[requests.length, dim]` of requests (user id, hashed context and, with the
   * behaviour tower, the user's history before the request, its own candidates left out).
   */
  userVectors(requests: readonly Pick<EvalRequest, 'user' | 'ctx' | 'teacher'>[]): Float32Array;
}

/**
 * The served score of a model (StudentModel.servedItemVectors: item vectors and the prior column;
 * servedUserVectors: user vectors, history included, and a constant 1), frozen at the call for the
 * item side (the table is computed once; a later change of `model.prior` needs a new scorer).
 *
 * @example
 * const s = servedScorer(model); s.items.ids.length; // known items
 */
export function servedScorer(model: StudentModel): ServedScorer {
  const ids = [...model.items.ids];
  const vectors = model.servedItemVectors();
  const Fc = model.opts.contextBuckets;
  return {
    items: { ids, dim: model.servedDim, vectors },
    itemRow: (id) => {
      const r = model.items.find(id);
      return r < ids.length ? r : -1;
    },
    userVectors: (requests) => {
      const rows = Int32Array.from(requests, (r) => model.users.find(r.user));
      const ctx = new Float32Array(requests.length * Fc);
      requests.forEach((r, i) => {
        ctx.set(r.ctx.subarray(0, Fc), i * Fc);
      });
      return model.servedUserVectors(rows, ctx, model.requestHistories(requests));
    },
  };
}

/** Per-request values of the metrics, aligned with the requests (NaN: undefined for that request). */
export interface PerRequestMetrics {
  recall_at_100_of_top10: Float64Array;
  ndcg_at_10: Float64Array;
  /** NaN where the request has no clicked and unclicked shown candidates. */
  auc: Float64Array;
}

/**
 * Scores every request with `scorer` (see the module comment for the metrics), one value per
 * request: what the gate's paired test and the live gauge take.
 *
 * @example
 * const per = scoreRequests(servedScorer(model), heldOut.requests());
 * per.recall_at_100_of_top10[0]; // 0.7: 7 of the teacher's top 10 in the student's top 100
 */
export function scoreRequests(
  scorer: ServedScorer,
  requests: readonly EvalRequest[],
  o: EvalOptions = {},
): PerRequestMetrics {
  const K = o.k ?? 10;
  const N = o.n ?? 100;
  const cut = o.ndcgAt ?? 10;
  const chunk = o.chunk ?? 64;
  const n = requests.length;
  const out: PerRequestMetrics = {
    recall_at_100_of_top10: new Float64Array(n),
    ndcg_at_10: new Float64Array(n),
    auc: new Float64Array(n).fill(Number.NaN),
  };
  const { ids, dim: d, vectors: itemVecs } = scorer.items;
  const M = ids.length;
  if (n === 0 || M === 0) return out;
  const topN = Math.min(N, M);
  const itemsT = tf.tidy(() => tf.transpose(tf.tensor2d(itemVecs, [M, d]))); // [d, M]: plain matMul below
  try {
    for (let start = 0; start < n; start += chunk) {
      const part = requests.slice(start, start + chunk);
      const uv = scorer.userVectors(part);
      const top = tf.tidy(() => {
        const scores = tf.matMul(tf.tensor2d(uv, [part.length, d]), itemsT);
        return tf.topk(scores, topN).indices.dataSync() as Int32Array;
      });
      part.forEach((r, i) => {
        const at = start + i;
        const retrieved = new Set<string>();
        for (let j = 0; j < topN; j++) retrieved.add(ids[top[i * topN + j] as number] as string);
        o.onTop?.(at, retrieved);
        const teacherTop = r.teacher.slice(0, K);
        let hit = 0;
        for (const id of teacherTop) if (retrieved.has(id)) hit++;
        out.recall_at_100_of_top10[at] = teacherTop.length > 0 ? hit / teacherTop.length : 0;
        // candidate scores
        const scored = r.teacher.map((id) => {
          const row = scorer.itemRow(id);
          return { id, s: row < 0 ? Number.NEGATIVE_INFINITY : servedScore(uv, i * d, itemVecs, row * d, d) };
        });
        // ties (e.g. an unknown user scores every item alike) are broken by a hash of the id, never
        // by the teacher's order, which would credit the student with the teacher's ranking
        const order = [...scored]
          .map((x) => ({ ...x, h: fnv1a(x.id, 0x71e) }))
          .sort((a, b) => b.s - a.s || a.h - b.h)
          .map((x) => x.id);
        out.ndcg_at_10[at] = ndcgAt(order, r.grades, cut);
        if (r.clicks.size > 0) {
          const shown = scored.filter((x) => r.clicks.has(x.id));
          out.auc[at] = auc(
            shown.map((x) => x.s),
            shown.map((x) => r.clicks.get(x.id) === true),
          );
        }
      });
    }
  } finally {
    itemsT.dispose();
  }
  return out;
}

/**
 * The metrics of per-request values: means (AUC over the requests where it is defined).
 *
 * @example
 * summarize(scoreRequests(scorer, reqs)); // { recall_at_100_of_top10: 0.42, ndcg_at_10: 0.7, eval_requests: 1000 }
 */
export function summarize(per: PerRequestMetrics): EvalMetrics {
  const n = per.recall_at_100_of_top10.length;
  const mean = (a: Float64Array) => {
    let s = 0;
    let c = 0;
    for (const v of a)
      if (!Number.isNaN(v)) {
        s += v;
        c++;
      }
    return { m: c > 0 ? s / c : 0, c };
  };
  const out: EvalMetrics = {
    recall_at_100_of_top10: n > 0 ? mean(per.recall_at_100_of_top10).m : 0,
    ndcg_at_10: n > 0 ? mean(per.ndcg_at_10).m : 0,
    eval_requests: n,
  };
  const a = mean(per.auc);
  if (a.c > 0) out.auc = a.m;
  return out;
}

/**
 * Evaluates the student on held-out requests through its served score (see the module comment).
 *
 * @example
 * const m = evaluate(model, heldOut.requests()); // { recall_at_100_of_top10: 0.42, ndcg_at_10: 0.7, ... }
 */
export function evaluate(
  model: StudentModel,
  requests: readonly EvalRequest[],
  o: EvalOptions = {},
): EvalMetrics {
  return evaluateScored(model, requests, o).metrics;
}

/**
 * {@link evaluate} with the per-request values behind the means (what the paired gate compares).
 *
 * @example
 * const { metrics, per } = evaluateScored(model, heldOut.requests());
 */
export function evaluateScored(
  model: StudentModel,
  requests: readonly EvalRequest[],
  o: EvalOptions = {},
): { metrics: EvalMetrics; per: PerRequestMetrics } {
  if (requests.length === 0 || model.items.size === 0) {
    const nan = () => new Float64Array(requests.length).fill(Number.NaN);
    return {
      metrics: { recall_at_100_of_top10: 0, ndcg_at_10: 0, eval_requests: 0 },
      per: { recall_at_100_of_top10: nan(), ndcg_at_10: nan(), auc: nan() },
    };
  }
  const per = scoreRequests(servedScorer(model), requests, o);
  return { metrics: summarize(per), per };
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
