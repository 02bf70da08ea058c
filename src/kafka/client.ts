/**
 * A kafkajs client built from the `kafka` config section, logging through src/log.ts.
 *
 * @example
 * const kafka = createKafka(config.kafka, 'labeler');
 * const admin = kafka.admin();
 */
import { Kafka, type logCreator, logLevel } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { logger } from '../log.ts';

const kafkaLog = logger('kafkajs');

/** Routes kafkajs log entries into our JSON logger (kafkajs INFO chatter becomes debug). */
const toOurLogger: logCreator = () => (entry) => {
  const { message, ...rest } = entry.log;
  const fields = { namespace: entry.namespace, ...rest };
  if (entry.level === logLevel.ERROR) kafkaLog.warn(message, fields);
  else if (entry.level === logLevel.WARN) kafkaLog.info(message, fields);
  else kafkaLog.debug(message, fields);
};

/** Creates the kafkajs client; `role` is appended to the configured client id. */
export function createKafka(cfg: Pick<KafkaConfig, 'brokers' | 'clientId'>, role?: string): Kafka {
  return new Kafka({
    clientId: role === undefined ? cfg.clientId : `${cfg.clientId}-${role}`,
    brokers: cfg.brokers,
    logLevel: kafkaLog.enabled('debug') ? logLevel.INFO : logLevel.WARN,
    logCreator: toOurLogger,
    connectionTimeout: 5_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 },
  });
}
