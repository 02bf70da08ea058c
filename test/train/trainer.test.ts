import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { trainSchema } from '../../src/config/schema.ts';
import { initBackend } from '../../src/train/backend.ts';
import { latestCheckpoint } from '../../src/train/checkpoint.ts';
import { evaluate } from '../../src/train/eval.ts';
import { HeldOut, type LabelRecord, toUnits, type Unit } from '../../src/train/examples.ts';
import { FrequencyEstimator } from '../../src/train/frequency.ts';
import { mulberry32 } from '../../src/train/hash.ts';
import { StudentModel } from '../../src/train/model.ts';
import { buildPlan, type LossOptions, trainStep } from '../../src/train/step.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';
import { type LabelBatch, Trainer } from '../../src/train/trainer.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'rd-train-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const loss: LossOptions = {
  weights: { pointwise: 1, pairwise: 1, listwise: 1, negatives: 1 },
  listwiseLoss: 'listnet',
  groundTruthLambda: 0.3,
  inBatchNegatives: true,
  sampledNegatives: 8,
  maxAnchors: 64,
};

function evalSet(teacher: SyntheticTeacher, n: number): HeldOut {
  const h = new HeldOut(100, n, 0);
  for (let i = 0; i < n; i++) for (const r of teacher.next(['listwise'])) h.offer(r);
  return h;
}

describe('trainer', () => {
  before(async () => {
    await initBackend('wasm');
  });

  test('a tiny two-tower trained 300 steps retrieves more of the teacher top 10 and orders candidates better', () => {
    const teacher = new SyntheticTeacher({ users: 40, items: 300, candidates: 30, seed: 3 });
    const model = new StudentModel({
      kind: 'two-tower',
      dim: 8,
      hidden: [16],
      contextBuckets: 0,
      itemFeatureBuckets: 0,
      optimizer: { kind: 'adam', learningRate: 0.02 },
    });
    const freq = new FrequencyEstimator(1024);
    const rand = mulberry32(5);
    const units: Unit[] = [];
    const uo = { contextBuckets: 0, itemFeatureBuckets: 0, maxListLength: 30 };
    // see every item once so the catalog is complete before the baseline evaluation
    for (let i = 0; i < 300; i++) model.itemRow(`i${i}`);
    const held = evalSet(new SyntheticTeacher({ users: 40, items: 300, candidates: 30, seed: 3 }), 100);
    const baseline = evaluate(model, held.requests());
    for (let step = 0; step < 300; step++) {
      while (units.length < 64)
        for (const r of teacher.next(['pointwise', 'pairwise', 'listwise'])) units.push(...toUnits(r, uo));
      trainStep(model, buildPlan(model, units.splice(0, 64), freq, loss, rand), loss);
    }
    const trained = evaluate(model, held.requests());
    assert.ok(
      trained.recall_at_100_of_top10 > baseline.recall_at_100_of_top10 + 0.15,
      `recall ${baseline.recall_at_100_of_top10.toFixed(3)} → ${trained.recall_at_100_of_top10.toFixed(3)}`,
    );
    assert.ok(
      trained.ndcg_at_10 > baseline.ndcg_at_10 + 0.1,
      `ndcg ${baseline.ndcg_at_10} → ${trained.ndcg_at_10}`,
    );
  });

  test('the FM student learns too (pairwise + NDCG-weighted listwise)', () => {
    const teacher = new SyntheticTeacher({ users: 30, items: 200, candidates: 20, seed: 4 });
    const model = new StudentModel({
      kind: 'fm',
      dim: 8,
      hidden: [],
      contextBuckets: 4,
      itemFeatureBuckets: 4,
      optimizer: { kind: 'adam', learningRate: 0.05 },
    });
    for (let i = 0; i < 200; i++) model.itemRow(`i${i}`);
    const held = evalSet(new SyntheticTeacher({ users: 30, items: 200, candidates: 20, seed: 4 }), 80);
    const before = evaluate(model, held.requests()).ndcg_at_10;
    const o: LossOptions = { ...loss, listwiseLoss: 'lambda' };
    const freq = new FrequencyEstimator(1024);
    const rand = mulberry32(1);
    const uo = { contextBuckets: 4, itemFeatureBuckets: 4, maxListLength: 20 };
    for (let step = 0; step < 150; step++) {
      const units: Unit[] = [];
      while (units.length < 64)
        for (const r of teacher.next(['pairwise', 'listwise'])) units.push(...toUnits(r, uo));
      trainStep(model, buildPlan(model, units, freq, o, rand), o);
    }
    const after = evaluate(model, held.requests()).ndcg_at_10;
    assert.ok(after > before + 0.2, `ndcg ${before.toFixed(3)} → ${after.toFixed(3)}`);
  });

  test('tensor count stays flat over 1,000 steps (all losses, negatives, evaluation)', () => {
    const teacher = new SyntheticTeacher({ users: 20, items: 100, candidates: 12, seed: 9, clicks: true });
    const model = new StudentModel({
      kind: 'two-tower',
      dim: 4,
      hidden: [4],
      contextBuckets: 2,
      itemFeatureBuckets: 2,
      optimizer: { kind: 'adam', learningRate: 0.01 },
    });
    const freq = new FrequencyEstimator(256);
    const rand = mulberry32(2);
    const uo = { contextBuckets: 2, itemFeatureBuckets: 2, maxListLength: 12 };
    const held = evalSet(new SyntheticTeacher({ users: 20, items: 100, candidates: 12, seed: 9 }), 10);
    let start = -1;
    for (let step = 0; step < 1000; step++) {
      const units: Unit[] = [];
      const kinds: LabelRecord['kind'][] =
        step % 2 === 0 ? ['pointwise', 'listwise'] : ['pairwise', 'listwise'];
      while (units.length < 8) for (const r of teacher.next(kinds)) units.push(...toUnits(r, uo));
      const o: LossOptions = { ...loss, listwiseLoss: step % 3 === 0 ? 'lambda' : 'listnet' };
      trainStep(model, buildPlan(model, units, freq, o, rand), o);
      if (step % 250 === 0) evaluate(model, held.requests());
      if (step === 9) start = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, start);
  });

  test('checkpoint, resume and consume: positions and ranges continue exactly', async () => {
    const out = tmp();
    const config = trainSchema.parse({
      dim: 4,
      hidden: [4],
      batchSize: 32,
      shuffleBuffer: 64,
      contextBuckets: 0,
      itemFeatureBuckets: 0,
      checkpointEveryExamples: 1_000_000,
      frequencyBuckets: 512,
      keepCheckpoints: 0,
      backend: 'wasm',
    });
    const teacher = new SyntheticTeacher({ users: 10, items: 50, seed: 2 });
    const batch = (offset: number, n: number): LabelBatch => {
      const labels: LabelRecord[] = [];
      for (let i = 0; i < n; i++) labels.push(...teacher.next(['pointwise']));
      return { source: 'mem/pointwise', offset, next: offset + n, labels };
    };
    async function* gen(bs: LabelBatch[]) {
      yield* bs;
    }
    const t1 = await Trainer.open({ config, out });
    await t1.run(gen([batch(0, 20), batch(20, 20)]));
    const t2 = await Trainer.open({ config, out });
    assert.deepEqual(t2.positions(), [{ source: 'mem/pointwise', epoch: 0, next: 40 }]);
    assert.equal(t2.examples, t1.examples);
    // same parameters after restore
    assert.deepEqual(
      Array.from(t2.model.items.values.subarray(0, 40)),
      Array.from(t1.model.items.values.subarray(0, 40)),
    );
    assert.deepEqual(
      Array.from(t2.model.dense[0]?.values ?? []),
      Array.from(t1.model.dense[0]?.values ?? []),
    );
    await assert.rejects(t2.run(gen([batch(30, 10)])), /expected records from offset 40/);
    const t3 = await Trainer.open({ config, out });
    await t3.run(gen([batch(40, 10)]));
    const t4 = await Trainer.open({ config, out });
    assert.deepEqual(t4.positions(), [{ source: 'mem/pointwise', epoch: 0, next: 50 }]);
  });

  test('priorBeta auto: beta is chosen on the validation slice (disjoint from eval and training), checkpointed and restored', async () => {
    const out = tmp();
    const config = trainSchema.parse({
      dim: 4,
      hidden: [4],
      batchSize: 32,
      shuffleBuffer: 64,
      contextBuckets: 0,
      itemFeatureBuckets: 0,
      heldOutPercent: 10,
      validationPercent: 20,
      frequencyBuckets: 512,
      priorBetaGrid: [0, 1, 4],
      backend: 'wasm',
    });
    const teacher = new SyntheticTeacher({ users: 10, items: 80, seed: 4 });
    const labels: LabelRecord[] = [];
    for (let i = 0; i < 200; i++) labels.push(...teacher.next(['listwise']));
    async function* gen() {
      yield { source: 'mem/listwise', offset: 0, next: 200, labels } satisfies LabelBatch;
    }
    let metrics: Record<string, number> = {};
    const t1 = await Trainer.open({
      config,
      out,
      onEvent: (e) => {
        if (e.type === 'checkpoint') metrics = e.metrics;
      },
    });
    await t1.run(gen());
    const val = t1.validation.requests().map((r) => r.requestId);
    const evalIds = new Set(t1.heldOut.requests().map((r) => r.requestId));
    assert.ok(val.length > 20, `validation requests: ${val.length}`);
    assert.ok(!val.some((id) => evalIds.has(id)), 'validation and evaluation sets are disjoint');
    // 200 listwise records, one unit each: what was held out or validated was not trained on
    assert.equal(t1.examples, 200 - val.length - evalIds.size);
    // the chosen beta is the grid's best on the validation requests (ties: the smaller)
    const ck = latestCheckpoint(out);
    const prior = ck?.state.prior;
    assert.ok(prior?.validationRecall !== undefined);
    const best = Math.max(...Object.values(prior.validationRecall));
    assert.equal(
      prior.beta,
      Math.min(...[0, 1, 4].filter((b) => prior.validationRecall?.[String(b)] === best)),
    );
    assert.equal(t1.beta, prior.beta);
    // the checkpoint's metrics are measured with that beta
    const m = evaluate(t1.model, t1.heldOut.requests());
    assert.equal(metrics.recall_at_100_of_top10, m.recall_at_100_of_top10);
    // a resumed trainer has the same beta and validation set
    const t2 = await Trainer.open({ config, out });
    assert.equal(t2.beta, prior.beta);
    assert.deepEqual(
      t2.validation.requests().map((r) => r.requestId),
      val,
    );
  });
});
