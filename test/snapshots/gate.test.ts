import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { gate } from '../../src/snapshots/gate.ts';

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
});
