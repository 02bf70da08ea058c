/**
 * Where a replay task's outputs go: part files (file output, see ./parts.ts), a Kafka transaction
 * per checkpoint (topic output), or nowhere (dry run).
 */
import { join } from 'node:path';
import type { Message, Producer } from 'kafkajs';
import { encodeAvro, encodeJson } from '../contracts/codec.ts';
import { avroType } from '../contracts/schemas.ts';
import type { FileFormat } from '../io/files.ts';
import { jsonBytes } from '../io/json-bytes.ts';
import { outputRecord } from '../join/task.ts';
import { OUTPUT_CONTRACT, type OutputKind, type Side, type TaskOutput } from '../join/types.ts';
import { labelJson } from '../labels/json.ts';
import type { PartLengths } from './checkpoint.ts';
import { PartFile } from './parts.ts';

/** Contract of each output kind. */
/** The contract of each output kind (the one map, in join/types.ts). */
export const KIND_CONTRACT = OUTPUT_CONTRACT;

export const OUTPUT_KINDS: readonly OutputKind[] = ['pointwise', 'pairwise', 'listwise', 'deadLetter'];

/** The outputs of one task between two checkpoints. */
export interface ReplaySink {
  /** Takes outputs of the open batch. */
  add(outputs: TaskOutput[]): void;
  /** Step 1 of a checkpoint: make the batch's outputs durable; part lengths for the checkpoint. */
  persist(): PartLengths | null;
  /** Step 3 of a checkpoint: commit the batch with the input positions it reaches. */
  commit(positions: Record<Side, number>): Promise<void>;
  /** Drops the open batch's outputs (they were committed by an earlier run). */
  discard(): void;
  close(): Promise<void>;
}

/**
 * The bytes a record has in a file of `format` (an NDJSON line without newline, or Avro). An
 * NDJSON label is a view of a reused buffer (src/labels/json.ts): copy it before the next call.
 */
export function recordBytes(
  kind: OutputKind,
  value: Exclude<TaskOutput, { kind: 'encoded' }>['value'],
  format: FileFormat,
): Buffer {
  const name = KIND_CONTRACT[kind];
  if (format === 'avro') return encodeAvro(name, value as never);
  // Labels (built by the labelers, no bytes fields): their JSON.stringify bytes, written without
  // the intermediate string by the label writers (src/labels/json.ts), else by the generic one
  // (src/io/json-bytes.ts); the view is copied by the part file. Not validated against the
  // schema here, as the Avro path's encoded labels are not either.
  if (name !== 'DeadLetter') {
    const b = labelJson(name, value) ?? jsonBytes(value);
    if (b !== null) return b;
  }
  // As RecordWriter does: plain JSON.stringify for contracts without bytes fields (same text as
  // encodeJson, whose replacer only turns Buffers into base64), encodeJson otherwise.
  if (name !== 'DeadLetter' && avroType(name).isValid(value)) return Buffer.from(JSON.stringify(value));
  return Buffer.from(encodeJson(name, value as never));
}

/** Part file of a partition and kind inside a replay state directory. */
export function partPath(stateDir: string, p: number, kind: OutputKind): string {
  return join(stateDir, 'parts', `p${p}.${kind}.part`);
}

/**
 * File output: appends to the partition's part files.
 *
 * @example
 * const sink = PartsSink.open(stateDir, 0, 'ndjson', checkpoint.parts);
 */
export class PartsSink implements ReplaySink {
  readonly #format: FileFormat;
  readonly #parts: Record<OutputKind, PartFile>;

  private constructor(format: FileFormat, parts: Record<OutputKind, PartFile>) {
    this.#format = format;
    this.#parts = parts;
  }

  static open(stateDir: string, p: number, format: FileFormat, lengths: PartLengths): PartsSink {
    const open = (k: OutputKind) => PartFile.open(partPath(stateDir, p, k), lengths[k]);
    return new PartsSink(format, {
      pointwise: open('pointwise'),
      pairwise: open('pairwise'),
      listwise: open('listwise'),
      deadLetter: open('deadLetter'),
    });
  }

  add(outputs: TaskOutput[]): void {
    for (const o of outputs) {
      if (o.kind === 'encoded' && this.#format === 'avro') {
        this.#parts[o.label].append(o.bytes);
        continue;
      }
      const r = outputRecord(o);
      this.#parts[r.kind].append(recordBytes(r.kind, r.value, this.#format));
    }
  }

  persist(): PartLengths {
    return {
      pointwise: this.#parts.pointwise.persist(),
      pairwise: this.#parts.pairwise.persist(),
      listwise: this.#parts.listwise.persist(),
      deadLetter: this.#parts.deadLetter.persist(),
    };
  }

  async commit(): Promise<void> {}

  discard(): void {
    // Part files are cut back to the checkpoint on open; nothing is buffered outside them.
  }

  async close(): Promise<void> {
    for (const k of OUTPUT_KINDS) this.#parts[k].close();
  }
}

/** Payload bytes per produce request of a checkpoint's transaction (below message.max.bytes). */
const SEND_BYTES = 512 * 1024;

/** Output topics of a topic replay. */
export type OutputTopics = Record<OutputKind, string>;

/** What a {@link TopicSink} needs. */
export interface TopicSinkOptions {
  partition: number;
  producer: Producer;
  topics: OutputTopics;
  /** Partition of an output topic for this task's records, or undefined: by key. */
  partitionOf: (topic: string) => number | undefined;
  /** Input topics and the replay's group (Kafka input), or null (file input: no offsets). */
  offsets: { groupId: string; topics: Record<Side, string> } | null;
}

/**
 * Topic output: one Kafka transaction per checkpoint with the batch's labels, dead letters and the
 * input offsets of the replay's own consumer group (as the live service does, but never its group).
 *
 * @example
 * const sink = new TopicSink({ partition: 0, producer, topics, partitionOf: () => 0, offsets: null });
 */
export class TopicSink implements ReplaySink {
  readonly #o: TopicSinkOptions;
  #batch: Array<{ topic: string; message: Message }> = [];

  constructor(opts: TopicSinkOptions) {
    this.#o = opts;
  }

  add(outputs: TaskOutput[]): void {
    for (const o of outputs) {
      const kind = o.kind === 'encoded' ? o.label : o.kind;
      const topic = this.#o.topics[kind];
      const partition = this.#o.partitionOf(topic);
      const value = o.kind === 'encoded' ? o.bytes : encodeAvro(KIND_CONTRACT[o.kind], o.value as never);
      this.#batch.push({
        topic,
        message: partition === undefined ? { key: o.key, value } : { key: o.key, value, partition },
      });
    }
  }

  persist(): null {
    return null;
  }

  async commit(positions: Record<Side, number>): Promise<void> {
    // A checkpoint can hold more than a broker accepts in one request (message.max.bytes, 1 MiB
    // by default, applies to a partition's whole record batch): send it in chunks, all in the
    // same transaction.
    const chunks: Array<Array<{ topic: string; messages: Message[] }>> = [];
    let byTopic = new Map<string, Message[]>();
    let bytes = 0;
    const cut = () => {
      if (byTopic.size > 0) chunks.push([...byTopic].map(([topic, messages]) => ({ topic, messages })));
      byTopic = new Map();
      bytes = 0;
    };
    for (const { topic, message } of this.#batch) {
      const size = (message.value as Buffer).length + ((message.key as Buffer | null)?.length ?? 0) + 64;
      if (bytes + size > SEND_BYTES) cut();
      bytes += size;
      const list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, [message]);
      else list.push(message);
    }
    cut();
    this.#batch = [];
    const off = this.#o.offsets;
    if (chunks.length === 0 && off === null) return;
    // Right after the fencing abort at start (or a slow commit), the coordinator may still be
    // completing the previous transaction and answers CONCURRENT_TRANSACTIONS: the transaction
    // was aborted, nothing of it is visible, so it is retried whole after a pause.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#transaction(chunks, positions);
        return;
      } catch (e) {
        if (!isConcurrentTransactions(e) || attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * attempt)));
      }
    }
  }

  async #transaction(
    chunks: Array<Array<{ topic: string; messages: Message[] }>>,
    positions: Record<Side, number>,
  ): Promise<void> {
    const off = this.#o.offsets;
    const txn = await this.#o.producer.transaction();
    try {
      for (const topicMessages of chunks) await txn.sendBatch({ topicMessages, acks: -1 });
      if (off !== null) {
        // Loaded here: file replays (and their threads) never load the Kafka client.
        const { sendOffsetsRetrying } = await import('../kafka/client.ts');
        await sendOffsetsRetrying(txn, {
          consumerGroupId: off.groupId,
          topics: (['ranker', 'impression'] as const).map((s) => ({
            topic: off.topics[s],
            partitions: [{ partition: this.#o.partition, offset: String(positions[s]) }],
          })),
        });
      }
      await txn.commit();
    } catch (e) {
      await txn.abort().catch(() => undefined);
      throw e;
    }
  }

  discard(): void {
    this.#batch = [];
  }

  async close(): Promise<void> {
    this.#batch = [];
  }
}

/** Kafka's CONCURRENT_TRANSACTIONS (51), as kafkajs reports it. */
function isConcurrentTransactions(e: unknown): boolean {
  const x = e as { type?: unknown; code?: unknown; cause?: unknown } | null;
  if (x === null || typeof x !== 'object') return false;
  if (x.type === 'CONCURRENT_TRANSACTIONS' || x.code === 51) return true;
  return x.cause !== undefined && x.cause !== e && isConcurrentTransactions(x.cause);
}

/** Dry run: outputs are only counted (by the task's counters). */
export class NullSink implements ReplaySink {
  add(): void {}
  persist(): null {
    return null;
  }
  async commit(): Promise<void> {}
  discard(): void {}
  async close(): Promise<void> {}
}
