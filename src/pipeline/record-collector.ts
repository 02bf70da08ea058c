/**
 * The labeler's outputs on their way out (Kafka Streams' `RecordCollectorImpl`): encodes what a
 * task's steps return (labels, dead letters; Avro or Confluent-framed), picks their partitions,
 * queues them in the task's open batch, and sends them in the task's transaction — ahead of the
 * commit once enough bytes wait, in produce requests bounded by {@link chunkMessages}.
 *
 * Output partitions: when a label / dead-letter topic has as many partitions as the inputs, the
 * outputs of input partition p go to partition p (the same partition the user_id key would
 * select with the default partitioner, and deterministic even for inputs produced with explicit
 * partitions); otherwise they are partitioned by key (murmur2, Java-compatible).
 */
import type { Message, TopicMessages } from 'kafkajs';
import type { KafkaConfig } from '../config/schema.ts';
import { encodeAvro } from '../contracts/codec.ts';
import type { ContractName, Contracts } from '../contracts/schemas.ts';
import { outputRecord } from '../join/task.ts';
import { OUTPUT_CONTRACT, type TaskOutput } from '../join/types.ts';
import type { TopicLayout } from '../kafka/topics.ts';
import type { RegistrySerde } from '../registry/serde.ts';
import type { KafkaTask } from './kafka-task.ts';

/**
 * Encoded output bytes of an open batch after which they are sent ahead in the batch's transaction,
 * so the produce round trips overlap with processing the rest of the batch instead of all
 * following it at commit time.
 */
const SEND_AHEAD_BYTES = 256 * 1024;

/** Bytes of record values per produce request (the broker's default message.max.bytes is 1 MiB). */
const MAX_REQUEST_BYTES = 512 * 1024;

/** Encodes, partitions, queues and sends the outputs of the tasks of one service. */
export class RecordCollector {
  readonly #k: KafkaConfig;
  readonly #layout: TopicLayout;
  /** Frames the outputs with their schema ids when `kafka.outputFormat` is confluent. */
  readonly #serde: RegistrySerde | undefined;

  constructor(k: KafkaConfig, layout: TopicLayout, serde: RegistrySerde | undefined) {
    this.#k = k;
    this.#layout = layout;
    this.#serde = k.outputFormat === 'confluent' ? serde : undefined;
  }

  /** Encodes a step's outputs into the batch's messages; sends them ahead once enough bytes wait. */
  collect(t: KafkaTask, outputs: TaskOutput[]): void {
    const topics = this.#k.topics;
    for (const o of outputs) {
      switch (o.kind) {
        case 'pointwise':
          this.#add(t, topics.pointwise, o.key, this.#encode(topics.pointwise, 'PointwiseLabels', o.value));
          break;
        case 'pairwise':
          this.#add(t, topics.pairwise, o.key, this.#encode(topics.pairwise, 'PairwiseLabels', o.value));
          break;
        case 'listwise':
          this.#add(t, topics.listwise, o.key, this.#encode(topics.listwise, 'ListwiseLabels', o.value));
          break;
        case 'encoded': {
          const topic = topics[o.label];
          if (o.json === true) {
            // NDJSON-column labels (only file replays make them): encoded as records.
            const r = outputRecord(o);
            this.#add(t, topic, o.key, this.#encode(topic, OUTPUT_CONTRACT[o.label], r.value as never));
            break;
          }
          this.#add(t, topic, o.key, this.#frame(topic, OUTPUT_CONTRACT[o.label], o.bytes));
          break;
        }
        case 'deadLetter':
          this.#add(t, topics.deadLetter, o.key, this.#encode(topics.deadLetter, 'DeadLetter', o.value));
          break;
      }
    }
    if (t.pendingBytes >= SEND_AHEAD_BYTES) this.#sendAhead(t);
  }

  /** Adds a message to the task's open batch. */
  queue(t: KafkaTask, topic: string, m: Message): void {
    const list = t.messages.get(topic);
    if (list === undefined) t.messages.set(topic, [m]);
    else list.push(m);
  }

  /** The batch's messages not sent yet, its state changes (to the changelog) last. */
  drain(t: KafkaTask): TopicMessages[] {
    for (const c of t.logged.drainChanges()) {
      this.queue(t, this.#k.topics.changelog, { key: c.key, value: c.value, partition: t.p });
    }
    return [...t.messages].map(([topic, messages]) => ({ topic, messages }));
  }

  /** Chains a send of `topicMessages` in the task's transaction after its earlier sends. */
  chainSend(t: KafkaTask, topicMessages: TopicMessages[]): Promise<void> {
    // This batch's records, taken now: the sends may complete after the batch went to its commit
    // and the task moved on to the next batch (whose records must not receive these).
    const sentMeta = t.sentMeta;
    const sentCounts = t.sentCounts;
    const chain = (t.sending ?? Promise.resolve()).then(async () => {
      t.txn ??= await t.producer.transaction();
      // Several bounded sends: one produce request must stay under the broker's message.max.bytes.
      for (const chunk of chunkMessages(topicMessages)) {
        sentMeta.push(...(await t.txn.sendBatch({ topicMessages: chunk, acks: -1 })));
      }
      for (const tm of topicMessages)
        sentCounts.set(tm.topic, (sentCounts.get(tm.topic) ?? 0) + tm.messages.length);
    });
    chain.catch(() => undefined); // awaited (and handled) by the commit or the discard
    return chain;
  }

  #add(t: KafkaTask, topic: string, key: Buffer | null, value: Buffer): void {
    const layout = this.#layout;
    const m: Message =
      layout.outputPartitions[topic] === layout.partitions ? { key, value, partition: t.p } : { key, value };
    this.queue(t, topic, m);
    t.pendingBytes += value.length;
  }

  /**
   * Sends the batch's outputs so far in its transaction (opened here if needed), chained after the
   * earlier send-aheads, without waiting: the commit awaits the chain. A failure surfaces there
   * (the transaction is then aborted and the task recovers as for any commit failure).
   */
  #sendAhead(t: KafkaTask): void {
    const topicMessages = [...t.messages].map(([topic, messages]) => ({ topic, messages }));
    t.messages = new Map();
    t.pendingBytes = 0;
    t.sending = this.chainSend(t, topicMessages);
  }

  /** Plain Avro bytes of a record as the output format wants them (Confluent: framed with the topic's schema id). */
  #frame(topic: string, name: ContractName, body: Buffer): Buffer {
    return this.#serde !== undefined ? this.#serde.frame(topic, name, body) : body;
  }

  #encode<N extends ContractName>(topic: string, name: N, value: Contracts[N]): Buffer {
    return this.#serde !== undefined ? this.#serde.encode(topic, name, value) : encodeAvro(name, value);
  }
}

/**
 * Splits topic messages into groups of at most {@link MAX_REQUEST_BYTES} value bytes (a larger
 * single message goes alone), keeping the order of each topic's messages.
 *
 * @example
 * chunkMessages([{ topic: 't', messages }]).length; // number of sendBatch calls
 */
export function chunkMessages(all: TopicMessages[], maxBytes = MAX_REQUEST_BYTES): TopicMessages[][] {
  const chunks: TopicMessages[][] = [];
  let cur: TopicMessages[] = [];
  let bytes = 0;
  for (const tm of all) {
    let part: Message[] = [];
    for (const m of tm.messages) {
      const size = (m.value === null || m.value === undefined ? 0 : Buffer.byteLength(m.value)) + 64;
      if (bytes + size > maxBytes && bytes > 0) {
        if (part.length > 0) cur.push({ topic: tm.topic, messages: part });
        chunks.push(cur);
        cur = [];
        part = [];
        bytes = 0;
      }
      part.push(m);
      bytes += size;
    }
    if (part.length > 0) cur.push({ topic: tm.topic, messages: part });
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}
