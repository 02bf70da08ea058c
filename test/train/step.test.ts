import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/train/backend.ts';
import { type LabelRecord, toUnits, type Unit } from '../../src/train/examples.ts';
import { FrequencyEstimator } from '../../src/train/frequency.ts';
import { mulberry32 } from '../../src/train/hash.ts';
import { StudentModel } from '../../src/train/model.ts';
import { buildPlan, type LossOptions, trainStepAutodiff, twoTowerStep } from '../../src/train/step.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';

const maxDiff = (a: Float32Array, b: Float32Array): number => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
};

function model(hidden: number[], features: number): StudentModel {
  return new StudentModel({
    kind: 'two-tower',
    dim: 6,
    hidden,
    contextBuckets: features,
    itemFeatureBuckets: features,
    // adagrad: its step is proportional to small gradients (Adam's m/√v would amplify float noise)
    optimizer: { kind: 'adagrad', learningRate: 1 },
  });
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`two-tower step on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
    });

    const cases: { name: string; hidden: number[]; features: number; kinds: LabelRecord['kind'][] }[] = [
      {
        name: 'one hidden layer, features, all label kinds',
        hidden: [8],
        features: 3,
        kinds: ['pointwise', 'pairwise', 'listwise'],
      },
      { name: 'two hidden layers, pointwise only', hidden: [10, 4], features: 0, kinds: ['pointwise'] },
      { name: 'no hidden layer, listwise only', hidden: [], features: 2, kinds: ['listwise'] },
    ];
    for (const c of cases) {
      test(`hand-written tower gradients equal tfjs autodiff over 5 steps (${c.name})`, () => {
        const loss: LossOptions = {
          weights: { pointwise: 1, pairwise: 0.5, listwise: 1, negatives: 0.7 },
          listwiseLoss: 'listnet',
          groundTruthLambda: 0.2,
          inBatchNegatives: true,
          sampledNegatives: 4,
          maxAnchors: 16,
        };
        const teacher = new SyntheticTeacher({ users: 15, items: 60, candidates: 10, seed: 7, clicks: true });
        const uo = { contextBuckets: c.features, itemFeatureBuckets: c.features, maxListLength: 10 };
        const batches: Unit[][] = [];
        for (let s = 0; s < 5; s++) {
          const units: Unit[] = [];
          while (units.length < 40) for (const r of teacher.next(c.kinds)) units.push(...toUnits(r, uo));
          batches.push(units);
        }
        const fast = model(c.hidden, c.features);
        const ref = model(c.hidden, c.features);
        const fastFreq = new FrequencyEstimator(128);
        const refFreq = new FrequencyEstimator(128);
        const fastRand = mulberry32(11);
        const refRand = mulberry32(11);
        const before = tf.memory().numTensors;
        for (const b of batches) {
          const lf = twoTowerStep(fast, buildPlan(fast, b, fastFreq, loss, fastRand), loss);
          const lr = trainStepAutodiff(ref, buildPlan(ref, b, refFreq, loss, refRand), loss);
          assert.ok(Math.abs(lf - lr) < 1e-4, `loss ${lf} vs ${lr}`);
        }
        assert.equal(tf.memory().numTensors, before);
        fast.dense.forEach((p, k) => {
          const d = maxDiff(p.values, (ref.dense[k] as typeof p).values);
          assert.ok(d < 1e-5, `${p.name}: max difference ${d}`);
        });
        assert.ok(maxDiff(fast.users.state().values, ref.users.state().values) < 1e-5, 'user table');
        assert.ok(maxDiff(fast.items.state().values, ref.items.state().values) < 1e-5, 'item table');
        // the step did train: the parameters moved away from a fresh model's
        const moved = maxDiff(
          fast.dense[0]?.values as Float32Array,
          model(c.hidden, c.features).dense[0]?.values as Float32Array,
        );
        assert.ok(moved > 1e-4, `first kernel moved by ${moved}`);
      });
    }
  });
}
