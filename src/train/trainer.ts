/**
 * The incremental trainer loop: label batches in, mini-batch steps, checkpoints out.
 *
 * Input is an async iterable of {@link LabelBatch}es — `{source, offset, next, labels}` — so files
 * (src/cli/commands/train.ts) and, later, Kafka (source = `topic/partition`) feed the same loop.
 *
 *   batch ─► held-out? (hash of request_id) ─► yes: evaluation set, never trained on
 *                 validation? (the next slice) ─► yes: validation set, never trained on
 *                                            └► no: units ─► shuffle buffer ─► steps
 *   every checkpointEveryExamples / checkpointEveryMs, and at the end:
 *     drain the shuffle buffer (train everything consumed) ─► choose the prior's beta on the
 *     validation set ─► evaluate (served score, prior included) ─► write checkpoint
 *     (model + optimizer state + frequency estimate + next offset per source + the ranges
 *     consumed since the parent checkpoint)
 *
 * Exactly once: a checkpoint is taken only at a batch boundary after the buffer is drained, so
 * everything below its positions has been trained and nothing above has. After a crash the trainer
 * restarts from the newest checkpoint's positions: the ranges consumed after it were never saved
 * and are consumed again, once.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.ts';
import { RankdistillError } from '../errors.ts';
import { type BackendInfo, initBackend } from './backend.ts';
import {
  type ConsumedRange,
  latestCheckpoint,
  pruneCheckpoints,
  readCheckpointFile,
  restoreCheckpoint,
  type SourcePosition,
  writeCheckpoint,
} from './checkpoint.ts';
import { chooseBeta, type EvalMetrics, evaluateScored, type PerRequestMetrics } from './eval.ts';
import { HeldOut, type LabelRecord, type StoredEvalRequest, toUnits, type Unit } from './examples.ts';
import { FrequencyEstimator } from './frequency.ts';
import type { ProgressiveGauge } from './gauge.ts';
import { mulberry32 } from './hash.ts';
import { HistoryStore, recordItems } from './history.ts';
import { StudentModel } from './model.ts';
import { buildPlan, type LossOptions, trainStep } from './step.ts';

/** A run of consecutive records of one source: offsets [offset, next) were consumed. */
export interface LabelBatch {
  /** File path, or `topic/partition`. */
  source: string;
  /** Pass over the input (files; 0 for streams). */
  epoch?: number;
  /** First offset of the run (the source's previous `next`). */
  offset: number;
  /** Offset after the run's last record. */
  next: number;
  /** The decodable label records of the run (bad records are consumed and left out). */
  labels: LabelRecord[];
}

export type TrainerEvent =
  | { type: 'backend'; backend: BackendInfo }
  | { type: 'resumed'; seq: number; positions: SourcePosition[]; examples: number }
  | { type: 'step'; step: number; loss: number; examples: number }
  | {
      type: 'checkpoint';
      seq: number;
      dir: string;
      ranges: ConsumedRange[];
      examples: number;
      metrics: Record<string, number>;
    };

export interface TrainerOptions {
  config: TrainConfig;
  /** Checkpoint directory. */
  out: string;
  onEvent?: (e: TrainerEvent) => void;
  /** Emit a `step` event every N steps [100]. */
  logEverySteps?: number;
  /** The live gauge: sees every training record before the trainer learns from it. */
  gauge?: ProgressiveGauge;
}

export interface RunSummary {
  examples: number;
  steps: number;
  records: number;
  checkpoints: number;
  metrics: Record<string, number>;
  stoppedEarly: boolean;
}

/** The loss options of a train config. */
export function lossOptions(c: TrainConfig): LossOptions {
  return {
    weights: c.lossWeights,
    listwiseLoss: c.listwiseLoss,
    groundTruthLambda: c.groundTruthLambda,
    inBatchNegatives: c.inBatchNegatives,
    sampledNegatives: c.sampledNegatives,
    // the negatives loss is quadratic in its anchors: 512 keeps it a small share of a step
    maxAnchors: Math.min(c.batchSize, 512),
  };
}

/** The student model a train config describes. */
export function modelFromConfig(c: TrainConfig): StudentModel {
  return new StudentModel({
    kind: c.model,
    dim: c.dim,
    hidden: c.hidden,
    contextBuckets: c.contextBuckets,
    itemFeatureBuckets: c.itemFeatureBuckets,
    optimizer: { kind: c.optimizer, learningRate: c.learningRate },
    maxUsers: c.maxUsers,
    maxItems: c.maxItems,
    seed: c.seed,
    ...(c.historyLength > 0 ? { history: true } : {}),
    ...(c.userIdEmbedding ? {} : { userIds: false }),
  });
}

/** The history store a train config describes (null when the user tower reads no behaviour). */
export function historyFromConfig(c: TrainConfig): HistoryStore | null {
  return c.historyLength > 0 ? new HistoryStore({ length: c.historyLength, topK: c.historyTopK }) : null;
}

/**
 * @example
 * const t = await Trainer.open({ config: cfg.train, out: 'ckpt' });
 * await t.run(batchesFrom(files, t.positions()), { maxExamples: 1e6 });
 */
export class Trainer {
  readonly model: StudentModel;
  readonly freq: FrequencyEstimator;
  /** The users' recent positives the user tower reads (null when off); checkpointed. */
  readonly history: HistoryStore | null;
  readonly heldOut: HeldOut;
  /** Validation requests: the slice after the held-out one, never trained on; beta is chosen on them. */
  readonly validation: HeldOut;
  readonly backend: BackendInfo;
  private readonly c: TrainConfig;
  private readonly out: string;
  private readonly emit: (e: TrainerEvent) => void;
  private readonly loss: LossOptions;
  private readonly rand: () => number;
  private readonly logEvery: number;
  private buffer: Unit[] = [];
  private seq = 0;
  private parent: number | null = null;
  private epoch = 0;
  private readonly positions_ = new Map<string, SourcePosition>();
  private pending: ConsumedRange[] = [];
  private totals = { examples: 0, steps: 0, records: 0 };
  private sinceCheckpoint = 0;
  private lastCheckpointAt = Date.now();
  private lastMetrics: Record<string, number> = {};
  private readonly gauge: ProgressiveGauge | undefined;

  private constructor(o: TrainerOptions, backend: BackendInfo) {
    this.c = o.config;
    this.out = o.out;
    this.emit = o.onEvent ?? (() => undefined);
    this.backend = backend;
    this.model = modelFromConfig(o.config);
    this.freq = new FrequencyEstimator(o.config.frequencyBuckets, o.config.frequencyAlpha);
    this.history = historyFromConfig(o.config);
    this.model.history = this.history;
    this.loss = lossOptions(o.config);
    this.heldOut = new HeldOut(
      o.config.heldOutPercent,
      o.config.evalRequests,
      o.config.contextBuckets,
      0,
      o.config.evalSet,
    );
    // beta is re-chosen at each checkpoint and never compared across checkpoints: the validation
    // set follows the stream like the eval set when evalSet is 'latest'
    this.validation = new HeldOut(
      o.config.validationPercent,
      o.config.validationRequests,
      o.config.contextBuckets,
      o.config.heldOutPercent,
      o.config.evalSet,
    );
    this.setBeta(o.config.priorBeta === 'auto' ? 1 : o.config.priorBeta);
    this.logEvery = o.logEverySteps ?? 100;
    this.gauge = o.gauge;
    const ck = latestCheckpoint(o.out);
    if (ck !== undefined) {
      const spec = this.model.spec();
      if (JSON.stringify(ck.state.spec) !== JSON.stringify(spec))
        throw new RankdistillError(
          'TRAIN_INPUT_INVALID',
          `checkpoint ${ck.dir} was trained with model ${JSON.stringify(ck.state.spec)}, but the config describes ${JSON.stringify(spec)}`,
        );
      restoreCheckpoint(ck, this.model, this.freq);
      // the evaluation set of the checkpoint: a resumed trainer evaluates on the same requests
      // (older checkpoints have none: the set starts again from the records read from here on)
      const stored = readCheckpointFile(ck, EVAL_FILE);
      if (stored !== undefined) this.heldOut.restore(parseEvalFile(stored, ck.dir));
      const val = readCheckpointFile(ck, VALIDATION_FILE);
      if (val !== undefined) this.validation.restore(parseEvalFile(val, ck.dir));
      if (this.history !== null) {
        const h = readCheckpointFile(ck, HISTORY_FILE);
        if (h === undefined)
          throw new RankdistillError(
            'TRAIN_INPUT_INVALID',
            `checkpoint ${ck.dir}: expected ${HISTORY_FILE} (train.historyLength > 0), found none`,
          );
        this.history.restore(parseHistoryFile(h, ck.dir));
      }
      this.seq = ck.state.seq;
      this.parent = ck.state.seq;
      this.epoch = ck.state.epoch;
      for (const p of ck.state.positions) this.positions_.set(key(p.source, p.epoch), p);
      this.totals = { ...ck.state.totals };
      this.lastMetrics = ck.state.metrics;
    }
    this.rand = mulberry32(o.config.seed * 7919 + this.seq);
  }

  /**
   * Initialises the backend, cleans temporaries of dead writers and resumes from the newest
   * checkpoint under `out` (if any).
   */
  static async open(o: TrainerOptions): Promise<Trainer> {
    const backend = await initBackend(o.config.backend);
    try {
      for (const n of readdirSync(o.out))
        if (n.startsWith('.tmp-ckpt-')) rmSync(join(o.out, n), { recursive: true, force: true });
    } catch {
      // no directory yet
    }
    const t = new Trainer(o, backend);
    t.emit({ type: 'backend', backend });
    if (t.seq > 0)
      t.emit({ type: 'resumed', seq: t.seq, positions: t.positions(), examples: t.totals.examples });
    return t;
  }

  /** Where to resume: the next offset of every source seen, in the current epoch. */
  positions(): SourcePosition[] {
    return [...this.positions_.values()].filter((p) => p.epoch === this.epoch);
  }

  /** The epoch the newest checkpoint was taken in. */
  get currentEpoch(): number {
    return this.epoch;
  }

  /** Examples trained so far (across restarts). */
  get examples(): number {
    return this.totals.examples;
  }

  /**
   * Consumes batches until the iterable ends or `maxExamples` (counted across restarts) is
   * reached, then drains and writes a final checkpoint.
   */
  async run(batches: AsyncIterable<LabelBatch>, o: { maxExamples?: number } = {}): Promise<RunSummary> {
    const max = o.maxExamples ?? Number.POSITIVE_INFINITY;
    let checkpoints = 0;
    let stoppedEarly = false;
    if (this.totals.examples >= max) return this.summary(0, true);
    for await (const b of batches) {
      this.consume(b);
      if (this.totals.examples + this.buffer.length >= max) {
        stoppedEarly = true;
        break;
      }
      if (
        this.sinceCheckpoint >= this.c.checkpointEveryExamples ||
        Date.now() - this.lastCheckpointAt >= this.c.checkpointEveryMs
      ) {
        this.checkpoint();
        checkpoints++;
      }
      // let timers and signals run between batches
      await new Promise<void>((r) => setImmediate(r));
    }
    if (this.pending.length > 0 || this.buffer.length > 0) {
      this.checkpoint();
      checkpoints++;
    }
    return this.summary(checkpoints, stoppedEarly);
  }

  private summary(checkpoints: number, stoppedEarly: boolean): RunSummary {
    return { ...this.totals, checkpoints, metrics: this.lastMetrics, stoppedEarly };
  }

  /** Takes one batch: held-out split, units into the shuffle buffer, steps when it is full. */
  consume(b: LabelBatch): void {
    const epoch = b.epoch ?? 0;
    if (epoch < this.epoch) return; // an earlier pass, already complete
    if (epoch > this.epoch) this.epoch = epoch;
    const k = key(b.source, epoch);
    const pos = this.positions_.get(k);
    if (pos !== undefined && b.offset < pos.next)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `${b.source} (epoch ${epoch}): expected records from offset ${pos.next}, found a batch starting at ${b.offset} (would train a range twice)`,
      );
    if (b.next < b.offset)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `${b.source}: batch ends at ${b.next} before it starts at ${b.offset}`,
      );
    const uo = {
      contextBuckets: this.c.contextBuckets,
      itemFeatureBuckets: this.c.itemFeatureBuckets,
      maxListLength: this.c.maxListLength,
    };
    for (const r of b.labels) {
      this.totals.records++;
      if (this.heldOut.offer(r) || this.validation.offer(r)) continue;
      this.gauge?.observe(r); // progressive validation: scored before it is trained on
      const units = toUnits(r, uo);
      if (this.history !== null) {
        // the history before this record, its request's own items left out; then the record joins it
        const h = this.history.before(r.value.user_id, recordItems(r), r.value.request_id);
        for (const u of units) u.req.history = h;
        this.history.observe(r);
      }
      for (const u of units) this.buffer.push(u);
    }
    this.positions_.set(k, { source: b.source, epoch, next: b.next });
    const last = this.pending[this.pending.length - 1];
    if (last !== undefined && last.source === b.source && last.epoch === epoch && last.to === b.offset)
      last.to = b.next;
    else {
      const prev = this.pending.findLast((r) => r.source === b.source && r.epoch === epoch);
      if (prev !== undefined && prev.to === b.offset) prev.to = b.next;
      else if (b.next > b.offset) this.pending.push({ source: b.source, epoch, from: b.offset, to: b.next });
    }
    const fill = Math.max(this.c.shuffleBuffer, this.c.batchSize);
    while (this.buffer.length >= fill) this.step();
  }

  /** One step on `batchSize` units drawn at random from the shuffle buffer. */
  private step(): void {
    const n = Math.min(this.c.batchSize, this.buffer.length);
    if (n === 0) return;
    const units: Unit[] = new Array(n);
    const buf = this.buffer;
    for (let i = 0; i < n; i++) {
      const j = Math.floor(this.rand() * buf.length);
      units[i] = buf[j] as Unit;
      buf[j] = buf[buf.length - 1] as Unit;
      buf.pop();
    }
    const loss = trainStep(
      this.model,
      buildPlan(this.model, units, this.freq, this.loss, this.rand),
      this.loss,
    );
    this.totals.steps++;
    this.totals.examples += n;
    this.sinceCheckpoint += n;
    if (!Number.isFinite(loss))
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `loss became ${loss} at step ${this.totals.steps}; lower train.learningRate`,
      );
    if (this.totals.steps % this.logEvery === 0)
      this.emit({ type: 'step', step: this.totals.steps, loss, examples: this.totals.examples });
  }

  /**
   * Evaluates the current model on the held-out requests collected so far; the metrics carry the
   * identity of that set (`eval_requests`, `eval_set_hash`) so the snapshot gate compares only
   * metrics measured on the same requests.
   */
  /** The prior's weight in the served score (see StudentModel.prior). */
  get beta(): number {
    return this.model.prior?.beta ?? 0;
  }

  private setBeta(beta: number): void {
    this.model.prior = { beta, logQ: (id) => this.freq.logQ(id) };
  }

  /**
   * With `priorBeta: auto`, the beta of the grid with the best recall on the validation set (kept
   * when there is none yet); a fixed priorBeta otherwise. Sets it on the model.
   */
  choosePrior(): { beta: number; recall?: Record<string, number> } {
    if (this.c.priorBeta !== 'auto') {
      this.setBeta(this.c.priorBeta);
      return { beta: this.c.priorBeta };
    }
    if (this.validation.size === 0) return { beta: this.beta };
    const r = chooseBeta(
      this.model,
      (id) => this.freq.logQ(id),
      this.validation.requests(),
      this.c.priorBetaGrid,
    );
    this.setBeta(r.beta);
    return r;
  }

  evaluate(): EvalMetrics {
    return this.evaluateScored().metrics;
  }

  /** {@link evaluate} with the per-request values (stored in the checkpoint for the paired gate). */
  private evaluateScored(): { metrics: EvalMetrics; scores: StoredRequestScores } {
    const requests = this.heldOut.requests();
    const { metrics, per } = evaluateScored(this.model, requests);
    metrics.eval_set_hash = this.heldOut.identity().hash;
    return {
      metrics,
      scores: toStoredScores(
        requests.map((r) => r.requestId),
        per,
        this.heldOut.identity(),
      ),
    };
  }

  /**
   * Drains the shuffle buffer, evaluates and writes a checkpoint of everything consumed so far.
   * Returns its sequence number.
   */
  checkpoint(): number {
    while (this.buffer.length > 0) this.step();
    const prior = this.choosePrior();
    const metrics: Record<string, number> = {};
    const extraFiles: { name: string; data: string }[] = [];
    if (this.heldOut.size > 0) {
      const e = this.evaluateScored();
      for (const [k, v] of Object.entries(e.metrics)) if (v !== undefined) metrics[k] = v;
      this.lastMetrics = metrics;
      extraFiles.push({ name: EVAL_SCORES_FILE, data: JSON.stringify(e.scores) });
    }
    const seq = this.seq + 1;
    const ranges = this.pending;
    const dir = writeCheckpoint(
      this.out,
      {
        seq,
        parent: this.parent,
        createdAt: Date.now(),
        optimizer: this.c.optimizer,
        epoch: this.epoch,
        positions: [...this.positions_.values()],
        ranges,
        totals: { ...this.totals },
        metrics,
        evalSet: this.heldOut.identity(),
        prior: {
          beta: prior.beta,
          validationRequests: this.validation.size,
          ...(prior.recall ? { validationRecall: prior.recall } : {}),
        },
      },
      this.model,
      this.freq,
      [
        { name: EVAL_FILE, data: JSON.stringify(this.heldOut.toJSON()) },
        { name: VALIDATION_FILE, data: JSON.stringify(this.validation.toJSON()) },
        ...(this.history !== null
          ? [{ name: HISTORY_FILE, data: JSON.stringify(this.history.toJSON()) }]
          : []),
        ...extraFiles,
      ],
    );
    this.seq = seq;
    this.parent = seq;
    this.pending = [];
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = Date.now();
    pruneCheckpoints(this.out, this.c.keepCheckpoints);
    this.emit({ type: 'checkpoint', seq, dir, ranges, examples: this.totals.examples, metrics });
    return seq;
  }

  /** Live tensors (the leak check of tests and long runs). */
  static numTensors(): number {
    return tf.memory().numTensors;
  }
}

/** The checkpoint file holding the evaluation set (see HeldOut in ./examples.ts). */
export const EVAL_FILE = 'eval.json';
/** The checkpoint file holding the validation set (beta of the prior is chosen on it). */
export const VALIDATION_FILE = 'validation.json';
/** The checkpoint file holding the users' histories (src/train/history.ts). */
export const HISTORY_FILE = 'history.json';

/** A checkpoint file's JSON, or SNAPSHOT_CORRUPT naming the file. */
function parseJsonFile(bytes: Uint8Array, where: string, name: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `${where}: ${name}: expected JSON, found ${(e as Error).message}`,
    );
  }
}

/**
 * The stored histories of a checkpoint's history.json: [user, items oldest first] pairs.
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT when it is not such an array.
 * @example
 * store.restore(parseHistoryFile(readFileSync(join(dir, 'history.json')), dir));
 */
export function parseHistoryFile(bytes: Uint8Array, where: string): [string, [string, string][]][] {
  const v = parseJsonFile(bytes, where, HISTORY_FILE);
  const ok =
    Array.isArray(v) &&
    v.every(
      (x) =>
        Array.isArray(x) &&
        x.length === 2 &&
        typeof x[0] === 'string' &&
        Array.isArray(x[1]) &&
        x[1].every(
          (e: unknown) =>
            Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string',
        ),
    );
  if (!ok)
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `${where}: ${HISTORY_FILE}: expected an array of [user, [[item, request], ...]], found ${JSON.stringify(v).slice(0, 120)}`,
    );
  return v as [string, [string, string][]][];
}

/**
 * The checkpoint file holding the per-request metric values of its evaluation (the paired gate's
 * input, src/snapshots/gate.ts): `{ requests, hash, ids, metrics: { name: (number | null)[] } }`,
 * null where a value is undefined (AUC without clicks).
 */
export const EVAL_SCORES_FILE = 'eval-scores.json';

/** Per-request values as stored in {@link EVAL_SCORES_FILE}. */
export interface StoredRequestScores {
  /** Identity of the evaluation set (see evalSetIdentity in ./examples.ts). */
  requests: number;
  hash: number;
  ids: string[];
  metrics: Record<string, (number | null)[]>;
}

/**
 * Per-request values in their stored form.
 *
 * @example
 * toStoredScores(reqs.map((r) => r.requestId), scoreRequests(scorer, reqs), evalSetIdentity(reqs));
 */
export function toStoredScores(
  ids: string[],
  per: PerRequestMetrics,
  identity: { requests: number; hash: number },
): StoredRequestScores {
  const metrics: Record<string, (number | null)[]> = {};
  for (const [k, v] of Object.entries(per) as [string, Float64Array][])
    metrics[k] = Array.from(v, (x) => (Number.isFinite(x) ? x : null));
  return { requests: identity.requests, hash: identity.hash, ids, metrics };
}

/**
 * Stored per-request values back to numbers (null → NaN).
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT when the bytes are not stored scores.
 * @example
 * const s = parseScoresFile(bytes, 'snapshots/v3/checkpoint'); s.metrics.ndcg_at_10[0];
 */
export function parseScoresFile(
  bytes: Uint8Array,
  where: string,
): { requests: number; hash: number; ids: string[]; metrics: Record<string, Float64Array> } {
  const v = parseJsonFile(bytes, where, EVAL_SCORES_FILE) as Partial<StoredRequestScores>;
  const ids = v.ids;
  const ok =
    Array.isArray(ids) &&
    typeof v.hash === 'number' &&
    typeof v.requests === 'number' &&
    typeof v.metrics === 'object' &&
    v.metrics !== null &&
    Object.values(v.metrics).every((a) => Array.isArray(a) && a.length === ids.length);
  if (!ok || ids === undefined || v.metrics === undefined)
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `${where}: ${EVAL_SCORES_FILE}: expected {requests, hash, ids, metrics} with one value per id, found ${JSON.stringify(v).slice(0, 120)}`,
    );
  const metrics: Record<string, Float64Array> = {};
  for (const [k, a] of Object.entries(v.metrics))
    metrics[k] = Float64Array.from(a, (x) => (typeof x === 'number' ? x : Number.NaN));
  return { requests: v.requests as number, hash: v.hash as number, ids, metrics };
}

/**
 * The stored evaluation requests of a checkpoint's eval.json.
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT when it is not an array of stored requests.
 * @example
 * const reqs = parseEvalFile(readFileSync(join(dir, 'eval.json')), dir);
 */
export function parseEvalFile(bytes: Uint8Array, where: string): StoredEvalRequest[] {
  const v = parseJsonFile(bytes, where, EVAL_FILE);
  const ok =
    Array.isArray(v) &&
    v.every(
      (r) =>
        typeof r === 'object' &&
        r !== null &&
        typeof r.id === 'string' &&
        typeof r.user === 'string' &&
        Array.isArray(r.ctx) &&
        Array.isArray(r.teacher) &&
        Array.isArray(r.grades) &&
        Array.isArray(r.clicks),
    );
  if (!ok)
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `${where}: ${EVAL_FILE}: expected an array of {id, user, ctx, teacher, grades, clicks}, found ${JSON.stringify(v).slice(0, 120)}`,
    );
  return v as StoredEvalRequest[];
}

function key(source: string, epoch: number): string {
  return `${epoch}\u0000${source}`;
}
