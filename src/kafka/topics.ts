/**
 * Topic checks and creation at start: the two inputs must be co-partitioned (same partition
 * count), missing topics are created when `kafka.createTopics` is on, and the changelog is a
 * compacted topic with one partition per input partition.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, ITopicConfig } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { RankdistillError } from '../errors.ts';
import { logger } from '../log.ts';
import { kafkaAccessFailure } from './access.ts';

const log = logger('topics');

/** Partition counts the service runs with. */
export interface TopicLayout {
  /** Partitions of each input topic (= tasks). */
  partitions: number;
  /** Partitions per output topic (labels, dead letters). */
  outputPartitions: Record<string, number>;
}

/** Metadata right after a topic was created (by us or a peer) can briefly fail: retry. */
async function partitionCounts(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await partitionCountsOnce(admin, topics);
    } catch (e) {
      if (attempt >= 10) throw e;
      await sleep(200 * attempt);
    }
  }
}

async function partitionCountsOnce(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  const existing = new Set(await admin.listTopics());
  const present = topics.filter((t) => existing.has(t));
  const counts = new Map<string, number>();
  if (present.length === 0) return counts;
  const md = await admin.fetchTopicMetadata({ topics: present });
  for (const t of md.topics) counts.set(t.name, t.partitions.length);
  return counts;
}

const CREATE_TIMEOUT_MS = 30_000;
const APPEAR_TIMEOUT_MS = 30_000;

/**
 * Right after creation (ours or a peer's) a topic can be missing from the topic list or report no
 * partitions until every broker has its metadata: poll until each named topic has partitions.
 *
 * @throws RankdistillError TOPIC_MISSING with the creation error as cause when they never appear.
 */
async function waitForTopics(admin: Admin, names: string[], cause: unknown): Promise<void> {
  const deadline = Date.now() + APPEAR_TIMEOUT_MS;
  for (let attempt = 1; ; attempt++) {
    const counts = await partitionCounts(admin, names);
    const absent = names.filter((n) => (counts.get(n) ?? 0) === 0);
    if (absent.length === 0) return;
    if (Date.now() > deadline) {
      throw new RankdistillError(
        'TOPIC_MISSING',
        `topic(s) ${absent.join(', ')} still have no partitions ${APPEAR_TIMEOUT_MS / 1000} s after creation${
          cause ? `: ${(cause as Error).message ?? String(cause)}` : ''
        }`,
        { details: { topics: absent }, cause },
      );
    }
    await sleep(Math.min(100 * attempt, 1_000));
  }
}

/**
 * Creates topics and returns once every one of them is visible with partitions. A peer instance
 * may create the same topics at the same time (kafkajs then resolves false); a failure (a leader
 * wait timing out on a loaded broker, say) is reported only if the topics do not appear after all.
 *
 * @throws RankdistillError TOPIC_MISSING naming the topics that never appeared, with the creation
 *   error as cause.
 * @example
 * await createTopicsAndWait(admin, [{ topic: 'labels', numPartitions: 4, replicationFactor: 1 }]);
 */
export async function createTopicsAndWait(admin: Admin, topics: ITopicConfig[]): Promise<void> {
  let failure: unknown;
  await admin
    .createTopics({ waitForLeaders: true, timeout: CREATE_TIMEOUT_MS, topics })
    .catch((e: unknown) => {
      failure = e;
      log.info('topic creation raced or failed; waiting for the topics to appear', { error: e });
    });
  // Refused by the authorizer: no other instance will create them for us, fail now (the caller
  // names the missing ACL) instead of waiting for topics that never come.
  if (kafkaAccessFailure(failure)?.kind === 'authorization') throw failure;
  await waitForTopics(
    admin,
    topics.map((t) => t.topic),
    failure,
  );
}

/**
 * Checks co-partitioning and creates what is missing.
 *
 * @throws RankdistillError COPARTITION_MISMATCH naming both topics and counts; TOPIC_MISSING when a
 *   topic is missing and creation is off.
 * @example
 * const layout = await ensureTopics(admin, config.kafka);
 */
export async function ensureTopics(admin: Admin, cfg: KafkaConfig): Promise<TopicLayout> {
  const t = cfg.topics;
  const outputs = [t.pointwise, t.pairwise, t.listwise, t.deadLetter];
  let counts = await partitionCounts(admin, [t.rankerOutputs, t.impressions, t.changelog, ...outputs]);
  const missing = (names: string[]) => names.filter((n) => !counts.has(n));
  const create = async (names: string[], numPartitions: number, compact: boolean) => {
    if (names.length === 0) return;
    if (!cfg.createTopics) {
      throw new RankdistillError(
        'TOPIC_MISSING',
        `topic(s) ${names.join(', ')} do not exist and kafka.createTopics is off: create them or turn it on`,
        { details: { topics: names } },
      );
    }
    log.info('creating topics', { topics: names, partitions: numPartitions, compact });
    await createTopicsAndWait(
      admin,
      names.map((topic) => ({
        topic,
        numPartitions,
        replicationFactor: cfg.replicationFactor,
        ...(compact ? { configEntries: [{ name: 'cleanup.policy', value: 'compact' }] } : {}),
      })),
    );
  };

  const inputMissing = missing([t.rankerOutputs, t.impressions]);
  const known = [t.rankerOutputs, t.impressions].map((n) => counts.get(n)).find((c) => c !== undefined);
  await create(inputMissing, known ?? cfg.partitions, false);
  counts = await partitionCounts(admin, [t.rankerOutputs, t.impressions, t.changelog, ...outputs]);
  const ro = counts.get(t.rankerOutputs) ?? 0;
  const imp = counts.get(t.impressions) ?? 0;
  if (ro !== imp) {
    throw new RankdistillError(
      'COPARTITION_MISMATCH',
      `the input topics must be co-partitioned: ${t.rankerOutputs} has ${ro} partitions, ${t.impressions} has ${imp}`,
      { details: { [t.rankerOutputs]: ro, [t.impressions]: imp } },
    );
  }
  await create(missing(outputs), ro, false);
  await create(missing([t.changelog]), ro, true);
  counts = await partitionCounts(admin, [t.changelog, ...outputs]);
  const cl = counts.get(t.changelog) ?? 0;
  if (cl !== ro) {
    throw new RankdistillError(
      'COPARTITION_MISMATCH',
      `the changelog ${t.changelog} must have one partition per input partition: ${ro} expected, ${cl} found`,
      { details: { [t.changelog]: cl, [t.rankerOutputs]: ro } },
    );
  }
  return {
    partitions: ro,
    outputPartitions: Object.fromEntries(outputs.map((o) => [o, counts.get(o) ?? 0])),
  };
}
