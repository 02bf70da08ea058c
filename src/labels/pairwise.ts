/**
 * Pairwise (BPR) labels: ordered pairs (pos, neg) where the teacher ranks pos above neg, for the
 * Bayesian Personalized Ranking loss −ln σ(s_pos − s_neg) (Rendle et al., UAI 2009).
 *
 * With n candidates, gap g = minRankGap and cap = maxPairs (every strategy stops at the cap):
 * - topk-vs-below  for each positive rank r = 1..min(K, n), draw min(m, #candidates) negatives
 *                  without replacement, uniformly among the ranks r + g..n (Floyd's sampling);
 *                  all of them when there are at most m. Pairs in (pos rank, neg rank) order.
 * - adjacent       (r, r + g) for r = 1..n − g: neighbours, or the nearest ranks the gap allows.
 * - sampled        uniform distinct ordered pairs (i, j) with j − i ≥ g; all of them when there
 *                  are at most maxPairs, sorted by (pos rank, neg rank).
 * Randomness comes from an Rng seeded with request_id only, so the pairs are a pure function of
 * the request. An item is never paired with itself (duplicate ids are rejected upstream).
 *
 * Weight: 1, or with weightByDeltaNdcg the |ΔNDCG| of swapping the two items (LambdaRank; see
 * ndcg.ts) with gains 2^grade − 1 from the LISTWISE grades of the configured listwise scheme —
 * computed even when listwise output is off — so pair weights agree with the listwise labels.
 * Weighting never changes which pairs are emitted; pairs of equal grade get weight 0.
 */

import type { LabelsConfig } from '../config/schema.ts';
import type { ItemPair } from '../contracts/index.ts';
import { discountTable, GAINS, idealDcg } from './ndcg.ts';
import type { Rng } from './rng.ts';
import './shapes.ts'; // output records keep Tagged numeric fields (see shapes.ts)
import type { TeacherView } from './teacher.ts';

type PairwiseConfig = LabelsConfig['pairwise'];

// Scratch for sampled offsets (pure functions; JS is single-threaded and nothing here re-enters).
let scratch = new Float64Array(64);

function scratchOf(size: number): Float64Array {
  if (scratch.length < size) scratch = new Float64Array(Math.max(size, 2 * scratch.length));
  return scratch;
}

let marks = new Uint8Array(1024);

/**
 * Robert Floyd's sampling of `t` distinct integers from [0, c) (t ≤ c), written to s[0..t),
 * sorted ascending (Bentley & Floyd, "Programming Pearls: A sample of brilliance", CACM 1987).
 * Membership: a linear scan for small t, a reusable byte map for c ≤ 2^20, else a Set.
 */
function sampleDistinct(rng: Rng, c: number, t: number, s: Float64Array): void {
  let len = 0;
  if (t <= 16) {
    for (let j = c - t; j < c; j++) {
      const v = rng.int(j + 1);
      let dup = false;
      for (let q = 0; q < len; q++) {
        if (s[q] === v) {
          dup = true;
          break;
        }
      }
      s[len++] = dup ? j : v;
    }
    // Insertion sort: a handful of values.
    for (let a = 1; a < t; a++) {
      const x = s[a]!;
      let b = a - 1;
      while (b >= 0 && s[b]! > x) {
        s[b + 1] = s[b]!;
        b--;
      }
      s[b + 1] = x;
    }
    return;
  }
  if (c <= 1 << 20) {
    if (marks.length < c) marks = new Uint8Array(Math.max(c, 2 * marks.length));
    const m = marks;
    for (let j = c - t; j < c; j++) {
      const v = rng.int(j + 1);
      const x = m[v] === 1 ? j : v;
      m[x] = 1;
      s[len++] = x;
    }
    for (let q = 0; q < t; q++) m[s[q]!] = 0; // leave the map clean for the next call
  } else {
    const seen = new Set<number>();
    for (let j = c - t; j < c; j++) {
      const v = rng.int(j + 1);
      const x = seen.has(v) ? j : v;
      seen.add(x);
      s[len++] = x;
    }
  }
  s.subarray(0, t).sort();
}

/**
 * Collects pairs as label-position pairs first; items and weights are filled at the end. One
 * module-wide buffer, reset per call (it never escapes pairwisePairs).
 */
class PairBuffer {
  pos = new Int32Array(64);
  neg = new Int32Array(64);
  len = 0;
  reset(cap: number): this {
    if (this.pos.length < cap) {
      const size = Math.max(cap, 2 * this.pos.length);
      this.pos = new Int32Array(size);
      this.neg = new Int32Array(size);
    }
    this.len = 0;
    return this;
  }
  add(i: number, j: number): void {
    this.pos[this.len] = i;
    this.neg[this.len] = j;
    this.len++;
  }
}

const pairBuffer = new PairBuffer();

function topkVsBelow(n: number, cfg: PairwiseConfig, rng: Rng, buf: PairBuffer, cap: number): void {
  const g = cfg.minRankGap;
  const k = Math.min(cfg.k, n);
  for (let i = 0; i < k && buf.len < cap; i++) {
    const first = i + g; // first eligible negative position
    const c = n - first;
    if (c <= 0) break;
    const t = Math.min(cfg.m, c, cap - buf.len);
    if (t === c) {
      for (let j = first; j < n; j++) buf.add(i, j);
    } else {
      const s = scratchOf(t);
      sampleDistinct(rng, c, t, s);
      for (let q = 0; q < t; q++) buf.add(i, first + s[q]!);
    }
  }
}

function adjacent(n: number, cfg: PairwiseConfig, buf: PairBuffer, cap: number): void {
  const g = cfg.minRankGap;
  for (let i = 0; i + g < n && buf.len < cap; i++) buf.add(i, i + g);
}

function sampled(n: number, cfg: PairwiseConfig, rng: Rng, buf: PairBuffer, cap: number): void {
  const g = cfg.minRankGap;
  const rows = n - g; // positions i = 0..rows-1 have partners i+g..n-1 (rows - i of them)
  if (rows <= 0) return;
  const total = (rows * (rows + 1)) / 2;
  if (total <= cap) {
    for (let i = 0; i < rows; i++) for (let j = i + g; j < n; j++) buf.add(i, j);
    return;
  }
  const s = scratchOf(cap);
  sampleDistinct(rng, total, cap, s);
  // Decode sorted pair indices by sweeping the rows once.
  let i = 0;
  let rowStart = 0;
  let rowLen = rows;
  for (let q = 0; q < cap; q++) {
    const x = s[q]!;
    while (x >= rowStart + rowLen) {
      rowStart += rowLen;
      rowLen--;
      i++;
    }
    buf.add(i, i + g + (x - rowStart));
  }
}

/** Pairs as label positions (pos[q] outranks neg[q]), valid until the next {@link pairPositions}. */
export interface PairPositions {
  readonly pos: Int32Array;
  readonly neg: Int32Array;
  readonly len: number;
}

/**
 * The pairs of an n-candidate list as label positions, in emission order: what
 * {@link pairwisePairs} emits, before item ids and weights are attached. The result is a shared
 * buffer, overwritten by the next call.
 *
 * @example
 * const pp = pairPositions(view.n, cfg.pairwise, Rng.forRequest(requestId));
 * pp.pos[0]; // label position of the first pair's positive
 */
export function pairPositions(n: number, cfg: PairwiseConfig, rng: Rng): PairPositions {
  const cap = cfg.maxPairs;
  const most = cfg.strategy === 'topk-vs-below' ? Math.min(cfg.k, n) * cfg.m : (n * (n - 1)) / 2;
  const buf = pairBuffer.reset(Math.min(most, cap));
  if (n > 1) {
    switch (cfg.strategy) {
      case 'topk-vs-below':
        topkVsBelow(n, cfg, rng, buf, cap);
        break;
      case 'adjacent':
        adjacent(n, cfg, buf, cap);
        break;
      case 'sampled':
        sampled(n, cfg, rng, buf, cap);
        break;
    }
  }
  return buf;
}

// Created on first use: a class cannot be instantiated above its definition.
let unitWeights: PairWeights | null = null;

/**
 * Pair weights of one request: 1 each, or |ΔNDCG| of the swap when weightByDeltaNdcg is on and
 * grades are given (see the module doc).
 *
 * @example
 * const w = PairWeights.of(cfg.pairwise, grades, view.n);
 * w.weight(0, 3); // weight of the pair (rank 1, rank 4)
 */
export class PairWeights {
  readonly #disc: Float64Array | null;
  readonly #grades: Int32Array | null;
  readonly #invIdcg: number;

  private constructor(disc: Float64Array | null, grades: Int32Array | null, invIdcg: number) {
    this.#disc = disc;
    this.#grades = grades;
    this.#invIdcg = invIdcg;
  }

  static of(cfg: PairwiseConfig, grades: Int32Array | null, n: number): PairWeights {
    if (!cfg.weightByDeltaNdcg || grades === null) {
      unitWeights ??= new PairWeights(null, null, 0);
      return unitWeights;
    }
    const idcg = idealDcg(grades, n);
    return new PairWeights(discountTable(n), grades, idcg > 0 ? 1 / idcg : 0);
  }

  /** Weight of the pair of label positions (i, j). */
  weight(i: number, j: number): number {
    const disc = this.#disc;
    const grades = this.#grades;
    if (disc === null || grades === null) return 1;
    const gains = GAINS;
    const gi = grades[i]!;
    const gj = grades[j]!;
    const d = (gi < 32 ? gains[gi]! : 2 ** gi - 1) - (gj < 32 ? gains[gj]! : 2 ** gj - 1);
    return Math.abs(d) * Math.abs(disc[i]! - disc[j]!) * this.#invIdcg;
  }
}

/**
 * BPR pairs of a request, pos outranking neg. `grades` (listwise grades by label position) are
 * only read when weightByDeltaNdcg is on.
 *
 * @example
 * pairwisePairs(view, cfg.pairwise, Rng.forRequest(ranker.request_id), null);
 * // [{ pos_item: 'a', neg_item: 'd', pos_rank: 1, neg_rank: 4, weight: 1 }, ...]
 */
export function pairwisePairs(
  view: TeacherView,
  cfg: PairwiseConfig,
  rng: Rng,
  grades: Int32Array | null,
): ItemPair[] {
  const buf = pairPositions(view.n, cfg, rng);
  const w = PairWeights.of(cfg, grades, view.n);
  const items = view.items;
  const order = view.order;
  const len = buf.len;
  const out = new Array<ItemPair>(len);
  for (let q = 0; q < len; q++) {
    const i = buf.pos[q]!;
    const j = buf.neg[q]!;
    out[q] = {
      pos_item: items[order === null ? i : order[i]!]!.item_id,
      neg_item: items[order === null ? j : order[j]!]!.item_id,
      pos_rank: i + 1,
      neg_rank: j + 1,
      weight: w.weight(i, j),
    };
  }
  return out;
}
