/**
 * Stuck-partition detection for the labeler's health: per assigned partition, its committed
 * offsets as last seen and since when they have not moved while it had input to process. A
 * partition with input and no committed progress for `metrics.stuckPartitionMs` makes
 * `LabelService.healthy()` false and is logged once, until it moves again.
 */
import type { KafkaConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { type KafkaTask, SIDES } from './kafka-task.ts';

interface Entry {
  offsets: string;
  since: number;
  lagging: boolean;
}

/** The progress of the partitions of one service (kept across task restarts, not revocations). */
export class PartitionProgress {
  /**
   * Per partition. Kept across task restarts (a task failing over and over on the same record
   * never commits), dropped when the partition is revoked.
   */
  readonly #progress = new Map<number, Entry>();
  /** Partitions already logged as stuck (logged once, until they move again). */
  readonly #stuckLogged = new Set<number>();
  readonly #stuckMs: number;
  readonly #k: KafkaConfig;
  readonly #log: Logger;

  constructor(stuckMs: number, k: KafkaConfig, log: Logger) {
    this.#stuckMs = stuckMs;
    this.#k = k;
    this.#log = log;
  }

  /** Partitions with input to process and no committed progress for `metrics.stuckPartitionMs`. */
  stuck(): number[] {
    const now = Date.now();
    return [...this.#progress]
      .filter(([, e]) => e.lagging && now - e.since >= this.#stuckMs)
      .map(([p]) => p)
      .sort((a, b) => a - b);
  }

  /** Forgets the partitions not in `assigned` (revoked: their progress is another member's now). */
  retain(assigned: ReadonlySet<number>): void {
    for (const p of [...this.#progress.keys()]) {
      if (!assigned.has(p)) {
        this.#progress.delete(p);
        this.#stuckLogged.delete(p);
      }
    }
  }

  /**
   * Notes whether the task's committed offsets moved, and whether it has input to process
   * (unfetched records, fetched but unprocessed ones, processed but uncommitted ones).
   */
  track(t: KafkaTask): void {
    const now = Date.now();
    const offsets = `${t.committed.ranker}/${t.committed.impression}`;
    const processed = t.join.nextOffsets();
    const lagging =
      t.processed > 0 ||
      t.committing !== undefined ||
      SIDES.some((s) => {
        const pos = t.pos[s];
        return (
          t.join.buffered(s) > 0 ||
          (processed[s] !== null && processed[s] !== t.committed[s]) ||
          (pos.next !== null && pos.hw !== null && pos.next < pos.hw)
        );
      });
    const e = this.#progress.get(t.p);
    if (e === undefined || e.offsets !== offsets || !lagging) {
      this.#progress.set(t.p, { offsets, since: now, lagging });
      if (this.#stuckLogged.delete(t.p)) this.#log.info('partition makes progress again', { partition: t.p });
      return;
    }
    e.lagging = true;
  }

  /** Marks a partition as having input that could not be processed (a task that failed to open). */
  noteNoProgress(p: number): void {
    const e = this.#progress.get(p);
    if (e === undefined) this.#progress.set(p, { offsets: 'unopened', since: Date.now(), lagging: true });
    else e.lagging = true;
  }

  /** Logs a partition {@link stuck} lists (with its task, when open), once until it moves again. */
  logStuck(p: number, t: KafkaTask | undefined): void {
    const e = this.#progress.get(p);
    if (e === undefined || this.#stuckLogged.has(p)) return;
    const ms = Date.now() - e.since;
    this.#stuckLogged.add(p);
    this.#log.error(
      'partition stuck: input to process and no committed progress; /health reports unhealthy',
      {
        partition: p,
        seconds: Math.round(ms / 1000),
        topics: [this.#k.topics.rankerOutputs, this.#k.topics.impressions],
        ...(t === undefined
          ? {}
          : {
              committed: t.committed,
              highWatermarks: { ranker: t.pos.ranker.hw, impression: t.pos.impression.hw },
            }),
      },
    );
  }
}
