/**
 * Confluent-framed Avro through a schema registry, per batch.
 *
 * Output: {@link RegistrySerde.prepareOutput} registers our schema for a topic (subject
 * `<topic>-value`, after a compatibility check) once; then {@link RegistrySerde.encode} frames
 * records with that id synchronously.
 *
 * Input: decoding stays synchronous and never throws (bad records become dead letters), so the
 * registry lookups happen before it: {@link RegistrySerde.prefetch} reads the schema ids of a
 * batch and fetches the writer schemas it has not seen; {@link RegistrySerde.decode} then
 * resolves each record's writer schema against our reader schema (Avro schema evolution: a field
 * the writer lacks takes the reader's default, a field the reader lacks is skipped).
 *
 * A registry that cannot be reached makes `prefetch` throw a retriable SCHEMA_REGISTRY_FAILED,
 * so the batch is retried, never dead-lettered; an id the registry does not know is a
 * SCHEMA_ID_UNKNOWN decode error for that record alone.
 */
import type avro from 'avsc';
import type { KafkaConfig } from '../config/schema.ts';
import {
  confluentSchemaId,
  type Decoded,
  decodeConfluent,
  encodeConfluent,
  frameConfluent,
} from '../contracts/codec.ts';
import { type ContractName, type Contracts, schemaJson } from '../contracts/schemas.ts';
import { isRankdistillError, RankdistillError } from '../errors.ts';
import { registryTransport } from '../kafka/security.ts';
import { type CompatibilityLevel, SchemaRegistryClient, subjectFor } from './client.ts';

export interface RegistrySerdeOptions {
  /**
   * Compatibility level set on each subject we register to before registering; undefined leaves
   * the registry's setting alone [undefined].
   */
  compatibility?: CompatibilityLevel;
  /** Check compatibility before registering, to refuse with the registry's reasons [true]. */
  checkCompatibility?: boolean;
}

/**
 * Encoder/decoder of contract records in the Confluent wire format, backed by a registry.
 *
 * @example
 * const serde = new RegistrySerde(new SchemaRegistryClient({ url }));
 * await serde.prepareOutput('labels.pointwise', 'PointwiseLabels');
 * const value = serde.encode('labels.pointwise', 'PointwiseLabels', labels);
 * await serde.prefetch(batch.map((m) => m.value));
 * for (const m of batch) { const r = serde.decode('RankerOutput', m.value); ... }
 */
export class RegistrySerde {
  readonly client: SchemaRegistryClient;
  readonly #options: RegistrySerdeOptions;
  /** Our schema id per output topic and contract. */
  readonly #outputIds = new Map<string, number>();
  /** Ids the registry answered 404 for: decoded as SCHEMA_ID_UNKNOWN without asking again. */
  readonly #unknownIds = new Set<number>();
  readonly #writerFor = (id: number): avro.Type | undefined => this.client.cachedSchemaById(id);

  constructor(client: SchemaRegistryClient, options: RegistrySerdeOptions = {}) {
    this.client = client;
    this.#options = options;
  }

  /**
   * Registers our schema of `name` for `topic` (subject `<topic>-value`) and remembers its id.
   * Idempotent: a second call for the same topic and contract does no I/O.
   *
   * @throws RankdistillError SCHEMA_INCOMPATIBLE, SCHEMA_INVALID, SCHEMA_REGISTRY_FAILED.
   * @example
   * const id = await serde.prepareOutput('labels.pointwise', 'PointwiseLabels');
   */
  async prepareOutput(topic: string, name: ContractName): Promise<number> {
    const key = outputKey(topic, name);
    const known = this.#outputIds.get(key);
    if (known !== undefined) return known;
    const subject = subjectFor(topic);
    const schema = schemaJson(name);
    if (this.#options.compatibility !== undefined) {
      await this.client.setCompatibility(subject, this.#options.compatibility);
    }
    if (this.#options.checkCompatibility ?? true) await this.client.checkCompatibility(subject, schema);
    const id = await this.client.registerSchema(subject, schema);
    this.#outputIds.set(key, id);
    return id;
  }

  /**
   * Frames a record for `topic` with the id {@link prepareOutput} registered.
   *
   * @throws RankdistillError ENCODE_FAILED when the topic was not prepared or the record is invalid.
   * @example
   * producer.send({ topic, messages: [{ key: r.user_id, value: serde.encode(topic, 'RankerOutput', r) }] });
   */
  encode<N extends ContractName>(topic: string, name: N, record: Contracts[N]): Buffer {
    return encodeConfluent(name, record, this.#outputId(topic, name));
  }

  /**
   * Frames plain Avro bytes of a `name` record for `topic` (magic byte, the id
   * {@link prepareOutput} registered, then the bytes): what {@link encode} gives for the record.
   *
   * @throws RankdistillError ENCODE_FAILED when the topic was not prepared.
   * @example
   * const value = serde.frame('labels.pointwise', 'PointwiseLabels', encodeAvro('PointwiseLabels', labels));
   */
  frame(topic: string, name: ContractName, body: Buffer): Buffer {
    return frameConfluent(body, this.#outputId(topic, name));
  }

  /** The schema id {@link prepareOutput} registered for `topic` and `name`. */
  #outputId(topic: string, name: ContractName): number {
    const id = this.#outputIds.get(outputKey(topic, name));
    if (id === undefined) {
      throw new RankdistillError(
        'ENCODE_FAILED',
        `${name}: no schema id registered for topic ${topic}; call prepareOutput(${JSON.stringify(topic)}, ${JSON.stringify(name)}) first`,
        { details: { topic, name } },
      );
    }
    return id;
  }

  /**
   * Fetches the writer schemas of a batch that are not cached yet (concurrently, one request
   * per id). Payloads that are not Confluent frames and ids the registry does not know are left
   * for {@link decode} to report.
   *
   * @throws RankdistillError SCHEMA_REGISTRY_FAILED (retriable) when the registry cannot answer.
   * @example
   * await serde.prefetch(messages.map((m) => m.value));
   */
  async prefetch(payloads: Iterable<Buffer | null | undefined>): Promise<void> {
    const missing = new Set<number>();
    for (const buf of payloads) {
      if (buf == null) continue;
      const id = confluentSchemaId(buf);
      if (!id.ok || this.#unknownIds.has(id.value)) continue;
      if (this.client.cachedSchemaById(id.value) === undefined) missing.add(id.value);
    }
    if (missing.size === 0) return;
    const ids = [...missing];
    const results = await Promise.allSettled(ids.map((id) => this.client.schemaById(id)));
    let firstFailure: unknown;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const id = ids[i] as number;
      // Unknown ids and non-Avro writer schemas are facts about those records: dead letters.
      if (
        isRankdistillError(r.reason, 'SCHEMA_ID_UNKNOWN') ||
        isRankdistillError(r.reason, 'SCHEMA_INVALID')
      ) {
        this.#unknownIds.add(id);
      } else firstFailure ??= r.reason;
    });
    if (firstFailure !== undefined) throw firstFailure;
  }

  /**
   * Decodes a Confluent-framed record into our reader type `name`, resolving the writer schema
   * fetched by {@link prefetch}. Never throws.
   *
   * @example
   * const r = serde.decode('RankerOutput', message.value);
   * if (!r.ok) deadLetter(message, r.error.message);
   */
  decode<N extends ContractName>(name: N, buf: Buffer): Decoded<Contracts[N]> {
    return decodeConfluent(name, buf, this.#writerFor);
  }

  /**
   * The writer-schema lookup for `decode(..., 'confluent', writerFor)` of the contracts codec.
   *
   * @example
   * decode('Impression', buf, 'confluent', serde.writerFor);
   */
  get writerFor(): (schemaId: number) => avro.Type | undefined {
    return this.#writerFor;
  }
}

function outputKey(topic: string, name: ContractName): string {
  return `${topic}\u0000${name}`;
}

/**
 * A serde for the configured registry, or undefined when `kafka.schemaRegistryUrl` is not set.
 *
 * @example
 * const serde = registrySerdeFromConfig(config.kafka);
 */
export function registrySerdeFromConfig(
  kafka: {
    schemaRegistryUrl?: string | undefined;
    schemaRegistryAuth?: KafkaConfig['schemaRegistryAuth'] | undefined;
  },
  options: RegistrySerdeOptions = {},
): RegistrySerde | undefined {
  if (kafka.schemaRegistryUrl === undefined) return undefined;
  // Credentials and CA of kafka.schemaRegistryAuth (none when the caller has no config).
  const t = kafka.schemaRegistryAuth === undefined ? undefined : registryTransport(kafka.schemaRegistryAuth);
  return new RegistrySerde(
    new SchemaRegistryClient({
      url: kafka.schemaRegistryUrl,
      ...(t === undefined ? {} : { headers: t.headers }),
      ...(t?.fetch === undefined ? {} : { fetch: t.fetch }),
    }),
    options,
  );
}
