// Shared helpers for integration tests that need a real Kafka broker.
//
// The broker is never faked: tests read its address from KAFKA_BROKERS, which
// `scripts/kafka-local.sh start` prints (or which points at any real cluster).
// A missing KAFKA_BROKERS is an error, not a skip, so a CI run that forgot to
// start the broker fails loudly instead of passing with nothing tested.
import { randomBytes } from 'node:crypto';

export const KAFKA_BROKERS_MISSING =
  'KAFKA_BROKERS is not set: start the local broker with scripts/kafka-local.sh start or point KAFKA_BROKERS at a cluster';

/** Broker list from KAFKA_BROKERS ("host:port[,host:port...]"); throws when unset or empty. */
export function brokersFromEnv(): string[] {
  const brokers = (process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  if (brokers.length === 0) throw new Error(KAFKA_BROKERS_MISSING);
  return brokers;
}

/**
 * A topic (or group / transactional id) name no other test run will use, so
 * runs against a shared or long-lived broker never see each other's data.
 * Only characters legal in Kafka topic names are kept.
 */
export function uniqueTopic(prefix: string): string {
  const clean = prefix.replace(/[^a-zA-Z0-9._-]/g, '-').slice(0, 180) || 't';
  return `${clean}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
