/**
 * A join task: everything that happens to the records of input partition p of both topics, from
 * bytes to labels and dead letters, without any I/O.
 *
 *   bytes ─ decode ─ validate ─► PartitionMerge (event-time order) ─► JoinOperator ─► labeler
 *            │ MALFORMED    │ INVALID                                   │ LATE/ORPHAN   │ LABEL_FAILED
 *            └──────────────┴───────────────────► dead letters ◄────────┴───────────────┘
 *
 * Transports (files, Kafka) push fetched records, mark a side caught up when its buffer may be
 * empty for good, and call {@link JoinTask.step} to get the outputs of the next records in merged
 * order together with the offsets that are then fully processed.
 */
import { createHash } from 'node:crypto';
import type avro from 'avsc';
import { avroDecoderOrThrow, type Decoded, decode, type WireFormat } from '../contracts/codec.ts';
import { parseImpressionColumns } from '../contracts/impression-columns.ts';
import type { DeadLetter, Impression, RankerOutput } from '../contracts/index.ts';
import { jsonDecoderOrThrow, parseImpressionJson, parseRankerJson } from '../contracts/json-columns.ts';
import { parseRankerColumns, RankerColumns } from '../contracts/ranker-columns.ts';
import { errorMessage } from '../errors.ts';
import type { EncodedLabels } from '../labels/encoded.ts';
import type { JoinedRequest, RequestLabels } from '../labels/index.ts';
import { validateImpression, validateRankerOutput } from '../labels/index.ts';
import { MarkerBlockStore } from './marker-blocks.ts';
import { type MergeChunk, type MergeEntry, type MergeSide, PartitionMerge } from './merge.ts';
import { JoinOperator, type JoinWindowConfig } from './operator.ts';
import {
  type DeadLetterReason,
  emptyCounters,
  type JoinCounters,
  type JoinEffect,
  type JoinInput,
  type JoinStateStore,
  OUTPUT_CONTRACT,
  type RecordRef,
  type Side,
  type SourceRef,
  type TaskOutput,
} from './types.ts';

/** A fetched input record. `decoded` is given when the transport already decoded it (files). */
export interface RawInput {
  offset: number;
  key: Buffer | null;
  raw: Buffer;
  decoded?: Decoded<RankerOutput> | Decoded<Impression>;
}

/**
 * Fetched records in columns over the one buffer they arrived in (a Kafka fetch response): their
 * offsets, and the byte ranges of each value and key. Until the merge reaches a record, it costs
 * no object (see {@link MergeChunk}); build with {@link rawColumns}.
 */
export interface RawColumns {
  /** The bytes every range points into. */
  buf: Buffer;
  /** Record offsets. */
  offsets: Float64Array;
  /** Per record i: [4i, 4i+1) the value's range, [4i+2, 4i+3) the key's (start −1: no key). */
  ranges: Int32Array;
}

/** A fetched record: its offset, key and value (null for a tombstone), as kafkajs gives it. */
export interface FetchedRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

/**
 * Fetched records as {@link RawColumns}, one per run of records whose keys and values lie in the
 * same buffer (all of a fetch response, unless batches were decompressed apart). A null value
 * reads as an empty record, as with {@link JoinTask.push}.
 *
 * @example
 * for (const cols of rawColumns(batch.messages)) task.pushColumns('ranker', cols);
 */
export function rawColumns(records: readonly FetchedRecord[]): RawColumns[] {
  const out: RawColumns[] = [];
  let from = 0;
  while (from < records.length) {
    let ab: ArrayBufferLike | undefined;
    let to = from;
    for (; to < records.length; to++) {
      const r = records[to] as FetchedRecord;
      const vb = r.value !== null && r.value.length > 0 ? r.value.buffer : undefined;
      const kb = r.key !== null && r.key.length > 0 ? r.key.buffer : undefined;
      if (ab === undefined) ab = vb ?? kb;
      if ((vb !== undefined && vb !== ab) || (kb !== undefined && kb !== ab)) break;
    }
    const n = to - from;
    const offsets = new Float64Array(n);
    const ranges = new Int32Array(4 * n);
    for (let i = 0; i < n; i++) {
      const r = records[from + i] as FetchedRecord;
      offsets[i] = Number(r.offset);
      if (r.value !== null && r.value.length > 0) {
        ranges[4 * i] = r.value.byteOffset;
        ranges[4 * i + 1] = r.value.byteOffset + r.value.length;
      }
      if (r.key === null) ranges[4 * i + 2] = -1;
      else if (r.key.length > 0) {
        ranges[4 * i + 2] = r.key.byteOffset;
        ranges[4 * i + 3] = r.key.byteOffset + r.key.length;
      }
    }
    const buf = ab === undefined ? Buffer.alloc(0) : Buffer.from(ab);
    out.push({ buf, offsets, ranges });
    from = to;
  }
  return out;
}

/** Everything a task needs, injected. */
export interface JoinTaskOptions {
  partition: number;
  /** Source names written into dead letters (topic names, or file names). */
  topics: { ranker: string; impression: string };
  store: JoinStateStore;
  join: JoinWindowConfig;
  /** Labels one joined request (`labelRequest` bound to the labels config). */
  label: (req: JoinedRequest) => RequestLabels;
  /** Wire format of raw inputs (ignored for records pushed with `decoded`). */
  inputFormat: WireFormat;
  /** Format the raw bytes of pushed records are in, for state entries (defaults to inputFormat). */
  rawFormat?: { ranker: WireFormat; impression: WireFormat };
  /** Writer schema of a Confluent schema id (registry cache filled by `RegistrySerde.prefetch`). */
  writerFor?: (schemaId: number) => avro.Type | undefined;
  /** Wall clock for dead-letter times. */
  now: () => number;
  /**
   * The column path (plain Avro ranker outputs only): ranker outputs that parseRankerColumns
   * accepts are not decoded into objects, and their labels come from this writer
   * (`labelColumnsEncoded` bound to the labels config) as Avro bytes. Must give the bytes of
   * encoding `label`'s records; everything else still goes through `label`.
   */
  columns?: (ranker: RankerColumns, impression: Impression | null) => EncodedLabels;
  /**
   * The column path of NDJSON lines (raw format json, not pushed `decoded`): lines that
   * parseRankerJson / parseImpressionJson accept are not decoded into objects, and the labels of
   * a ranker output held so come from this writer (`labelColumnsJson` bound to the labels config)
   * as NDJSON lines (outputs `encoded` with `json`). Must give the bytes of `JSON.stringify` of
   * `label`'s records.
   */
  jsonColumns?: (ranker: RankerColumns, impression: Impression | null) => EncodedLabels;
  /**
   * Most bytes of original key and value a dead letter carries (the key counts twice: message
   * key and field). A larger value or key keeps only its first bytes, with its size and SHA-256
   * ({@link deadLetterRaw}), so the dead letter fits the topic. Unbounded when absent (files).
   */
  deadLetterMaxBytes?: number;
}

/** The fields of a dead letter that carry the original key and value ({@link deadLetterRaw}). */
export type DeadLetterBytes = Pick<
  DeadLetter,
  'key' | 'key_truncated' | 'key_size' | 'key_sha256' | 'raw' | 'raw_truncated' | 'raw_size' | 'raw_sha256'
>;

/** `bytes` whole, or its first `room` bytes with the whole's size and SHA-256. */
function cut(
  bytes: Buffer,
  room: number,
): { bytes: Buffer; truncated: boolean; size: number | null; sha256: string | null } {
  if (bytes.length <= room) return { bytes, truncated: false, size: null, sha256: null };
  return {
    bytes: Buffer.from(bytes.subarray(0, room)),
    truncated: true,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

/**
 * The key and `raw` fields of a dead letter for an original key and value, within `maxBytes`
 * (the key counts twice: the dead letter's message key and its `key` field). Both whole when they
 * fit. Otherwise a key of up to a quarter of `maxBytes` stays whole and the value keeps its first
 * bytes; a larger key keeps its first `maxBytes / 4` bytes (message key and field alike) and the
 * value the rest of the room. What is cut is marked truncated with the whole's size and SHA-256: a
 * poison record of 1 MB (value or key: the broker accepts keys up to message.max.bytes too) must
 * not make a dead letter the broker refuses, or the partition would stall on it for ever.
 *
 * @example
 * deadLetterRaw(Buffer.alloc(2_000_000), null, 256 * 1024).raw.length; // 262144
 * deadLetterRaw(Buffer.alloc(10), Buffer.alloc(2_000_000), 256 * 1024).key?.length; // 65536
 */
export function deadLetterRaw(
  raw: Buffer,
  key: Buffer | null,
  maxBytes: number | undefined,
): DeadLetterBytes {
  const max = maxBytes ?? Number.POSITIVE_INFINITY;
  const k =
    key === null ? null : cut(key, 2 * key.length + raw.length <= max ? key.length : Math.floor(max / 4));
  const v = cut(raw, Math.max(0, max - 2 * (k?.bytes.length ?? 0)));
  return {
    key: k?.bytes ?? null,
    key_truncated: k?.truncated ?? false,
    key_size: k?.size ?? null,
    key_sha256: k?.sha256 ?? null,
    raw: v.bytes,
    raw_truncated: v.truncated,
    raw_size: v.size,
    raw_sha256: v.sha256,
  };
}

type Item =
  | { ok: true; input: JoinInput }
  | { ok: false; reason: DeadLetterReason; message: string; ref: RecordRef; requestId: string | null };

const SIDE_INDEX: Record<Side, MergeSide> = { ranker: 0, impression: 1 };

/**
 * A buffered record decoded only when the merge looks at it (it only reads the heads). Buffers hold
 * thousands of records while a commit is in flight; decoded eagerly, their objects outlived several
 * scavenges and made each one slow (10-30 ms at 20 candidates in --trace-gc). Lazily, at most the
 * two heads are decoded, and a record's objects die young right after it is processed.
 */
class LazyEntry implements MergeEntry<Item> {
  readonly offset: number;
  #raw: RawInput | undefined;
  #item: Item | undefined;
  readonly #prepare: (r: RawInput) => Item;

  constructor(raw: RawInput, prepare: (r: RawInput) => Item) {
    this.offset = raw.offset;
    this.#raw = raw;
    this.#prepare = prepare;
  }

  get item(): Item {
    if (this.#item === undefined) {
      this.#item = this.#prepare(this.#raw as RawInput);
      this.#raw = undefined;
    }
    return this.#item;
  }

  get ts(): number {
    const item = this.item;
    return item.ok ? item.input.value.ts : Number.NEGATIVE_INFINITY;
  }
}

/** Records given as RawInput objects (files, replay); each becomes an entry at the head. */
class RawInputChunk implements MergeChunk<Item> {
  readonly #records: Array<RawInput | undefined>;
  readonly #prepare: (r: RawInput) => Item;
  readonly length: number;
  constructor(records: Array<RawInput | undefined>, prepare: (r: RawInput) => Item) {
    this.#records = records;
    this.#prepare = prepare;
    this.length = records.length;
  }
  entry(i: number): MergeEntry<Item> {
    const r = this.#records[i] as RawInput;
    this.#records[i] = undefined;
    return new LazyEntry(r, this.#prepare);
  }
}

/** Records in {@link RawColumns}; each becomes a RawInput and an entry at the head. */
class ColumnsChunk implements MergeChunk<Item> {
  readonly #cols: RawColumns;
  readonly #prepare: (r: RawInput) => Item;
  readonly length: number;
  constructor(cols: RawColumns, prepare: (r: RawInput) => Item) {
    this.#cols = cols;
    this.#prepare = prepare;
    this.length = cols.offsets.length;
  }
  entry(i: number): MergeEntry<Item> {
    const { buf, offsets, ranges } = this.#cols;
    const ks = ranges[4 * i + 2] as number;
    return new LazyEntry(
      {
        offset: offsets[i] as number,
        key: ks < 0 ? null : buf.subarray(ks, ranges[4 * i + 3]),
        raw: buf.subarray(ranges[4 * i], ranges[4 * i + 1]),
      },
      this.#prepare,
    );
  }
}

const SIDES: readonly Side[] = ['ranker', 'impression'];

/** Result of one {@link JoinTask.step}. */
export interface StepResult {
  outputs: TaskOutput[];
  /** Input records processed in this step. */
  processed: number;
}

/**
 * @example
 * const task = new JoinTask({ partition: 0, topics, store: new MemoryJoinStore(), join, label, inputFormat: 'avro', now: Date.now });
 * task.push('ranker', [{ offset: 0, key, raw }]);
 * task.setCaughtUp('impression', true);
 * const { outputs } = task.step(1000);
 */
export class JoinTask {
  readonly partition: number;
  readonly counters: JoinCounters = emptyCounters();
  /**
   * Ranker outputs by decoding path, when the column path is on: `generic` counts records the
   * column parser refused (bad, or valid but not in the canonical form it copies from).
   */
  readonly rankerPaths = { columns: 0, generic: 0 };
  readonly #opts: JoinTaskOptions;
  readonly #merge = new PartitionMerge<Item>();
  readonly #op: JoinOperator;
  /** Over `opts.store`: the done markers of each step go to the store as one block. */
  readonly #markers: MarkerBlockStore;
  /** Next offset to consume per side once everything processed so far is committed. */
  readonly #next: Record<Side, number | null> = { ranker: null, impression: null };
  readonly #columns: boolean;
  readonly #prepares: readonly [(r: RawInput) => Item, (r: RawInput) => Item] = [
    (r) => this.#prepare('ranker', r),
    (r) => this.#prepare('impression', r),
  ];

  constructor(opts: JoinTaskOptions) {
    this.partition = opts.partition;
    this.#opts = opts;
    this.#markers = new MarkerBlockStore(opts.store);
    this.#op = new JoinOperator(this.#markers, opts.join, opts.jsonColumns !== undefined);
    this.#columns = opts.columns !== undefined;
  }

  /** Buffers records of one side (in offset order); each is decoded and validated when it reaches the head. */
  push(side: Side, records: Iterable<RawInput>): void {
    const chunk = new RawInputChunk([...records], this.#prepares[SIDE_INDEX[side]]);
    this.counters.recordsIn[side] += chunk.length;
    this.#merge.pushChunk(SIDE_INDEX[side], chunk);
  }

  /** {@link push} of fetched records in columns: nothing per record exists until it reaches the head. */
  pushColumns(side: Side, cols: RawColumns): void {
    const chunk = new ColumnsChunk(cols, this.#prepares[SIDE_INDEX[side]]);
    this.counters.recordsIn[side] += chunk.length;
    this.#merge.pushChunk(SIDE_INDEX[side], chunk);
  }

  /** See {@link PartitionMerge.setCaughtUp}. */
  setCaughtUp(side: Side, caughtUp: boolean): void {
    this.#merge.setCaughtUp(SIDE_INDEX[side], caughtUp);
  }

  /** Records buffered and not yet processed on a side. */
  buffered(side: Side): number {
    return this.#merge.buffered(SIDE_INDEX[side]);
  }

  /** The side whose empty buffer blocks progress, or null. */
  blockedOn(): Side | null {
    const b = this.#merge.blockedOn();
    return b === null ? null : (SIDES[b] ?? null);
  }

  /** Next offset to commit per side (null: nothing processed yet on that side). */
  nextOffsets(): Readonly<Record<Side, number | null>> {
    return this.#next;
  }

  /** Current watermark, or null before the first record. */
  watermark(): number | null {
    return this.#op.watermark();
  }

  /** Stream time (largest event time seen), or null. */
  streamTime(): number | null {
    return this.#opts.store.streamTime();
  }

  /**
   * Entries in the join state: pending records and done markers (a marker counts until its block
   * expires, see {@link MarkerBlockStore.size}).
   */
  stateSize(): number {
    return this.#markers.size();
  }

  /** Requests open in their window (pending lone records), exactly. */
  openRequests(): number {
    return this.#markers.pending();
  }

  /**
   * Forgets what the task holds beside its store — the operator's decoded-record cache, the
   * markers' index — after the store was rolled back (its batch discarded).
   */
  clearCache(): void {
    this.#op.clearCache();
    this.#markers.reload();
  }

  /** Drops buffered records and the processed positions (after a rewind to committed offsets). */
  reset(): void {
    this.#op.clearCache();
    this.#markers.reload();
    this.#merge.clear();
    this.#next.ranker = null;
    this.#next.impression = null;
  }

  /** Processes up to `max` records in merged event-time order. */
  step(max: number): StepResult {
    const outputs: TaskOutput[] = [];
    let processed = 0;
    while (processed < max) {
      const n = this.#merge.next();
      if (n === undefined) break;
      const side = SIDES[n.side] as Side;
      processed++;
      this.#next[side] = n.entry.offset + 1;
      const item = n.entry.item;
      if (!item.ok) {
        if (item.reason === 'MALFORMED' || item.reason === 'SCHEMA_ID_UNKNOWN') this.counters.malformed++;
        else this.counters.invalid++;
        this.#dead(outputs, item.reason, item.message, item.ref, item.requestId);
        continue;
      }
      for (const eff of this.#op.process(item.input)) this.#apply(eff, outputs);
    }
    // Every step ends with its markers in the store: a commit may follow any step.
    this.#markers.seal();
    return { outputs, processed };
  }

  /**
   * Expires every entry as if the watermark had passed all windows (end of a closed log: lone
   * ranker outputs are emitted unmatched, lone impressions become orphans). Stream time is kept.
   */
  drain(): TaskOutput[] {
    const outputs: TaskOutput[] = [];
    for (const eff of this.#op.sweep(Number.POSITIVE_INFINITY)) this.#apply(eff, outputs);
    // The unmatched markers that sweep left go in a block, and that block (expired) goes too.
    this.#markers.seal();
    for (const eff of this.#op.sweep(Number.POSITIVE_INFINITY)) this.#apply(eff, outputs);
    return outputs;
  }

  #prepare(side: Side, r: RawInput): Item {
    const source: SourceRef = {
      topic: side === 'ranker' ? this.#opts.topics.ranker : this.#opts.topics.impression,
      partition: this.partition,
      offset: r.offset,
    };
    const ref: RecordRef = { source, key: r.key, raw: r.raw };
    const format = this.#opts.rawFormat?.[side] ?? this.#opts.inputFormat;
    if (this.#columns && r.decoded === undefined && format === 'avro') {
      // Null: bad, invalid or non-canonical bytes, for the generic path below to decode or
      // dead-letter.
      if (side === 'ranker') {
        const cols = parseRankerColumns(r.raw, decodeRanker);
        this.rankerPaths[cols === null ? 'generic' : 'columns']++;
        if (cols !== null)
          return { ok: true, input: { side, value: cols, source, key: r.key, format: 'avro', raw: r.raw } };
      } else {
        const cols = parseImpressionColumns(r.raw, decodeImpression);
        if (cols !== null)
          return { ok: true, input: { side, value: cols, source, key: r.key, format: 'avro', raw: r.raw } };
      }
    }
    if (r.decoded === undefined && format === 'json' && this.#opts.jsonColumns !== undefined) {
      // As above, for NDJSON lines: null sends the line to the full decode below.
      if (side === 'ranker') {
        const cols = parseRankerJson(r.raw, decodeRankerJson);
        this.rankerPaths[cols === null ? 'generic' : 'columns']++;
        if (cols !== null)
          return { ok: true, input: { side, value: cols, source, key: r.key, format, raw: r.raw } };
      } else {
        const cols = parseImpressionJson(r.raw, decodeImpressionJson);
        if (cols !== null)
          return { ok: true, input: { side, value: cols, source, key: r.key, format, raw: r.raw } };
      }
    }
    const d =
      r.decoded ??
      decode(
        side === 'ranker' ? 'RankerOutput' : 'Impression',
        r.raw,
        // Lines of NDJSON files reach here undecoded only on the NDJSON column path.
        format === 'json' ? 'json' : this.#opts.inputFormat,
        this.#opts.writerFor,
      );
    if (!d.ok) {
      const reason = d.error.code === 'SCHEMA_ID_UNKNOWN' ? 'SCHEMA_ID_UNKNOWN' : 'MALFORMED';
      // a record that parsed but failed its contract still names its request, when it has a clean one
      const rid = d.error.details?.requestId;
      return {
        ok: false,
        reason,
        message: d.error.message,
        ref,
        requestId: typeof rid === 'string' ? rid : null,
      };
    }
    if (side === 'ranker') {
      const v = d.value as RankerOutput;
      const bad = validateRankerOutput(v);
      if (bad !== null)
        return { ok: false, reason: 'INVALID', message: `RankerOutput: ${bad}`, ref, requestId: reqId(v) };
      return { ok: true, input: { side, value: v, source, key: r.key, format, raw: r.raw } };
    }
    const v = d.value as Impression;
    const bad = validateImpression(v);
    if (bad !== null)
      return { ok: false, reason: 'INVALID', message: `Impression: ${bad}`, ref, requestId: reqId(v) };
    return { ok: true, input: { side, value: v, source, key: r.key, format, raw: r.raw } };
  }

  #apply(eff: JoinEffect, outputs: TaskOutput[]): void {
    switch (eff.type) {
      case 'joined':
        this.counters.joined++;
        this.#label(outputs, { ranker: eff.ranker, impression: eff.impression }, eff.rankerRef);
        return;
      case 'unmatched':
        this.counters.unmatched++;
        this.#label(outputs, { ranker: eff.ranker, impression: null }, eff.rankerRef);
        return;
      case 'expired-unmatched-dropped':
        this.counters.unmatchedDropped++;
        return;
      case 'duplicate':
        this.counters.duplicates++;
        return;
      case 'dead':
        if (eff.reason === 'LATE') this.counters.late++;
        else if (eff.reason === 'ORPHAN') this.counters.orphans++;
        this.#dead(outputs, eff.reason, eff.message, eff.ref, eff.requestId);
        return;
    }
  }

  #label(outputs: TaskOutput[], req: JoinedRequest, ref: RecordRef): void {
    if (req.ranker instanceof RankerColumns) {
      const columns = req.ranker.json ? this.#opts.jsonColumns : this.#opts.columns;
      if (columns !== undefined) {
        this.#labelColumns(outputs, columns, req.ranker, req.impression, ref);
        return;
      }
    }
    let labels: RequestLabels;
    try {
      labels = this.#opts.label(req);
    } catch (e) {
      this.counters.labelFailed++;
      this.#dead(outputs, 'LABEL_FAILED', errorMessage(e), ref, req.ranker.request_id);
      return;
    }
    const key = Buffer.from(req.ranker.user_id, 'utf8');
    if (labels.pointwise) {
      outputs.push({ kind: 'pointwise', key, value: labels.pointwise });
      this.counters.labelsOut.pointwise++;
    }
    if (labels.pairwise) {
      outputs.push({ kind: 'pairwise', key, value: labels.pairwise });
      this.counters.labelsOut.pairwise++;
    }
    if (labels.listwise) {
      outputs.push({ kind: 'listwise', key, value: labels.listwise });
      this.counters.labelsOut.listwise++;
    }
  }

  #labelColumns(
    outputs: TaskOutput[],
    columns: NonNullable<JoinTaskOptions['columns']>,
    ranker: RankerColumns,
    impression: Impression | null,
    ref: RecordRef,
  ): void {
    let labels: EncodedLabels;
    try {
      labels = columns(ranker, impression);
    } catch (e) {
      this.counters.labelFailed++;
      this.#dead(outputs, 'LABEL_FAILED', errorMessage(e), ref, ranker.request_id);
      return;
    }
    // The user id's own bytes (ASCII, so as long as the string), right before the ts field (or
    // where an NDJSON line's user_id string ends).
    const key = ranker.buf.subarray(ranker.tsStart - ranker.user_id.length, ranker.tsStart);
    const json = ranker.json ? ({ json: true } as const) : {};
    if (labels.pointwise) {
      outputs.push({ kind: 'encoded', label: 'pointwise', key, bytes: labels.pointwise, ...json });
      this.counters.labelsOut.pointwise++;
    }
    if (labels.pairwise) {
      outputs.push({ kind: 'encoded', label: 'pairwise', key, bytes: labels.pairwise, ...json });
      this.counters.labelsOut.pairwise++;
    }
    if (labels.listwise) {
      outputs.push({ kind: 'encoded', label: 'listwise', key, bytes: labels.listwise, ...json });
      this.counters.labelsOut.listwise++;
    }
  }

  #dead(
    outputs: TaskOutput[],
    reason: DeadLetterReason,
    message: string,
    ref: RecordRef,
    requestId: string | null,
  ): void {
    this.counters.deadLetters++;
    const bytes = deadLetterRaw(ref.raw, ref.key, this.#opts.deadLetterMaxBytes);
    if (bytes.raw_truncated || bytes.key_truncated) this.counters.deadLettersTruncated++;
    const value: DeadLetter = {
      source_topic: ref.source.topic,
      source_partition: ref.source.partition,
      source_offset: ref.source.offset,
      reason_code: reason,
      reason: message,
      request_id: requestId,
      time: this.#opts.now(),
      ...bytes,
    };
    outputs.push({ kind: 'deadLetter', key: bytes.key, value });
  }
}

/**
 * An output as a label or dead-letter record: `encoded` labels (the column path) are decoded,
 * for sinks that write records rather than Avro bytes (JSON files).
 *
 * @example
 * for (const o of outputs) { const r = outputRecord(o); writers[r.kind].write(r.value); }
 */
export function outputRecord(o: TaskOutput): Exclude<TaskOutput, { kind: 'encoded' }> {
  if (o.kind !== 'encoded') return o;
  const d = decode(OUTPUT_CONTRACT[o.label], o.bytes, o.json ? 'json' : 'avro');
  if (!d.ok) throw d.error; // written by our own writer: a bug, not bad input
  return { kind: o.label, key: o.key, value: d.value } as Exclude<TaskOutput, { kind: 'encoded' }>;
}

const decodeRanker = avroDecoderOrThrow('RankerOutput');
const decodeImpression = avroDecoderOrThrow('Impression');
const decodeRankerJson = jsonDecoderOrThrow('RankerOutput');
const decodeImpressionJson = jsonDecoderOrThrow('Impression');

function reqId(v: { request_id?: unknown }): string | null {
  return typeof v.request_id === 'string' && v.request_id.length > 0 ? v.request_id : null;
}
