/** Fixtures and fast-check arbitraries shared by the label generator tests. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type LabelsConfig, labelsSchema } from '../../src/config/schema.ts';
import type { Impression, RankedItem, RankerOutput } from '../../src/contracts/index.ts';
import type { EncodedLabels } from '../../src/labels/encoded.ts';
import { IdIndex } from '../../src/labels/id-index.ts';
import { resolveTeacher, type TeacherView } from '../../src/labels/teacher.ts';

/** Labels config: the defaults with the given overrides (validated by the real schema). */
export function labelsConfig(over: Record<string, unknown> = {}): LabelsConfig {
  return labelsSchema.parse(over);
}

/** A ranker output with items named by `ids` and the given scores (default: 10, 9, 8, …). */
export function ranker(ids: string[], scores?: number[], extra: Partial<RankerOutput> = {}): RankerOutput {
  return {
    request_id: 'req-1',
    user_id: 'user-1',
    ts: 1_000,
    model_version: 'teacher-v7',
    context: { hour: 13 },
    items: ids.map(
      (item_id, i): RankedItem => ({
        item_id,
        score: scores?.[i] ?? 10 - i,
        objectives: null,
        features: { f: i },
      }),
    ),
    ...extra,
  };
}

/** An impression of request req-1 showing `shown` = [item_id, position, clicked][]. */
export function impression(shown: [string, number, boolean][], ts = 2_000): Impression {
  return {
    request_id: 'req-1',
    user_id: 'user-1',
    ts,
    items: shown.map(([item_id, position, clicked]) => ({
      item_id,
      position,
      clicked,
      dwell_ms: null,
      actions: null,
    })),
  };
}

/** |a − b| ≤ 1e-12 for each element, with a readable failure. */
export function near(actual: readonly number[], expected: readonly number[]): void {
  if (actual.length !== expected.length || actual.some((a, i) => Math.abs(a - expected[i]!) > 1e-12)) {
    throw new Error(`expected ${JSON.stringify(expected)}, found ${JSON.stringify(actual)}`);
  }
}

const finiteDouble = fc.double({ min: -50, max: 50, noNaN: true, noDefaultInfinity: true });

/** A valid ranker output of 1..maxN candidates; scores sorted descending when `sorted`. */
export function arbRanker(maxN = 40, sorted = false): fc.Arbitrary<RankerOutput> {
  return fc
    .record({
      request_id: fc.string({ minLength: 1, maxLength: 12 }),
      ts: fc.integer({ min: 0, max: 2 ** 40 }),
      scores: fc.array(fc.oneof(finiteDouble, fc.constantFrom(0, 1, -1)), { minLength: 1, maxLength: maxN }),
      withObjectives: fc.boolean(),
    })
    .map(({ request_id, ts, scores, withObjectives }) => {
      const s = sorted ? [...scores].sort((a, b) => b - a) : scores;
      return {
        request_id,
        user_id: 'u',
        ts,
        model_version: 'v1',
        context: null,
        items: s.map((score, i) => ({
          item_id: `i${i}`,
          score,
          objectives: withObjectives ? { ctr: score / 2, like: -score / 4 } : null,
          features: i % 3 === 0 ? null : { f: i },
        })),
      };
    });
}

/** A joined request: a ranker output and maybe an impression (shown candidates and strangers). */
export function arbJoined(
  maxN = 40,
  sorted = false,
): fc.Arbitrary<{ ranker: RankerOutput; impression: Impression | null }> {
  return arbRanker(maxN, sorted).chain((r) =>
    fc
      .option(
        fc.record({
          shown: fc.subarray(r.items.map((it) => it.item_id)),
          strangers: fc.integer({ min: 0, max: 2 }),
          clicks: fc.array(fc.boolean(), { minLength: 50, maxLength: 50 }),
          ts: fc.integer({ min: 0, max: 2 ** 40 }),
          shuffle: fc.integer({ min: 0, max: 1000 }),
        }),
        { nil: null },
      )
      .map((o) => {
        if (o === null) return { ranker: r, impression: null };
        const ids = [...o.shown, ...Array.from({ length: o.strangers }, (_, k) => `stranger${k}`)];
        // A deterministic permutation of the positions, so shown order ≠ teacher order.
        const positions = ids.map((_, k) => ((k * 7 + o.shuffle) % ids.length) + 1);
        const uniq = new Set(positions).size === positions.length ? positions : ids.map((_, k) => k + 1);
        return {
          ranker: r,
          impression: {
            request_id: r.request_id,
            user_id: r.user_id,
            ts: o.ts,
            items: ids.map((item_id, k) => ({
              item_id,
              position: uniq[k]!,
              clicked: o.clicks[k % 50]!,
              dwell_ms: null,
              actions: null,
            })),
          },
        };
      }),
  );
}

/** Any labels config: every scheme and strategy, small caps. */
export function arbConfig(): fc.Arbitrary<LabelsConfig> {
  return fc
    .record({
      signal: fc.constantFrom('logits', 'rank'),
      fuse: fc.boolean(),
      orderSource: fc.constantFrom('ranker', 'impression'),
      weighting: fc.constantFrom('reciprocal', 'exponential', 'dcg', 'constant'),
      pk: fc.integer({ min: 1, max: 8 }),
      softTargets: fc.boolean(),
      strategy: fc.constantFrom('topk-vs-below', 'adjacent', 'sampled'),
      qk: fc.integer({ min: 1, max: 8 }),
      m: fc.integer({ min: 1, max: 6 }),
      maxPairs: fc.integer({ min: 1, max: 70 }),
      minRankGap: fc.integer({ min: 1, max: 4 }),
      weightByDeltaNdcg: fc.boolean(),
      scheme: fc.constantFrom('buckets', 'logit-quantiles', 'logit-thresholds'),
      bucketSize: fc.integer({ min: 1, max: 6 }),
      maxGrade: fc.integer({ min: 1, max: 6 }),
      levels: fc.integer({ min: 2, max: 8 }),
    })
    .map((c) =>
      labelsConfig({
        teacher: {
          signal: c.signal,
          objectiveWeights: c.fuse ? { ctr: 1, like: 0.5 } : {},
          missingLogits: 'score',
          orderSource: c.orderSource,
        },
        pointwise: { k: c.pk, weighting: c.weighting, softTargets: c.softTargets },
        pairwise: {
          strategy: c.strategy,
          k: c.qk,
          m: c.m,
          maxPairs: c.maxPairs,
          minRankGap: c.minRankGap,
          weightByDeltaNdcg: c.weightByDeltaNdcg,
        },
        listwise: {
          // logit-thresholds needs logits: fall back to quantiles in rank mode.
          scheme: c.signal === 'rank' && c.scheme === 'logit-thresholds' ? 'logit-quantiles' : c.scheme,
          bucketSize: c.bucketSize,
          maxGrade: c.maxGrade,
          levels: c.levels,
          thresholds: [-1, 0, 2.5],
        },
      }),
    );
}

/** The teacher view of a request under `cfg` (validation must pass). */
export function viewOf(r: RankerOutput, imp: Impression | null, cfg: LabelsConfig): TeacherView {
  const ix = new IdIndex();
  if (ix.build(r.items, r.items.length) !== -1) throw new Error('duplicate ids in fixture');
  return resolveTeacher(r, imp, cfg.teacher, ix);
}

/**
 * Two label paths agree: both threw the same message, or each kind is null in both or has the
 * same bytes (compared as latin1 text on a mismatch, so a JSON line's diff is readable).
 */
export function assertSameLabels(a: EncodedLabels | Error, b: EncodedLabels | Error): void {
  if (a instanceof Error || b instanceof Error) {
    assert.ok(a instanceof Error && b instanceof Error, `one path threw: ${String(a)} / ${String(b)}`);
    assert.equal(a.message, b.message);
    return;
  }
  for (const k of ['pointwise', 'pairwise', 'listwise'] as const) {
    const x: Buffer | null = a[k];
    const y: Buffer | null = b[k];
    assert.equal(x === null, y === null, k);
    if (x !== null && y !== null && !x.equals(y)) {
      assert.equal(x.toString('latin1'), y.toString('latin1'), `${k} bytes differ`);
    }
  }
}
