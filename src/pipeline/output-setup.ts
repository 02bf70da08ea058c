/**
 * What the labeler settles about its outputs once at start-up, before it joins the group: the
 * bound on a dead letter's original bytes (what the dead-letter topic accepts) and, with
 * `kafka.outputFormat` confluent, the registration of the output schemas.
 */
import type { Admin, ConfigResourceTypes } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { kafkaAccessFailure } from '../kafka/access.ts';
import type { Logger } from '../log.ts';
import type { RegistrySerde } from '../registry/serde.ts';

/** kafkajs' ConfigResourceTypes.TOPIC (Kafka's resource type 2); the enum is not an ESM export. */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/**
 * `kafka.deadLetterMaxBytes`, lowered to fit the dead-letter topic's `max.message.bytes` (less
 * 16 KiB for the dead letter's other fields and the batch framing).
 *
 * @example
 * const max = await deadLetterBound(admin, config.kafka, log); // ≤ config.kafka.deadLetterMaxBytes
 */
export async function deadLetterBound(admin: Admin, k: KafkaConfig, log: Logger): Promise<number> {
  let res: Awaited<ReturnType<Admin['describeConfigs']>>;
  try {
    res = await admin.describeConfigs({
      resources: [{ type: TOPIC_RESOURCE, name: k.topics.deadLetter, configNames: ['max.message.bytes'] }],
      includeSynonyms: false,
    });
  } catch (e) {
    // Least privilege (docs/OPERATIONS.md) grants no DESCRIBE_CONFIGS: the configured bound then
    // stands on its own, as it must fit the broker's default max.message.bytes (1 MiB) anyway.
    if (kafkaAccessFailure(e)?.kind !== 'authorization') throw e;
    log.warn(
      'cannot read the dead-letter topic max.message.bytes (no DESCRIBE_CONFIGS ACL); dead letters are bounded by kafka.deadLetterMaxBytes alone',
      { topic: k.topics.deadLetter, bytes: k.deadLetterMaxBytes },
    );
    return k.deadLetterMaxBytes;
  }
  const entry = res.resources[0]?.configEntries.find((c) => c.configName === 'max.message.bytes');
  const topicMax = Number(entry?.configValue);
  if (!Number.isFinite(topicMax) || topicMax <= 0) return k.deadLetterMaxBytes;
  return Math.max(1_024, Math.min(k.deadLetterMaxBytes, topicMax - 16 * 1024));
}

/**
 * Registers our output schemas (outputFormat confluent): labels and dead letters carry their ids.
 *
 * @example
 * await prepareOutputs(serde, config.kafka); // no-op unless kafka.outputFormat is confluent
 */
export async function prepareOutputs(serde: RegistrySerde | undefined, k: KafkaConfig): Promise<void> {
  if (k.outputFormat !== 'confluent' || serde === undefined) return;
  await serde.prepareOutput(k.topics.pointwise, 'PointwiseLabels');
  await serde.prepareOutput(k.topics.pairwise, 'PairwiseLabels');
  await serde.prepareOutput(k.topics.listwise, 'ListwiseLabels');
  await serde.prepareOutput(k.topics.deadLetter, 'DeadLetter');
}
