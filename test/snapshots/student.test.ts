// The StudentModel → snapshot adapter: the exported tables and the tfjs user tower reproduce the
// trainer's own served vectors, for both model kinds, and their dot product is the trainer's score
// with the exposure prior β·logQ(item) included.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { openPublisher } from '../../src/snapshots/publisher.ts';
import { recallForUser, topK } from '../../src/snapshots/recall.ts';
import { studentSnapshotInput } from '../../src/snapshots/student.ts';
import { loadSnapshotModel } from '../../src/snapshots/tfjs.ts';
import { initBackend } from '../../src/train/backend.ts';
import { servedScore } from '../../src/train/eval.ts';
import { type ModelKind, StudentModel } from '../../src/train/model.ts';
import { tempRoot } from './helpers.ts';

function model(kind: ModelKind): StudentModel {
  const m = new StudentModel({
    kind,
    dim: 6,
    hidden: [5],
    contextBuckets: 3,
    itemFeatureBuckets: 0,
    optimizer: { kind: 'adam', learningRate: 0.01 },
    seed: 3,
  });
  for (let u = 0; u < 12; u++) m.users.row(`u${u}`);
  for (let i = 0; i < 40; i++) m.itemRow(`i${i}`);
  // an exposure prior that differs per item (a stand-in for FrequencyEstimator.logQ)
  m.prior = { beta: 1.5, logQ: (id) => -1 - (Number(id.slice(1)) % 7) * 0.4 };
  // give the FM a non-trivial context factor and item bias so the export is really checked
  for (const p of m.dense)
    for (let k = 0; k < p.values.length; k++) p.values[k] = Math.sin(k + p.name.length) * 0.3;
  return m;
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${i}: ${a[i]} vs ${b[i]}`);
};

describe('student snapshot adapter', () => {
  before(async () => {
    await initBackend('cpu');
  });

  for (const kind of ['two-tower', 'fm'] as const) {
    test(`${kind}: tables and the tfjs user tower reproduce the model's vectors and recall`, async () => {
      const m = model(kind);
      const root = tempRoot();
      const pub = openPublisher({
        dir: root,
        registry: join(root, 'r.sqlite'),
        gateTolerance: 0.02,
        modelName: 's',
      });
      const input = await studentSnapshotInput(m, {
        offsets: [{ topic: 'labels.pointwise', partition: 0, offset: 42 }],
        metrics: { recall_at_100_of_top10: 0.3, ndcg_at_10: 0.4, auc: undefined, eval_requests: 10 },
        parentVersion: null,
        files: [{ name: 'checkpoint/state.bin', data: new Uint8Array(8) }],
      });
      assert.deepEqual(Object.keys(input.metrics).sort(), [
        'eval_requests',
        'ndcg_at_10',
        'recall_at_100_of_top10',
      ]);
      const r = await pub.maybePublish(input);
      const snap = pub.loadSnapshot(r.version);
      assert.equal(snap.manifest.model.dim, m.outDim + 1);
      assert.deepEqual(snap.manifest.extra.prior, { kind: 'beta*logQ', beta: 1.5, column: m.outDim });

      const items = snap.table('items')!;
      assert.deepEqual(items.ids, [...m.items.ids]);
      assert.deepEqual(Array.from(items.vectors), Array.from(m.servedItemVectors()));

      const rows = Int32Array.from({ length: 12 }, (_, i) => i);
      const users = snap.table('users')!;
      assert.deepEqual(
        Array.from(users.vectors),
        Array.from(m.servedUserVectors(rows, new Float32Array(12 * 3))),
      );

      // the exported dot product IS the trainer's score: ⟨u, v_i⟩ + β·logQ(i), computed here from
      // the model's own (unserved) vectors and the prior
      const plainU = m.userVectors(rows, new Float32Array(12 * 3));
      const plainI = m.itemVectors();
      const d = m.outDim;
      const W = items.dim;
      for (const u of [0, 5, 11])
        for (const i of [0, 3, 17, 39]) {
          let want = 1.5 * (-1 - (i % 7) * 0.4);
          for (let k = 0; k < d; k++) want += plainU[u * d + k]! * plainI[i * d + k]!;
          let got = 0;
          for (let k = 0; k < W; k++) got += users.vectors[u * W + k]! * items.vectors[i * W + k]!;
          assert.ok(Math.abs(got - want) < 1e-4, `user ${u} item ${i}: table ${got} vs trainer ${want}`);
          assert.ok(
            Math.abs(servedScore(users.vectors, u * W, items.vectors, i * W, W) - want) < 1e-4,
            'servedScore is the same product',
          );
        }

      // the tower on [e_u ‖ ctx] with a real context equals the trainer's user vectors
      const ctx = Float32Array.from({ length: 12 * 3 }, (_, i) => Math.cos(i));
      const emb = snap.table('user_embeddings')!;
      const x = new Float32Array(12 * 9);
      for (let u = 0; u < 12; u++) {
        x.set(emb.vectors.subarray(u * 6, u * 6 + 6), u * 9);
        x.set(ctx.subarray(u * 3, u * 3 + 3), u * 9 + 6);
      }
      const tower = await loadSnapshotModel(snap, 'user_tower');
      const out = (tower.predict(tf.tensor2d(x, [12, 9])) as tf.Tensor).dataSync();
      close(out, m.servedUserVectors(rows, ctx));

      // recall from the snapshot = recall from the model's own served vectors
      const q = m.servedUserVectors(Int32Array.of(4), new Float32Array(3));
      const expected = topK(m.servedItemVectors(), m.servedDim, q, 10);
      const got = recallForUser(snap, 'u4', 10);
      assert.deepEqual(
        got.ids,
        Array.from(expected.rows, (row) => m.items.ids[row]),
      );
      await pub.close();
    });
  }
});
