/**
 * A kafkajs client built from the `kafka` config section, logging through src/log.ts.
 *
 * @example
 * const kafka = createKafka(config.kafka, 'labeler');
 * const admin = kafka.admin();
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, type logCreator, logLevel, Partitioners, type Producer, type Transaction } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { logger } from '../log.ts';
import { kafkaSecurity } from './security.ts';

const kafkaLog = logger('kafkajs');

/**
 * Broker answers that kafkajs logs as errors although they are part of normal operation and it
 * retries them: the coordinator still completing the previous transaction's markers when the next
 * one starts (CONCURRENT_TRANSACTIONS, a few per second under load), a heartbeat told that the
 * group rebalances, and a coordinator still loading or just moved (COORDINATOR_NOT_AVAILABLE,
 * COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR: every start against a fresh broker, and each
 * broker restart). When the retries run out, the operation fails and our own code logs that.
 */
const ROUTINE_ERRORS = [
  'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing',
  'The group is rebalancing, so a rejoin is needed',
  'The group coordinator is not available',
  'This is not the correct coordinator for this group',
  "The coordinator is loading and hence can't process requests for this group",
];

/**
 * kafkajs' own lines about a consumer crash it is about to restart from ("Crash: <error>", then
 * "Restarting the consumer in <ms>ms"): a broker restart produces them 3-4 times per member. Our
 * CRASH listener logs the crash itself, at error only when kafkajs does not restart.
 */
const RESTARTED_CRASH = [/^Crash: /, /^Restarting the consumer in \d+ms$/];

/**
 * kafkajs warnings that are about settings we chose on purpose: our transactional producers
 * bound their retries (TRANSACTIONAL_RETRY); exactly-once comes from the transactions, which
 * abort on failure, not from unbounded idempotent retries.
 */
const DELIBERATE_WARNINGS = ['Limiting retries for the idempotent producer may invalidate EoS guarantees'];

/**
 * Our level for a kafkajs entry: ERROR → warn (info for routine, retried answers, which kafkajs
 * names in the entry's `error` field or, for a produce it retries, in its message, and for the
 * crash lines of a consumer it restarts), WARN → info (debug for {@link DELIBERATE_WARNINGS}),
 * INFO and below → debug.
 */
export function kafkajsLevel(level: logLevel, message: string, error: unknown): 'warn' | 'info' | 'debug' {
  if (level === logLevel.ERROR) {
    const routine =
      ROUTINE_ERRORS.some((e) => error === e || message === `Failed to send messages: ${e}`) ||
      RESTARTED_CRASH.some((r) => r.test(message));
    return routine ? 'info' : 'warn';
  }
  if (level === logLevel.WARN) return DELIBERATE_WARNINGS.includes(message) ? 'debug' : 'info';
  return 'debug';
}

/** Routes kafkajs log entries into our JSON logger, at {@link kafkajsLevel}. */
const toOurLogger: logCreator = () => (entry) => {
  const { message, ...rest } = entry.log;
  kafkaLog[kafkajsLevel(entry.level, message, rest.error)](message, { namespace: entry.namespace, ...rest });
};

/**
 * Creates the kafkajs client, with the TLS and SASL of `kafka.ssl` / `kafka.sasl`; `role` is
 * appended to the configured client id.
 */
export function createKafka(
  cfg: Pick<KafkaConfig, 'brokers' | 'clientId'> & Partial<Pick<KafkaConfig, 'ssl' | 'sasl'>>,
  role?: string,
): Kafka {
  return new Kafka({
    clientId: role === undefined ? cfg.clientId : `${cfg.clientId}-${role}`,
    brokers: cfg.brokers,
    logLevel: kafkaLog.enabled('debug') ? logLevel.INFO : logLevel.WARN,
    logCreator: toOurLogger,
    connectionTimeout: 5_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 },
    ...(cfg.ssl === undefined || cfg.sasl === undefined
      ? {}
      : kafkaSecurity({ ssl: cfg.ssl, sasl: cfg.sasl })),
  });
}

/**
 * Retry policy of our transactional producers. Right after EndTxn the coordinator still writes the
 * commit markers, and the next transaction's first AddPartitionsToTxn is answered
 * CONCURRENT_TRANSACTIONS for a few milliseconds. kafkajs retries it with the client's backoff
 * (100 ms and up), so back-to-back transactions crawled at ~3.6 MB/s on the local broker; the Java
 * client backs off 20 ms for this case. Starting at 10 ms measured ~30 MB/s (8× faster) with the
 * same ~20 s total retry budget for real outages (10 ms doubling to a 5 s cap, 12 retries).
 */
export const TRANSACTIONAL_RETRY = { initialRetryTime: 10, maxRetryTime: 5_000, retries: 12 } as const;

/** What {@link createTransactionalProducer} needs. */
export interface TransactionalProducerOptions {
  transactionalId: string;
  transactionTimeout: number;
}

/**
 * A transactional, idempotent producer (one request in flight, Java-compatible murmur2 partitioner)
 * with {@link TRANSACTIONAL_RETRY}.
 *
 * @example
 * const producer = createTransactionalProducer(kafka, { transactionalId: 'g-task-0', transactionTimeout: 60_000 });
 */
export function createTransactionalProducer(kafka: Kafka, opts: TransactionalProducerOptions): Producer {
  return kafka.producer({
    transactionalId: opts.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: opts.transactionTimeout,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: TRANSACTIONAL_RETRY,
  });
}

/**
 * `txn.sendOffsets` retried while the coordinator answers CONCURRENT_TRANSACTIONS: kafkajs sends
 * AddOffsetsToTxn without a retry, so an offsets-only transaction right after a commit would fail
 * (and cost a rebalance) instead of waiting the few milliseconds the previous markers take.
 *
 * @example
 * await sendOffsetsRetrying(txn, { consumerGroupId: 'g', topics });
 */
export async function sendOffsetsRetrying(
  txn: Transaction,
  offsets: Parameters<Transaction['sendOffsets']>[0],
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await txn.sendOffsets(offsets);
      return;
    } catch (e) {
      const type = (e as { type?: string }).type;
      if (type !== 'CONCURRENT_TRANSACTIONS' || attempt >= TRANSACTIONAL_RETRY.retries) throw e;
      await sleep(
        Math.min(TRANSACTIONAL_RETRY.maxRetryTime, TRANSACTIONAL_RETRY.initialRetryTime * 2 ** attempt),
      );
    }
  }
}
