/**
 * Types shared by the join operator, its state stores and its transports.
 *
 * The join runs as one *task* per input partition p (like a Kafka Streams task over the
 * co-partitioned partitions p of both input topics). Everything in `src/join/` is pure: no Kafka,
 * no SQLite, no file system. State lives behind {@link JoinStateStore}.
 */
import type { WireFormat } from '../contracts/codec.ts';
import type {
  DeadLetter,
  Impression,
  ListwiseLabels,
  PairwiseLabels,
  PointwiseLabels,
  RankerOutput,
} from '../contracts/index.ts';
import type { ContractName } from '../contracts/schemas.ts';

/** The two inputs of a join task. Topic order (ranker first) breaks event-time ties. */
export type Side = 'ranker' | 'impression';

/** Where an input record came from (topic or file name, partition, offset). */
export interface SourceRef {
  topic: string;
  partition: number;
  offset: number;
}

/**
 * One entry of the join state, keyed by `r:<request_id>` / `i:<request_id>` (a pending lone
 * record), `d:<request_id>` (a "done" marker that makes later copies recognisable) or `b:<n>` (a
 * block of done markers, see src/join/marker-blocks.ts).
 */
export type StateEntry = PendingEntry | DoneEntry | BlockEntry;

/** A record waiting for its partner. `raw` are the record's bytes as received (in `format`). */
export interface PendingEntry {
  kind: 'pending';
  side: Side;
  /** Event time of the record. */
  ts: number;
  /** Watermark bound: the entry expires once the watermark is > expiresAt (= ts + window). */
  expiresAt: number;
  source: SourceRef;
  key: Buffer | null;
  format: WireFormat;
  raw: Buffer;
}

/**
 * A request that was already decided: `joined` (both sides met) or `unmatched` (the ranker output
 * was emitted without ground truth when its window closed).
 */
export interface DoneEntry {
  kind: 'joined' | 'unmatched';
  ts: number;
  expiresAt: number;
}

/**
 * Done markers stored together (src/join/marker-blocks.ts): `markers` is their encoding, `ts`
 * the largest event time among them and `expiresAt` the largest expiry (the block goes once all
 * of them expired).
 */
export interface BlockEntry {
  kind: 'block';
  ts: number;
  expiresAt: number;
  markers: Buffer;
}

/** A position in the (expiresAt, key) order of {@link JoinStateStore.expiring}. */
export interface ExpiryPosition {
  at: number;
  key: string;
}

/** Whether the entry (at, key) is ordered after `p` in (expiresAt, key) order. */
export function isAfter(at: number, key: string, p: ExpiryPosition): boolean {
  return at > p.at || (at === p.at && key > p.key);
}

/**
 * The state of one join task. Implementations: {@link MemoryJoinStore} (tests) and the SQLite
 * store in `src/store/` (service). Stream time is state too: it must survive restarts, or a
 * restart would change late/expiry decisions.
 */
export interface JoinStateStore {
  get(key: string): StateEntry | undefined;
  /** `isNew`: the caller just saw `get(key)` return undefined (lets stores skip upsert work). */
  put(key: string, entry: StateEntry, isNew?: boolean): void;
  delete(key: string): void;
  /**
   * Up to `limit` entries whose `expiresAt < bound`, ordered by (expiresAt, key) so expiry is
   * deterministic; with `after`, only those ordered after that (expiresAt, key) position.
   */
  expiring(bound: number, limit: number, after?: ExpiryPosition): Array<[string, StateEntry]>;
  /** Smallest expiresAt of all entries, or null when empty (lets callers skip sweeps). */
  minExpiresAt(): number | null;
  /** Every entry whose key starts with `prefix`, in no set order (to rebuild in-memory indexes). */
  scan(prefix: string): Array<[string, StateEntry]>;
  /** Largest event time seen by the task, or null before the first record. */
  streamTime(): number | null;
  setStreamTime(ts: number): void;
  /** Number of entries (pending records + done markers). */
  size(): number;
}

/** A decoded, validated input record as the operator sees it. */
export type JoinInput =
  | (InputBase & { side: 'ranker'; value: RankerOutput })
  | (InputBase & { side: 'impression'; value: Impression });

interface InputBase {
  source: SourceRef;
  key: Buffer | null;
  format: WireFormat;
  raw: Buffer;
}

/** Reason codes of dead letters written by the join. */
export const DEAD_LETTER_REASONS = {
  /** The bytes could not be decoded. */
  MALFORMED: 'MALFORMED',
  /** The record decoded but failed validation. */
  INVALID: 'INVALID',
  /** The record arrived after its window (or its partner's) had closed. */
  LATE: 'LATE',
  /** An impression whose ranker output never arrived within the window. */
  ORPHAN: 'ORPHAN',
  /** The label generators rejected the joined request. */
  LABEL_FAILED: 'LABEL_FAILED',
  /** A Confluent-framed record whose writer schema id the schema registry does not know. */
  SCHEMA_ID_UNKNOWN: 'SCHEMA_ID_UNKNOWN',
} as const;
export type DeadLetterReason = keyof typeof DEAD_LETTER_REASONS;

/** What the operator decided for one input record (or for expired state). */
export type JoinEffect =
  | { type: 'joined'; ranker: RankerOutput; impression: Impression; rankerRef: RecordRef }
  | { type: 'unmatched'; ranker: RankerOutput; rankerRef: RecordRef }
  | { type: 'expired-unmatched-dropped'; requestId: string }
  | { type: 'duplicate'; side: Side; requestId: string }
  | { type: 'dead'; reason: DeadLetterReason; message: string; ref: RecordRef; requestId: string | null };

/** Enough of a record to dead-letter it. */
export interface RecordRef {
  source: SourceRef;
  key: Buffer | null;
  raw: Buffer;
}

/**
 * Output records of a task: label and dead-letter records to encode, or (`encoded`) a label
 * record already written as plain Avro binary by the column path (JoinTaskOptions.columns), or
 * with `json` as an NDJSON line (JoinTaskOptions.jsonColumns).
 */
export type TaskOutput =
  | { kind: 'pointwise'; key: Buffer; value: PointwiseLabels }
  | { kind: 'pairwise'; key: Buffer; value: PairwiseLabels }
  | { kind: 'listwise'; key: Buffer; value: ListwiseLabels }
  | { kind: 'encoded'; label: LabelKind; key: Buffer; bytes: Buffer; json?: true }
  | { kind: 'deadLetter'; key: Buffer | null; value: DeadLetter };

/** The three label kinds. */
export type LabelKind = 'pointwise' | 'pairwise' | 'listwise';

/** Output kinds (one output topic each), in the order a request's outputs are emitted. */
export type OutputKind = LabelKind | 'deadLetter';

/** The contract of each output kind's records. */
export const OUTPUT_CONTRACT = {
  pointwise: 'PointwiseLabels',
  pairwise: 'PairwiseLabels',
  listwise: 'ListwiseLabels',
  deadLetter: 'DeadLetter',
} as const satisfies Record<OutputKind, ContractName>;

/** Counters of one task, by outcome. */
export interface JoinCounters {
  recordsIn: { ranker: number; impression: number };
  joined: number;
  unmatched: number;
  unmatchedDropped: number;
  orphans: number;
  late: number;
  duplicates: number;
  malformed: number;
  invalid: number;
  labelFailed: number;
  deadLetters: number;
  /** Dead letters whose raw value was cut to fit ({@link deadLetterRaw} in task.ts). */
  deadLettersTruncated: number;
  labelsOut: { pointwise: number; pairwise: number; listwise: number };
}

/** Fresh zeroed counters. */
export function emptyCounters(): JoinCounters {
  return {
    recordsIn: { ranker: 0, impression: 0 },
    joined: 0,
    unmatched: 0,
    unmatchedDropped: 0,
    orphans: 0,
    late: 0,
    duplicates: 0,
    malformed: 0,
    invalid: 0,
    labelFailed: 0,
    deadLetters: 0,
    deadLettersTruncated: 0,
    labelsOut: { pointwise: 0, pairwise: 0, listwise: 0 },
  };
}
