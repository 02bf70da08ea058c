import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { evalSetsDiffer, gate, gateOnEvalSet } from '../../src/snapshots/gate.ts';

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
