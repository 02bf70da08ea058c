import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initBackend } from '../../src/train/backend.ts';
import { auc, evaluate, ndcgAt, scoreRequests, servedScorer } from '../../src/train/eval.ts';
import type { EvalRequest } from '../../src/train/examples.ts';
import { StudentModel } from '../../src/train/model.ts';

before(async () => {
  await initBackend('wasm');
});

test('NDCG@k: (2^g − 1)/log2(i + 2), normalised by the ideal order', () => {
  const g = new Map([
    ['a', 1],
    ['b', 3],
  ]);
  assert.equal(ndcgAt(['b', 'a'], g, 10), 1);
  // DCG = 1 + 7/log2 3; IDCG = 7 + 1/log2 3
  const expected = (1 + 7 / Math.log2(3)) / (7 + 1 / Math.log2(3));
  assert.ok(Math.abs(ndcgAt(['a', 'b'], g, 10) - expected) < 1e-12);
  assert.equal(ndcgAt(['x'], new Map([['x', 0]]), 10), 0);
});

test('AUC: pairs won, ties count one half', () => {
  assert.equal(auc([0.9, 0.1, 0.5], [true, false, false]), 1);
  assert.equal(auc([0.1, 0.9], [true, false]), 0);
  assert.equal(auc([0.5, 0.5], [true, false]), 0.5);
  assert.ok(Number.isNaN(auc([1, 2], [true, true])));
});

/** FM, dim 1, no features: user u (e_u = 1) and 150 items, item k scoring k (the top 100: 50..149). */
function catalogModel(): StudentModel {
  const m = new StudentModel({
    kind: 'fm',
    dim: 1,
    hidden: [],
    contextBuckets: 0,
    itemFeatureBuckets: 0,
    optimizer: { kind: 'adagrad', learningRate: 0.1 },
  });
  const u = m.users.row('u');
  m.users.values[u] = 1;
  // 150 items; item k scores k (embedding k, bias 0): the top 100 are items 50..149
  for (let k = 0; k < 150; k++) {
    const r = m.itemRow(`i${k}`);
    m.items.values[r * 2] = k;
    m.items.values[r * 2 + 1] = 0;
  }
  return m;
}

function catalogRequest(): EvalRequest {
  return {
    requestId: 'r',
    user: 'u',
    ctx: new Float32Array(0),
    // teacher top 10: five retrievable (149..145) and five not (0..4)
    teacher: ['i149', 'i148', 'i147', 'i146', 'i145', 'i0', 'i1', 'i2', 'i3', 'i4'],
    grades: new Map([
      ['i149', 1],
      ['i0', 3],
    ]),
    clicks: new Map([
      ['i149', true],
      ['i0', false],
      ['i1', false],
    ]),
  };
}

test('evaluate scores the whole catalog with user · item vectors', () => {
  // FM without features: user vector [e_u, 1], item vector [e_i, b_i]; dim 1 makes scores e_u·e_i + b_i
  const m = catalogModel();
  const req = catalogRequest();
  const r = evaluate(m, [req]);
  assert.equal(r.recall_at_100_of_top10, 0.5);
  assert.equal(r.auc, 1);
  // student order of the candidates: i149 first ... i0 last of the ten
  const expected = ndcgAt(
    ['i149', 'i148', 'i147', 'i146', 'i145', 'i4', 'i3', 'i2', 'i1', 'i0'],
    req.grades,
    10,
  );
  assert.ok(Math.abs(r.ndcg_at_10 - expected) < 1e-12);
  assert.equal(r.eval_requests, 1);
});

test('servedScorer (gate, gauge, snapshot items table) scores with the exposure prior and the served vectors', () => {
  const m = catalogModel();
  const req = catalogRequest();
  // a prior that lifts i0..i4 above every other item: the served score retrieves them
  m.prior = { beta: 1, logQ: (id) => (['i0', 'i1', 'i2', 'i3', 'i4'].includes(id) ? 1000 : 0) };
  const sc = servedScorer(m);
  assert.equal(sc.items.dim, m.servedDim);
  assert.deepEqual(sc.items.vectors, m.servedItemVectors());
  assert.deepEqual(
    sc.userVectors([req]),
    m.servedUserVectors(Int32Array.of(m.users.find('u')), new Float32Array(0)),
  );
  const per = scoreRequests(sc, [req]);
  assert.equal(per.recall_at_100_of_top10[0], 1);
  assert.equal(evaluate(m, [req]).recall_at_100_of_top10, 1);
  // without the prior, the same scorer path finds the five retrievable ones only
  m.prior = null;
  assert.equal(scoreRequests(servedScorer(m), [req]).recall_at_100_of_top10[0], 0.5);
});
