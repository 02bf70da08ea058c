/**
 * A kafkajs partition assigner for co-partitioned joins: partition p of EVERY subscribed topic goes
 * to the same member (Kafka Streams assigns tasks, not partitions, for the same reason). Partition
 * numbers are dealt round-robin over the sorted member ids, so the assignment is a pure function of
 * the members and the partition count.
 */
import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

export const CO_PARTITIONED_ASSIGNER_NAME = 'RankdistillCoPartitioned';

/**
 * Partition numbers per member: p → sortedMembers[p % members].
 *
 * @example
 * coPartitionedPlan(['b', 'a'], 3); // { a: [0, 2], b: [1] }
 */
export function coPartitionedPlan(
  memberIds: readonly string[],
  partitions: number,
): Record<string, number[]> {
  const sorted = [...memberIds].sort();
  const plan: Record<string, number[]> = {};
  for (const m of sorted) plan[m] = [];
  if (sorted.length === 0) return plan;
  for (let p = 0; p < partitions; p++) plan[sorted[p % sorted.length] as string]!.push(p);
  return plan;
}

/**
 * The assigner, for `kafka.consumer({ partitionAssigners: [coPartitionedAssigner] })`. Topics with
 * different partition counts get the partitions they share (the service refuses such topics at
 * start anyway).
 */
export const coPartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: CO_PARTITIONED_ASSIGNER_NAME,
  version: 1,
  async assign({ members, topics }) {
    const counts = topics.map((t) => cluster.findTopicPartitionMetadata(t).length);
    const n = counts.length === 0 ? 0 : Math.min(...counts);
    const plan = coPartitionedPlan(
      members.map((m) => m.memberId),
      n,
    );
    return Object.entries(plan).map(([memberId, parts]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 1,
        assignment: Object.fromEntries(topics.map((t) => [t, [...parts]])),
        userData: Buffer.alloc(0),
      }),
    }));
  },
  protocol({ topics }) {
    return {
      name: CO_PARTITIONED_ASSIGNER_NAME,
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
    };
  },
});
