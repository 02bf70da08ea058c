// The trainer ↔ snapshots seam: checkpoints of a real Trainer become published snapshots, and a
// fresh trainer on an empty machine resumes from the newest snapshot's checkpoint and offsets.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/index.ts';
import { openPublisher } from '../../src/snapshots/publisher.ts';
import { recallForUser } from '../../src/snapshots/recall.ts';
import {
  evaluateSnapshot,
  openTrainerSnapshots,
  positionsToOffsets,
  restoreTrainerCheckpoint,
  TrainerSnapshots,
} from '../../src/snapshots/trainer.ts';
import { initBackend } from '../../src/train/backend.ts';
import { latestCheckpoint } from '../../src/train/checkpoint.ts';
import { fromStored } from '../../src/train/examples.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';
import { EVAL_FILE, type LabelBatch, parseEvalFile, Trainer } from '../../src/train/trainer.ts';
import { tempRoot } from './helpers.ts';

const SOURCE = 'labels.pointwise/0';

const config = parseConfig({
  train: {
    backend: 'cpu',
    dim: 8,
    hidden: [16],
    batchSize: 64,
    shuffleBuffer: 64,
    checkpointEveryExamples: 1500,
    checkpointEveryMs: 3_600_000,
    heldOutPercent: 10,
    keepCheckpoints: 1,
  },
}).train;

/** The paired gate with every tolerance at its maximum: no candidate is rejected. */
const OPEN_GATE = parseConfig({
  snapshots: { gate: { primaryTolerance: 1, secondary: { ndcg_at_10: 1, auc: 1 } } },
}).snapshots.gate;

/** `records` synthetic pointwise label records as batches of 25 from offset `from`. */
async function* batches(
  teacher: SyntheticTeacher,
  from: number,
  records: number,
): AsyncGenerator<LabelBatch> {
  for (let off = from; off < from + records; off += 25) {
    const labels = Array.from({ length: 25 }, () => teacher.next(['pointwise'])).flat();
    yield { source: SOURCE, offset: off, next: off + 25, labels };
  }
}

async function trainer(out: string, snaps: TrainerSnapshots, c = config): Promise<Trainer> {
  let t: Trainer | undefined;
  t = await Trainer.open({
    config: c,
    out,
    onEvent: (e) => {
      if (e.type === 'checkpoint' && t) snaps.onCheckpoint(t.model, e.dir, e.metrics);
    },
  });
  return t;
}

describe('trainer snapshots', () => {
  before(async () => {
    await initBackend('cpu');
  });

  test('positionsToOffsets maps topic/partition sources and keeps the newest epoch', () => {
    assert.deepEqual(
      positionsToOffsets([
        { source: 'labels.pointwise/3', epoch: 0, next: 120 },
        { source: '/data/x.pointwise.ndjson', epoch: 0, next: 9 },
        { source: '/data/x.pointwise.ndjson', epoch: 1, next: 4 },
      ]),
      [
        { topic: 'labels.pointwise', partition: 3, offset: 120 },
        { topic: '/data/x.pointwise.ndjson', partition: 0, offset: 4 },
      ],
    );
  });

  test('checkpoints become snapshots; a fresh trainer resumes from the newest one', async () => {
    const root = tempRoot('rd-snap-trainer-');
    const pub = openPublisher({
      dir: join(root, 'snapshots'),
      registry: join(root, 'snapshots', 'r.sqlite'),
      gateTolerance: 1,
      // this test is about the checkpoint → snapshot → resume path, not the gate: a paired gate that
      // lets every candidate through (a significant drop on a few dozen requests is a real outcome)
      gate: OPEN_GATE,
      modelName: 's',
    });
    const snaps = new TrainerSnapshots(pub);
    const t1 = await trainer(join(root, 'ckpt-a'), snaps);
    const teacher = new SyntheticTeacher({ users: 30, items: 150, clicks: true, seed: 5 });
    await t1.run(batches(teacher, 0, 400));
    const results = await snaps.drain();
    assert.ok(results.length >= 2, `expected at least 2 snapshots, found ${results.length}`);
    assert.deepEqual(
      results.map((r) => r.status),
      results.map(() => 'published'),
    );
    assert.deepEqual(
      results.map((r) => pub.registry.get(r.version)?.parentVersion),
      [null, ...results.slice(0, -1).map((r) => r.version)],
    );
    const latest = pub.latestPublished()!;
    assert.equal(latest.version, results.at(-1)?.version);
    assert.deepEqual(latest.offsets, [{ topic: 'labels.pointwise', partition: 0, offset: 400 }]);
    assert.ok(
      typeof latest.metrics.recall_at_100_of_top10 === 'number' &&
        typeof latest.metrics.ndcg_at_10 === 'number',
    );
    await pub.close();

    // an empty machine: no checkpoint directory, only the (shared) snapshot directory
    const pub2 = openPublisher({
      dir: join(root, 'snapshots'),
      registry: join(root, 'snapshots', 'r.sqlite'),
      gateTolerance: 1,
      modelName: 's',
    });
    const snap = pub2.loadSnapshot('latest');
    const out2 = join(root, 'ckpt-b');
    assert.ok(restoreTrainerCheckpoint(snap, out2));
    const snaps2 = new TrainerSnapshots(pub2, { parentVersion: snap.version });
    const t2 = await trainer(out2, snaps2);
    assert.deepEqual(t2.positions(), [{ source: SOURCE, epoch: 0, next: 400 }]);
    // the resumed model is the snapshot's model: same served item rows (prior included), same recall
    assert.equal(t2.beta, snap.manifest.extra.prior && (snap.manifest.extra.prior as { beta: number }).beta);
    assert.deepEqual(Array.from(t2.model.servedItemVectors()), Array.from(snap.table('items')!.vectors));
    const u = snap.table('users')!.ids[0]!;
    const q = t2.model.servedUserVectors(
      Int32Array.of(t2.model.users.find(u)),
      new Float32Array(config.contextBuckets),
    );
    assert.deepEqual(recallForUser(snap, q, 20).ids, recallForUser(snap, u, 20).ids);
    // it continues from offset 400 and its first snapshot names the resumed one as parent
    await t2.run(batches(teacher, 400, 100));
    const more = await snaps2.drain();
    assert.ok(more.length >= 1);
    const next = pub2.registry.get(more[0]!.version)!;
    assert.equal(next.parentVersion, snap.version);
    assert.deepEqual(pub2.latestPublished()?.offsets, [
      { topic: 'labels.pointwise', partition: 0, offset: 500 },
    ]);
    await pub2.close();
  });

  test('openTrainerSnapshots: restores the current snapshot into an empty checkpoint dir, not over a newer one', async () => {
    const root = tempRoot('rd-snap-open-');
    const cfg = parseConfig({
      train: config,
      snapshots: {
        dir: join(root, 'snapshots'),
        registry: join(root, 'snapshots', 'r.sqlite'),
        gateTolerance: 1,
      },
    });
    const a = openTrainerSnapshots(cfg, { out: join(root, 'a') });
    assert.equal(a.restored, null);
    const t1 = await trainer(join(root, 'a'), a.snaps);
    await t1.run(batches(new SyntheticTeacher({ users: 10, items: 50, seed: 2 }), 0, 150));
    const [first] = await a.snaps.drain();
    await a.close();
    assert.ok(first);

    const b = openTrainerSnapshots(cfg, { out: join(root, 'b') });
    assert.ok(b.restored?.startsWith(join(root, 'b')));
    const t2 = await trainer(join(root, 'b'), b.snaps);
    assert.deepEqual(t2.positions(), [{ source: SOURCE, epoch: 0, next: 150 }]);
    await b.close();
    // the original machine keeps its own (as new) checkpoint
    const c = openTrainerSnapshots(cfg, { out: join(root, 'a') });
    assert.equal(c.restored, null);
    await c.close();
  });

  test('regression (rankdistill up): while the eval set fills, each snapshot is gated against the current one re-evaluated on its set', async () => {
    const root = tempRoot('rd-snap-evalset-');
    const pub = openPublisher({
      dir: join(root, 'snapshots'),
      registry: join(root, 'snapshots', 'r.sqlite'),
      gateTolerance: 0.02,
      modelName: 's',
    });
    const snaps = new TrainerSnapshots(pub);
    const t = await trainer(join(root, 'ckpt'), snaps);
    await t.run(batches(new SyntheticTeacher({ users: 30, items: 150, clicks: true, seed: 8 }), 0, 500));
    const results = await snaps.drain();
    assert.ok(results.length >= 3, `expected at least 3 snapshots, found ${results.length}`);
    const sizes = results.map((r) => pub.registry.get(r.version)!.metrics.eval_requests);
    assert.ok(
      sizes.every((n, i) => i === 0 || n! > sizes[i - 1]!),
      `eval set grows: ${sizes}`,
    );
    // every later snapshot was compared with its predecessor re-evaluated on its own, larger set
    for (const r of results.slice(1)) {
      assert.match(r.note ?? '', /eval set grew from \d+ to \d+ requests: current v\d+ re-evaluated/);
      if (r.status === 'published') assert.equal(pub.registry.get(r.version)?.reason, r.note);
    }
    // the re-evaluation is the trainer's own evaluation: a snapshot evaluated on its own
    // checkpoint's eval set gives exactly the metrics the trainer recorded
    for (const r of results) {
      const snap = pub.loadSnapshot(r.version);
      const stored = parseEvalFile(snap.file(`checkpoint/${EVAL_FILE}`), 'test');
      const again = evaluateSnapshot(
        snap,
        stored.map((x) => fromStored(x, config.contextBuckets)),
      );
      const { eval_set_hash: hash, ...recorded } = snap.manifest.metrics;
      assert.equal(typeof hash, 'number');
      assert.deepEqual(again, recorded);
    }
    await pub.close();
  });

  test('a resumed trainer evaluates on the eval set of its checkpoint (eval.json)', async () => {
    const root = tempRoot('rd-snap-evalresume-');
    const c = { ...config, evalRequests: 12 };
    const pub = openPublisher({
      dir: join(root, 'snapshots'),
      registry: join(root, 'snapshots', 'r.sqlite'),
      gateTolerance: 1,
      modelName: 's',
    });
    const out = join(root, 'ckpt');
    const teacher = new SyntheticTeacher({ users: 30, items: 150, clicks: true, seed: 9 });
    const t1 = await trainer(out, new TrainerSnapshots(pub), c);
    await t1.run(batches(teacher, 0, 300));
    assert.equal(t1.heldOut.size, 12);
    const ck = latestCheckpoint(out)!;
    assert.deepEqual(ck.state.evalSet, t1.heldOut.identity());
    assert.equal(ck.state.metrics.eval_set_hash, t1.heldOut.identity().hash);
    const t2 = await trainer(out, new TrainerSnapshots(pub), c);
    assert.deepEqual(t2.heldOut.identity(), t1.heldOut.identity());
    assert.deepEqual(t2.heldOut.requests(), t1.heldOut.requests());
    // and it stays the same set while the resumed trainer reads on
    await t2.run(batches(teacher, 300, 200));
    assert.deepEqual(t2.heldOut.identity(), t1.heldOut.identity());
    await pub.close();
  });
});
