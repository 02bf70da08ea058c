import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AssignerProtocol } from 'kafkajs';
import { coPartitionedAssigner, coPartitionedPlan } from '../../src/kafka/assigner.ts';

describe('co-partitioned assigner', () => {
  test('deals partition numbers round-robin over the sorted member ids', () => {
    assert.deepEqual(coPartitionedPlan(['m-b', 'm-a'], 5), { 'm-a': [0, 2, 4], 'm-b': [1, 3] });
    assert.deepEqual(coPartitionedPlan(['x', 'y', 'z'], 2), { x: [0], y: [1], z: [] });
  });

  test('gives partition p of every topic to the same member, and every member an assignment', async () => {
    const cluster = {
      findTopicPartitionMetadata: (t: string) =>
        Array.from({ length: t === 'ro' || t === 'imp' ? 4 : 0 }, (_, i) => ({ partitionId: i })),
    };
    const a = coPartitionedAssigner({ cluster } as never);
    const res = await a.assign({
      members: [{ memberId: 'b' }, { memberId: 'a' }, { memberId: 'c' }] as never,
      topics: ['ro', 'imp'],
    });
    const decoded = Object.fromEntries(
      res.map((r) => [r.memberId, AssignerProtocol.MemberAssignment.decode(r.memberAssignment)?.assignment]),
    );
    assert.deepEqual(decoded, {
      a: { ro: [0, 3], imp: [0, 3] },
      b: { ro: [1], imp: [1] },
      c: { ro: [2], imp: [2] },
    });
    const proto = a.protocol({ topics: ['ro', 'imp'] });
    assert.equal(proto.name, 'RankdistillCoPartitioned');
    assert.deepEqual(AssignerProtocol.MemberMetadata.decode(proto.metadata)?.topics, ['ro', 'imp']);
  });
});
