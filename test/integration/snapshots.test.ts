// Snapshots end to end against the real broker (KAFKA_BROKERS):
//   synthetic teacher labels → Kafka label topic → subscribeLabels → Trainer (checkpoints) →
//   TrainerSnapshots → snapshots/v<N> + registry + SnapshotAnnouncement on the snapshots topic →
//   a separate reader of the announcement topic loads the announced snapshot and answers recall.
//
// The trainer has no Kafka input of its own yet (src/train/sources.ts reads files), so this test
// feeds Trainer.run() from the label client (src/client): one LabelBatch per message, source
// `topic/partition`, which is exactly the shape a Kafka source of the trainer would produce.
//
// Run:  KAFKA_BROKERS=127.0.0.1:9092 node --import tsx --test test/integration/snapshots.test.ts
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Admin, Kafka, logLevel, Partitioners } from 'kafkajs';
import { subscribeLabels } from '../../src/client/index.ts';
import { parseConfig } from '../../src/config/index.ts';
import { encodeAvro } from '../../src/contracts/index.ts';
import { kafkaAnnouncer, readAnnouncements } from '../../src/snapshots/announcer.ts';
import { openPublisher } from '../../src/snapshots/publisher.ts';
import { recallForUser } from '../../src/snapshots/recall.ts';
import { loadSnapshotDir, sha256Hex } from '../../src/snapshots/store.ts';
import { TrainerSnapshots } from '../../src/snapshots/trainer.ts';
import { initBackend } from '../../src/train/backend.ts';
import type { LabelRecord } from '../../src/train/examples.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';
import { type LabelBatch, Trainer } from '../../src/train/trainer.ts';
import { tempRoot } from '../snapshots/helpers.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

const REQUESTS = 480;
const PARTITIONS = 2;

const trainConfig = parseConfig({
  train: {
    backend: 'cpu',
    dim: 8,
    hidden: [16],
    batchSize: 64,
    shuffleBuffer: 64,
    checkpointEveryExamples: 2500,
    checkpointEveryMs: 3_600_000,
    heldOutPercent: 10,
  },
}).train;

describe('snapshots through the real broker', () => {
  let kafka: Kafka;
  let admin: Admin;
  const topics: string[] = [];

  before(async () => {
    kafka = new Kafka({ clientId: 'rd-snapshots-it', brokers: brokersFromEnv(), logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
    await initBackend('cpu');
  });

  after(async () => {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {});
    await admin.disconnect();
  });

  test('labels in → at least two announced snapshots; a reader of the topic loads one and answers recall', async () => {
    const labelsTopic = uniqueTopic('rd-it-labels.pointwise');
    const snapshotsTopic = uniqueTopic('rd-it-student-snapshots');
    topics.push(labelsTopic, snapshotsTopic);
    await admin.createTopics({
      topics: [
        { topic: labelsTopic, numPartitions: PARTITIONS, replicationFactor: 1 },
        { topic: snapshotsTopic, numPartitions: 1, replicationFactor: 1 },
      ],
      waitForLeaders: true,
    });

    // labels in: the synthetic teacher's pointwise labels, keyed by user as the labeler writes them
    const teacher = new SyntheticTeacher({ users: 40, items: 200, clicks: true, seed: 11 });
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const records = Array.from({ length: REQUESTS }, () => teacher.next(['pointwise'])[0] as LabelRecord);
    await producer.send({
      topic: labelsTopic,
      messages: records.map((r) => ({
        key: r.value.user_id,
        value: encodeAvro('PointwiseLabels', r.value as never),
      })),
    });
    await producer.disconnect();

    // the trainer, fed from the label topic, snapshotting every checkpoint
    const root = tempRoot('rd-it-snap-');
    const pub = openPublisher({
      dir: join(root, 'snapshots'),
      registry: join(root, 'snapshots', 'registry.sqlite'),
      gateTolerance: 1, // the gate itself is covered by test/snapshots/publisher.test.ts
      modelName: 'student-it',
      announcer: kafkaAnnouncer(kafka, snapshotsTopic),
    });
    const snaps = new TrainerSnapshots(pub);
    let trainer: Trainer | undefined;
    trainer = await Trainer.open({
      config: trainConfig,
      out: join(root, 'ckpt'),
      onEvent: (e) => {
        if (e.type === 'checkpoint' && trainer) snaps.onCheckpoint(trainer.model, e.dir, e.metrics);
      },
    });
    const labels = subscribeLabels({
      brokers: brokersFromEnv(),
      kind: 'pointwise',
      topic: labelsTopic,
      groupId: uniqueTopic('rd-it-trainer'),
      commitEvery: 50,
    });
    async function* fromKafka(): AsyncGenerator<LabelBatch> {
      let n = 0;
      for await (const m of labels) {
        const offset = Number(m.offset);
        yield {
          source: `${m.topic}/${m.partition}`,
          offset,
          next: offset + 1,
          labels: [{ kind: 'pointwise', value: m.value }],
        };
        if (++n === REQUESTS) break;
      }
      await labels.close();
    }
    const summary = await trainer.run(fromKafka());
    const results = await snaps.drain();
    await pub.close();
    assert.equal(summary.records, REQUESTS);
    assert.ok(results.length >= 2, `expected at least two snapshots, found ${results.length}`);
    assert.ok(results.every((r) => r.status === 'published' && r.announced));
    console.log(`snapshots published and announced: ${results.map((r) => `v${r.version}`).join(', ')}`);

    // a separate reader of the announcement topic
    const read = await readAnnouncements(kafka, snapshotsTopic, { timeoutMs: 30_000 });
    assert.equal(read.length, results.length);
    const anns = read.map((a) => {
      assert.ok(a.ok, a.ok ? '' : a.error);
      assert.equal(a.key, 'student-it');
      return a.value;
    });
    assert.deepEqual(
      anns.map((a) => a.version),
      results.map((r) => r.version),
    );
    for (const a of anns) {
      assert.equal(a.status, 'published');
      assert.ok(
        a.files.some((f) => f.name === 'manifest.json') && a.files.some((f) => f.name === 'items.f32'),
      );
      for (const f of a.files)
        assert.equal(sha256Hex(readFileSync(join(a.path, f.name))), f.sha256, `v${a.version} ${f.name}`);
      assert.ok(typeof a.metrics.recall_at_100_of_top10 === 'number');
    }
    const last = anns.at(-1)!;
    // the offsets of the last snapshot cover every label consumed (next offset per partition)
    assert.equal(
      last.offsets.reduce((s, o) => s + o.offset, 0),
      REQUESTS,
    );
    assert.ok(last.offsets.every((o) => o.topic === labelsTopic));

    // the recall service: load the announced snapshot (checksums checked against the announcement)
    const snap = loadSnapshotDir(last.path, last.files);
    const user = snap.table('users')!.ids[0]!;
    const top = recallForUser(snap, user, 100);
    assert.equal(top.ids.length, Math.min(100, last.model.num_items));
    const items = new Set(snap.table('items')!.ids);
    assert.ok(top.ids.every((id) => items.has(id)));
    for (let i = 1; i < top.scores.length; i++) assert.ok(top.scores[i - 1]! >= top.scores[i]!);
    // and it is the trainer's own recall (the final snapshot is the final model), by the served
    // score: the user vector with the 1 that meets the item table's prior column
    const m = trainer.model;
    const q = m.servedUserVectors(
      Int32Array.of(m.users.find(user)),
      new Float32Array(trainConfig.contextBuckets),
    );
    assert.deepEqual(recallForUser(snap, q, 100).ids, top.ids);
  });
});
