/**
 * The trainer's Kafka source: the label topics (`kafka.topics.pointwise/pairwise/listwise`) as
 * {@link LabelBatch}es — source `topic/partition`, offsets [offset, next) — for `Trainer.run`,
 * the same seam as the file source (./sources.ts).
 *
 * Exactly once with the trainer's checkpoints: the truth of "what was trained" is the checkpoint's
 * positions (next offset per topic/partition), never the consumer group's committed offsets,
 * which may be ahead (committed by a run that crashed before its checkpoint) or behind. So:
 *
 *   open:        next[tp] = checkpoint position, else the partition's earliest offset
 *   GROUP_JOIN:  seek every assigned partition to next[tp]   (kafkajs applies a seek before the
 *                 next fetch of that partition; at every join, so a rebalance cannot rewind or skip)
 *   each batch:  drop messages below next[tp] (a fetch in flight before the seek), hand over
 *                 [next[tp], lastOffset + 1) — lastOffset counts the transaction markers — and
 *                 only then advance next[tp]
 *   checkpoint:  commit the checkpoint's positions to the group (for lag monitoring only)
 *
 * Isolation read_committed: labels of aborted labeler transactions are never seen. One batch is
 * buffered at most (the fetch handler waits, heartbeating, until the trainer takes it).
 *
 * The trainer checkpoints on a timer only when a batch arrives, so when the stream goes idle the
 * source yields an empty "tick" batch every `tickMs` while labels were delivered since the last
 * checkpoint ({@link KafkaLabelSource.markCheckpointed}): the tail of a burst gets trained and
 * snapshotted within `train.checkpointEveryMs`.
 */
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { decodeLabel, type LabelWireFormat } from '../client/types.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import type { SourcePosition } from './checkpoint.ts';
import type { LabelKind, LabelRecord } from './examples.ts';
import type { LabelBatch } from './trainer.ts';

/** Options of {@link KafkaLabelSource.open}. */
export interface KafkaLabelSourceOptions {
  kafka: Kafka;
  /** Consumer group (train.groupId). Its committed offsets are NOT used to resume. */
  groupId: string;
  /** Label topic per kind consumed (kinds left out are not consumed). */
  topics: Partial<Record<LabelKind, string>>;
  /** Wire format of the label records (kafka.outputFormat of the labeler). Default avro. */
  format?: LabelWireFormat;
  /** The resumed trainer's positions (`trainer.positions()`); sources `topic/partition`. */
  positions: readonly SourcePosition[];
  /** Empty batch every tickMs while idle and labels arrived since the last checkpoint [1000]. */
  tickMs?: number;
  /** End the iteration after this long without labels (bounded runs); default never. */
  idleExitMs?: number;
  sessionTimeoutMs?: number;
  /** Called for every undecodable record (consumed, not trained). */
  onBadRecord?: (source: string, offset: number, reason: string) => void;
  /** Seeks, commits, joins: for logs. */
  onEvent?: (e: KafkaSourceEvent) => void;
}

export type KafkaSourceEvent =
  | { type: 'joined'; assignment: Record<string, number[]>; seeks: { source: string; offset: number }[] }
  | { type: 'committed'; offsets: { source: string; offset: number }[] }
  | { type: 'commit-failed'; error: string };

interface Slot {
  payload: EachBatchPayload;
  taken: () => void;
}

const parseSource = (s: string): { topic: string; partition: number } | undefined => {
  const m = /^(.+)\/(\d+)$/.exec(s);
  return m ? { topic: m[1] as string, partition: Number(m[2]) } : undefined;
};

/**
 * @example
 * const src = await KafkaLabelSource.open({ kafka, groupId: cfg.train.groupId,
 *   topics: { pointwise: 'labels.pointwise' }, positions: trainer.positions() });
 * await trainer.run(src.batches());
 * await src.close();
 */
export class KafkaLabelSource {
  private readonly o: KafkaLabelSourceOptions;
  private readonly consumer: Consumer;
  private readonly kindOf = new Map<string, LabelKind>();
  /** Next offset to hand over, per `topic/partition`: what the trainer has been given. */
  private readonly next = new Map<string, number>();
  private slot: Slot | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  private failure: unknown;
  private dirty = false;
  private lastLabelsAt = Date.now();
  /** Records handed over (decodable or not) since open. */
  records = 0;

  private constructor(o: KafkaLabelSourceOptions) {
    this.o = o;
    for (const [kind, topic] of Object.entries(o.topics))
      if (topic) this.kindOf.set(topic, kind as LabelKind);
    if (this.kindOf.size === 0)
      throw new RankdistillError(
        'USAGE',
        'the Kafka label source needs at least one label topic, found none',
      );
    this.consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      sessionTimeout: o.sessionTimeoutMs ?? 30_000,
      maxWaitTimeInMs: 500,
      maxBytes: 4 << 20,
    });
  }

  /**
   * Connects, resolves where every partition resumes, joins the group and starts fetching.
   *
   * @throws RankdistillError TOPIC_MISSING when a label topic does not exist.
   */
  static async open(o: KafkaLabelSourceOptions): Promise<KafkaLabelSource> {
    const s = new KafkaLabelSource(o);
    await s.start();
    return s;
  }

  private async start(): Promise<void> {
    const topics = [...this.kindOf.keys()];
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t));
      if (missing.length > 0)
        throw new RankdistillError(
          'TOPIC_MISSING',
          `label topic(s) ${missing.join(', ')} do not exist: start the labeler (it creates them) or create them`,
          { details: { topics: missing } },
        );
      for (const t of topics)
        for (const p of await admin.fetchTopicOffsets(t)) this.next.set(`${t}/${p.partition}`, Number(p.low));
    } finally {
      await admin.disconnect();
    }
    // the checkpoint's positions win over the earliest offsets (and over the group's commits)
    for (const p of this.o.positions) {
      const tp = parseSource(p.source);
      if (tp && this.kindOf.has(tp.topic)) this.next.set(p.source, p.next);
    }
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      const assignment = e.payload.memberAssignment as Record<string, number[]>;
      const seeks: { source: string; offset: number }[] = [];
      for (const [topic, parts] of Object.entries(assignment))
        for (const partition of parts) {
          const next = this.next.get(`${topic}/${partition}`);
          if (next === undefined) continue;
          this.consumer.seek({ topic, partition, offset: String(next) });
          seeks.push({ source: `${topic}/${partition}`, offset: next });
        }
      // a batch fetched under the previous assignment is re-fetched from the seek
      this.cancelSlot();
      this.o.onEvent?.({ type: 'joined', assignment, seeks });
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      if (!e.payload.restart) this.fail(e.payload.error);
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.handle(payload),
    });
  }

  /** The fetch handler: hand the batch over and wait (heartbeating) until the trainer takes it. */
  private async handle(payload: EachBatchPayload): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const beat = setInterval(() => {
        if (!payload.isRunning() || payload.isStale() || this.stopped) {
          clearInterval(beat);
          if (this.slot?.payload === payload) this.slot = undefined;
          resolve();
          return;
        }
        payload.heartbeat().catch(() => undefined);
      }, 1000);
      this.slot = {
        payload,
        taken: () => {
          clearInterval(beat);
          resolve();
        },
      };
      this.wakeUp();
    });
  }

  private cancelSlot(): void {
    const s = this.slot;
    this.slot = undefined;
    s?.taken();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private fail(e: unknown): void {
    this.failure ??= e;
    this.wakeUp();
  }

  /** Waits for a slot, a stop, a failure or `ms`. */
  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** The batch of a fetched slot, trimmed to what was not handed over yet (or undefined). */
  private take(s: Slot): LabelBatch | undefined {
    const { batch } = s.payload;
    const source = `${batch.topic}/${batch.partition}`;
    const kind = this.kindOf.get(batch.topic);
    const last = Number(batch.lastOffset());
    const from = this.next.get(source);
    if (kind === undefined || (from !== undefined && last < from)) return undefined;
    const labels: LabelRecord[] = [];
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      if (from !== undefined && offset < from) continue; // fetched before a seek
      this.records++;
      const r = m.value
        ? decodeLabel(kind, m.value, this.o.format ?? 'avro')
        : ({ ok: false, error: new Error('empty message value') } as const);
      if (r.ok) labels.push({ kind, value: r.value } as LabelRecord);
      else this.o.onBadRecord?.(source, offset, errorMessage(r.error));
    }
    const offset = from ?? Number(batch.firstOffset() ?? last);
    this.next.set(source, last + 1);
    return { source, offset, next: last + 1, labels };
  }

  /**
   * The batches, until {@link stop}, {@link close}, `idleExitMs` without labels, or a consumer
   * failure (rethrown).
   */
  async *batches(): AsyncGenerator<LabelBatch> {
    const tickMs = this.o.tickMs ?? 1000;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.stopped) return;
      const s = this.slot;
      if (s !== undefined) {
        this.slot = undefined;
        const b = this.take(s);
        s.taken();
        if (b !== undefined) {
          if (b.labels.length > 0) {
            this.dirty = true;
            this.lastLabelsAt = Date.now();
          }
          yield b;
        }
        continue;
      }
      if (this.o.idleExitMs !== undefined && Date.now() - this.lastLabelsAt >= this.o.idleExitMs) return;
      await this.wait(tickMs);
      if (this.slot === undefined && this.dirty && !this.stopped && this.failure === undefined) {
        // idle with untrained labels: let the trainer's checkpoint timer run
        const [source, next] = this.next.entries().next().value as [string, number];
        yield { source, offset: next, next, labels: [] };
      }
    }
  }

  /** The trainer wrote a checkpoint: no ticks until new labels arrive. */
  markCheckpointed(): void {
    this.dirty = false;
  }

  /** Where every partition stands (next offset handed over). */
  positions(): { source: string; offset: number }[] {
    return [...this.next.entries()].map(([source, offset]) => ({ source, offset }));
  }

  /**
   * Commits checkpoint positions to the consumer group (monitoring: lag per partition). Never
   * throws: the checkpoint, not the group, is what a restart resumes from.
   */
  async commit(positions: readonly SourcePosition[]): Promise<void> {
    const offsets = positions
      .map((p) => ({ p, tp: parseSource(p.source) }))
      .filter((x) => x.tp !== undefined && this.kindOf.has(x.tp.topic));
    if (offsets.length === 0) return;
    try {
      await this.consumer.commitOffsets(
        offsets.map(({ p, tp }) => ({
          topic: (tp as { topic: string }).topic,
          partition: (tp as { partition: number }).partition,
          offset: String(p.next),
        })),
      );
      this.o.onEvent?.({
        type: 'committed',
        offsets: offsets.map(({ p }) => ({ source: p.source, offset: p.next })),
      });
    } catch (e) {
      this.o.onEvent?.({ type: 'commit-failed', error: errorMessage(e) });
    }
  }

  /** Ends the iteration (the batch in hand is not taken). */
  stop(): void {
    this.stopped = true;
    this.cancelSlot();
    this.wakeUp();
  }

  /** Stops and disconnects. Idempotent. */
  async close(): Promise<void> {
    this.stop();
    await this.consumer.disconnect().catch(() => undefined);
  }
}
