// Scale-out of the labeling service: two instances in one consumer group over 4-partition topics
// (co-partitioned assignment: partition p of both inputs to one member). One instance is stopped
// midway, while the join windows of its partitions are still open; the other takes its partitions,
// restores their join state from the changelog (it has its own state directory, so it cannot use
// the first instance's SQLite files), and the output is still exactly the expected set.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.ts';
import { LabelService } from '../../src/pipeline/label-service.ts';
import {
  assertExactlyExpected,
  labelSuite,
  produceInputs,
  produceSentinels,
  testConfig,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 4;

describe('rankdistill label scale-out', { timeout: 150_000 }, () => {
  const suite = labelSuite('rd-label-scale', 1_200, 31);

  test('the survivor takes over the stopped instance’s partitions with their state', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfgA = testConfig(join(work, 'state-a'), PARTITIONS);
    const cfgB = configSchema.parse({ ...cfgA, store: { dir: join(work, 'state-b') } });
    topics.push(...Object.values(cfgA.kafka.topics));
    const a = new LabelService(cfgA);
    const b = new LabelService(cfgB);
    await a.start();
    await b.start();
    try {
      // Both members in the group, two partitions each.
      for (
        let i = 0;
        i < 200 && (a.assignedPartitions().length !== 2 || b.assignedPartitions().length !== 2);
        i++
      ) {
        await sleep(100);
      }
      assert.deepEqual([...a.assignedPartitions(), ...b.assignedPartitions()].sort(), [0, 1, 2, 3]);
      const bParts = b.assignedPartitions();
      // Everything but the sentinels: windows stay open, so state is pending when B stops.
      await produceInputs(kafka, cfgA, sim, PARTITIONS, { sentinels: false });
      await waitConsumed(admin, cfgA, 60_000);
      assert.ok(b.counts().joined > 0, 'B processed its partitions');
      await b.stop();
      for (let i = 0; i < 300 && a.assignedPartitions().length !== 4; i++) await sleep(100);
      assert.deepEqual(a.assignedPartitions(), [0, 1, 2, 3], 'A owns every partition after B left');
      await produceSentinels(kafka, cfgA, sim, PARTITIONS);
      await waitConsumed(admin, cfgA, 60_000);
      // A rebuilt B's partitions' join state from their changelog partitions (its own state
      // directory has no files for them), then decided what was pending there.
      assert.equal(bParts.length, 2);
      assert.ok(a.restoredRecords() > 0, `A restored ${a.restoredRecords()} changelog records`);
      assert.ok(a.counts().unmatched + a.counts().orphans > 0, 'A closed the restored windows');
    } finally {
      await b.stop();
      await a.stop();
    }
    const n = await assertExactlyExpected(kafka, admin, cfgA, sim, assert);
    assert.ok(n > 3_000, `labels checked: ${n}`);
  });
});
