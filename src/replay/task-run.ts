/**
 * One partition task of a replay: the live service's {@link JoinTask} (same decode, validation,
 * event-time merge, join operator and labeler) over a SQLite store in the replay's own state
 * directory, fed a bounded input range, with checkpoints (./checkpoint.ts) so an interrupted
 * replay continues where it stopped and writes every output exactly once.
 */
import type avro from 'avsc';
import type { Config } from '../config/schema.ts';
import type { WireFormat } from '../contracts/codec.ts';
import type { Impression } from '../contracts/index.ts';
import type { RankerColumns } from '../contracts/ranker-columns.ts';
import { RankdistillError } from '../errors.ts';
import { JoinTask, type RawColumns, type RawInput } from '../join/task.ts';
import { emptyCounters, type JoinCounters, type Side } from '../join/types.ts';
import { columnsSupported, labelColumnsEncoded } from '../labels/encoded.ts';
import { labelRequest } from '../labels/index.ts';
import { labelColumnsJson } from '../labels/json.ts';
import { SqliteJoinStore } from '../store/sqlite-store.ts';
import { type CheckpointFiles, initialCheckpoint, type ReplayCheckpoint } from './checkpoint.ts';
import { MAX_HELD_BYTES, PART_FORMAT, type ReplaySink } from './sinks.ts';

const SIDES: readonly Side[] = ['ranker', 'impression'];
const STEP = 1024;

/** What {@link TaskRun.open} needs. */
export interface TaskRunOptions {
  partition: number;
  config: Config;
  /** SQLite file of the task's join state. */
  storePath: string;
  /** Checkpoint files, or null (dry run: nothing is resumable). */
  checkpoints: CheckpointFiles | null;
  /** Source names written into dead letters (topics, or file paths as the file transport does). */
  sources: Record<Side, string>;
  inputFormat: WireFormat;
  rawFormat?: Record<Side, WireFormat>;
  /** Writer schema of a Confluent schema id (registry cache filled before records are pushed). */
  writerFor?: (schemaId: number) => avro.Type | undefined;
  /** First offset of the range per side (a fresh run starts here). */
  start: Record<Side, number>;
  /** End of the range per side (exclusive; Infinity: end of file). */
  end: Record<Side, number>;
  /**
   * NDJSON lines (raw format json) take the NDJSON column path (JoinTaskOptions.jsonColumns):
   * file replays, whose lines are pushed undecoded.
   */
  jsonColumns?: boolean;
  /** Opens the sink once the checkpoint to resume from is known. */
  sink: (ck: ReplayCheckpoint) => ReplaySink;
  /** Input records between checkpoints (earlier once the sink holds MAX_HELD_BYTES). */
  checkpointEvery: number;
  /** Expire every open window once the range is processed (unmatched labels, orphans). */
  drain: boolean;
  now?: () => number;
  /** Stops {@link TaskRun.pump} between steps (the driver then calls {@link TaskRun.flush}). */
  signal?: AbortSignal;
  /** Called after every step (about a thousand records). */
  onStep?: () => void;
}

function addCounters(a: JoinCounters, b: JoinCounters): JoinCounters {
  return {
    recordsIn: {
      ranker: a.recordsIn.ranker + b.recordsIn.ranker,
      impression: a.recordsIn.impression + b.recordsIn.impression,
    },
    joined: a.joined + b.joined,
    unmatched: a.unmatched + b.unmatched,
    unmatchedDropped: a.unmatchedDropped + b.unmatchedDropped,
    orphans: a.orphans + b.orphans,
    late: a.late + b.late,
    duplicates: a.duplicates + b.duplicates,
    malformed: a.malformed + b.malformed,
    invalid: a.invalid + b.invalid,
    labelFailed: a.labelFailed + b.labelFailed,
    deadLetters: a.deadLetters + b.deadLetters,
    deadLettersTruncated: a.deadLettersTruncated + b.deadLettersTruncated,
    labelsOut: {
      pointwise: a.labelsOut.pointwise + b.labelsOut.pointwise,
      pairwise: a.labelsOut.pairwise + b.labelsOut.pairwise,
      listwise: a.labelsOut.listwise + b.labelsOut.listwise,
    },
  };
}

/**
 * @example
 * const run = TaskRun.open({ partition: 0, config, storePath, checkpoints, sources, inputFormat: 'avro',
 *   start: { ranker: 0, impression: 0 }, end: { ranker: 10, impression: 12 }, sink: () => new NullSink(),
 *   checkpointEvery: 5000, drain: false });
 * run.push('ranker', records); run.setEnded('ranker');
 * await run.pump();
 */
export class TaskRun {
  readonly partition: number;
  readonly task: JoinTask;
  readonly store: SqliteJoinStore;
  readonly sink: ReplaySink;
  /** Next offset to fetch per side (what was pushed so far). */
  readonly fetch: Record<Side, number>;
  readonly end: Record<Side, number>;
  readonly #o: TaskRunOptions;
  #ck: ReplayCheckpoint;
  /** Counters of the checkpoint this run resumed from. */
  readonly #base: JoinCounters;
  #ended: Record<Side, boolean> = { ranker: false, impression: false };
  #since = 0;
  /** Positions an earlier run already committed to Kafka: outputs up to there are discarded. */
  #catchUp: Record<Side, number> | null = null;
  #closed = false;

  private constructor(o: TaskRunOptions, store: SqliteJoinStore, ck: ReplayCheckpoint, sink: ReplaySink) {
    this.#o = o;
    this.partition = o.partition;
    this.store = store;
    this.#ck = ck;
    this.#base = ck.k === 0 ? emptyCounters() : ck.counters;
    this.sink = sink;
    this.end = { ...o.end };
    this.fetch = { ...ck.positions };
    const labels = o.config.labels;
    this.task = new JoinTask({
      partition: o.partition,
      topics: o.sources,
      store,
      join: o.config.join,
      label: (req) => labelRequest(req, labels),
      inputFormat: o.inputFormat,
      ...(o.rawFormat === undefined ? {} : { rawFormat: o.rawFormat }),
      ...(o.writerFor === undefined ? {} : { writerFor: o.writerFor }),
      // Plain Avro ranker bytes (Kafka sources) take the column path, as in the live service.
      ...(columnsSupported(labels)
        ? { columns: (r: RankerColumns, imp: Impression | null) => labelColumnsEncoded(r, imp, labels) }
        : {}),
      ...(o.jsonColumns === true && columnsSupported(labels)
        ? { jsonColumns: (r: RankerColumns, imp: Impression | null) => labelColumnsJson(r, imp, labels) }
        : {}),
      now: o.now ?? Date.now,
    });
    for (const s of SIDES) if (this.fetch[s] >= this.end[s]) this.setEnded(s);
    store.begin();
  }

  /**
   * Opens the task's store and resumes from its last checkpoint (or starts the range).
   *
   * @throws RankdistillError STATE_STORE_FAILED when store and checkpoint files disagree.
   */
  static open(o: TaskRunOptions): TaskRun {
    const store = SqliteJoinStore.open(o.storePath);
    try {
      const k = o.checkpoints === null ? 0 : (store.checkpoint() ?? 0);
      const ck =
        o.checkpoints?.read(o.partition, k) ??
        initialCheckpoint(o.partition, o.start, o.checkpoints !== null);
      if (k === 0 && (store.size() > 0 || store.streamTime() !== null)) {
        throw new RankdistillError(
          'STATE_STORE_FAILED',
          `replay store ${o.storePath} holds state but no checkpoint: delete the replay state directory to start over`,
          { details: { path: o.storePath } },
        );
      }
      o.checkpoints?.prune(o.partition, k);
      return new TaskRun(o, store, ck, o.sink(ck));
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** The checkpoint this run resumed from or last committed. */
  get checkpoint(): ReplayCheckpoint {
    return this.#ck;
  }

  /** True once the range is processed and the final checkpoint is committed. */
  get done(): boolean {
    return this.#ck.done;
  }

  /**
   * Counters since the start of the replay (before a resume included). `recordsIn` counts
   * processed records only: the task counts records when they are pushed, and buffered ones are
   * read again after a resume.
   */
  counters(): JoinCounters {
    const c = addCounters(this.#base, this.task.counters);
    c.recordsIn.ranker -= this.task.buffered('ranker');
    c.recordsIn.impression -= this.task.buffered('impression');
    return c;
  }

  /** Input records processed since the start of the replay. */
  processed(): number {
    const c = this.counters();
    return c.recordsIn.ranker + c.recordsIn.impression;
  }

  /**
   * Discards outputs until the task's positions reach `committed` (offsets an earlier run
   * committed in a Kafka transaction whose store commit it did not live to make).
   */
  catchUpTo(committed: Record<Side, number>): void {
    const p = this.positions();
    if (committed.ranker === p.ranker && committed.impression === p.impression) return;
    if (committed.ranker < p.ranker || committed.impression < p.impression) {
      throw new RankdistillError(
        'STATE_STORE_FAILED',
        `replay partition ${this.partition}: the replay group committed offsets ${JSON.stringify(committed)} behind the checkpoint ${JSON.stringify(p)}`,
      );
    }
    this.#catchUp = { ...committed };
  }

  /** Next offset to process per side. */
  positions(): Record<Side, number> {
    const n = this.task.nextOffsets();
    return {
      ranker: n.ranker ?? this.#ck.positions.ranker,
      impression: n.impression ?? this.#ck.positions.impression,
    };
  }

  /** Buffers fetched records of a side (offsets ≥ fetch position, in order). */
  push(side: Side, records: RawInput[]): void {
    if (records.length === 0) return;
    this.task.push(side, records);
    this.fetch[side] = (records[records.length - 1] as RawInput).offset + 1;
  }

  /** {@link push} of records in columns (Avro file blocks): offsets ≥ fetch position, in order. */
  pushColumns(side: Side, cols: RawColumns): void {
    const n = cols.offsets.length;
    if (n === 0) return;
    this.task.pushColumns(side, cols);
    this.fetch[side] = (cols.offsets[n - 1] as number) + 1;
  }

  /** Marks a side as having nothing more in the range. */
  setEnded(side: Side): void {
    this.#ended[side] = true;
    this.task.setCaughtUp(side, true);
  }

  ended(side: Side): boolean {
    return this.#ended[side];
  }

  /** True when `side` needs more input before the task can go on. */
  wants(side: Side): boolean {
    return !this.#ended[side] && this.task.buffered(side) === 0;
  }

  /**
   * Processes what the merge releases, checkpointing every `checkpointEvery` records and at the
   * end of the range (after draining when asked).
   */
  async pump(): Promise<void> {
    if (this.#ck.done || this.#closed) return;
    for (;;) {
      if (this.#o.signal?.aborted) return;
      const max = this.#catchUp === null ? STEP : 1;
      const { outputs, processed } = this.task.step(max);
      if (this.#catchUp !== null) {
        this.sink.discard();
        if (processed > 0) this.#since += processed;
        const p = this.positions();
        if (p.ranker >= this.#catchUp.ranker && p.impression >= this.#catchUp.impression) {
          // Everything up to here is in Kafka already: record that locally, without a transaction.
          this.#catchUp = null;
          await this.#checkpoint(false, true);
        }
        if (processed > 0) continue;
      } else if (processed > 0) {
        this.sink.add(outputs);
        this.#since += processed;
        this.#o.onStep?.();
        if (this.#since >= this.#o.checkpointEvery || this.sink.held() >= MAX_HELD_BYTES) {
          await this.#checkpoint(false);
        }
        continue;
      }
      break;
    }
    if (this.#ended.ranker && this.#ended.impression && this.task.blockedOn() === null) {
      if (this.task.buffered('ranker') === 0 && this.task.buffered('impression') === 0) {
        if (this.#catchUp !== null) {
          throw new RankdistillError(
            'STATE_STORE_FAILED',
            `replay partition ${this.partition}: the range ended before the offsets an earlier run committed (${JSON.stringify(this.#catchUp)})`,
          );
        }
        if (this.#o.drain) this.sink.add(this.task.drain());
        await this.#checkpoint(true);
      }
    }
  }

  /** Commits what was processed so far (before stopping on an interrupt). */
  async flush(): Promise<void> {
    if (this.#ck.done || this.#closed || this.#catchUp !== null) return;
    if (this.#since > 0) await this.#checkpoint(false);
  }

  async #checkpoint(done: boolean, localOnly = false): Promise<void> {
    const positions = this.positions();
    const k = this.#ck.k + 1;
    const persisted = this.sink.persist(k, done);
    const ck: ReplayCheckpoint = {
      k,
      partition: this.partition,
      positions,
      parts: persisted?.parts ?? null,
      ...(persisted === null ? {} : { tails: persisted.tails, partFormat: PART_FORMAT }),
      counters: this.counters(),
      done,
    };
    if (this.#o.checkpoints === null) {
      this.store.commit();
    } else {
      this.#o.checkpoints.write(ck);
      if (!localOnly) await this.sink.commit(positions);
      this.store.commit(ck.k);
      this.#o.checkpoints.prune(this.partition, ck.k);
    }
    this.#ck = ck;
    this.#since = 0;
    this.store.begin();
  }

  /** Closes the store (an open batch is rolled back) and the sink. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.store.close();
    await this.sink.close();
  }
}
