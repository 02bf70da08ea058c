/**
 * The publication gate. The default is the PAIRED gate ({@link pairedGate}, below): one primary
 * metric compared with the current snapshot on the same held-out requests by a paired bootstrap;
 * a snapshot is rejected only when it is significantly worse. What follows is the absolute gate,
 * kept as the fallback when no per-request values can be paired (snapshots of older versions):
 *
 * A new snapshot is published only when none of its held-out metrics is
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
import type { GateComparison } from '../contracts/types.gen.ts';
import { mulberry32 } from '../train/hash.ts';

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

// ---------------------------------------------------------------------------------------------
// The paired gate: signal against noise.
//
// Why paired: two snapshots evaluated on the same ~1,000 held-out requests differ mostly by which
// requests are easy, not by the model; the per-request DIFFERENCE cancels that, so a real change
// of 0.01 in recall is visible where the spread of the means between checkpoints (±0.03 on click
// AUC on a real log) swamped an absolute tolerance. Why a bootstrap: the per-request values are
// bounded, discrete and skewed (recall of 10 items takes 11 values), so a t interval is shaky on
// small sets; resampling requests makes no distribution assumption and is fast (B·n draws).
//
// The rule, per metric m with tolerance τ_m (primary: `primaryTolerance`, 0 by default):
//   δ = mean over requests of (candidate − current); [lo, hi] = the central `confidence` interval
//   of δ by a paired bootstrap over requests (fixed seed: the same inputs give the same decision).
//   - significantly worse beyond τ: hi < −τ  → blocks (primary and secondary alike);
//   - otherwise, a secondary with hi < 0 or δ < −τ is recorded as a warning, never blocks.
// With equal models, hi < 0 happens with probability (1 − confidence)/2 (2.5% at 0.95): the rate
// at which the primary wrongly rejects a model that is as good (test/snapshots/gate.test.ts).

/** Per-request metric values of one model on an evaluation set, aligned with `ids`. */
export interface RequestScores {
  /** Request ids of the evaluation set, in a fixed order. */
  ids: readonly string[];
  /** Values per metric, aligned with `ids` (NaN: undefined for that request, e.g. AUC without clicks). */
  metrics: Readonly<Record<string, ArrayLike<number>>>;
}

/** Settings of the paired gate (config snapshots.gate). */
export interface PairedGateOptions {
  /** The metric that decides (higher is better). */
  primary: string;
  /** Blocks when the primary's whole interval lies below −primaryTolerance [0]. */
  primaryTolerance: number;
  /** Secondary metrics and their tolerances: block only on a significant drop beyond it. */
  secondary: Readonly<Record<string, number>>;
  /** Level of the central bootstrap interval, e.g. 0.95. */
  confidence: number;
  /** Bootstrap resamples. */
  resamples: number;
  /** Seed of the resampling. */
  seed: number;
}

/**
 * A paired comparison of one metric: the announcement's GateComparison (candidate and current are
 * means over the paired requests, effect δ = candidate − current with its central `confidence`
 * interval lo..hi), with the verdict narrowed: worse when hi < −tolerance, better when lo > 0.
 */
export type MetricComparison = Omit<GateComparison, 'verdict'> & { verdict: 'better' | 'same' | 'worse' };

/** What the gate decided, for the registry, the manifest and the announcement. */
export interface GateSummary {
  decision: 'published' | 'rejected';
  /** paired-bootstrap, absolute (no per-request values to pair: the tolerance gate), or first. */
  method: 'paired-bootstrap' | 'absolute' | 'first';
  /** Version compared with (null: first snapshot). */
  against: number | null;
  confidence: number;
  primary: MetricComparison | null;
  secondary: MetricComparison[];
  warnings: string[];
}

/** {@link GateDecision} with the paired test's summary. */
export interface PairedGateDecision extends GateDecision {
  summary: GateSummary;
}

/**
 * The paired bootstrap of the mean of `diffs`: the mean and the central `confidence` interval
 * (percentile method), from `resamples` resamples of the same size with replacement.
 *
 * @example
 * pairedBootstrap([0.1, -0.1, 0.2, 0], 0.95, 1000, 1); // { mean: 0.05, lo: ≈-0.05, hi: ≈0.15 }
 */
export function pairedBootstrap(
  diffs: ArrayLike<number>,
  confidence: number,
  resamples: number,
  seed: number,
): { mean: number; lo: number; hi: number } {
  const n = diffs.length;
  if (n === 0) return { mean: 0, lo: Number.NEGATIVE_INFINITY, hi: Number.POSITIVE_INFINITY };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += diffs[i] as number;
  const rand = mulberry32(seed);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += diffs[Math.floor(rand() * n)] as number;
    means[b] = s / n;
  }
  means.sort();
  const tail = (1 - confidence) / 2;
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.floor(q * resamples)))] as number;
  return { mean: sum / n, lo: at(tail), hi: at(1 - tail) };
}

/**
 * Compares one metric on the requests both sides scored (paired by request id).
 *
 * @example
 * compareMetric('ndcg_at_10', cand, cur, 0.02, { confidence: 0.95, resamples: 1000, seed: 1 });
 */
export function compareMetric(
  metric: string,
  candidate: RequestScores,
  current: RequestScores,
  tolerance: number,
  o: Pick<PairedGateOptions, 'confidence' | 'resamples' | 'seed'>,
): MetricComparison | null {
  const a = candidate.metrics[metric];
  const b = current.metrics[metric];
  if (a === undefined || b === undefined) return null;
  const row = new Map<string, number>();
  current.ids.forEach((id, i) => {
    row.set(id, i);
  });
  const diffs: number[] = [];
  let sa = 0;
  let sb = 0;
  candidate.ids.forEach((id, i) => {
    const j = row.get(id);
    if (j === undefined) return;
    const x = a[i] as number;
    const y = b[j] as number;
    if (Number.isNaN(x) || Number.isNaN(y)) return;
    diffs.push(x - y);
    sa += x;
    sb += y;
  });
  if (diffs.length === 0) return null;
  const { mean, lo, hi } = pairedBootstrap(diffs, o.confidence, o.resamples, o.seed);
  const n = diffs.length;
  return {
    metric,
    candidate: sa / n,
    current: sb / n,
    effect: mean,
    lo,
    hi,
    requests: n,
    tolerance,
    verdict: hi < -tolerance ? 'worse' : lo > 0 ? 'better' : 'same',
  };
}

/**
 * The paired gate (see the comment above {@link RequestScores}): `candidate` (its held-out metrics
 * and per-request values) against the current snapshot's per-request values on the same requests.
 * Non-finite candidate metrics always fail; the first snapshot passes when they are finite.
 *
 * @example
 * pairedGate(metrics, scores, { version: 3, scores: currentScores }, opts);
 * // { pass: false, reasons: ['recall_at_100_of_top10 significantly worse than v3: δ -0.041 [-0.052, -0.030] (95%, 1000 requests)'], summary }
 */
export function pairedGate(
  candidateMetrics: Readonly<Record<string, number>>,
  candidate: RequestScores,
  current: { version: number; scores: RequestScores } | null,
  o: PairedGateOptions,
): PairedGateDecision {
  const reasons = gate(candidateMetrics, null, 0).reasons; // finite values
  const warnings: string[] = [];
  let primary: MetricComparison | null = null;
  const secondary: MetricComparison[] = [];
  if (current) {
    const opts = { confidence: o.confidence, resamples: o.resamples, seed: o.seed };
    primary = compareMetric(o.primary, candidate, current.scores, o.primaryTolerance, opts);
    if (primary === null)
      warnings.push(`${o.primary}: no request scored by both v${current.version} and the candidate`);
    else if (primary.verdict === 'worse') reasons.push(describe(primary, current.version, o.confidence));
    for (const [name, tol] of Object.entries(o.secondary)) {
      if (name === o.primary) continue;
      const c = compareMetric(name, candidate, current.scores, tol, opts);
      if (c === null) continue;
      secondary.push(c);
      if (c.verdict === 'worse') reasons.push(describe(c, current.version, o.confidence));
      else if (c.hi < 0 || c.effect < -tol) warnings.push(describe(c, current.version, o.confidence));
    }
  }
  const pass = reasons.length === 0;
  return {
    pass,
    reasons,
    summary: {
      decision: pass ? 'published' : 'rejected',
      method: current ? 'paired-bootstrap' : 'first',
      against: current?.version ?? null,
      confidence: o.confidence,
      primary,
      secondary,
      warnings,
    },
  };
}

function describe(c: MetricComparison, version: number, confidence: number): string {
  const what =
    c.verdict === 'worse'
      ? `significantly worse than v${version} beyond tolerance ${c.tolerance}`
      : c.hi < 0
        ? `significantly lower than v${version}, within tolerance ${c.tolerance}`
        : `lower than v${version} by more than ${c.tolerance}, not significant`;
  return `${c.metric} ${what}: δ ${fmt(c.effect)} [${fmt(c.lo)}, ${fmt(c.hi)}] (${Math.round(confidence * 100)}%, ${c.requests} requests)`;
}

/**
 * One line of a gate summary for `snapshots list` / logs, e.g.
 * `recall_at_100_of_top10 δ +0.012 [-0.004, +0.027] vs v3 (same)`.
 */
export function formatGateSummary(g: GateSummary | null): string {
  if (g === null) return '';
  if (g.method === 'first') return 'first snapshot';
  if (g.primary === null) return `${g.method} vs v${g.against ?? '?'}`;
  const p = g.primary;
  const s = (x: number) => (x >= 0 ? `+${x.toFixed(4)}` : x.toFixed(4));
  return `${p.metric} δ ${s(p.effect)} [${s(p.lo)}, ${s(p.hi)}] vs v${g.against ?? '?'} (${p.verdict})${g.warnings.length ? `, ${g.warnings.length} warning(s)` : ''}`;
}
