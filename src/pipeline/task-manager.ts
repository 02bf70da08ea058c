/**
 * The labeler's tasks and what the group assigns (Kafka Streams' `TaskManager`): which
 * partitions this member owns, opening a task on its first batch (once per partition, however
 * many batches race to it), rewinding the kept tasks and closing the revoked ones on a new
 * assignment, closing all of them at stop or recovery, and the counters that outlive tasks.
 */
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { Config } from '../config/schema.ts';
import type { JoinCounters } from '../join/types.ts';
import type { Logger } from '../log.ts';
import type { LabelMetrics } from '../metrics/index.ts';
import type { RegistrySerde } from '../registry/serde.ts';
import { inputTopic, type KafkaTask, SIDES } from './kafka-task.ts';
import { type OutcomeCounts, sumCounters } from './outcomes.ts';
import type { TaskCommitter } from './task-commit.ts';
import { openKafkaTask } from './task-open.ts';

/** What the task manager needs from its service; the getters answer once the service started. */
export interface TaskManagerContext {
  config: Config;
  kafka: Kafka;
  metrics: LabelMetrics;
  log: Logger;
  serde: RegistrySerde | undefined;
  now: () => number;
  admin(): Admin;
  /** The consumer in the group (undefined while recovery replaces it). */
  consumer(): Consumer | undefined;
  committer(): TaskCommitter;
  deadLetterMaxBytes(): number;
  /** Told when a task failed to open (the service recovers). */
  onOpenFailed(p: number, e: unknown): void;
}

/** The tasks of one service (one consumer-group member). */
export class TaskManager {
  readonly #ctx: TaskManagerContext;
  readonly #tasks = new Map<number, KafkaTask>();
  readonly #closing = new Set<Promise<unknown>>();
  readonly #opening = new Map<number, Promise<void>>();
  #assigned = new Set<number>();
  #generation = 0;
  /** Counters of tasks that were closed, so totals survive rebalances. */
  readonly #retired: JoinCounters[] = [];
  #restored = 0;

  constructor(ctx: TaskManagerContext) {
    this.#ctx = ctx;
  }

  /** The open task of partition `p`. */
  get(p: number): KafkaTask | undefined {
    return this.#tasks.get(p);
  }

  /** The open tasks. */
  tasks(): IterableIterator<KafkaTask> {
    return this.#tasks.values();
  }

  /** Number of open tasks. */
  get size(): number {
    return this.#tasks.size;
  }

  /** Whether the latest assignment gave this member partition `p`. */
  owns(p: number): boolean {
    return this.#assigned.has(p);
  }

  /** Partitions this member currently owns. */
  assignedPartitions(): number[] {
    return [...this.#assigned].sort((a, b) => a - b);
  }

  /** Outcome counts since start (processed, including batches later rolled back). */
  counts(): OutcomeCounts {
    return sumCounters([...this.#retired, ...[...this.#tasks.values()].map((t) => t.join.counters)]);
  }

  /** Changelog records replayed into local stores since start. */
  restoredRecords(): number {
    return this.#restored;
  }

  /** Takes a new assignment; returns its generation. Then {@link reconcile} the open tasks. */
  assign(partitions: Set<number>): number {
    this.#generation++;
    this.#assigned = partitions;
    return this.#generation;
  }

  /**
   * Revoked: close (the pending batch is discarded; the new owner fences us anyway).
   * Kept: kafkajs reset its fetch positions to the committed offsets, so rewind the task too.
   */
  reconcile(): void {
    for (const t of [...this.#tasks.values()]) {
      if (!this.#assigned.has(t.p)) this.closeAsync(t, false);
      else void t.run(() => this.#rewind(t));
    }
  }

  /**
   * Opens the task of `p` (fence, restore, seek to committed offsets), or joins the opening
   * already under way: batches of both inputs may arrive concurrently. Failures go to the
   * context's `onOpenFailed`; this never rejects.
   */
  open(p: number, heartbeat: () => Promise<void>): Promise<void> {
    let opening = this.#opening.get(p);
    if (opening === undefined) {
      opening = this.#open(p, heartbeat)
        .catch((e: unknown) => this.#ctx.onOpenFailed(p, e))
        .finally(() => this.#opening.delete(p));
      this.#opening.set(p, opening);
    }
    return opening;
  }

  async #open(p: number, heartbeat: () => Promise<void>): Promise<void> {
    const ctx = this.#ctx;
    const generation = this.#generation;
    await openKafkaTask(
      {
        config: ctx.config,
        kafka: ctx.kafka,
        admin: ctx.admin(),
        serde: ctx.serde,
        now: ctx.now,
        deadLetterMaxBytes: ctx.deadLetterMaxBytes(),
        log: ctx.log,
        onRestored: (records) => {
          ctx.metrics.restoredRecords.inc(records);
          this.#restored += records;
        },
        adopt: (t) => {
          if (generation !== this.#generation && !this.#assigned.has(p)) {
            throw new Error(`partition ${p} was revoked while its task opened`);
          }
          this.#tasks.set(p, t);
          for (const side of SIDES) {
            const topic = inputTopic(ctx.config.kafka, side);
            ctx.consumer()?.seek({ topic, partition: p, offset: String(t.committed[side]) });
          }
          ctx.log.info('task ready', { partition: p, committed: t.committed, entries: t.join.stateSize() });
        },
      },
      p,
      heartbeat,
    );
  }

  /** Drops the task's uncommitted batch and buffers and seeks both inputs to the committed offsets. */
  async #rewind(t: KafkaTask): Promise<void> {
    await this.#ctx.committer().discard(t);
    t.join.reset();
    for (const side of SIDES) {
      const off = t.committed[side];
      t.pos[side] = { next: off, hw: t.pos[side].hw };
      if (off !== null)
        this.#ctx
          .consumer()
          ?.seek({ topic: inputTopic(this.#ctx.config.kafka, side), partition: t.p, offset: String(off) });
      t.resume[side]?.();
      delete t.resume[side];
    }
  }

  /** Closes a task: commit its batch (graceful) or discard it, disconnect, close SQLite. */
  async close(t: KafkaTask, commit: boolean): Promise<void> {
    this.#tasks.delete(t.p);
    this.#retired.push(t.join.counters);
    const committer = this.#ctx.committer();
    await t.run(async () => {
      if (commit && !t.broken && t.processed > 0) {
        try {
          await committer.commit(t);
          await committer.settle(t);
        } catch (e) {
          this.#ctx.log.warn('final commit failed; the batch will be reprocessed', {
            partition: t.p,
            error: e,
          });
          await committer.discard(t);
        }
      } else await committer.discard(t);
      t.broken = true;
      await t.producer.disconnect().catch(() => undefined);
      t.store.close();
    });
  }

  /** {@link close} in the background; {@link closeAll} waits for it. */
  closeAsync(t: KafkaTask, commit: boolean): void {
    const p = this.close(t, commit).catch((e: unknown) =>
      this.#ctx.log.warn('closing a task failed', { partition: t.p, error: e }),
    );
    this.#closing.add(p);
    void p.finally(() => this.#closing.delete(p));
  }

  /** Closes every task, one after the other, and waits for the closes in the background. */
  async closeAll(commit: boolean): Promise<void> {
    for (const t of [...this.#tasks.values()]) await this.close(t, commit);
    await Promise.allSettled([...this.#closing]);
  }
}
