/**
 * The publication gate: a new snapshot is published only when none of its held-out metrics is
 * worse than the current snapshot's by more than `tolerance` (absolute). Higher is better, except
 * for metrics whose name ends in `loss` (lower is better).
 *
 * Why absolute and per metric: the metrics are rates in [0, 1] (recall of the teacher's top 10 in
 * the student's top 100, NDCG@10, AUC), a 0.02 drop means the same on each, and one bad metric is
 * enough to hold a model back — the evaluation is noisy, so the tolerance absorbs the noise.
 *
 * Counts and identities (names ending in `_requests`, `_count`, `_examples`, `_hash`, e.g.
 * `eval_requests`, `eval_set_hash`) describe the evaluation, not the model: recorded, never gated.
 *
 * Like with like ({@link gateOnEvalSet}): metrics are only comparable when measured on the same
 * requests. The trainer records the identity of its evaluation set in the metrics
 * (`eval_requests` + `eval_set_hash`, src/train/examples.ts HeldOut). When the candidate's set
 * differs from the current snapshot's (the set is still filling, or a trainer restarted without
 * one), the current snapshot is re-evaluated on the candidate's set and the gate compares with
 * that; when it cannot be re-evaluated, the candidate is gated on its own (finite metrics) and the
 * decision says so: "baseline re-based: eval set grew from N to M". Metrics without an identity
 * (older snapshots) are compared as they are.
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
  /**
   * What the candidate was compared with, when it was not the current snapshot's recorded metrics
   * (eval sets differ): re-evaluated on the candidate's set, or a re-based baseline.
   */
  note?: string;
}

const lowerIsBetter = (name: string): boolean => /loss$/i.test(name);
const isCount = (name: string): boolean => /(_requests|_count|_examples|_hash)$/i.test(name);

/** Metric names of the evaluation set's identity (written by the trainer). */
export const EVAL_SET_METRICS = { requests: 'eval_requests', hash: 'eval_set_hash' } as const;

/**
 * Whether two metric sets were measured on different evaluation sets: true when both carry an
 * identity (`eval_set_hash`) and the identities (hash or request count) differ; false when they
 * are equal or either side has none (older snapshots: compared as before).
 *
 * @example
 * evalSetsDiffer({ eval_requests: 600, eval_set_hash: 1 }, { eval_requests: 400, eval_set_hash: 2 }); // true
 */
export function evalSetsDiffer(
  a: Readonly<Record<string, number>>,
  b: Readonly<Record<string, number>>,
): boolean {
  const { requests, hash } = EVAL_SET_METRICS;
  if (a[hash] === undefined || b[hash] === undefined) return false;
  return a[hash] !== b[hash] || a[requests] !== b[requests];
}

/**
 * The gate with the evaluation set taken into account (see the module comment):
 * - same set (or no identity): {@link gate} against the current snapshot's recorded metrics;
 * - different sets and `reevaluated` (the current snapshot's metrics on the candidate's set):
 *   {@link gate} against those, with a note naming both sets;
 * - different sets and nothing re-evaluated: the candidate passes when its metrics are finite,
 *   with the note `baseline re-based: eval set grew from N to M` (never silently).
 *
 * @example
 * gateOnEvalSet({ ndcg_at_10: 0.5, eval_requests: 800, eval_set_hash: 9 },
 *   { version: 2, metrics: { ndcg_at_10: 0.6, eval_requests: 500, eval_set_hash: 4 } }, 0.02, null);
 * // { pass: true, reasons: [], note: 'baseline re-based: eval set grew from 500 to 800 requests (current v2 not re-evaluated)' }
 */
export function gateOnEvalSet(
  candidate: Readonly<Record<string, number>>,
  current: { version: number; metrics: Readonly<Record<string, number>> } | null,
  tolerance: number,
  reevaluated: Readonly<Record<string, number>> | null,
): GateDecision {
  if (current === null || !evalSetsDiffer(candidate, current.metrics))
    return gate(candidate, current, tolerance);
  const from = current.metrics[EVAL_SET_METRICS.requests];
  const to = candidate[EVAL_SET_METRICS.requests];
  const sets =
    from !== undefined && to !== undefined && to > from
      ? `eval set grew from ${from} to ${to} requests`
      : `eval set changed (${from ?? '?'} → ${to ?? '?'} requests)`;
  if (reevaluated !== null) {
    const d = gate(candidate, { version: current.version, metrics: reevaluated }, tolerance);
    return { ...d, note: `${sets}: current v${current.version} re-evaluated on the candidate's set` };
  }
  const d = gate(candidate, null, tolerance);
  return { ...d, note: `baseline re-based: ${sets} (current v${current.version} not re-evaluated)` };
}

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
