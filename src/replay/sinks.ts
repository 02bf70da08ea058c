/**
 * Where a replay task's outputs go: part files (file output, see ./parts.ts), a Kafka transaction
 * per checkpoint (topic output), or nowhere (dry run).
 */
import { join } from 'node:path';
import type { Message, Producer, Transaction } from 'kafkajs';
import { encodeAvro, encodeJson } from '../contracts/codec.ts';
import { avroType } from '../contracts/schemas.ts';
import { RankdistillError } from '../errors.ts';
import type { FileFormat } from '../io/files.ts';
import { jsonBytes } from '../io/json-bytes.ts';
import { outputRecord } from '../join/task.ts';
import { OUTPUT_CONTRACT, type OutputKind, type Side, type TaskOutput } from '../join/types.ts';
import { labelJson } from '../labels/json.ts';
import { emptyParts, type PartLengths, type ReplayCheckpoint } from './checkpoint.ts';
import { PartFile } from './parts.ts';

/** The part file format this code writes (see ReplayCheckpoint.partFormat). */
export const PART_FORMAT = 2;

/** What a sink persisted for a checkpoint (file output): part lengths and tail lengths. */
export interface PersistedParts {
  parts: PartLengths;
  tails: PartLengths;
}

/** Contract of each output kind. */
/** The contract of each output kind (the one map, in join/types.ts). */
export const KIND_CONTRACT = OUTPUT_CONTRACT;

export const OUTPUT_KINDS: readonly OutputKind[] = ['pointwise', 'pairwise', 'listwise', 'deadLetter'];

/** The outputs of one task between two checkpoints. */
export interface ReplaySink {
  /** Takes outputs of the open batch. */
  add(outputs: TaskOutput[]): void;
  /**
   * Step 1 of checkpoint `k`: make the batch's outputs durable (with `last`, no output follows);
   * what the checkpoint records of the part files, or null (no files).
   */
  persist(k: number, last: boolean): PersistedParts | null;
  /** Step 3 of a checkpoint: commit the batch with the input positions it reaches. */
  commit(positions: Record<Side, number>): Promise<void>;
  /** Drops the open batch's outputs (they were committed by an earlier run). */
  discard(): void;
  /** Bytes of the open batch's outputs kept in memory until its commit (0: none are kept). */
  held(): number;
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

  /**
   * Opens partition p's part files at checkpoint `ck` (a fresh partition's initial checkpoint).
   *
   * @throws RankdistillError STATE_STORE_FAILED when the checkpoint's parts are of another format
   *   or do not match the files.
   */
  static open(
    stateDir: string,
    p: number,
    format: FileFormat,
    ck: Pick<ReplayCheckpoint, 'k' | 'parts' | 'tails' | 'partFormat'>,
  ): PartsSink {
    if (ck.k > 0 && ck.partFormat !== PART_FORMAT) {
      throw new RankdistillError(
        'STATE_STORE_FAILED',
        `replay state ${stateDir} was written by an older rankdistill (part format ${ck.partFormat ?? 1}, this one writes ${PART_FORMAT}): finish it with that version, or delete the state directory to start over`,
        { details: { stateDir, partFormat: ck.partFormat ?? 1 } },
      );
    }
    const lengths = ck.parts ?? emptyParts();
    const tails = ck.tails ?? emptyParts();
    const open = (k: OutputKind) =>
      PartFile.open(partPath(stateDir, p, k), { format, name: KIND_CONTRACT[k], header: p === 0 }, ck.k, {
        length: lengths[k],
        tail: tails[k],
      });
    return new PartsSink(format, {
      pointwise: open('pointwise'),
      pairwise: open('pairwise'),
      listwise: open('listwise'),
      deadLetter: open('deadLetter'),
    });
  }

  add(outputs: TaskOutput[]): void {
    for (const o of outputs) {
      if (o.kind === 'encoded' && (o.json === true) === (this.#format === 'ndjson')) {
        this.#parts[o.label].append(o.bytes);
        continue;
      }
      const r = outputRecord(o);
      this.#parts[r.kind].append(recordBytes(r.kind, r.value, this.#format));
    }
  }

  persist(k: number, last: boolean): PersistedParts {
    const parts = emptyParts();
    const tails = emptyParts();
    for (const kind of OUTPUT_KINDS) {
      const st = this.#parts[kind].persist(k, last);
      parts[kind] = st.length;
      tails[kind] = st.tail;
    }
    return { parts, tails };
  }

  async commit(): Promise<void> {}

  discard(): void {
    // Part files are cut back to the checkpoint on open; nothing is buffered outside them.
  }

  held(): number {
    return 0;
  }

  async close(): Promise<void> {
    for (const k of OUTPUT_KINDS) this.#parts[k].close();
  }
}

/**
 * Bytes of outputs a sink may keep in memory for the open checkpoint (a topic replay keeps its
 * transaction's records for a resend): reaching it checkpoints early, so a checkpoint of many
 * records at 200 candidates stays bounded in memory.
 */
export const MAX_HELD_BYTES = 64 * 1024 * 1024;

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

/** Messages of one produce request: per topic, in order. */
type Chunk = Array<{ topic: string; messages: Message[] }>;

/** `batch` cut into produce requests of at most SEND_BYTES of payload each. */
function chunksOf(batch: ReadonlyArray<{ topic: string; message: Message }>): Chunk[] {
  // A checkpoint can hold more than a broker accepts in one request (message.max.bytes, 1 MiB by
  // default, applies to a partition's whole record batch): sent in chunks, all in one transaction.
  const chunks: Chunk[] = [];
  let byTopic = new Map<string, Message[]>();
  let bytes = 0;
  const cut = () => {
    if (byTopic.size > 0) chunks.push([...byTopic].map(([topic, messages]) => ({ topic, messages })));
    byTopic = new Map();
    bytes = 0;
  };
  for (const { topic, message } of batch) {
    const size = messageBytes(message);
    if (bytes + size > SEND_BYTES) cut();
    bytes += size;
    const list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, [message]);
    else list.push(message);
  }
  cut();
  return chunks;
}

function messageBytes(m: Message): number {
  return (m.value as Buffer).length + ((m.key as Buffer | null)?.length ?? 0) + 64;
}

/**
 * Topic output: one Kafka transaction per checkpoint with the batch's labels, dead letters and the
 * input offsets of the replay's own consumer group (as the live service does, but never its group).
 *
 * The transaction opens with the checkpoint's first full request's worth of records, and each
 * further SEND_BYTES is sent while the task goes on labelling: the checkpoint then waits only for
 * the last request, the offsets and the commit. (Sending everything at the checkpoint left the task
 * idle for the whole transaction: ~20% of a Kafka → topics replay at 50 candidates.) The
 * checkpoint's records are kept until it commits: when the coordinator refuses the transaction
 * (CONCURRENT_TRANSACTIONS, right after the fencing abort at start), it is aborted and sent again
 * whole.
 *
 * @example
 * const sink = new TopicSink({ partition: 0, producer, topics, partitionOf: () => 0, offsets: null });
 */
export class TopicSink implements ReplaySink {
  readonly #o: TopicSinkOptions;
  /** Every message of the open checkpoint. */
  #batch: Array<{ topic: string; message: Message }> = [];
  /** Messages of #batch already handed to the open transaction, and the payload bytes after them. */
  #sent = 0;
  #unsentBytes = 0;
  /** Payload bytes of #batch (kept for a resend until the commit). */
  #heldBytes = 0;
  /** The open transaction, once a send ahead opened it. */
  #txn: Transaction | null = null;
  /** The sends ahead, in order; never rejects (the first failure is kept in #failed). */
  #sending: Promise<void> = Promise.resolve();
  #failed: { error: unknown } | null = null;
  /** Bumped when the open checkpoint is dropped: sends queued for it are skipped. */
  #gen = 0;

  constructor(opts: TopicSinkOptions) {
    this.#o = opts;
  }

  add(outputs: TaskOutput[]): void {
    for (const o of outputs) {
      const kind = o.kind === 'encoded' ? o.label : o.kind;
      const topic = this.#o.topics[kind];
      const partition = this.#o.partitionOf(topic);
      // NDJSON-column labels (file replays only) are re-encoded; Avro-column ones go as they are.
      const r = o.kind === 'encoded' && o.json === true ? outputRecord(o) : o;
      const value = r.kind === 'encoded' ? r.bytes : encodeAvro(KIND_CONTRACT[r.kind], r.value as never);
      const message: Message =
        partition === undefined ? { key: o.key, value } : { key: o.key, value, partition };
      this.#batch.push({ topic, message });
      const size = messageBytes(message);
      this.#unsentBytes += size;
      this.#heldBytes += size;
    }
    if (this.#unsentBytes >= SEND_BYTES) this.#sendAhead();
  }

  /** Queues the records not sent yet into the open transaction (opened by the first send). */
  #sendAhead(): void {
    const chunks = chunksOf(this.#batch.slice(this.#sent));
    this.#sent = this.#batch.length;
    this.#unsentBytes = 0;
    const gen = this.#gen;
    this.#sending = this.#sending
      .then(async () => {
        if (gen !== this.#gen || this.#failed !== null) return;
        this.#txn ??= await this.#o.producer.transaction();
        for (const topicMessages of chunks) await this.#txn.sendBatch({ topicMessages, acks: -1 });
      })
      .catch((error: unknown) => {
        if (gen === this.#gen) this.#failed ??= { error };
      });
  }

  persist(_k: number, _last: boolean): null {
    return null;
  }

  held(): number {
    return this.#heldBytes;
  }

  async commit(positions: Record<Side, number>): Promise<void> {
    if (this.#batch.length === 0 && this.#txn === null && this.#o.offsets === null) return;
    if (this.#sent < this.#batch.length) this.#sendAhead();
    await this.#sending;
    const batch = this.#batch;
    const failed = this.#failed;
    let txn = this.#txn;
    this.#reset();
    if (failed === null) {
      try {
        txn ??= await this.#o.producer.transaction();
        await this.#finish(txn, positions);
        return;
      } catch (e) {
        if (!isConcurrentTransactions(e)) throw e;
      }
    } else {
      await txn?.abort().catch(() => undefined);
      if (!isConcurrentTransactions(failed.error)) throw failed.error;
    }
    // Right after the fencing abort at start (or a slow commit), the coordinator may still be
    // completing the previous transaction and answers CONCURRENT_TRANSACTIONS: the transaction
    // was aborted, nothing of it is visible, so it is retried whole after a pause.
    const chunks = chunksOf(batch);
    for (let attempt = 2; ; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * attempt)));
      try {
        const t = await this.#o.producer.transaction();
        for (const topicMessages of chunks) {
          try {
            await t.sendBatch({ topicMessages, acks: -1 });
          } catch (e) {
            await t.abort().catch(() => undefined);
            throw e;
          }
        }
        await this.#finish(t, positions);
        return;
      } catch (e) {
        if (!isConcurrentTransactions(e) || attempt >= 20) throw e;
      }
    }
  }

  /** Sends the input offsets (Kafka input) and commits; aborts on failure. */
  async #finish(txn: Transaction, positions: Record<Side, number>): Promise<void> {
    const off = this.#o.offsets;
    try {
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

  /** Forgets the open checkpoint (its transaction, if any, is the caller's to end). */
  #reset(): void {
    this.#batch = [];
    this.#sent = 0;
    this.#unsentBytes = 0;
    this.#heldBytes = 0;
    this.#txn = null;
    this.#failed = null;
    this.#gen++;
  }

  discard(): void {
    const txn = this.#txn;
    this.#reset();
    if (txn !== null) this.#sending = this.#sending.then(() => txn.abort()).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.discard();
    await this.#sending;
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
  persist(_k: number, _last: boolean): null {
    return null;
  }
  async commit(): Promise<void> {}
  discard(): void {}
  held(): number {
    return 0;
  }
  async close(): Promise<void> {}
}
