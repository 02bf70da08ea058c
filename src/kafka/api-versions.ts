/**
 * Start-up check of the broker's ApiVersions answer against the protocol versions kafkajs will
 * send. kafkajs picks, per API, min(its highest implemented version, the broker's max) and never
 * looks at the broker's minimum, so a broker that dropped old versions (KIP-896 did that in Kafka
 * 4.0, for versions older than the ones kafkajs 2.2.4 sends) would only fail later, mid-request,
 * with a protocol error. This check fails at start with the API and both ranges instead.
 *
 * @example
 * await checkBrokerApiVersions(createKafka(config.kafka, 'labeler')); // throws KAFKA_INCOMPATIBLE
 */
import { createRequire } from 'node:module';
import type { Kafka } from 'kafkajs';
import { RankdistillError } from '../errors.ts';

/** A version range, inclusive. */
export interface VersionRange {
  min: number;
  max: number;
}

/** The broker's ApiVersions answer: API key → supported range. */
export type BrokerVersions = ReadonlyMap<number, VersionRange>;

/** An API the client needs, with the versions it implements. */
export interface ClientApi {
  name: string;
  key: number;
  versions: readonly number[];
}

/** One API the broker cannot serve at a version the client sends. */
export interface ApiMismatch {
  api: string;
  key: number;
  client: VersionRange;
  /** Null when the broker does not offer the API at all. */
  broker: VersionRange | null;
}

/**
 * The APIs our services send (producers with transactions, the consumer group, the admin calls of
 * topics.ts, restore.ts, replay and the trainer), by kafkajs' request names. SASL's two APIs are
 * only sent when SASL is configured, and kafkajs then fails on its own with a clear error.
 */
export const USED_APIS = [
  'Produce',
  'Fetch',
  'ListOffsets',
  'Metadata',
  'OffsetCommit',
  'OffsetFetch',
  'GroupCoordinator',
  'JoinGroup',
  'Heartbeat',
  'LeaveGroup',
  'SyncGroup',
  'DescribeGroups',
  'ApiVersions',
  'CreateTopics',
  'InitProducerId',
  'AddPartitionsToTxn',
  'AddOffsetsToTxn',
  'EndTxn',
  'TxnOffsetCommit',
  'DescribeConfigs',
] as const;

/** Kafka's name for an API where kafkajs uses an older one. */
const KAFKA_NAMES: Record<string, string> = { GroupCoordinator: 'FindCoordinator' };

/**
 * The version the client sends for an API, the way kafkajs picks it (`protocol/requests/index.js`
 * lookup): its highest version not above the broker's max. Null when there is none the broker
 * accepts (below the broker's min, or the broker lacks the API).
 *
 * @example
 * chosenVersion([0, 1, 2, 3, 4, 5, 6, 7], { min: 3, max: 12 }); // 7
 */
export function chosenVersion(client: readonly number[], broker: VersionRange | null): number | null {
  if (broker === null || client.length === 0) return null;
  const v = Math.min(Math.max(...client), broker.max);
  return v >= broker.min && client.includes(v) ? v : null;
}

/**
 * Every needed API the broker cannot serve at the version the client will send.
 *
 * @example
 * compareApiVersions(new Map([[0, { min: 8, max: 12 }]]), [{ name: 'Produce', key: 0, versions: [0, 1, 2, 3, 4, 5, 6, 7] }]);
 * // [{ api: 'Produce', key: 0, client: { min: 0, max: 7 }, broker: { min: 8, max: 12 } }]
 */
export function compareApiVersions(broker: BrokerVersions, needed: readonly ClientApi[]): ApiMismatch[] {
  const out: ApiMismatch[] = [];
  for (const api of needed) {
    const b = broker.get(api.key) ?? null;
    if (chosenVersion(api.versions, b) !== null) continue;
    out.push({
      api: KAFKA_NAMES[api.name] ?? api.name,
      key: api.key,
      client: { min: Math.min(...api.versions), max: Math.max(...api.versions) },
      broker: b,
    });
  }
  return out;
}

/**
 * One line per mismatch, for the error message.
 *
 * @example
 * describeMismatch({ api: 'Produce', key: 0, client: { min: 0, max: 7 }, broker: { min: 8, max: 12 } });
 * // 'Produce (key 0): kafkajs sends v0-v7, the broker accepts v8-v12'
 */
export function describeMismatch(m: ApiMismatch): string {
  const broker =
    m.broker === null
      ? 'the broker does not offer it'
      : `the broker accepts v${m.broker.min}-v${m.broker.max}`;
  return `${m.api} (key ${m.key}): kafkajs sends v${m.client.min}-v${m.client.max}, ${broker}`;
}

/** The APIs of {@link USED_APIS} with the versions the installed kafkajs implements. */
export function kafkajsApis(names: readonly string[] = USED_APIS): ClientApi[] {
  const require = createRequire(import.meta.url);
  const keys = require('kafkajs/src/protocol/requests/apiKeys.js') as Record<string, number>;
  const { requests } = require('kafkajs/src/protocol/requests/index.js') as {
    requests: Record<string, { versions: string[] }>;
  };
  return names.map((name) => {
    const key = keys[name];
    const def = requests[name];
    if (key === undefined || def === undefined) {
      throw new Error(`kafkajs has no request named ${name} (a kafkajs upgrade renamed it?)`);
    }
    return { name, key, versions: def.versions.map(Number) };
  });
}

interface KafkajsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  brokerPool: { versions: Record<string, { minVersion: number; maxVersion: number }> | null };
}

/**
 * The seed broker's ApiVersions answer, through a kafkajs cluster of `kafka` (its brokers, TLS and
 * SASL settings, retries). kafkajs uses this one answer for every broker of the cluster.
 */
export async function fetchBrokerVersions(kafka: Kafka): Promise<BrokerVersions> {
  // kafkajs keeps the cluster factory behind a private symbol; no public API returns ApiVersions.
  const sym = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === 'private:Kafka:createCluster',
  );
  const create = sym === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[sym];
  if (typeof create !== 'function') {
    throw new Error('cannot reach kafkajs’ cluster factory (a kafkajs upgrade changed its internals?)');
  }
  const cluster = (create as (o: object) => KafkajsCluster)({ allowAutoTopicCreation: false });
  try {
    await cluster.connect();
    const answer = cluster.brokerPool.versions ?? {};
    return new Map(
      Object.entries(answer).map(([k, v]) => [Number(k), { min: v.minVersion, max: v.maxVersion }]),
    );
  } finally {
    await cluster.disconnect().catch(() => undefined);
  }
}

/**
 * Fails when the broker cannot serve a version kafkajs will send for an API we use.
 *
 * @throws RankdistillError KAFKA_INCOMPATIBLE naming each API and both version ranges
 */
export async function checkBrokerApiVersions(kafka: Kafka): Promise<void> {
  const mismatches = compareApiVersions(await fetchBrokerVersions(kafka), kafkajsApis());
  if (mismatches.length === 0) return;
  throw new RankdistillError(
    'KAFKA_INCOMPATIBLE',
    `the Kafka broker does not accept the protocol versions kafkajs sends: ${mismatches.map(describeMismatch).join('; ')} (supported brokers: 3.9.1 and later, see docs/OPERATIONS.md)`,
    { details: { mismatches } },
  );
}
