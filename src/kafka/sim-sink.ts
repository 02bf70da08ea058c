/**
 * The simulator's Kafka sink: Avro values keyed by user_id, produced in arrival order to the two
 * input topics (malformed records as their raw bytes), by an idempotent producer with acks=-1,
 * in batches of ~500 messages without compression. Per partition, messages keep the simulator's
 * arrival order (one batch in flight at a time, and kafkajs keeps order within a topic-partition).
 */
import { type Admin, CompressionTypes, type Kafka, type Message, Partitioners, type Producer } from 'kafkajs';
import { encodeAvro } from '../contracts/codec.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { writeTruthAndWorld } from '../io/sim-sink.ts';
import type { SimEmission, SimStream, SimTruth } from '../sim/generate.ts';
import { malformedBytes } from '../sim/malformed.ts';
import type { SimSink, SinkOutput } from '../sim/simulate.ts';
import type { World } from '../sim/world.ts';
import { createTopicsAndWait } from './topics.ts';

/** Where the simulated streams go. */
export interface SimTopics {
  rankerOutputs: string;
  impressions: string;
}

/**
 * Makes sure both input topics exist (creating missing ones with `partitions` when `create` is
 * on) and are co-partitioned. Returns their partition count.
 *
 * @throws RankdistillError TOPIC_MISSING, COPARTITION_MISMATCH.
 * @example
 * const n = await ensureSimTopics(admin, { rankerOutputs: 'ro', impressions: 'imp' }, { create: true, partitions: 4, replicationFactor: 1 });
 */
export async function ensureSimTopics(
  admin: Admin,
  topics: SimTopics,
  opts: { create: boolean; partitions: number; replicationFactor: number },
): Promise<number> {
  const names = [topics.rankerOutputs, topics.impressions];
  const existing = new Set(await admin.listTopics());
  const missing = names.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    if (!opts.create) {
      throw new RankdistillError(
        'TOPIC_MISSING',
        `topic(s) ${missing.join(', ')} do not exist: create them or pass --create-topics`,
        { details: { topics: missing } },
      );
    }
    await createTopicsAndWait(
      admin,
      missing.map((topic) => ({
        topic,
        numPartitions: opts.partitions,
        replicationFactor: opts.replicationFactor,
      })),
    );
  }
  const md = await admin.fetchTopicMetadata({ topics: names });
  const counts = new Map(md.topics.map((t) => [t.name, t.partitions.length]));
  const a = counts.get(topics.rankerOutputs) ?? 0;
  const b = counts.get(topics.impressions) ?? 0;
  if (a !== b) {
    throw new RankdistillError(
      'COPARTITION_MISMATCH',
      `the input topics must be co-partitioned: ${topics.rankerOutputs} has ${a} partitions, ${topics.impressions} has ${b}`,
      { details: { [topics.rankerOutputs]: a, [topics.impressions]: b } },
    );
  }
  return a;
}

/**
 * Sink producing a simulation to Kafka. Optionally writes truth.json and the world to `truthDir`.
 *
 * @example
 * const sink = await KafkaSimSink.connect(kafka, { rankerOutputs: 'ranker-outputs', impressions: 'impressions' });
 * await simulate({ requests: 500 }, sink);
 */
/**
 * Bytes of values buffered before a send, whatever the message count. A broker refuses a record
 * batch over `message.max.bytes` (1 MiB by default) and all of one send's messages for a partition
 * form one batch: 500 RankerOutputs of 200 candidates are ~4 MB (seen as MESSAGE_TOO_LARGE).
 */
const MAX_BATCH_BYTES = 512 * 1024;

export class KafkaSimSink implements SimSink {
  readonly encoding = 'avro' as const;
  readonly topics: SimTopics;
  #producer: Producer;
  #batch: { stream: SimStream; message: Message & { value: Buffer } }[] = [];
  #batchSize: number;
  #batchBytes = 0;
  #truthDir: string | undefined;
  #stats: Record<SimStream, { records: number; bytes: number }> = {
    rankerOutputs: { records: 0, bytes: 0 },
    impressions: { records: 0, bytes: 0 },
  };

  private constructor(
    producer: Producer,
    topics: SimTopics,
    batchSize: number,
    truthDir: string | undefined,
  ) {
    this.#producer = producer;
    this.topics = topics;
    this.#batchSize = batchSize;
    this.#truthDir = truthDir;
  }

  /**
   * Connects an idempotent producer.
   *
   * @throws RankdistillError KAFKA_UNAVAILABLE when the brokers cannot be reached.
   * @example
   * const sink = await KafkaSimSink.connect(kafka, topics, { truthDir: 'out' });
   */
  static async connect(
    kafka: Kafka,
    topics: SimTopics,
    opts: { batchSize?: number; truthDir?: string | undefined } = {},
  ): Promise<KafkaSimSink> {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    try {
      await producer.connect();
    } catch (cause) {
      throw new RankdistillError('KAFKA_UNAVAILABLE', `cannot connect the producer: ${errorMessage(cause)}`, {
        cause,
      });
    }
    return new KafkaSimSink(producer, topics, opts.batchSize ?? 500, opts.truthDir);
  }

  write(e: SimEmission): Promise<void> | undefined {
    const value =
      e.malformed !== null
        ? malformedBytes(e.name, e.record, e.malformed, 'avro')
        : e.stream === 'rankerOutputs'
          ? encodeAvro('RankerOutput', e.record)
          : encodeAvro('Impression', e.record);
    this.#batch.push({ stream: e.stream, message: { key: e.key, value } });
    const s = this.#stats[e.stream];
    s.records++;
    s.bytes += value.length;
    this.#batchBytes += value.length + e.key.length;
    return this.#batch.length >= this.#batchSize || this.#batchBytes >= MAX_BATCH_BYTES
      ? this.#flush()
      : undefined;
  }

  async #flush(): Promise<void> {
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    const byTopic: Record<SimStream, Message[]> = { rankerOutputs: [], impressions: [] };
    for (const b of batch) byTopic[b.stream].push(b.message);
    const topicMessages = (['rankerOutputs', 'impressions'] as const)
      .filter((s) => byTopic[s].length > 0)
      .map((s) => ({ topic: this.topics[s], messages: byTopic[s] }));
    try {
      await this.#producer.sendBatch({ topicMessages, acks: -1, compression: CompressionTypes.None });
    } catch (cause) {
      throw new RankdistillError(
        'KAFKA_UNAVAILABLE',
        `producing simulated records failed: ${errorMessage(cause)}`,
        {
          cause,
        },
      );
    }
  }

  async finish(truth: SimTruth, world: World): Promise<SinkOutput[]> {
    await this.#flush();
    await this.#producer.disconnect();
    const outs: SinkOutput[] = (['rankerOutputs', 'impressions'] as const).map((s) => ({
      name: `kafka:${this.topics[s]}`,
      ...this.#stats[s],
    }));
    if (this.#truthDir !== undefined) outs.push(...writeTruthAndWorld(this.#truthDir, truth, world));
    return outs;
  }

  async abort(): Promise<void> {
    this.#batch = [];
    await this.#producer.disconnect().catch(() => undefined);
  }
}
