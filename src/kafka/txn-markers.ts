/**
 * Room for transaction markers in the topics a transactional producer writes.
 *
 * Ending a transaction (commit or abort) makes the broker's transaction coordinator write a
 * control batch, the marker, to every partition the transaction touched. The marker is an
 * ordinary record batch to the partition's log: 78 bytes with the v2 format (61 bytes of batch
 * header, 17 of control record), and `max.message.bytes` applies to it like to any batch. When a
 * topic's limit is below that, the leader refuses the marker with RECORD_TOO_LARGE and the
 * coordinator treats it as fatal (`TransactionMarkerRequestCompletionHandler`: "Received fatal
 * error RecordTooLargeException while sending txn marker", an IllegalStateException in the
 * broker log): it stops sending markers for that transaction, which stays in PrepareAbort (or
 * PrepareCommit). Every InitProducerId for its transactional id is then answered
 * CONCURRENT_TRANSACTIONS — also after the topic's limit is raised again — until the coordinator
 * reloads its state (broker restart or a move of the `__transaction_state` partition). Measured on
 * Kafka 4.4.0 with a pointwise topic at 64 bytes: the labeler's tasks never reopened (> 3 min after
 * the limit was raised), while at 256 bytes they reopened and labelled once the limit was raised.
 *
 * So such a limit on an output topic is refused at start-up, and when a batch is refused as too
 * large, the topics are read again to name the cause if it is this one.
 *
 * @example
 * await assertMarkerRoom(admin, config.kafka); // at start-up: CONFIG_INVALID naming the topic
 * if (isTooLargeError(e)) void explainTooLarge(admin, config.kafka, log); // after a refused batch
 */
import type { Admin, ConfigResourceTypes } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { kafkaAccessFailure } from './access.ts';

/**
 * The smallest `max.message.bytes` an output topic may have: a marker (78 bytes today) with room
 * for a later, larger marker format.
 */
export const MIN_MAX_MESSAGE_BYTES = 128;

const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/** A topic whose `max.message.bytes` leaves no room for a transaction marker. */
export interface MarkerRoomProblem {
  topic: string;
  maxMessageBytes: number;
}

/**
 * The topics of `topics` whose `max.message.bytes` is below {@link MIN_MAX_MESSAGE_BYTES}. Empty
 * when the limits cannot be read for lack of a DESCRIBE_CONFIGS grant (least privilege): the check
 * is then skipped, not failed.
 */
export async function topicsTooSmallForMarkers(admin: Admin, topics: string[]): Promise<MarkerRoomProblem[]> {
  let res: Awaited<ReturnType<Admin['describeConfigs']>>;
  try {
    res = await admin.describeConfigs({
      resources: [...new Set(topics)].map((name) => ({
        type: TOPIC_RESOURCE,
        name,
        configNames: ['max.message.bytes'],
      })),
      includeSynonyms: false,
    });
  } catch (e) {
    if (kafkaAccessFailure(e)?.kind === 'authorization') return [];
    throw e;
  }
  const out: MarkerRoomProblem[] = [];
  for (const r of res.resources) {
    const v = Number(r.configEntries.find((c) => c.configName === 'max.message.bytes')?.configValue);
    if (Number.isFinite(v) && v < MIN_MAX_MESSAGE_BYTES)
      out.push({ topic: r.resourceName, maxMessageBytes: v });
  }
  return out;
}

/** One line naming the topics, their limits, the minimum and what happens below it. */
export function markerRoomMessage(problems: MarkerRoomProblem[]): string {
  const list = problems.map((p) => `${p.topic} (max.message.bytes=${p.maxMessageBytes})`).join(', ');
  return `output topic max.message.bytes below ${MIN_MAX_MESSAGE_BYTES}: ${list}. A transaction marker does not fit there, so the broker cannot end a transaction that wrote to it and blocks its transactional id (CONCURRENT_TRANSACTIONS) until the transaction coordinator reloads, even after the limit is raised: raise it to at least ${MIN_MAX_MESSAGE_BYTES} (the default is 1048588), then restart the broker if a transaction is already blocked`;
}

const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/**
 * Whether `e` is the broker refusing a batch as too large (MESSAGE_TOO_LARGE,
 * RECORD_LIST_TOO_LARGE), also when kafkajs wrapped it (a retrier's KafkaJSNonRetriableError keeps
 * only the message; an aggregate keeps the errors).
 */
export function isTooLargeError(e: unknown, depth = 0): boolean {
  if (e === null || typeof e !== 'object' || depth > 4) return false;
  const x = e as { type?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof x.type === 'string' && TOO_LARGE.has(x.type)) return true;
  if (typeof x.message === 'string' && x.message.includes('larger than the max message size')) return true;
  if (Array.isArray(x.errors) && x.errors.some((c) => isTooLargeError(c, depth + 1))) return true;
  return isTooLargeError(x.cause, depth + 1);
}

/** The topics the labeler's transactions write: labels, dead letters, changelog. */
function outputTopics(k: Pick<KafkaConfig, 'topics'>): string[] {
  const t = k.topics;
  return [t.pointwise, t.pairwise, t.listwise, t.deadLetter, t.changelog];
}

/**
 * Start-up check: throws CONFIG_INVALID ({@link markerRoomMessage}) when an output topic's
 * `max.message.bytes` has no room for a transaction marker.
 *
 * @example
 * await assertMarkerRoom(admin, config.kafka);
 */
export async function assertMarkerRoom(admin: Admin, k: Pick<KafkaConfig, 'topics'>): Promise<void> {
  const low = await topicsTooSmallForMarkers(admin, outputTopics(k));
  if (low.length > 0) throw new RankdistillError('CONFIG_INVALID', markerRoomMessage(low));
}

/**
 * After a batch was refused as too large: reads the output topics' limits again and logs an error
 * when one is below {@link MIN_MAX_MESSAGE_BYTES} (a limit lowered while the service runs), since
 * the service cannot recover from that by itself. Never throws.
 *
 * @example
 * if (isTooLargeError(e)) void explainTooLarge(admin, config.kafka, log);
 */
export async function explainTooLarge(
  admin: Admin,
  k: Pick<KafkaConfig, 'topics'>,
  log: Logger,
): Promise<void> {
  try {
    const low = await topicsTooSmallForMarkers(admin, outputTopics(k));
    if (low.length > 0) log.error(markerRoomMessage(low), { topics: low });
  } catch (e) {
    log.debug('cannot read the output topics’ max.message.bytes', { error: errorMessage(e) });
  }
}
