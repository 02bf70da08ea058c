// The labeling service against a real broker (KAFKA_BROKERS): simulated traffic with jitter,
// duplicates, late, orphan, unmatched and malformed records goes in; a read_committed consumer must
// see exactly the labels labelRequest computes for the requests the simulator's truth says should
// join or be emitted unmatched, once each, and the dead-letter topic must hold exactly the bad
// records. The file transport over the same files must give byte-identical labels.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { metricSum, parsePrometheus } from '../../src/cli/commands/up.ts';
import { configSchema } from '../../src/config/schema.ts';
import { decodeAvro } from '../../src/contracts/codec.ts';
import { RankdistillError } from '../../src/errors.ts';
import { labelFiles } from '../../src/pipeline/label-files.ts';
import { LabelService } from '../../src/pipeline/label-service.ts';
import { SqliteJoinStore } from '../../src/store/sqlite-store.ts';
import {
  assertExactlyExpected,
  expectedDeadReasons,
  expectedLabels,
  labelId,
  labelSuite,
  labelsById,
  produceInputs,
  produceSentinels,
  readAll,
  testConfig,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 2;

describe('rankdistill label (Kafka service)', { timeout: 120_000 }, () => {
  const suite = labelSuite('rd-label-it', 1_500);

  test('exactly the expected labels and dead letters, and the file transport agrees byte for byte', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfg = testConfig(join(work, 'state'), PARTITIONS);
    topics.push(...Object.values(cfg.kafka.topics));
    const svc = new LabelService(cfg);
    await svc.start(); // creates the topics
    try {
      await produceInputs(kafka, cfg, sim, PARTITIONS);
      await waitConsumed(admin, cfg, 60_000);
    } finally {
      await svc.stop();
    }
    const t = cfg.kafka.topics;
    const recs = await readAll(kafka, admin, [t.pointwise, t.pairwise, t.listwise, t.deadLetter]);

    const expected = expectedLabels(cfg, sim);
    const got = labelsById(cfg, recs);
    const dupes = [...got].filter(([, v]) => v.length > 1).map(([id]) => id);
    assert.deepEqual(dupes, [], 'no label may be duplicated');
    const missing = [...expected.keys()].filter((id) => !got.has(id));
    const extra = [...got.keys()].filter((id) => !expected.has(id));
    assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5) }, { missing: [], extra: [] });
    for (const [id, bytes] of expected) assert.ok(got.get(id)?.[0]?.equals(bytes), `label ${id} differs`);
    assert.ok(expected.size > 3 * 1_400, `most requests produce labels (${expected.size})`);

    const dead = recs
      .filter((r) => r.topic === t.deadLetter)
      .map((r) => {
        const d = decodeAvro('DeadLetter', r.value);
        assert.ok(d.ok, 'dead letters decode');
        return d.value;
      });
    assert.deepEqual(
      dead.map((d) => d.reason_code).sort(),
      expectedDeadReasons(sim),
      'one dead letter per bad record, with the reason truth.json gives',
    );
    // Each dead letter points at its input record: topic, partition and offset locate a record
    // whose key and bytes are the dead letter's.
    const inputs = new Map(
      (await readAll(kafka, admin, [t.rankerOutputs, t.impressions])).map((r) => [
        `${r.topic}/${r.partition}/${r.offset}`,
        r,
      ]),
    );
    const located = new Set<string>();
    for (const d of dead) {
      const at = `${d.source_topic}/${d.source_partition}/${d.source_offset}`;
      const src = inputs.get(at);
      if (src === undefined) assert.fail(`dead letter ${d.reason_code} at ${at}: no such input record`);
      assert.ok(
        src.value.equals(d.raw),
        `dead letter ${d.reason_code} at ${at}: raw bytes are that record's`,
      );
      assert.ok(
        d.key === null ? src.key === null : src.key?.equals(d.key),
        `dead letter ${d.reason_code} at ${at}: key is that record's`,
      );
      located.add(at);
      assert.ok(d.reason.length > 0);
      if (d.reason_code !== 'MALFORMED') {
        assert.ok(
          d.request_id !== null &&
            sim.truth.requests[d.request_id]?.expect.deadLetters.includes(d.reason_code),
        );
      }
    }
    assert.equal(located.size, dead.length, 'no two dead letters for one input record');
    // Each task's SQLite checkpoint is the changelog position right after its last committed
    // record: a restore replays nothing it already holds (and skips nothing it lacks).
    // Its input offsets are the group's committed ones (they went in the same transactions).
    const changelog = await readAll(kafka, admin, [t.changelog]);
    const group = await admin.fetchOffsets({
      groupId: cfg.kafka.groupId,
      topics: [t.rankerOutputs, t.impressions],
    });
    const groupAt = (topic: string, p: number) =>
      Number(group.find((x) => x.topic === topic)?.partitions.find((x) => x.partition === p)?.offset);
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = changelog.filter((r) => r.partition === p).map((r) => r.offset);
      assert.ok(offsets.length > 0, `changelog partition ${p} has records`);
      const store = SqliteJoinStore.open(join(cfg.store.dir, cfg.kafka.groupId, `task-${p}.sqlite`));
      try {
        assert.equal(store.checkpoint(), Math.max(...offsets) + 1, `checkpoint of task ${p}`);
        assert.deepEqual(
          store.inputOffsets(),
          { ranker: groupAt(t.rankerOutputs, p), impression: groupAt(t.impressions, p) },
          `input offsets of task ${p}`,
        );
      } finally {
        store.close();
      }
    }

    // The metrics tell the same story as the topics: input records per topic, committed output
    // records per topic, dead letters per reason, and every input record in one transaction.
    const m = parsePrometheus(await svc.metrics.registry.metrics());
    const inTotal = sim.rankers.length + PARTITIONS + sim.impressions.length; // + one sentinel per partition
    assert.equal(
      metricSum(m, 'rankdistill_records_in_total', `topic="${t.rankerOutputs}"`),
      sim.rankers.length + PARTITIONS,
    );
    assert.equal(
      metricSum(m, 'rankdistill_records_in_total', `topic="${t.impressions}"`),
      sim.impressions.length,
    );
    for (const topic of [t.pointwise, t.pairwise, t.listwise, t.deadLetter]) {
      assert.equal(
        metricSum(m, 'rankdistill_records_out_total', `topic="${topic}"`),
        recs.filter((r) => r.topic === topic).length,
        `records_out of ${topic} = committed records a read_committed consumer reads`,
      );
    }
    const byReason = new Map<string, number>();
    for (const r of expectedDeadReasons(sim)) byReason.set(r, (byReason.get(r) ?? 0) + 1);
    for (const [reason, n] of byReason)
      assert.equal(
        metricSum(m, 'rankdistill_dead_letters_total', `reason="${reason}"`),
        n,
        `dead letters ${reason}`,
      );
    assert.equal(
      metricSum(m, 'rankdistill_join_outcomes_total', 'outcome="joined"') +
        metricSum(m, 'rankdistill_join_outcomes_total', 'outcome="unmatched"'),
      expected.size / 3,
      'joined + unmatched = labelled requests',
    );
    assert.equal(
      metricSum(m, 'rankdistill_transaction_input_records_sum'),
      inTotal,
      'input records per transaction sum to all',
    );
    assert.ok(metricSum(m, 'rankdistill_transaction_commit_seconds_count') > 0);
    for (let p = 0; p < PARTITIONS; p++) {
      assert.ok(m.has(`rankdistill_watermark_lag_ms{partition="${p}"}`), `watermark lag of partition ${p}`);
      assert.ok(
        metricSum(m, 'rankdistill_join_state_entries', `partition="${p}"`) > 0,
        `state entries of ${p}`,
      );
    }

    const counts = svc.counts();
    assert.equal(
      counts.duplicates,
      Object.values(sim.truth.requests).reduce((s, r) => s + r.expect.duplicates, 0),
    );

    // File transport over the same files: byte-identical labels per id.
    const out = join(work, 'file-out');
    const res = await labelFiles({ inDir: sim.dir, outDir: out, format: 'avro', config: cfg, drain: true });
    assert.equal(res.counts.pointwise, expected.size / 3);
    const fileLabels = new Map<string, Buffer>();
    for (const kind of ['pointwise', 'pairwise', 'listwise'] as const) {
      const { readRecords } = await import('../../src/io/files.ts');
      for await (const r of readRecords(
        res.files[kind],
        kind === 'pointwise' ? 'PointwiseLabels' : kind === 'pairwise' ? 'PairwiseLabels' : 'ListwiseLabels',
      )) {
        fileLabels.set(labelId(r.raw), r.raw);
      }
    }
    assert.equal(fileLabels.size, got.size);
    for (const [id, [bytes]] of got)
      assert.ok(fileLabels.get(id)?.equals(bytes!), `file label ${id} differs from Kafka`);
    assert.ok(readFileSync(res.files.deadLetter).length > 0);
  });

  test('a task resumes where its changelog says when the group’s committed offsets lag (KAFKA-17507)', async () => {
    // On brokers before 3.9.1 the offset fetch right after fencing could still answer with the
    // offsets from before the previous owner's last commit. Make the lag as large as it gets:
    // reset the group to 0 after a run, and give the next run empty state directories, so it
    // restores the state from the changelog and must take its positions from there too.
    const { kafka, admin, work, sim, topics } = suite;
    const cfg = testConfig(join(work, 'state-lag-1'), PARTITIONS);
    topics.push(...Object.values(cfg.kafka.topics));
    const t = cfg.kafka.topics;
    const first = new LabelService(cfg);
    await first.start();
    try {
      await produceInputs(kafka, cfg, sim, PARTITIONS, { sentinels: false });
      await waitConsumed(admin, cfg, 60_000);
    } finally {
      await first.stop();
    }
    for (const topic of [t.rankerOutputs, t.impressions]) {
      await admin.setOffsets({
        groupId: cfg.kafka.groupId,
        topic,
        partitions: Array.from({ length: PARTITIONS }, (_, partition) => ({ partition, offset: '0' })),
      });
    }
    const cfg2 = configSchema.parse({ ...cfg, store: { dir: join(work, 'state-lag-2') } });
    const second = new LabelService(cfg2);
    await second.start();
    try {
      await produceSentinels(kafka, cfg, sim, PARTITIONS);
      await waitConsumed(admin, cfg, 60_000);
    } finally {
      await second.stop();
    }
    assert.ok(second.restoredRecords() > 0, 'the second run restored its state from the changelog');
    assert.equal(second.counts().rankerOutputsIn, PARTITIONS, 'it read only the sentinels, nothing twice');
    assert.equal(second.counts().impressionsIn, 0);
    const n = await assertExactlyExpected(kafka, admin, cfg, sim, assert);
    assert.ok(n > 4_000, `labels checked: ${n}`);
  });

  test('refuses input topics that are not co-partitioned, naming both', async () => {
    const { admin, work, topics } = suite;
    const cfg = testConfig(join(work, 'state-cp'), 2);
    const t = cfg.kafka.topics;
    topics.push(t.rankerOutputs, t.impressions);
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: t.rankerOutputs, numPartitions: 2 },
        { topic: t.impressions, numPartitions: 3 },
      ],
    });
    const svc = new LabelService(cfg);
    await assert.rejects(svc.start(), (e: unknown) => {
      assert.ok(e instanceof RankdistillError);
      assert.equal(e.code, 'COPARTITION_MISMATCH');
      assert.match(e.message, new RegExp(`${t.rankerOutputs} has 2 partitions, ${t.impressions} has 3`));
      return true;
    });
    await svc.stop();
  });
});
