/**
 * NDCG arithmetic shared by the generators: position discounts, grade gains and the |ΔNDCG| of
 * swapping two ranked items (the LambdaRank pair weight).
 *
 *   DCG = Σ_r gain(grade_r) · discount(r),  gain(g) = 2^g − 1,  discount(r) = 1 / log2(r + 1)
 *   |ΔNDCG(i, j)| = |gain_i − gain_j| · |discount(i) − discount(j)| / IDCG
 *
 * (Järvelin & Kekäläinen 2002 for (N)DCG; Burges, "From RankNet to LambdaRank to LambdaMART",
 * MSR-TR-2010-82, §4 for the swap weight.) IDCG is the DCG of the same gains sorted descending,
 * over the whole list (no cutoff).
 */

let discounts = new Float64Array(0);

/**
 * 1 / log2(rank + 1) for ranks 1..n, as a table indexed by rank − 1 (grown on demand, shared; it
 * may be longer than n).
 *
 * @example
 * discountTable(3)[1]; // 1 / log2(3) ≈ 0.6309
 */
export function discountTable(n: number): Float64Array {
  if (discounts.length < n) {
    const size = Math.max(n, 2 * discounts.length, 256);
    const t = new Float64Array(size);
    for (let i = 0; i < size; i++) t[i] = 1 / Math.log2(i + 2);
    discounts = t;
  }
  return discounts;
}

/** 2^g − 1 for g = 0..31 (grades are Avro ints ≤ 31 in practice). */
export const GAINS = Float64Array.from({ length: 32 }, (_, g) => 2 ** g - 1);

/**
 * NDCG gain 2^grade − 1.
 *
 * @example
 * gainOf(0) === 0; gainOf(5) === 31;
 */
export function gainOf(grade: number): number {
  return grade < 32 ? GAINS[grade]! : 2 ** grade - 1;
}

/**
 * Ideal DCG of a list of integer grades (by counting: grades are small integers, so no sort).
 *
 * @example
 * idealDcg(Int32Array.of(0, 1), 2) === 1; // gain 1 at rank 1
 */
export function idealDcg(grades: Int32Array, n: number): number {
  let maxG = 0;
  for (let i = 0; i < n; i++) if (grades[i]! > maxG) maxG = grades[i]!;
  if (maxG === 0) return 0;
  const counts = new Int32Array(maxG + 1);
  for (let i = 0; i < n; i++) counts[grades[i]!]!++;
  const disc = discountTable(n);
  let dcg = 0;
  let r = 0;
  for (let g = maxG; g > 0; g--) {
    const gain = gainOf(g);
    for (let c = counts[g]!; c > 0; c--) dcg += gain * disc[r++]!;
  }
  return dcg;
}
