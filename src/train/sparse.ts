/**
 * Parameters that live outside TensorFlow.js: the id embedding tables and the dense tower weights,
 * all plain Float32Arrays, updated by a per-row optimizer written in JS.
 *
 * Why: tfjs optimizers update a whole variable every step (O(vocabulary × d)) and the gradient of
 * `gather` needs the `UnsortedSegmentSum` kernel, which tfjs-backend-wasm 4.22 lacks (and which
 * costs O(vocabulary) per step on the cpu backend). So the trainer copies the rows a batch touches
 * into input tensors, lets tfjs differentiate the loss with respect to those inputs, sums the
 * gradients of duplicate rows here and updates the touched rows only: a step is O(batch · d)
 * whatever the catalog size.
 *
 * The update rules are exactly those of tfjs's `AdamOptimizer` / `AdagradOptimizer`
 * (tfjs-core/src/optimizers), applied row by row. Adam keeps a step count per row ("lazy Adam",
 * as TF-Addons LazyAdam / PyTorch SparseAdam): moments of rows a batch does not touch are not
 * decayed, which is what makes the step O(batch); when every row is touched every step it equals
 * dense Adam exactly (asserted in test/train/sparse.test.ts).
 */
import { RankdistillError } from '../errors.ts';
import { fnv1a, mulberry32 } from './hash.ts';

export type OptimizerKind = 'adam' | 'adagrad';

export interface OptimizerConfig {
  kind: OptimizerKind;
  learningRate: number;
  /** Adam β1 [0.9]. */
  beta1?: number;
  /** Adam β2 [0.999]. */
  beta2?: number;
  /** ε [1e-7, tfjs's float32 backend epsilon]. */
  epsilon?: number;
  /** Adagrad initial accumulator [0.1, as tfjs]. */
  initialAccumulator?: number;
}

interface ResolvedOpt {
  kind: OptimizerKind;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  init: number;
}

function resolve(c: OptimizerConfig): ResolvedOpt {
  return {
    kind: c.kind,
    lr: c.learningRate,
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    eps: c.epsilon ?? 1e-7,
    init: c.initialAccumulator ?? 0.1,
  };
}

/**
 * One optimizer step on `n` parameters at `params[off..off+n)` with gradient `grad[goff..goff+n)`.
 * `s1`/`s2` are the optimizer slots (Adam m/v; Adagrad accumulator in s1); `t` is the 1-based step
 * count of these parameters (Adam bias correction).
 */
function applyRule(
  o: ResolvedOpt,
  params: Float32Array,
  s1: Float32Array,
  s2: Float32Array,
  off: number,
  grad: Float32Array,
  goff: number,
  n: number,
  t: number,
): void {
  if (o.kind === 'adam') {
    // tfjs AdamOptimizer: m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
    // x -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
    const b1 = o.beta1;
    const b2 = o.beta2;
    const lr = o.lr;
    const eps = o.eps;
    const a1 = 1 - b1;
    const a2 = 1 - b2;
    // the bias corrections as factors: one division per element instead of three
    const step = lr / (1 - b1 ** t);
    const ic2 = 1 / (1 - b2 ** t);
    for (let k = 0; k < n; k++) {
      const g = grad[goff + k] as number;
      const i = off + k;
      const m = b1 * (s1[i] as number) + a1 * g;
      const v = b2 * (s2[i] as number) + a2 * g * g;
      s1[i] = m;
      s2[i] = v;
      params[i] = (params[i] as number) - (step * m) / (Math.sqrt(v * ic2) + eps);
    }
  } else {
    // tfjs AdagradOptimizer: acc += g²; x -= lr · g / sqrt(acc + ε)
    for (let k = 0; k < n; k++) {
      const g = grad[goff + k] as number;
      const i = off + k;
      const acc = (s1[i] as number) + g * g;
      s1[i] = acc;
      params[i] = (params[i] as number) - (o.lr * g) / Math.sqrt(acc + o.eps);
    }
  }
}

/** Serialisable state of a parameter block (checkpoint). */
export interface ParamState {
  values: Float32Array;
  slot1: Float32Array;
  slot2: Float32Array;
  /** Adam step count per row (tables) or of the whole block (dense). */
  steps: Uint32Array;
}

/**
 * A dense parameter block (a tower's kernel or bias) with its optimizer state; every step updates
 * every element, like a tfjs variable.
 *
 * @example
 * const w = new DenseParam('user/0/kernel', [40, 64], { kind: 'adam', learningRate: 0.01 }, 1);
 * w.apply(gradFromTfjs);
 */
export class DenseParam {
  readonly name: string;
  readonly shape: readonly number[];
  readonly size: number;
  values: Float32Array;
  private s1: Float32Array;
  private s2: Float32Array;
  private t = 0;
  private readonly opt: ResolvedOpt;

  constructor(
    name: string,
    shape: readonly number[],
    opt: OptimizerConfig,
    seed: number,
    init: 'glorot' | 'zeros' = 'glorot',
  ) {
    this.name = name;
    this.shape = shape;
    this.size = shape.reduce((a, b) => a * b, 1);
    this.opt = resolve(opt);
    this.values = new Float32Array(this.size);
    if (init === 'glorot') {
      // Glorot uniform, as tf.layers.dense's default kernel initializer.
      const fanIn = shape[0] ?? 1;
      const fanOut = shape[1] ?? 1;
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      const rand = mulberry32(seed);
      for (let i = 0; i < this.size; i++) this.values[i] = (rand() * 2 - 1) * limit;
    }
    this.s1 = new Float32Array(this.size).fill(this.opt.kind === 'adagrad' ? this.opt.init : 0);
    this.s2 = new Float32Array(this.opt.kind === 'adam' ? this.size : 0);
  }

  /** Applies one optimizer step with a full gradient of `size` elements. */
  apply(grad: Float32Array): void {
    if (grad.length !== this.size)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `gradient of ${this.name}: expected ${this.size} values, found ${grad.length}`,
      );
    this.t++;
    applyRule(this.opt, this.values, this.s1, this.s2, 0, grad, 0, this.size, this.t);
  }

  state(): ParamState {
    return { values: this.values, slot1: this.s1, slot2: this.s2, steps: Uint32Array.of(this.t) };
  }

  restore(s: ParamState): void {
    if (s.values.length !== this.size)
      throw new RankdistillError(
        'SNAPSHOT_CORRUPT',
        `checkpoint block ${this.name}: expected ${this.size} values, found ${s.values.length}`,
      );
    this.values = s.values;
    this.s1 = s.slot1;
    this.s2 = s.slot2;
    this.t = s.steps[0] ?? 0;
  }
}

export interface EmbeddingTableOptions {
  dim: number;
  optimizer: OptimizerConfig;
  /** Rows allocated up front (grows by doubling) [1024]. */
  initialCapacity?: number;
  /**
   * Most exact rows (0: unbounded). Past it, new ids are hashed onto the existing rows (shared
   * rows, bounded memory) and counted in {@link EmbeddingTable.hashedLookups}.
   */
  maxRows?: number;
  /** Seed of the row initialisation. */
  seed?: number;
  /** Rows start uniform in ±initScale [0.05]. */
  initScale?: number;
  /** Columns [from, dim) start at this constant instead of random (an FM bias column). */
  constantColumns?: { from: number; value: number };
}

/**
 * An id → row embedding table: a growable `Map<string, row>` over a doubling Float32Array, with
 * per-row optimizer state and an optional row cap with hashing fallback.
 *
 * Why growable and not hashed: ids stream in and a growable table is exact (no two ids share a
 * row, and the snapshot exports one vector per real id for the ANN index); memory grows with the
 * ids actually seen (~(4·d·3 + ~80) bytes per id with Adam), amortised O(1) per new id. A hashed
 * table bounds memory but lets unrelated ids collide, so it is the fallback once `maxRows` is hit.
 *
 * @example
 * const t = new EmbeddingTable({ dim: 8, optimizer: { kind: 'adagrad', learningRate: 0.1 } });
 * const r = t.row('item-1');
 * t.applyGradients(Int32Array.of(r, r), grads); // duplicates are summed first
 */
export class EmbeddingTable {
  readonly dim: number;
  readonly maxRows: number;
  private readonly opt: ResolvedOpt;
  private readonly initScale: number;
  private readonly constantColumns: { from: number; value: number } | undefined;
  private readonly rand: () => number;
  private capacity: number;
  private n = 0;
  values: Float32Array;
  private s1: Float32Array;
  private s2: Float32Array;
  private steps: Uint32Array;
  private readonly index = new Map<string, number>();
  private readonly idList: string[] = [];
  /** Lookups of new ids that were hashed onto shared rows because the table was full. */
  hashedLookups = 0;
  // scratch of applyGradients (grow on demand)
  private scratchRows = new Int32Array(0);
  private scratchGrad = new Float32Array(0);
  // duplicate-row detection: an open-addressing table sized to the batch (row + 1 → slot + 1;
  // 0 = empty), not to the catalog: it stays in cache, so a touched row costs no extra misses
  private hashKeys = new Int32Array(0);
  private hashSlots = new Int32Array(0);

  constructor(o: EmbeddingTableOptions) {
    this.dim = o.dim;
    this.maxRows = o.maxRows ?? 0;
    this.opt = resolve(o.optimizer);
    this.initScale = o.initScale ?? 0.05;
    this.constantColumns = o.constantColumns;
    this.rand = mulberry32(o.seed ?? 1);
    this.capacity = Math.max(1, o.initialCapacity ?? 1024);
    if (this.maxRows > 0) this.capacity = Math.min(this.capacity, this.maxRows);
    this.values = new Float32Array(this.capacity * this.dim);
    this.s1 = new Float32Array(this.capacity * this.dim);
    this.s2 = new Float32Array(this.opt.kind === 'adam' ? this.capacity * this.dim : 0);
    this.steps = new Uint32Array(this.capacity);
  }

  /** Number of rows in use. */
  get size(): number {
    return this.n;
  }

  /** Row ids in row order (row r belongs to `ids[r]`); hashed overflow ids are not listed. */
  get ids(): readonly string[] {
    return this.idList;
  }

  /** The row of `id`, or -1 when unknown (never grows). */
  find(id: string): number {
    const r = this.index.get(id);
    if (r !== undefined) return r;
    if (this.maxRows > 0 && this.n >= this.maxRows) return fnv1a(id, 0x7ab1e) % this.n;
    return -1;
  }

  /** The row of `id`, adding a freshly initialised row for a new id (or hashing when full). */
  row(id: string): number {
    const r = this.index.get(id);
    if (r !== undefined) return r;
    if (this.maxRows > 0 && this.n >= this.maxRows) {
      this.hashedLookups++;
      return fnv1a(id, 0x7ab1e) % this.n;
    }
    if (this.n === this.capacity) this.grow();
    const row = this.n++;
    this.index.set(id, row);
    this.idList.push(id);
    this.initRow(row);
    return row;
  }

  private initRow(row: number): void {
    const d = this.dim;
    const base = row * d;
    const cc = this.constantColumns;
    for (let k = 0; k < d; k++) {
      this.values[base + k] =
        cc !== undefined && k >= cc.from ? cc.value : (this.rand() * 2 - 1) * this.initScale;
    }
    if (this.opt.kind === 'adagrad') this.s1.fill(this.opt.init, base, base + d);
  }

  private grow(): void {
    let cap = this.capacity * 2;
    if (this.maxRows > 0) cap = Math.min(cap, this.maxRows);
    const d = this.dim;
    const grow = (a: Float32Array): Float32Array => {
      if (a.length === 0) return a;
      const b = new Float32Array(cap * d);
      b.set(a);
      return b;
    };
    this.values = grow(this.values);
    this.s1 = grow(this.s1);
    this.s2 = grow(this.s2);
    const st = new Uint32Array(cap);
    st.set(this.steps);
    this.steps = st;
    this.capacity = cap;
  }

  /**
   * Copies the rows `rows[i]` into `out[i·stride..+d]` (a row of -1 gives zeros), ready to become
   * an input tensor of shape [rows.length, stride] (stride > d leaves room for features).
   */
  gather(
    rows: ArrayLike<number>,
    out: Float32Array = new Float32Array(rows.length * this.dim),
    stride: number = this.dim,
  ): Float32Array {
    const d = this.dim;
    const v = this.values;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as number;
      const o = i * stride;
      // plain loops: `out.set(values.subarray(…))` allocates a view per row
      if (r < 0) for (let k = 0; k < d; k++) out[o + k] = 0;
      else {
        const b = r * d;
        for (let k = 0; k < d; k++) out[o + k] = v[b + k] as number;
      }
    }
    return out;
  }

  /**
   * One optimizer step on the touched rows: `grads[i·stride..+d]` is the gradient of the input row that
   * was gathered from `rows[i]`. Gradients of duplicate rows are summed first (what the gradient
   * of a gather would do); rows of -1 are ignored. Cost O(rows.length · d).
   */
  applyGradients(rows: ArrayLike<number>, grads: Float32Array, stride: number = this.dim): void {
    const d = this.dim;
    if (grads.length !== rows.length * stride || stride < d)
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `embedding gradient: expected ${rows.length}×${stride} values (stride ≥ ${d}), found ${grads.length}`,
      );
    let size = 16;
    while (size < 2 * rows.length) size *= 2;
    if (this.hashKeys.length < size) {
      this.hashKeys = new Int32Array(size);
      this.hashSlots = new Int32Array(size);
    }
    const keys = this.hashKeys;
    const slots = this.hashSlots;
    keys.fill(0, 0, size);
    const bits = Math.clz32(size) + 1; // multiplicative hashing: the top log2(size) bits
    if (this.scratchRows.length < rows.length) {
      this.scratchRows = new Int32Array(rows.length);
      this.scratchGrad = new Float32Array(rows.length * d);
    }
    const uniq = this.scratchRows;
    const g = this.scratchGrad;
    let u = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as number;
      if (r < 0) continue;
      let h = Math.imul(r + 1, 0x9e3779b1) >>> bits;
      while (keys[h] !== 0 && keys[h] !== r + 1) h = (h + 1) & (size - 1);
      const ib = i * stride;
      if (keys[h] === 0) {
        keys[h] = r + 1;
        const s = u++;
        slots[h] = s;
        uniq[s] = r;
        // a plain loop: `g.set(grads.subarray(…))` allocates a view per row
        const gb = s * d;
        for (let k = 0; k < d; k++) g[gb + k] = grads[ib + k] as number;
      } else {
        const gb = (slots[h] as number) * d;
        for (let k = 0; k < d; k++) g[gb + k] = (g[gb + k] as number) + (grads[ib + k] as number);
      }
    }
    for (let s = 0; s < u; s++) {
      const r = uniq[s] as number;
      const t = (this.steps[r] as number) + 1;
      this.steps[r] = t;
      applyRule(this.opt, this.values, this.s1, this.s2, r * d, g, s * d, d, t);
    }
  }

  /** The state of the rows in use (views, not copies). */
  state(): ParamState {
    const used = this.n * this.dim;
    return {
      values: this.values.subarray(0, used),
      slot1: this.s1.subarray(0, used),
      slot2: this.s2.subarray(0, this.s2.length === 0 ? 0 : used),
      steps: this.steps.subarray(0, this.n),
    };
  }

  /** Replaces the table with checkpointed rows and ids. */
  restore(ids: readonly string[], s: ParamState): void {
    const d = this.dim;
    if (s.values.length !== ids.length * d)
      throw new RankdistillError(
        'SNAPSHOT_CORRUPT',
        `checkpoint table: expected ${ids.length}×${d} values, found ${s.values.length}`,
      );
    this.index.clear();
    this.idList.length = 0;
    this.n = 0;
    this.capacity = Math.max(1, ids.length);
    this.values = new Float32Array(this.capacity * d);
    this.s1 = new Float32Array(this.capacity * d);
    this.s2 = new Float32Array(this.opt.kind === 'adam' ? this.capacity * d : 0);
    this.steps = new Uint32Array(this.capacity);
    this.values.set(s.values);
    this.s1.set(s.slot1);
    if (this.s2.length > 0) this.s2.set(s.slot2);
    this.steps.set(s.steps);
    for (const id of ids) {
      this.index.set(id, this.n++);
      this.idList.push(id);
    }
  }
}
