/**
 * The publication gate: a new snapshot is published only when none of its held-out metrics is
 * worse than the current snapshot's by more than `tolerance` (absolute). Higher is better, except
 * for metrics whose name ends in `loss` (lower is better).
 *
 * Why absolute and per metric: the metrics are rates in [0, 1] (recall of the teacher's top 10 in
 * the student's top 100, NDCG@10, AUC), a 0.02 drop means the same on each, and one bad metric is
 * enough to hold a model back — the evaluation is noisy, so the tolerance absorbs the noise.
 *
 * Counts (names ending in `_requests`, `_count`, `_examples`, e.g. `eval_requests`) describe the
 * evaluation, not the model: recorded, never gated.
 *
 * Metrics missing on one side are not compared (a new metric must not block a snapshot; AUC only
 * exists where clicks exist), but a non-finite metric always fails, and the first snapshot passes
 * when its metrics are finite.
 *
 * Pure: no I/O.
 */

export interface GateDecision {
  pass: boolean;
  /** One line per failed metric, e.g. `ndcg_at_10 0.41 < current 0.52 - tolerance 0.02 (v3)`. */
  reasons: string[];
}

const lowerIsBetter = (name: string): boolean => /loss$/i.test(name);
const isCount = (name: string): boolean => /(_requests|_count|_examples)$/i.test(name);

/**
 * Decides whether `candidate` may replace `current` (null when nothing is published yet).
 *
 * @example
 * gate({ ndcg_at_10: 0.4 }, { version: 3, metrics: { ndcg_at_10: 0.5 } }, 0.02);
 * // { pass: false, reasons: ['ndcg_at_10 0.4 < 0.48 (current v3 0.5 - tolerance 0.02)'] }
 */
export function gate(
  candidate: Readonly<Record<string, number>>,
  current: { version: number; metrics: Readonly<Record<string, number>> } | null,
  tolerance: number,
): GateDecision {
  const reasons: string[] = [];
  for (const [name, value] of Object.entries(candidate)) {
    if (isCount(name)) continue;
    if (!Number.isFinite(value)) reasons.push(`${name} is ${value}, expected a finite number`);
  }
  if (current) {
    for (const [name, value] of Object.entries(candidate)) {
      if (isCount(name)) continue;
      const prev = current.metrics[name];
      if (prev === undefined || !Number.isFinite(prev) || !Number.isFinite(value)) continue;
      if (lowerIsBetter(name)) {
        const bound = prev + tolerance;
        if (value > bound)
          reasons.push(
            `${name} ${fmt(value)} > ${fmt(bound)} (current v${current.version} ${fmt(prev)} + tolerance ${tolerance})`,
          );
      } else {
        const bound = prev - tolerance;
        if (value < bound)
          reasons.push(
            `${name} ${fmt(value)} < ${fmt(bound)} (current v${current.version} ${fmt(prev)} - tolerance ${tolerance})`,
          );
      }
    }
  }
  return { pass: reasons.length === 0, reasons };
}

function fmt(x: number): string {
  return Number(x.toPrecision(6)).toString();
}
