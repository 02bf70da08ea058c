/**
 * The student models: a two-tower recall model and an FM, over the same parameter layout.
 *
 * Both map a request (user id + hashed context features) to a user vector and an item (item id +
 * hashed item features) to an item vector of the same width; the score is their dot product, so
 * the item vectors of the whole catalog are what an ANN index serves (and what eval.ts scores
 * with one matrix product).
 *
 * - two-tower: user tower = MLP([user embedding ‖ context]) → d; item tower = MLP([item
 *   embedding ‖ item features]) → d (ReLU hidden layers `train.hidden`, linear output).
 * - fm: a factorization machine (Rendle, ICDM 2010) over the fields user id, context features,
 *   item id and item features, keeping the terms that change a user's ranking of items: the
 *   user-side × item-side interactions ⟨e_u + Σ_c x_c v_c, e_i + Σ_f x_f v_f⟩ plus an item bias
 *   and a global bias. Written as a dot product of [u, 1] and [i, b_i + w0].
 *
 * Id embeddings live in {@link EmbeddingTable}s (sparse updates); the dense weights in
 * {@link DenseParam}s. Forward functions take tensors, so the trainer can differentiate with
 * respect to the gathered rows and the dense weights in one pass.
 */
import * as tf from '@tensorflow/tfjs';
import { RankdistillError } from '../errors.ts';
import { linear, matmul } from './ops.ts';
import { DenseParam, EmbeddingTable, type OptimizerConfig } from './sparse.ts';

export type ModelKind = 'two-tower' | 'fm';

/**
 * The exposure prior of the served score: `beta · logQ(item)`, where logQ is the trainer's
 * streaming frequency estimate of the item as a positive (src/train/frequency.ts). The pairwise,
 * listwise and pointwise losses compare items inside one candidate list, so they learn
 * P(teacher ranks it high | candidate) only; recall of the teacher's top 10 over the catalog also
 * rewards P(item becomes a candidate), which the prior carries (docs/SNAPSHOTS.md "The score").
 */
export interface ItemPrior {
  beta: number;
  logQ(id: string): number;
}

export interface ModelOptions {
  kind: ModelKind;
  /** Embedding dimension d. */
  dim: number;
  /** Hidden layer sizes of each tower (two-tower only). */
  hidden: readonly number[];
  /** Width of the hashed context-feature vector (0: no context features). */
  contextBuckets: number;
  /** Width of the hashed item-feature vector (0: no item features). */
  itemFeatureBuckets: number;
  optimizer: OptimizerConfig;
  /**
   * Behaviour input of the user tower (two-tower only): the mean of the item id embeddings of the
   * user's recent positives (src/train/history.ts), `dim` more input columns after the context. The
   * pool is an input, not a path for gradients: the item embeddings learn on the item side.
   */
  history?: boolean;
  /** Whether the user tower reads a user id embedding [true]; false: behaviour and context only. */
  userIds?: boolean;
  /** Caps of the id tables (0: unbounded; past it ids are hashed onto shared rows). */
  maxUsers?: number;
  maxItems?: number;
  seed?: number;
}

/** JSON-serialisable description of a model, stored in checkpoints. */
export interface ModelSpec {
  kind: ModelKind;
  dim: number;
  hidden: number[];
  contextBuckets: number;
  itemFeatureBuckets: number;
  /** Width of user and item vectors (d for two-tower, d + 1 for fm). */
  outDim: number;
  /** Whether the user input carries the pooled history (absent: false). */
  history?: boolean;
  /** Dense parameter blocks in order, with their shapes. */
  dense: { name: string; shape: number[] }[];
}

/**
 * @example
 * const m = new StudentModel({ kind: 'two-tower', dim: 32, hidden: [64], contextBuckets: 16,
 *   itemFeatureBuckets: 16, optimizer: { kind: 'adam', learningRate: 0.01 } });
 */
export class StudentModel {
  readonly opts: ModelOptions;
  readonly users: EmbeddingTable;
  readonly items: EmbeddingTable;
  readonly dense: DenseParam[] = [];
  /** Width of user and item vectors. */
  readonly outDim: number;
  /** Hashed item features, `itemFeatureBuckets` per item row. */
  itemFeatures: Float32Array;
  /** The exposure prior of the served score (null: beta 0). See {@link servedItemVectors}. */
  prior: ItemPrior | null = null;
  /**
   * Where evaluation and export read each user's history (when `opts.history`): the trainer's
   * store. Null: empty histories.
   */
  history: { before(user: string, exclude?: ReadonlySet<string>): string[] } | null = null;
  private readonly userLayers: number;
  private readonly itemLayers: number;

  constructor(o: ModelOptions) {
    if (o.kind === 'fm' && o.hidden.length > 0 && o.hidden.some((h) => h <= 0))
      throw new RankdistillError('TRAIN_INPUT_INVALID', 'hidden sizes must be positive');
    if (o.kind === 'fm' && o.history === true)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        'train.history: expected the two-tower model, found fm (its user side has no tower to feed)',
      );
    this.opts = o;
    const seed = o.seed ?? 1;
    const itemDim = o.kind === 'fm' ? o.dim + 1 : o.dim;
    this.users = new EmbeddingTable({
      dim: o.dim,
      optimizer: o.optimizer,
      maxRows: o.maxUsers ?? 0,
      seed: seed * 31 + 1,
    });
    this.items = new EmbeddingTable({
      dim: itemDim,
      optimizer: o.optimizer,
      maxRows: o.maxItems ?? 0,
      seed: seed * 31 + 2,
      ...(o.kind === 'fm' ? { constantColumns: { from: o.dim, value: 0 } } : {}),
    });
    this.itemFeatures = new Float32Array(1024 * o.itemFeatureBuckets);
    let s = seed * 1000;
    const add = (name: string, shape: number[], init: 'glorot' | 'zeros') =>
      this.dense.push(new DenseParam(name, shape, o.optimizer, ++s, init));
    if (o.kind === 'two-tower') {
      const tower = (side: string, inDim: number): number => {
        const sizes = [...o.hidden, o.dim];
        let prev = inDim;
        sizes.forEach((h, l) => {
          add(`${side}/dense${l}/kernel`, [prev, h], 'glorot');
          add(`${side}/dense${l}/bias`, [h], 'zeros');
          prev = h;
        });
        return sizes.length;
      };
      this.userLayers = tower('user', o.dim + o.contextBuckets + (o.history === true ? o.dim : 0));
      this.itemLayers = tower('item', o.dim + o.itemFeatureBuckets);
      this.outDim = o.dim;
    } else {
      this.userLayers = o.contextBuckets > 0 ? 1 : 0;
      this.itemLayers = o.itemFeatureBuckets > 0 ? 1 : 0;
      if (o.contextBuckets > 0) add('user/factors', [o.contextBuckets, o.dim], 'glorot');
      if (o.itemFeatureBuckets > 0) add('item/factors', [o.itemFeatureBuckets, o.dim], 'glorot');
      add('global/bias', [1], 'zeros');
      this.outDim = o.dim + 1;
    }
  }

  /** Description stored with checkpoints and snapshots. */
  spec(): ModelSpec {
    return {
      kind: this.opts.kind,
      dim: this.opts.dim,
      hidden: [...this.opts.hidden],
      contextBuckets: this.opts.contextBuckets,
      itemFeatureBuckets: this.opts.itemFeatureBuckets,
      outDim: this.outDim,
      ...(this.opts.history === true ? { history: true } : {}),
      dense: this.dense.map((p) => ({ name: p.name, shape: [...p.shape] })),
    };
  }

  /** Number of trainable values (dense + table rows in use). */
  paramCount(): number {
    return (
      this.dense.reduce((a, p) => a + p.size, 0) +
      this.users.size * this.users.dim +
      this.items.size * this.items.dim
    );
  }

  /** Tensors of the current dense weights, in {@link dense} order (caller disposes / tidies). */
  denseTensors(): tf.Tensor[] {
    return this.dense.map((p) => tf.tensor(p.values, [...p.shape], 'float32'));
  }

  /** Item row of `id`, growing the table and recording its features when given. */
  itemRow(id: string, features?: Float32Array): number {
    const r = this.items.row(id);
    const F = this.opts.itemFeatureBuckets;
    if (F > 0) {
      if ((r + 1) * F > this.itemFeatures.length) {
        const grown = new Float32Array(Math.max((r + 1) * F, this.itemFeatures.length * 2));
        grown.set(this.itemFeatures);
        this.itemFeatures = grown;
      }
      if (features !== undefined) this.itemFeatures.set(features, r * F);
    }
    return r;
  }

  /** Width of a user input row: [user embedding ‖ hashed context ‖ pooled history (if on)]. */
  get userInputWidth(): number {
    return this.users.dim + this.opts.contextBuckets + this.historyWidth;
  }

  /** Columns of the pooled history in a user input row (0 when off). */
  get historyWidth(): number {
    return this.opts.history === true ? this.opts.dim : 0;
  }

  /**
   * Pooled histories [n, dim]: per list, the mean of the item id embeddings (the item table's rows,
   * the tower's id input) of its known items; zeros for an empty list.
   */
  poolHistory(histories: readonly (readonly string[])[]): Float32Array {
    const d = this.opts.dim;
    const out = new Float32Array(histories.length * d);
    const vals = this.items.state().values;
    const w = this.items.dim;
    histories.forEach((h, i) => {
      let n = 0;
      for (const id of h) {
        const r = this.items.find(id);
        if (r < 0) continue;
        n++;
        for (let k = 0; k < d; k++) out[i * d + k] = (out[i * d + k] as number) + (vals[r * w + k] as number);
      }
      if (n > 1) for (let k = 0; k < d; k++) out[i * d + k] = (out[i * d + k] as number) / n;
    });
    return out;
  }

  /** The pooled histories of requests' users (their own candidates left out), or undefined when off. */
  requestHistories(
    requests: readonly { user: string; teacher: readonly string[] }[],
  ): Float32Array | undefined {
    if (this.opts.history !== true) return undefined;
    const h = this.history;
    return this.poolHistory(requests.map((r) => (h === null ? [] : h.before(r.user, new Set(r.teacher)))));
  }

  /** Width of an item input row: [item embedding ‖ hashed item features]. */
  get itemInputWidth(): number {
    return this.items.dim + this.opts.itemFeatureBuckets;
  }

  /**
   * User input rows [rows, d + Fc]: the embedding of `rows[i]` (-1: zeros) followed by the
   * context `ctx[i·Fc..]`. Built in JS so the tower needs no concat and the table gradient is the
   * first d columns of the input gradient.
   */
  userInput(
    rows: ArrayLike<number>,
    ctx: Float32Array,
    out?: Float32Array,
    pooled?: Float32Array,
  ): Float32Array {
    const w = this.userInputWidth;
    const d = this.users.dim;
    const Fc = this.opts.contextBuckets;
    const H = this.historyWidth;
    const x = out ?? new Float32Array(rows.length * w);
    this.users.gather(rows, x, w);
    if (Fc > 0) for (let i = 0; i < rows.length; i++) x.set(ctx.subarray(i * Fc, i * Fc + Fc), i * w + d);
    if (H > 0)
      for (let i = 0; i < rows.length; i++) {
        if (pooled === undefined) x.fill(0, i * w + d + Fc, i * w + d + Fc + H);
        else x.set(pooled.subarray(i * H, i * H + H), i * w + d + Fc);
      }
    return x;
  }

  /** Item input rows [rows, dI + Fi]: embedding (-1: zeros) followed by the stored features. */
  itemInput(rows: ArrayLike<number>, out?: Float32Array): Float32Array {
    const w = this.itemInputWidth;
    const d = this.items.dim;
    const F = this.opts.itemFeatureBuckets;
    const x = out ?? new Float32Array(rows.length * w);
    this.items.gather(rows, x, w);
    if (F > 0) {
      const feats = this.itemFeatures;
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i] as number;
        const o = i * w + d;
        // plain loops: `x.set(features.subarray(…))` allocates a view per row
        if (r < 0 || (r + 1) * F > feats.length) for (let k = 0; k < F; k++) x[o + k] = 0;
        else for (let k = 0; k < F; k++) x[o + k] = feats[r * F + k] as number;
      }
    }
    return x;
  }

  private mlp(x: tf.Tensor2D, w: readonly tf.Tensor[], first: number, layers: number): tf.Tensor2D {
    let h = x;
    for (let l = 0; l < layers; l++) {
      const k = w[first + 2 * l] as tf.Tensor2D;
      const b = w[first + 2 * l + 1] as tf.Tensor1D;
      h = linear(h, k, b);
      if (l < layers - 1) h = tf.relu(h);
    }
    return h;
  }

  /**
   * User vectors [B, outDim] from user input rows [B, d + Fc] ({@link userInput}).
   * `w` are the dense weights (from {@link denseTensors}, or the tensors being differentiated).
   */
  userTower(x: tf.Tensor2D, w: readonly tf.Tensor[]): tf.Tensor2D {
    if (this.opts.kind === 'two-tower') return this.mlp(x, w, 0, this.userLayers);
    const d = this.opts.dim;
    const Fc = this.opts.contextBuckets;
    const emb = Fc > 0 ? tf.slice(x, [0, 0], [-1, d]) : x;
    const u = Fc > 0 ? tf.add(emb, matmul(tf.slice(x, [0, d], [-1, Fc]), w[0] as tf.Tensor2D)) : emb;
    return tf.concat([u, tf.ones([x.shape[0], 1])], 1) as tf.Tensor2D;
  }

  /** Item vectors [B, outDim] from item input rows [B, dI + Fi] ({@link itemInput}). */
  itemTower(x: tf.Tensor2D, w: readonly tf.Tensor[]): tf.Tensor2D {
    if (this.opts.kind === 'two-tower') return this.mlp(x, w, 2 * this.userLayers, this.itemLayers);
    const d = this.opts.dim;
    const Fi = this.opts.itemFeatureBuckets;
    const emb = tf.slice(x, [0, 0], [-1, d]);
    const bias = tf.slice(x, [0, d], [-1, 1]);
    const i =
      Fi > 0
        ? tf.add(emb, matmul(tf.slice(x, [0, d + 1], [-1, Fi]), w[this.userLayers] as tf.Tensor2D))
        : emb;
    const w0 = w[this.userLayers + this.itemLayers] as tf.Tensor1D;
    return tf.concat([i, tf.add(bias, w0)], 1) as tf.Tensor2D;
  }

  /**
   * Item vectors of item rows (all known items by default), computed in chunks, as a
   * Float32Array [rows, outDim]: the catalog side of evaluation and of the ANN export.
   */
  itemVectors(rows?: ArrayLike<number>, chunk = 8192): Float32Array {
    const n = rows === undefined ? this.items.size : rows.length;
    const out = new Float32Array(n * this.outDim);
    const width = this.itemInputWidth;
    tf.tidy(() => {
      const w = this.denseTensors();
      for (let start = 0; start < n; start += chunk) {
        const m = Math.min(chunk, n - start);
        const r = new Int32Array(m);
        for (let i = 0; i < m; i++) r[i] = rows === undefined ? start + i : (rows[start + i] as number);
        const v = tf.tidy(() => this.itemTower(tf.tensor2d(this.itemInput(r), [m, width]), w));
        out.set(v.dataSync() as Float32Array, start * this.outDim);
        v.dispose();
      }
    });
    return out;
  }

  /** Width of served vectors: outDim + 1 (the prior column). */
  get servedDim(): number {
    return this.outDim + 1;
  }

  /**
   * The served item table [rows, outDim + 1]: each item's vector followed by its prior
   * `beta · logQ(id)` (0 without a prior). With {@link servedUserVectors} (the user vector followed
   * by a constant 1) the plain dot product is the whole score:
   *   score(u, i) = ⟨u, v_i⟩ + beta · logQ(i)
   * It is what a snapshot exports as its `items` table, what evaluation ranks with and what any
   * ANN index serves.
   */
  servedItemVectors(rows?: ArrayLike<number>): Float32Array {
    const v = this.itemVectors(rows);
    const d = this.outDim;
    const w = d + 1;
    const n = v.length / d;
    const out = new Float32Array(n * w);
    const ids = this.items.ids;
    const p = this.prior;
    for (let i = 0; i < n; i++) {
      out.set(v.subarray(i * d, i * d + d), i * w);
      if (p !== null && p.beta !== 0) {
        const r = rows === undefined ? i : (rows[i] as number);
        const id = ids[r];
        out[i * w + d] = id === undefined ? 0 : p.beta * p.logQ(id);
      }
    }
    return out;
  }

  /** Served user vectors [rows, outDim + 1]: {@link userVectors} followed by a constant 1. */
  servedUserVectors(rows: ArrayLike<number>, ctx: Float32Array, pooled?: Float32Array): Float32Array {
    return appendOne(this.userVectors(rows, ctx, pooled), this.outDim);
  }

  /**
   * User vectors [rows, outDim] of user rows (-1: unknown user, zero embedding), contexts and
   * (with `history` on) pooled histories ({@link poolHistory}; absent: empty histories).
   */
  userVectors(rows: ArrayLike<number>, ctx: Float32Array, pooled?: Float32Array): Float32Array {
    const n = rows.length;
    return tf.tidy(
      () =>
        this.userTower(
          tf.tensor2d(this.userInput(rows, ctx, undefined, pooled), [n, this.userInputWidth]),
          this.denseTensors(),
        ).dataSync() as Float32Array,
    );
  }
}

/** Rows of width `d` followed by a constant 1 (the served user vector's prior coordinate). */
export function appendOne(v: Float32Array, d: number): Float32Array {
  const n = v.length / d;
  const out = new Float32Array(n * (d + 1));
  for (let i = 0; i < n; i++) {
    out.set(v.subarray(i * d, i * d + d), i * (d + 1));
    out[i * (d + 1) + d] = 1;
  }
  return out;
}
