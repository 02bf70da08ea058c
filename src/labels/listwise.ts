/**
 * Listwise labels: an integer relevance grade per candidate, with its NDCG gain 2^grade − 1
 * (Järvelin & Kekäläinen 2002), for ListNet / NDCG-weighted losses.
 *
 * Schemes, for the candidate at rank r (1-based) of an n-item list:
 * - buckets           grade = max(0, maxGrade − ⌊(r − 1) / bucketSize⌋)
 *                     defaults: ranks 1–5 → 5, 6–10 → 4, …, 26+ → 0.
 * - logit-quantiles   equal-frequency bins of the teacher logit within the list (like pandas
 *                     qcut): with g = number of candidates whose logit is STRICTLY greater,
 *                     grade = L − 1 − ⌊L · g / n⌋ (L = levels). The highest logit gets L − 1;
 *                     with n ≥ L the lowest gets 0. Ties share a grade — the grade of the tie's
 *                     first member in rank order — so a tie never puts a lower-ranked item above a
 *                     higher-ranked one. In `rank` mode the rank stands in for the logit:
 *                     g = r − 1.
 * - logit-thresholds  grade = #{t ∈ thresholds : t ≤ z} (order of the list is irrelevant);
 *                     no thresholds → every grade 0. Needs logits: in `rank` mode the request is
 *                     rejected with a LabelInputError naming the setting.
 */

import type { LabelsConfig } from '../config/schema.ts';
import type { GradedItem, PointwiseItem } from '../contracts/index.ts';
import { LabelInputError } from '../errors.ts';
import { GAINS } from './ndcg.ts';
import './shapes.ts'; // output records keep Tagged numeric fields (see shapes.ts)
import type { TeacherView, ViewScratch } from './teacher.ts';

type ListwiseConfig = LabelsConfig['listwise'];

/** Index of the first element of ascending `a[0..n)` that is > x. */
function upperBound(a: Float64Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Grade of every candidate by label position. Throws LabelInputError for logit-thresholds in
 * `rank` mode. With a `scratch` the result is its buffer (valid until its next use, may be longer
 * than n).
 *
 * @example
 * listwiseGrades(view, { ...cfg.listwise, scheme: 'buckets', bucketSize: 2, maxGrade: 2 });
 * // ranks 1..6 → Int32Array [2, 2, 1, 1, 0, 0]
 */
export function listwiseGrades(
  view: TeacherView,
  cfg: ListwiseConfig,
  scratch: ViewScratch | null = null,
): Int32Array {
  const n = view.n;
  const grades = scratch === null ? new Int32Array(n) : scratch.grades;
  const z = view.z;
  switch (cfg.scheme) {
    case 'buckets': {
      const size = cfg.bucketSize;
      const max = cfg.maxGrade;
      // Walk the buckets instead of dividing per item.
      let p = 0;
      for (let g = max; g > 0 && p < n; g--) {
        const end = Math.min(n, p + size);
        for (; p < end; p++) grades[p] = g;
      }
      for (; p < n; p++) grades[p] = 0;
      break;
    }
    case 'logit-quantiles': {
      const levels = cfg.levels;
      if (z === null) {
        for (let p = 0; p < n; p++) grades[p] = levels - 1 - Math.floor((levels * p) / n);
        break;
      }
      // Quantile grades depend on the values only, not on the label order: look for the
      // descending run in the ranker's order, where it is usual, and map through `order`.
      const zr = view.zRanker!;
      const order = view.order;
      let descending = true;
      for (let i = 1; i < n; i++) {
        if (zr[i]! > zr[i - 1]!) {
          descending = false;
          break;
        }
      }
      if (descending) {
        // g (items with a strictly greater logit) is the index of the first member of the tie.
        const byIndex =
          order === null ? grades : scratch === null ? new Int32Array(n) : scratch.gradesByIndex;
        let first = 0;
        for (let i = 0; i < n; i++) {
          if (i > 0 && zr[i]! !== zr[i - 1]!) first = i;
          byIndex[i] = levels - 1 - Math.floor((levels * first) / n);
        }
        if (order !== null) for (let p = 0; p < n; p++) grades[p] = byIndex[order[p]!]!;
        break;
      }
      const sorted = z.slice(0, n).sort();
      for (let p = 0; p < n; p++) {
        const greater = n - upperBound(sorted, n, z[p]!);
        grades[p] = levels - 1 - Math.floor((levels * greater) / n);
      }
      break;
    }
    case 'logit-thresholds': {
      if (z === null) {
        throw new LabelInputError(
          "listwise scheme 'logit-thresholds' needs teacher logits, but labels.teacher.signal is 'rank'; use 'buckets' or 'logit-quantiles', or signal 'logits'",
          { scheme: cfg.scheme, signal: 'rank' },
        );
      }
      const th = cfg.thresholds;
      const nt = th.length;
      for (let p = 0; p < n; p++) {
        const v = z[p]!;
        let g = 0;
        for (let t = 0; t < nt; t++) if (th[t]! <= v) g++;
        grades[p] = g;
      }
      break;
    }
  }
  return grades;
}

/**
 * One GradedItem per candidate, in label order, from grades computed by {@link listwiseGrades}.
 *
 * `sameView`, when given, must be `pointwiseItems(view, …)` of the SAME view: its records hold
 * the same teacher logit at the same positions, and reusing that stored value (instead of reading
 * `view.z` again) lets V8 share one heap number per candidate between the two records instead of
 * allocating a second one (see shapes.ts). The output is the same either way.
 *
 * @example
 * listwiseItems(view, listwiseGrades(view, cfg.listwise))[0]; // { item_id, rank: 1, grade: 5, gain: 31, teacher_logit }
 */
export function listwiseItems(
  view: TeacherView,
  grades: Int32Array,
  sameView: readonly PointwiseItem[] | null = null,
): GradedItem[] {
  const n = view.n;
  const z = view.z;
  const items = view.items;
  const order = view.order;
  const gains = GAINS;
  const out = new Array<GradedItem>(n);
  if (sameView !== null && sameView.length === n) {
    for (let p = 0; p < n; p++) {
      const g = grades[p]!;
      const pw = sameView[p]!;
      out[p] = {
        item_id: pw.item_id,
        rank: p + 1,
        grade: g,
        gain: g < 32 ? gains[g]! : 2 ** g - 1,
        teacher_logit: pw.teacher_logit,
      };
    }
    return out;
  }
  for (let p = 0; p < n; p++) {
    const g = grades[p]!;
    out[p] = {
      item_id: items[order === null ? p : order[p]!]!.item_id,
      rank: p + 1,
      grade: g,
      gain: g < 32 ? gains[g]! : 2 ** g - 1,
      teacher_logit: z === null ? null : z[p]!,
    };
  }
  return out;
}
