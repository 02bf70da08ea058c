// Stream threads (kafka.streamThreads = 2) against the real broker: the two threads are members of
// one group, share the 4 partitions, and together write exactly the expected labels and dead
// letters once each; the process-level counts and the aggregated /metrics cover both threads.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { createLabelRunner, LabelThreads } from '../../src/pipeline/label-threads.ts';
import {
  assertExactlyExpected,
  labelSuite,
  produceInputs,
  testConfig,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 4;

describe('labeler stream threads', { timeout: 150_000 }, () => {
  const suite = labelSuite('rd-label-threads', 1_200, 23);

  test('two threads split the partitions and write exactly the expected labels once', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfg = testConfig(join(work, 'state'), PARTITIONS, { streamThreads: 2 });
    topics.push(...Object.values(cfg.kafka.topics));
    const runner = createLabelRunner(cfg);
    assert.ok(runner instanceof LabelThreads, 'streamThreads 2 runs threads');
    await runner.start();
    try {
      // Both members settle on two partitions each (the first may briefly hold all four).
      for (let i = 0; i < 200 && !runner.healthy(); i++) await sleep(100);
      await produceInputs(kafka, cfg, sim, PARTITIONS);
      await waitConsumed(admin, cfg, 90_000);
      // Snapshots of a rebalance in progress may overlap for a moment: wait for the settled union.
      const settled = () => runner.assignedPartitions().join() === '0,1,2,3';
      for (let i = 0; i < 100 && !settled(); i++) await sleep(100);
      assert.deepEqual(runner.assignedPartitions(), [0, 1, 2, 3], 'every partition owned by one thread');
      const text = await runner.metrics.metrics();
      const recordsIn = [...text.matchAll(/^rankdistill_records_in_total\{[^}]*\} (\d+)/gm)].reduce(
        (a, m) => a + Number(m[1]),
        0,
      );
      assert.ok(
        recordsIn >= sim.rankers.length + sim.impressions.length,
        `aggregated metrics count both threads' input (${recordsIn})`,
      );
    } finally {
      await runner.stop();
    }
    const c = runner.counts();
    assert.ok(c.joined > 1_000, `counts sum the threads (${c.joined} joined)`);
    const dirs = readdirSync(join(work, 'state')).sort();
    assert.ok(
      dirs.length > 0 && dirs.every((d) => d === 'thread-0' || d === 'thread-1'),
      `each thread keeps its state in its own directory (${dirs.join(', ')})`,
    );
    await assertExactlyExpected(kafka, admin, cfg, sim, assert);
  });

  test('a thread that cannot start fails the start with its error, naming the thread', async () => {
    const { admin, work, topics } = suite;
    const base = testConfig(join(work, 'state-bad'), PARTITIONS);
    // Ranker outputs with 4 partitions, impressions with 3: every thread refuses to start.
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: base.kafka.topics.rankerOutputs, numPartitions: 4 },
        { topic: base.kafka.topics.impressions, numPartitions: 3 },
      ],
    });
    topics.push(base.kafka.topics.rankerOutputs, base.kafka.topics.impressions);
    const cfg = configSchema.parse({ ...base, kafka: { ...base.kafka, streamThreads: 2 } });
    const runner = createLabelRunner(cfg);
    await assert.rejects(runner.start(), (e: unknown) => {
      assert.ok(isRankdistillError(e, 'COPARTITION_MISMATCH'), String(e));
      assert.match((e as Error).message, /stream thread \d: the input topics must be co-partitioned/);
      return true;
    });
    assert.equal(runner.healthy(), false);
  });
});
