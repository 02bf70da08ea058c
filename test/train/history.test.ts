// The behaviour user tower: the history store (a request's own items never in its history), the
// history state across a restart from a snapshot (equal to what a replay of the same labels
// rebuilds), and serving a user the snapshot never saw from a history given at query time.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/index.ts';
import { userVectorFromHistory } from '../../src/snapshots/history.ts';
import { openPublisher } from '../../src/snapshots/publisher.ts';
import { recallForUser } from '../../src/snapshots/recall.ts';
import { restoreTrainerCheckpoint, TrainerSnapshots } from '../../src/snapshots/trainer.ts';
import { initBackend } from '../../src/train/backend.ts';
import type { LabelRecord } from '../../src/train/examples.ts';
import { HistoryStore, recordItems } from '../../src/train/history.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';
import { type LabelBatch, Trainer } from '../../src/train/trainer.ts';
import { tempRoot } from '../snapshots/helpers.ts';

const config = parseConfig({
  train: {
    backend: 'cpu',
    dim: 8,
    hidden: [16],
    batchSize: 64,
    shuffleBuffer: 64,
    contextBuckets: 0,
    itemFeatureBuckets: 0,
    checkpointEveryExamples: 4000,
    checkpointEveryMs: 3_600_000,
    heldOutPercent: 5,
    keepCheckpoints: 1,
    historyLength: 8,
    historyTopK: 3,
    learningRate: 0.02,
  },
}).train;

/** The label records of `n` synthetic requests (pointwise + listwise), in stream order. */
function records(seed: number, n: number, o: { users?: number; items?: number } = {}): LabelRecord[] {
  const t = new SyntheticTeacher({ users: o.users ?? 40, items: o.items ?? 120, candidates: 20, k: 3, seed });
  return Array.from({ length: n }, () => t.next(['pointwise', 'listwise'])).flat();
}

async function* batches(
  recs: readonly LabelRecord[],
  from = 0,
  to = recs.length,
): AsyncGenerator<LabelBatch> {
  for (let off = from; off < to; off += 20) {
    const next = Math.min(to, off + 20);
    yield { source: 'mem/labels', offset: off, next, labels: recs.slice(off, next) };
  }
}

/** A trainer whose checkpoints are published as snapshots under `root`. */
async function publishingTrainer(root: string, c: typeof config) {
  const pub = openPublisher({
    dir: join(root, 'snapshots'),
    registry: join(root, 'snapshots', 'r.sqlite'),
    gateTolerance: 1,
    modelName: 's',
  });
  const snaps = new TrainerSnapshots(pub);
  let t: Trainer | undefined;
  t = await Trainer.open({
    config: c,
    out: join(root, 'ckpt-a'),
    onEvent: (e) => {
      if (e.type === 'checkpoint' && t) snaps.onCheckpoint(t.model, e.dir, e.metrics);
    },
  });
  return { pub, snaps, trainer: t };
}

describe('behaviour user tower', () => {
  before(async () => {
    await initBackend('cpu');
  });

  test("HistoryStore: positives newest last, bounded, and never the request's own items", () => {
    const h = new HistoryStore({ length: 3, topK: 2 });
    const rec = (req: string, items: [string, number, boolean | null][]): LabelRecord => ({
      kind: 'pointwise',
      value: {
        id: `${req}:pointwise`,
        request_id: req,
        user_id: 'u1',
        ts: 0,
        model_version: 'm',
        matched: true,
        context: null,
        items: items.map(([item_id, rank, clicked]) => ({
          item_id,
          rank,
          label: 0,
          weight: 1,
          teacher_logit: 0,
          soft_target: null,
          clicked,
          features: null,
        })),
      },
    });
    // ranks 1-2 and the clicked item are positives; rank 3 unclicked is not
    h.observe(
      rec('r1', [
        ['a', 1, false],
        ['b', 2, false],
        ['c', 3, false],
        ['d', 4, true],
      ]),
    );
    assert.deepEqual(h.before('u1'), ['a', 'b', 'd']);
    h.observe(
      rec('r2', [
        ['e', 1, null],
        ['a', 2, null],
      ]),
    );
    // bounded to 3, 'a' moved to the newest end
    assert.deepEqual(h.before('u1'), ['d', 'e', 'a']);
    // request r2's own entries and a given item set are left out
    assert.deepEqual(h.before('u1', undefined, 'r2'), ['d']);
    assert.deepEqual(h.before('u1', new Set(['e'])), ['d', 'a']);
    assert.deepEqual(
      recordItems(
        rec('r3', [
          ['x', 1, null],
          ['y', 2, null],
        ]),
      ),
      new Set(['x', 'y']),
    );
    const copy = new HistoryStore({ length: 3, topK: 2 });
    copy.restore(JSON.parse(JSON.stringify(h.toJSON())));
    assert.deepEqual(copy.toJSON(), h.toJSON());
  });

  test('history state survives a restart from a snapshot and equals what a replay rebuilds', async () => {
    const root = tempRoot('rd-history-');
    const recs = records(21, 600);
    const half = 600; // records 0..599 before the restart, 600..1199 after
    const { pub, snaps, trainer: t1 } = await publishingTrainer(root, config);
    await t1.run(batches(recs, 0, half));
    const results = await snaps.drain();
    assert.ok(results.length >= 1);
    const snap = pub.loadSnapshot('latest');
    // the snapshot carries the users' histories: the trainer's state at its checkpoint
    const exported = JSON.parse(snap.file('history.json').toString('utf8')) as [string, string[]][];
    assert.ok(exported.length > 10, `users with a history: ${exported.length}`);

    // an empty machine resumes from the snapshot and consumes the rest
    const out2 = join(root, 'b');
    assert.ok(restoreTrainerCheckpoint(snap, out2));
    const t2 = await Trainer.open({ config, out: out2 });
    assert.deepEqual(t2.history?.toJSON(), t1.history?.toJSON(), 'restored = the state at the checkpoint');
    await t2.run(batches(recs, half, recs.length));

    // a replay of the same labels from the start, in one run
    const t3 = await Trainer.open({ config, out: join(root, 'c') });
    await t3.run(batches(recs));
    assert.deepEqual(t2.history?.toJSON(), t3.history?.toJSON(), 'resumed = replayed');
    // and both equal the store fed the training records directly (held-out/validation ones skipped)
    const direct = new HistoryStore({ length: config.historyLength, topK: config.historyTopK });
    const skipped = new Set([
      ...t3.heldOut.requests().map((r) => r.requestId),
      ...t3.validation.requests().map((r) => r.requestId),
    ]);
    for (const r of recs) if (!skipped.has(r.value.request_id)) direct.observe(r);
    assert.deepEqual(t3.history?.toJSON(), direct.toJSON());
    await pub.close();
  });

  test("a user absent from training, given a history, gets a vector that ranks the history's neighbours above random items", async () => {
    const root = tempRoot('rd-history-new-');
    const teacher = new SyntheticTeacher({ users: 40, items: 120, candidates: 20, k: 3, seed: 33 });
    const recs = Array.from({ length: 2500 }, () => teacher.next(['pointwise', 'listwise'])).flat();
    const c = { ...config, userIdEmbedding: false, checkpointEveryExamples: 1_000_000 };
    const { pub, snaps, trainer: t } = await publishingTrainer(root, c);
    await t.run(batches(recs));
    await snaps.drain();
    const snap = pub.loadSnapshot('latest');
    // probe users: the teacher's latent users, queried under ids the snapshot never saw, with
    // their 3 best items as the history; neighbours: their next 15 best items
    let neighbourRank = 0;
    let randomRank = 0;
    let n = 0;
    const all = 120;
    for (let u = 0; u < 10; u++) {
      const byScore = Array.from({ length: all }, (_, i) => i).sort(
        (a, b) => teacher.score(u, b) - teacher.score(u, a),
      );
      const history = byScore.slice(0, 3).map((i) => `i${i}`);
      const neighbours = byScore.slice(3, 18).map((i) => `i${i}`);
      const { vector, userKnown, used } = await userVectorFromHistory(snap, { user: `new-${u}`, history });
      assert.equal(userKnown, false);
      assert.equal(used, 3);
      const ranking = recallForUser(snap, vector, snap.manifest.model.numItems).ids;
      const pos = new Map(ranking.map((id, i) => [id, i]));
      const rest = ranking.filter((id) => !history.includes(id));
      for (const id of neighbours) neighbourRank += pos.get(id) ?? ranking.length;
      for (const id of rest) randomRank += pos.get(id) ?? ranking.length;
      n += rest.length;
    }
    const meanNeighbour = neighbourRank / (10 * 15);
    const meanRandom = randomRank / n;
    assert.ok(
      meanNeighbour < 0.6 * meanRandom,
      `mean rank of the neighbours ${meanNeighbour.toFixed(1)} vs any item ${meanRandom.toFixed(1)}`,
    );
    await pub.close();
  });
});
