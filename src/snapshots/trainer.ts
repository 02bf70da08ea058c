/**
 * The seam between the incremental trainer (src/train/trainer.ts) and snapshots.
 *
 * Publishing — every trainer checkpoint (train.checkpointEveryExamples / checkpointEveryMs, and the
 * final one) becomes a snapshot candidate:
 *
 *   const snaps = new TrainerSnapshots(publisher);
 *   let trainer: Trainer | undefined;
 *   trainer = await Trainer.open({ config, out, onEvent: (e) => {
 *     if (e.type === 'checkpoint' && trainer) snaps.onCheckpoint(trainer.model, e.dir, e.metrics);
 *   } });
 *   await trainer.run(batches);
 *   const results = await snaps.drain(); // published / rejected, in order
 *
 * `onCheckpoint` is synchronous: it copies the model's exported state and the checkpoint's files
 * at once (the trainer trains on and may prune that checkpoint), then serialises, gates and
 * announces in the background, one snapshot at a time, in order.
 *
 * Gating like with like — each candidate's metrics carry the identity of the evaluation set they
 * were measured on (`eval_requests`, `eval_set_hash`); when the current snapshot's differ (the
 * held-out set is still filling), the publisher calls back here to re-evaluate the current
 * snapshot on the candidate's set: the snapshot's trainer checkpoint is restored into a
 * StudentModel (the same code path the trainer evaluates with) and evaluated on the requests of
 * the candidate checkpoint's eval.json. See {@link evaluateSnapshot}.
 *
 * Resuming — a trainer on an empty machine:
 *
 *   const snap = publisher.loadSnapshot('latest');            // checksums verified
 *   restoreTrainerCheckpoint(snap, out);                      // → <out>/ckpt-<seq>/
 *   const trainer = await Trainer.open({ config, out, ... }); // resumes from its positions
 *   const snaps = new TrainerSnapshots(publisher, { parentVersion: snap.version });
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { fsyncDir, writeFileSynced } from '../io/durable.ts';
import {
  type CheckpointState,
  checkpointDir,
  listCheckpoints,
  restoreCheckpoint,
} from '../train/checkpoint.ts';
import { evaluateScored, servedScorer } from '../train/eval.ts';
import { type EvalRequest, fromStored } from '../train/examples.ts';
import { FrequencyEstimator } from '../train/frequency.ts';
import { type GaugeEvent, ProgressiveGauge } from '../train/gauge.ts';
import { HistoryStore } from '../train/history.ts';
import { StudentModel } from '../train/model.ts';
import type { OptimizerKind } from '../train/sparse.ts';
import {
  EVAL_FILE,
  EVAL_SCORES_FILE,
  HISTORY_FILE,
  parseEvalFile,
  parseHistoryFile,
  parseScoresFile,
} from '../train/trainer.ts';
import type { RequestScores } from './gate.ts';
import type { PartitionOffset } from './manifest.ts';
import {
  openPublisherFromConfig,
  type PublishResult,
  type SnapshotEvent,
  type SnapshotPublisher,
} from './publisher.ts';
import type { SnapshotRecord } from './registry.ts';
import type { LoadedSnapshot, SnapshotFileInput } from './store.ts';
import { captureStudent, captureToInput } from './student.ts';

/** Where the trainer's checkpoint files sit inside a snapshot. */
export const CHECKPOINT_PREFIX = 'checkpoint/';

interface CheckpointFacts {
  seq: number;
  positions: { source: string; epoch: number; next: number }[];
}

function checkpointFacts(stateJson: Buffer, where: string): CheckpointFacts {
  let s: Partial<CheckpointFacts>;
  try {
    s = JSON.parse(stateJson.toString('utf8')) as Partial<CheckpointFacts>;
  } catch (e) {
    throw new RankdistillError('SNAPSHOT_CORRUPT', `${where}: expected JSON state, found ${errorMessage(e)}`);
  }
  if (!Number.isInteger(s.seq) || !Array.isArray(s.positions))
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `${where}: expected {seq, positions}, found ${JSON.stringify(s).slice(0, 120)}`,
    );
  return s as CheckpointFacts;
}

/**
 * Trainer positions as snapshot offsets: a Kafka source `topic/partition` maps to its topic and
 * partition; a file source to `{ topic: <path>, partition: 0 }`. The next offset is kept as is.
 * (Epochs of file passes stay in the checkpoint's state.json, which the snapshot carries.)
 *
 * @example
 * positionsToOffsets([{ source: 'labels.pointwise/3', epoch: 0, next: 120 }]);
 * // [{ topic: 'labels.pointwise', partition: 3, offset: 120 }]
 */
export function positionsToOffsets(
  positions: readonly { source: string; epoch: number; next: number }[],
): PartitionOffset[] {
  // the newest epoch of each source is where a resumed trainer continues
  const latest = new Map<string, { source: string; epoch: number; next: number }>();
  for (const p of positions) {
    const prev = latest.get(p.source);
    if (!prev || p.epoch >= prev.epoch) latest.set(p.source, p);
  }
  return [...latest.values()].map((p) => {
    const m = /^(.+)\/(\d+)$/.exec(p.source);
    return m && !existsSync(p.source)
      ? { topic: m[1] as string, partition: Number(m[2]), offset: p.next }
      : { topic: p.source, partition: 0, offset: p.next };
  });
}

export interface TrainerSnapshotsOptions {
  /** Version the trainer resumed from (parent of its first snapshot). */
  parentVersion?: number | null;
  /** Facts added to each manifest's `extra` (backend, config digest, ...). */
  extra?: Record<string, unknown>;
  onResult?: (r: PublishResult) => void;
  /** The live gauge: scored by each snapshot once it is published (and by the current one at start). */
  gauge?: ProgressiveGauge;
}

/** See the module comment. */
export class TrainerSnapshots {
  private readonly publisher: SnapshotPublisher;
  private readonly o: TrainerSnapshotsOptions;
  private parent: number | null;
  private queue: Promise<void> = Promise.resolve();
  private failure: unknown;
  private readonly results: PublishResult[] = [];

  constructor(publisher: SnapshotPublisher, o: TrainerSnapshotsOptions = {}) {
    this.publisher = publisher;
    this.o = o;
    this.parent = o.parentVersion ?? null;
    const current = publisher.latestPublished();
    if (o.gauge && current) this.serve(current.version);
  }

  /**
   * Makes snapshot `version` the gauge's scorer: its model restored from the snapshot and scored
   * through the served score (the live gauge measures what is served).
   */
  private serve(version: number): void {
    const gauge = this.o.gauge;
    if (!gauge) return;
    const model = restoreSnapshotModel(this.publisher.loadSnapshot(version));
    gauge.setScorer(version, model === null ? null : servedScorer(model));
  }

  /**
   * Captures a snapshot candidate of the checkpoint the trainer just wrote (synchronously) and
   * queues its publication.
   *
   * @throws RankdistillError IO_FAILED when the checkpoint directory cannot be read.
   * @example
   * onEvent: (e) => { if (e.type === 'checkpoint') snaps.onCheckpoint(trainer.model, e.dir, e.metrics); }
   */
  onCheckpoint(
    model: StudentModel,
    dir: string,
    metrics: Readonly<Record<string, number | undefined>>,
  ): void {
    const cap = captureStudent(model);
    let files: SnapshotFileInput[];
    try {
      files = readdirSync(dir)
        .sort()
        .map((name) => ({ name: `${CHECKPOINT_PREFIX}${name}`, data: readFileSync(join(dir, name)) }));
    } catch (e) {
      throw new RankdistillError('IO_FAILED', `checkpoint ${dir}: cannot read: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    const state = files.find((f) => f.name === `${CHECKPOINT_PREFIX}state.json`);
    if (!state) throw new RankdistillError('IO_FAILED', `checkpoint ${dir}: expected state.json, found none`);
    const facts = checkpointFacts(Buffer.from(state.data), join(dir, 'state.json'));
    const snapshotMetrics = { ...metrics };
    // the serving snapshot's live quality now, recorded with this candidate
    const liveNow = this.o.gauge?.live();
    const live = liveNow ? { live: { ...liveNow } } : {};
    const evalFile = files.find((f) => f.name === `${CHECKPOINT_PREFIX}${EVAL_FILE}`);
    const limits = { maxUsers: model.users.maxRows, maxItems: model.items.maxRows };
    const cb = model.opts.contextBuckets;
    const lr = model.opts.optimizer.learningRate;
    // the current snapshot re-evaluated on this candidate's eval set (publisher: only when they differ)
    const reevaluate = evalFile
      ? async (current: SnapshotRecord) => {
          const requests = parseEvalFile(evalFile.data, join(dir, EVAL_FILE)).map((r) => fromStored(r, cb));
          return evaluateSnapshot(this.publisher.loadSnapshot(current.version), requests, {
            ...limits,
            learningRate: lr,
          });
        }
      : undefined;
    // the paired gate: this candidate's per-request values, and the current snapshot's on the
    // same requests (stored with it when its eval set is this one, else scored on this one)
    const scoresFile = files.find((f) => f.name === `${CHECKPOINT_PREFIX}${EVAL_SCORES_FILE}`);
    const scores = scoresFile ? parseScoresFile(scoresFile.data, join(dir, EVAL_SCORES_FILE)) : undefined;
    const paired =
      scores && evalFile
        ? {
            requestScores: { ids: scores.ids, metrics: scores.metrics },
            baselineScores: async (current: SnapshotRecord) => {
              const snap = this.publisher.loadSnapshot(current.version);
              const stored = storedScores(snap);
              if (stored && stored.hash === scores.hash && stored.requests === scores.requests)
                return { scores: { ids: stored.ids, metrics: stored.metrics } };
              // like with like: the current snapshot scored on this candidate's requests, and said
              const requests = parseEvalFile(evalFile.data, join(dir, EVAL_FILE)).map((r) =>
                fromStored(r, cb),
              );
              const s = scoreSnapshot(snap, requests, { ...limits, learningRate: lr });
              if (s === null) return null;
              const from = stored?.requests ?? current.metrics.eval_requests;
              const sets =
                from !== undefined && scores.requests > from
                  ? `eval set grew from ${from} to ${scores.requests} requests`
                  : `eval set changed (${from ?? '?'} → ${scores.requests} requests)`;
              return {
                scores: s.scores,
                note: `${sets}: current v${current.version} re-evaluated on the candidate's set`,
              };
            },
          }
        : {};
    this.queue = this.queue.then(async () => {
      if (this.failure !== undefined) return;
      try {
        const input = await captureToInput(cap, {
          offsets: positionsToOffsets(facts.positions),
          metrics: snapshotMetrics,
          parentVersion: this.parent,
          files,
          extra: { checkpointSeq: facts.seq, ...(this.o.extra ?? {}) },
        });
        const r = await this.publisher.maybePublish({
          ...input,
          ...(reevaluate ? { reevaluate } : {}),
          ...paired,
          ...live,
        });
        this.parent = r.version;
        if (r.status === 'published') this.serve(r.version);
        this.results.push(r);
        this.o.onResult?.(r);
      } catch (e) {
        this.failure = e;
      }
    });
  }

  /**
   * Waits for every queued snapshot; returns their results in order.
   *
   * @throws the first error of a queued publication (later ones were not attempted).
   */
  async drain(): Promise<PublishResult[]> {
    await this.queue;
    if (this.failure !== undefined) throw this.failure;
    return [...this.results];
  }
}

/**
 * The student model of a (verified) snapshot: its trainer checkpoint restored into a StudentModel
 * (the code path the trainer evaluates with: its prior beta and, with the behaviour tower, the users'
 * histories restored too). Null when the snapshot carries no trainer checkpoint
 * or its context width differs from `contextBuckets` (when given).
 *
 * @example
 * const model = restoreSnapshotModel(pub.loadSnapshot(3)); if (model) servedScorer(model);
 */
export function restoreSnapshotModel(
  snap: LoadedSnapshot,
  o: { maxUsers?: number; maxItems?: number; learningRate?: number; contextBuckets?: number } = {},
): StudentModel | null {
  const stateName = `${CHECKPOINT_PREFIX}state.json`;
  if (!snap.manifest.files.some((f) => f.name === stateName)) return null;
  let state: CheckpointState;
  try {
    state = JSON.parse(snap.file(stateName).toString('utf8')) as CheckpointState;
  } catch (e) {
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `snapshot v${snap.version}: ${stateName}: ${errorMessage(e)}`,
    );
  }
  const spec = state.spec;
  if (spec === undefined || (o.contextBuckets !== undefined && o.contextBuckets !== spec.contextBuckets))
    return null;
  const model = new StudentModel({
    kind: spec.kind,
    dim: spec.dim,
    hidden: spec.hidden,
    contextBuckets: spec.contextBuckets,
    itemFeatureBuckets: spec.itemFeatureBuckets,
    ...(spec.history === true ? { history: true } : {}),
    optimizer: { kind: state.optimizer as OptimizerKind, learningRate: o.learningRate ?? 0.01 },
    ...(o.maxUsers !== undefined ? { maxUsers: o.maxUsers } : {}),
    ...(o.maxItems !== undefined ? { maxItems: o.maxItems } : {}),
  });
  if (JSON.stringify(model.spec()) !== JSON.stringify(spec)) return null;
  restoreCheckpoint(
    { dir: join(snap.dir, CHECKPOINT_PREFIX), state },
    model,
    new FrequencyEstimator(state.freq.buckets, state.freq.alpha),
  );
  if (spec.history === true) {
    // the users' histories as checkpointed with the model (the trainer's state)
    const name = `${CHECKPOINT_PREFIX}${HISTORY_FILE}`;
    const stored = parseHistoryFile(snap.file(name), `snapshot v${snap.version}`);
    const store = new HistoryStore({ length: Number.MAX_SAFE_INTEGER, topK: 1 });
    store.restore(stored);
    model.history = store;
  }
  return model;
}

/**
 * Evaluates a (verified) snapshot on `requests` with the trainer's own evaluation
 * (src/train/eval.ts, the served score): its trainer checkpoint is restored into a StudentModel.
 * Null when the snapshot carries no trainer checkpoint or its model's context width differs from
 * the requests'.
 *
 * @example
 * evaluateSnapshot(pub.loadSnapshot(3), heldOut.requests()); // { recall_at_100_of_top10: …, ndcg_at_10: …, eval_requests: 1000 }
 */
export function evaluateSnapshot(
  snap: LoadedSnapshot,
  requests: readonly EvalRequest[],
  o: { maxUsers?: number; maxItems?: number; learningRate?: number } = {},
): Record<string, number> | null {
  return scoreSnapshot(snap, requests, o)?.metrics ?? null;
}

/**
 * A (verified) snapshot's metrics and per-request values on `requests` (the paired gate's
 * baseline when its own eval set differs from the candidate's). Null as for {@link evaluateSnapshot}.
 *
 * @example
 * scoreSnapshot(pub.loadSnapshot(3), requests)?.scores.metrics.ndcg_at_10;
 */
export function scoreSnapshot(
  snap: LoadedSnapshot,
  requests: readonly EvalRequest[],
  o: { maxUsers?: number; maxItems?: number; learningRate?: number } = {},
): { metrics: Record<string, number>; scores: RequestScores } | null {
  const cb = requests[0]?.ctx.length;
  const model = restoreSnapshotModel(snap, { ...o, ...(cb === undefined ? {} : { contextBuckets: cb }) });
  if (model === null) return null;
  const { metrics: m, per } = evaluateScored(model, requests);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (v !== undefined) metrics[k] = v;
  return { metrics, scores: { ids: requests.map((r) => r.requestId), metrics: { ...per } } };
}

/**
 * The per-request values a snapshot's trainer checkpoint stored for its own eval set
 * (checkpoint/eval-scores.json), or null when it has none (older snapshots).
 *
 * @example
 * storedScores(pub.loadSnapshot(3))?.hash;
 */
export function storedScores(
  snap: LoadedSnapshot,
): { requests: number; hash: number; ids: string[]; metrics: Record<string, Float64Array> } | null {
  const name = `${CHECKPOINT_PREFIX}${EVAL_SCORES_FILE}`;
  if (!snap.manifest.files.some((f) => f.name === name)) return null;
  return parseScoresFile(snap.file(name), join(snap.dir, name));
}

/**
 * Writes the trainer checkpoint carried by a (verified) snapshot into `<out>/ckpt-<seq>/`, so
 * `Trainer.open({ out })` resumes from it — unless `out` already holds a checkpoint at least as new.
 * Returns the directory written, or null when nothing was written.
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT when the snapshot carries no trainer checkpoint.
 * @example
 * restoreTrainerCheckpoint(publisher.loadSnapshot('latest'), 'ckpt');
 */
export function restoreTrainerCheckpoint(snap: LoadedSnapshot, out: string): string | null {
  const names = snap.manifest.files.map((f) => f.name).filter((n) => n.startsWith(CHECKPOINT_PREFIX));
  if (!names.includes(`${CHECKPOINT_PREFIX}state.json`))
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `snapshot v${snap.version}: expected a trainer checkpoint (${CHECKPOINT_PREFIX}state.json), found none`,
    );
  const facts = checkpointFacts(snap.file(`${CHECKPOINT_PREFIX}state.json`), `snapshot v${snap.version}`);
  if (listCheckpoints(out).some((s) => s >= facts.seq)) return null;
  mkdirSync(out, { recursive: true });
  // the trainer removes `.tmp-ckpt-*` leftovers at open, so a crash here leaves nothing behind
  const tmp = join(out, `.tmp-ckpt-restore-${process.pid}`);
  const final = checkpointDir(out, facts.seq);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const n of names) writeFileSynced(join(tmp, n.slice(CHECKPOINT_PREFIX.length)), snap.file(n));
  fsyncDir(tmp, true);
  renameSync(tmp, final);
  fsyncDir(out, true);
  return final;
}

/**
 * Everything `rankdistill train` needs for snapshots, from the config: the publisher
 * (snapshots.dir / registry / gateTolerance / modelName; announcements on kafka.topics.snapshots
 * when `announce`), the resume (on a machine whose checkpoint directory `out` holds nothing newer,
 * the current snapshot's trainer checkpoint is restored into `out` first), and the
 * {@link TrainerSnapshots} to feed checkpoint events to. Call before `Trainer.open({ out })`.
 *
 * @example
 * const s = openTrainerSnapshots(cfg, { out: opts.out, announce: true });
 * let trainer: Trainer | undefined;
 * trainer = await Trainer.open({ config: cfg.train, out: opts.out, onEvent: (e) => {
 *   if (e.type === 'checkpoint' && trainer) s.snaps.onCheckpoint(trainer.model, e.dir, e.metrics);
 * } });
 * await trainer.run(batches);
 * await s.snaps.drain();
 * await s.close();
 */
export function openTrainerSnapshots(
  c: Config,
  o: {
    out: string;
    announce?: boolean;
    onResult?: (r: PublishResult) => void;
    onEvent?: (e: SnapshotEvent) => void;
    /** Live gauge events (scored batches, drops). */
    onGauge?: (e: GaugeEvent) => void;
  },
): {
  snaps: TrainerSnapshots;
  publisher: SnapshotPublisher;
  restored: string | null;
  /** The live gauge: give it to `Trainer.open({ gauge })`. */
  gauge: ProgressiveGauge;
  close(): Promise<void>;
} {
  const publisher = openPublisherFromConfig(c, { announce: o.announce === true, onEvent: o.onEvent });
  let restored: string | null = null;
  const current = publisher.latestPublished();
  if (current?.files.some((f) => f.name === `${CHECKPOINT_PREFIX}state.json`))
    restored = restoreTrainerCheckpoint(publisher.loadSnapshot(current.version), o.out);
  const gauge = new ProgressiveGauge({ ...c.train.gauge, contextBuckets: c.train.contextBuckets });
  if (o.onGauge) gauge.on(o.onGauge);
  const snaps = new TrainerSnapshots(publisher, {
    parentVersion: current?.version ?? null,
    ...(o.onResult ? { onResult: o.onResult } : {}),
    ...(c.train.gauge.share > 0 ? { gauge } : {}),
  });
  return { snaps, publisher, restored, gauge, close: () => publisher.close() };
}
