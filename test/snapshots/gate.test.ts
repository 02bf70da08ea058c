import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { compareMetric, evalSetsDiffer, gate, gateOnEvalSet, pairedGate } from '../../src/snapshots/gate.ts';
import { mulberry32 } from '../../src/train/hash.ts';

describe('publication gate', () => {
  const current = {
    version: 3,
    metrics: { recall_at_100_of_top10: 0.5, ndcg_at_10: 0.6, auc: 0.7, loss: 0.3 },
  };

  test('the first snapshot passes when its metrics are finite', () => {
    assert.deepEqual(gate({ ndcg_at_10: 0.1 }, null, 0.02), { pass: true, reasons: [] });
  });

  test('a drop within the tolerance passes, beyond it is rejected with the metric named', () => {
    assert.equal(gate({ ...current.metrics, ndcg_at_10: 0.585 }, current, 0.02).pass, true);
    const d = gate({ ...current.metrics, ndcg_at_10: 0.5 }, current, 0.02);
    assert.equal(d.pass, false);
    assert.equal(d.reasons.length, 1);
    assert.match(d.reasons[0]!, /^ndcg_at_10 0\.5 < 0\.58 \(current v3 0\.6 - tolerance 0\.02\)$/);
  });

  test('loss metrics are lower-is-better', () => {
    assert.equal(gate({ loss: 0.1 }, current, 0.02).pass, true);
    assert.match(gate({ loss: 0.4 }, current, 0.02).reasons[0]!, /^loss 0\.4 > 0\.32/);
  });

  test('non-finite metrics always fail; metrics missing on one side are not compared', () => {
    assert.match(gate({ auc: Number.NaN }, null, 0.02).reasons[0]!, /auc is NaN/);
    assert.equal(gate({ new_metric: 0 }, current, 0.02).pass, true);
    assert.equal(gate({ recall_at_100_of_top10: 0.5 }, current, 0.02).pass, true);
  });

  test('evaluation counts are recorded, never gated', () => {
    assert.equal(
      gate({ eval_requests: 3 }, { version: 1, metrics: { eval_requests: 500 } }, 0.02).pass,
      true,
    );
  });

  test('property: a candidate at least as good on every metric always passes', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.double({ min: 0, max: 1, noNaN: true })),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 0.1, noNaN: true }),
        (prev, up, tol) => {
          const cand = Object.fromEntries(Object.entries(prev).map(([k, v]) => [k, v + up]));
          assert.equal(gate(cand, { version: 1, metrics: prev }, tol).pass, true);
        },
      ),
    );
  });

  describe('like with like: the evaluation set', () => {
    const cur = {
      version: 4,
      metrics: { recall_at_100_of_top10: 0.5, ndcg_at_10: 0.6, eval_requests: 500, eval_set_hash: 111 },
    };
    // regression (rankdistill up): the held-out set grew between two checkpoints, and a good
    // candidate measured on 800 requests was rejected against metrics measured on 500
    const grown = { recall_at_100_of_top10: 0.45, ndcg_at_10: 0.55, eval_requests: 800, eval_set_hash: 222 };

    test('the eval set identity is recorded, never gated', () => {
      assert.equal(gate({ eval_set_hash: 1 }, { version: 1, metrics: { eval_set_hash: 9 } }, 0).pass, true);
      assert.equal(evalSetsDiffer(grown, cur.metrics), true);
      assert.equal(evalSetsDiffer({ ...grown, eval_set_hash: 111, eval_requests: 500 }, cur.metrics), false);
      // no identity on one side (older snapshots): compared as before
      assert.equal(evalSetsDiffer(grown, { ndcg_at_10: 0.6 }), false);
    });

    test('a candidate evaluated on a different set is not rejected for the set difference alone', () => {
      // the current snapshot re-evaluated on the candidate's (harder) set scores like the candidate
      const d = gateOnEvalSet(grown, cur, 0.02, { recall_at_100_of_top10: 0.44, ndcg_at_10: 0.56 });
      assert.equal(d.pass, true, d.reasons.join('; '));
      assert.match(d.note ?? '', /eval set grew from 500 to 800 requests: current v4 re-evaluated/);
      // what the plain gate (the bug) would have done with the same numbers
      assert.equal(gate(grown, cur, 0.02).pass, false);
    });

    test('the re-evaluated current snapshot still rejects a candidate worse on the same requests', () => {
      const d = gateOnEvalSet(grown, cur, 0.02, { recall_at_100_of_top10: 0.6, ndcg_at_10: 0.56 });
      assert.equal(d.pass, false);
      assert.match(d.reasons[0]!, /^recall_at_100_of_top10 0\.45 < 0\.58 \(current v4 0\.6/);
    });

    test('when the current snapshot cannot be re-evaluated, the baseline is re-based, with a note', () => {
      const d = gateOnEvalSet(grown, cur, 0.02, null);
      assert.deepEqual(d, {
        pass: true,
        reasons: [],
        note: 'baseline re-based: eval set grew from 500 to 800 requests (current v4 not re-evaluated)',
      });
      assert.equal(gateOnEvalSet({ ...grown, ndcg_at_10: Number.NaN }, cur, 0.02, null).pass, false);
    });

    test('a degraded model on the same set is still rejected', () => {
      const same = { ...grown, eval_requests: 500, eval_set_hash: 111 };
      const d = gateOnEvalSet(same, cur, 0.02, { recall_at_100_of_top10: 0, ndcg_at_10: 0 });
      assert.equal(d.pass, false);
      assert.equal(d.note, undefined);
      // compared with the recorded metrics, not the (unused) re-evaluation
      assert.equal(d.reasons.length, 2);
      assert.match(d.reasons.join('\n'), /ndcg_at_10 0\.55 < 0\.58 \(current v4 0\.6/);
    });
  });
});

describe('paired gate (bootstrap over requests)', () => {
  // per-request recall of the teacher's top 10: a request difficulty shared by both models (what
  // pairing cancels), then each model's hits drawn independently: binomial(10, p + shift) / 10
  function world(seed: number, n: number, shift: number) {
    const rand = mulberry32(seed);
    const ids: string[] = [];
    const cur: number[] = [];
    const cand: number[] = [];
    const draw = (p: number) => {
      let h = 0;
      for (let k = 0; k < 10; k++) if (rand() < Math.min(1, Math.max(0, p))) h++;
      return h / 10;
    };
    for (let i = 0; i < n; i++) {
      const p = 0.2 + 0.6 * rand();
      ids.push(`r${i}`);
      cur.push(draw(p));
      cand.push(draw(p + shift));
    }
    return {
      candidate: { ids, metrics: { recall_at_100_of_top10: cand, ndcg_at_10: cand } },
      current: { ids, metrics: { recall_at_100_of_top10: cur, ndcg_at_10: cur } },
    };
  }
  const opts = {
    primary: 'recall_at_100_of_top10',
    primaryTolerance: 0,
    secondary: {},
    confidence: 0.95,
    resamples: 400,
    seed: 1,
  };
  const metrics = { recall_at_100_of_top10: 0.5 };

  test('equal models: rejected at about (1 - confidence)/2 over many seeds, never far above', () => {
    const trials = 300;
    let rejected = 0;
    for (let s = 1; s <= trials; s++) {
      const w = world(s, 300, 0);
      if (!pairedGate(metrics, w.candidate, { version: 1, scores: w.current }, opts).pass) rejected++;
    }
    // expected 2.5% (7.5 of 300); a binomial upper tail: 16 or more has probability < 0.005
    assert.ok(rejected / trials <= 0.05, `equal models rejected ${rejected} of ${trials} times`);
  });

  test('a real drop of 0.05 in recall is rejected with the effect and its interval', () => {
    for (let s = 1; s <= 30; s++) {
      const w = world(s, 1000, -0.05);
      const d = pairedGate(metrics, w.candidate, { version: 4, scores: w.current }, opts);
      assert.equal(d.pass, false, `seed ${s}: a drop of 0.05 passed`);
      const p = d.summary.primary;
      assert.ok(p !== null && p.hi < 0 && p.lo <= p.effect && p.effect <= p.hi, JSON.stringify(p));
      assert.ok(Math.abs(p.effect + 0.05) < 0.02, `effect ${p.effect}, expected about -0.05`);
      assert.match(d.reasons[0] ?? '', /recall_at_100_of_top10 significantly worse than v4/);
    }
  });

  test('a better model passes with verdict better; the bootstrap is deterministic for a seed', () => {
    const w = world(7, 1000, 0.05);
    const a = pairedGate(metrics, w.candidate, { version: 2, scores: w.current }, opts);
    const b = pairedGate(metrics, w.candidate, { version: 2, scores: w.current }, opts);
    assert.equal(a.pass, true);
    assert.equal(a.summary.primary?.verdict, 'better');
    assert.deepEqual(a.summary, b.summary);
  });

  test('a secondary drop within its tolerance is a warning; beyond it and significant, it blocks', () => {
    const w = world(3, 1000, 0);
    const drop = (by: number) => ({
      ids: w.candidate.ids,
      metrics: {
        recall_at_100_of_top10: w.current.metrics.recall_at_100_of_top10,
        ndcg_at_10: w.current.metrics.ndcg_at_10.map((x) => x - by),
      },
    });
    const o = { ...opts, secondary: { ndcg_at_10: 0.05 } };
    const small = pairedGate(metrics, drop(0.02), { version: 2, scores: w.current }, o);
    assert.equal(small.pass, true);
    assert.equal(small.summary.warnings.length, 1);
    assert.match(small.summary.warnings[0] ?? '', /ndcg_at_10 significantly lower than v2, within tolerance/);
    const big = pairedGate(metrics, drop(0.1), { version: 2, scores: w.current }, o);
    assert.equal(big.pass, false);
    assert.match(big.reasons[0] ?? '', /ndcg_at_10 significantly worse than v2 beyond tolerance 0.05/);
  });

  test('pairs by request id, skipping requests only one side scored and undefined values', () => {
    const cand = { ids: ['a', 'b', 'c'], metrics: { recall_at_100_of_top10: [0.5, Number.NaN, 1] } };
    const cur = { ids: ['c', 'b', 'x'], metrics: { recall_at_100_of_top10: [0.25, 0.5, 0] } };
    const c = compareMetric('recall_at_100_of_top10', cand, cur, 0, {
      confidence: 0.9,
      resamples: 50,
      seed: 1,
    });
    assert.equal(c?.requests, 1);
    assert.equal(c?.effect, 0.75);
  });

  test('the first snapshot passes when finite; a non-finite metric fails', () => {
    const w = world(1, 10, 0);
    assert.equal(pairedGate(metrics, w.candidate, null, opts).summary.method, 'first');
    assert.equal(pairedGate({ recall_at_100_of_top10: Number.NaN }, w.candidate, null, opts).pass, false);
  });
});
