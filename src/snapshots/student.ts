/**
 * The adapter from the trainer's {@link StudentModel} to a snapshot: the only file of
 * src/snapshots that knows the model's internals (the rest takes bytes and tables).
 *
 * What a student snapshot holds (docs/SNAPSHOTS.md "The score"):
 * - `items` table: the served item rows — the served score's item side (`servedScorer(model).items`,
 *   src/train/eval.ts, i.e. `model.servedItemVectors()`: what the gate and the live gauge measure),
 *   the ANN index's input — the item tower's output (d for two-tower; d + 1 for FM, whose last
 *   column is the item bias b_i + w0) followed by the PRIOR column beta·logQ(item), so width
 *   outDim + 1;
 * - `users` table: every known user's served vector with an empty context (user tower on
 *   [e_u ‖ 0], then a constant 1 for the prior column) — the tfjs-free recall of
 *   `rankdistill recall` for known users;
 * - `user_embeddings` table: the raw user id embeddings e_u (the tower's id input), so a service
 *   can apply the tower with a real request context;
 * - with a behaviour tower (train.historyLength > 0): `item_embeddings` (the raw item id
 *   embeddings e_i the history is pooled over) and `history.json` (each known user's history at
 *   the snapshot), so a service computes a vector for ANY user from a history given at query time:
 *   tower([e_u or 0 ‖ context ‖ mean of e_i over the history]) (see src/snapshots/history.ts);
 * - `model/user_tower/`: the user tower as a plain tfjs LayersModel: input [e_u ‖ hashed context
 *   ‖ pooled history when on] (width d + contextBuckets [+ d]), output the served user vector (its last value the constant 1 of
 *   the prior column). Two-tower: the same dense layers (ReLU hidden, linear out) with the trained
 *   weights, concatenated with a constant-1 unit. FM: one linear layer computing
 *   [e_u + ctx·V_c, 1, 1] (kernel [[I_d, 0, 0], [V_c, 0, 0]], bias [0…0, 1, 1]).
 * The trainer adds its own checkpoint files (optimizer state) through `files`.
 */
import * as tf from '@tensorflow/tfjs';
import { RankdistillError } from '../errors.ts';
import { servedScorer } from '../train/eval.ts';
import type { ModelSpec, StudentModel } from '../train/model.ts';
import type { PartitionOffset } from './manifest.ts';
import type { PublishInput } from './publisher.ts';
import type { SnapshotFileInput } from './store.ts';
import type { VectorTable } from './table.ts';
import { layersModelFiles } from './tfjs.ts';

/** The known users' histories in a snapshot of a behaviour tower: `[[user, [item, ...]], ...]`. */
export const HISTORY_SNAPSHOT_FILE = 'history.json';

/** Keeps the numbers of an evaluation result (drops undefined, e.g. a missing AUC). */
function numbers(m: Readonly<Record<string, number | undefined>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (typeof v === 'number') out[k] = v;
  return out;
}

/**
 * A frozen copy of everything a snapshot takes from a model, captured synchronously so the trainer
 * can go on training while the snapshot is serialised and written.
 */
export interface StudentCapture {
  spec: ModelSpec;
  params: number;
  items: VectorTable;
  users: VectorTable;
  userEmbeddings: VectorTable;
  /** The exposure prior baked into the items table's last column. */
  prior: { beta: number; column: number };
  /** With a behaviour tower: the raw item id embeddings and the known users' histories. */
  history?: { itemEmbeddings: VectorTable; users: [string, string[]][] };
  /** Copies of the user-side dense parameters, by name. */
  dense: Map<string, { values: Float32Array; shape: readonly number[] }>;
}

/** Vectors of every known user with an empty context (and their current history), in chunks. */
function knownUserVectors(model: StudentModel, chunk = 8192): Float32Array {
  const n = model.users.size;
  const w = model.servedDim;
  const out = new Float32Array(n * w);
  const ids = model.users.ids;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const rows = Int32Array.from({ length: m }, (_, i) => start + i);
    const pooled =
      model.historyWidth > 0
        ? model.poolHistory(Array.from(rows, (r) => model.history?.before(ids[r] as string) ?? []))
        : undefined;
    out.set(
      model.servedUserVectors(rows, new Float32Array(m * model.opts.contextBuckets), pooled),
      start * w,
    );
  }
  return out;
}

/** The raw item id embeddings (the tower's id input, the history's pooling space). */
function itemEmbeddings(model: StudentModel): VectorTable {
  const d = model.opts.dim;
  const w = model.items.dim;
  const n = model.items.size;
  const v = model.items.state().values;
  const out = new Float32Array(n * d);
  for (let r = 0; r < n; r++) out.set(v.subarray(r * w, r * w + d), r * d);
  return { ids: [...model.items.ids], dim: d, vectors: out };
}

/**
 * Copies what a snapshot needs from `model` (synchronous; nothing is shared with the model after).
 *
 * @example
 * const cap = captureStudent(trainer.model); // then train on; serialise cap later
 */
export function captureStudent(model: StudentModel): StudentCapture {
  const userIds = [...model.users.ids];
  const dense = new Map<string, { values: Float32Array; shape: readonly number[] }>();
  for (const p of model.dense)
    if (p.name.startsWith('user/')) dense.set(p.name, { values: p.values.slice(), shape: [...p.shape] });
  return {
    spec: model.spec(),
    params: model.paramCount(),
    // the served score's item side: what the gate and the live gauge measure (src/train/eval.ts)
    items: servedScorer(model).items,
    users: { ids: userIds, dim: model.servedDim, vectors: knownUserVectors(model) },
    userEmbeddings: { ids: userIds, dim: model.users.dim, vectors: model.users.state().values.slice() },
    dense,
    prior: { beta: model.prior?.beta ?? 0, column: model.outDim },
    ...(model.historyWidth > 0
      ? {
          history: {
            itemEmbeddings: itemEmbeddings(model),
            users: userIds.map((u) => [u, model.history?.before(u) ?? []] as [string, string[]]),
          },
        }
      : {}),
  };
}

/**
 * The user tower of a captured model as a tfjs LayersModel (see the module comment).
 *
 * @example
 * const tower = userTowerModel(captureStudent(model)); tower.predict(x);
 */
export function userTowerModel(cap: StudentCapture): tf.LayersModel {
  const o = cap.spec;
  const inDim = o.dim + o.contextBuckets + (o.history === true ? o.dim : 0);
  if (o.kind === 'two-tower') {
    const sizes = [...o.hidden, o.dim];
    const input = tf.input({ shape: [inDim], name: 'user_input' });
    let h: tf.SymbolicTensor = input;
    const layers = sizes.map((units, l) =>
      tf.layers.dense({
        units,
        activation: l < sizes.length - 1 ? 'relu' : 'linear',
        name: `user_dense${l}`,
      }),
    );
    for (const layer of layers) h = layer.apply(h) as tf.SymbolicTensor;
    // the constant 1 that multiplies the items table's prior column: a unit with zero kernel, bias 1
    const one = tf.layers.dense({ units: 1, name: 'user_prior_one' });
    const out = tf.layers
      .concatenate({ name: 'user_served' })
      .apply([h, one.apply(input) as tf.SymbolicTensor]);
    const model = tf.model({ inputs: input, outputs: out as tf.SymbolicTensor });
    layers.forEach((layer, l) => {
      const k = cap.dense.get(`user/dense${l}/kernel`);
      const b = cap.dense.get(`user/dense${l}/bias`);
      if (!k || !b)
        throw new RankdistillError(
          'TRAIN_INPUT_INVALID',
          `user tower layer ${l}: expected dense parameters, found none`,
        );
      layer.setWeights([tf.tensor(k.values, [...k.shape]), tf.tensor(b.values, [...b.shape])]);
    });
    one.setWeights([tf.zeros([inDim, 1]), tf.ones([1])]);
    return model;
  }
  const d = o.dim;
  const w = d + 2;
  const kernel = new Float32Array(inDim * w);
  for (let i = 0; i < d; i++) kernel[i * w + i] = 1;
  const factors = cap.dense.get('user/factors');
  if (factors) {
    for (let c = 0; c < o.contextBuckets; c++)
      for (let j = 0; j < d; j++) kernel[(d + c) * w + j] = factors.values[c * d + j] as number;
  }
  const bias = new Float32Array(w);
  bias[d] = 1; // the FM's item-bias column
  bias[d + 1] = 1; // the prior column
  const seq = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [inDim], units: w, activation: 'linear', name: 'user_fm' })],
  });
  seq.layers[0]?.setWeights([tf.tensor2d(kernel, [inDim, w]), tf.tensor1d(bias)]);
  return seq;
}

export interface StudentSnapshotOptions {
  offsets: PartitionOffset[];
  metrics: Readonly<Record<string, number | undefined>>;
  parentVersion: number | null;
  /** The trainer's own files (checkpoint with optimizer state, ...). */
  files?: SnapshotFileInput[];
  extra?: Record<string, unknown>;
}

/**
 * Everything {@link SnapshotPublisher.maybePublish} needs, from a captured model.
 *
 * @example
 * const input = await captureToInput(captureStudent(model), { offsets, metrics, parentVersion: 3 });
 */
export async function captureToInput(cap: StudentCapture, o: StudentSnapshotOptions): Promise<PublishInput> {
  const tower = userTowerModel(cap);
  let towerFiles: SnapshotFileInput[];
  try {
    towerFiles = await layersModelFiles(tower, 'model/user_tower/');
  } finally {
    tower.dispose();
  }
  const history = cap.history;
  return {
    files: [
      ...towerFiles,
      ...(history ? [{ name: HISTORY_SNAPSHOT_FILE, data: Buffer.from(JSON.stringify(history.users)) }] : []),
      ...(o.files ?? []),
    ],
    items: cap.items,
    users: cap.users,
    tables: {
      user_embeddings: cap.userEmbeddings,
      ...(history ? { item_embeddings: history.itemEmbeddings } : {}),
    },
    models: { user_tower: 'model/user_tower/model.json' },
    model: { kind: cap.spec.kind, dim: cap.items.dim, params: cap.params },
    offsets: o.offsets,
    metrics: numbers(o.metrics),
    parentVersion: o.parentVersion,
    extra: {
      spec: cap.spec,
      // the score is items · users, prior included: column `column` of the items table is beta·logQ
      prior: { kind: 'beta*logQ', beta: cap.prior.beta, column: cap.prior.column },
      ...(o.extra ?? {}),
    },
  };
}

/**
 * Everything {@link SnapshotPublisher.maybePublish} needs from a student model, now.
 *
 * @example
 * const input = await studentSnapshotInput(model, { offsets, metrics: evaluate(model, heldOut.requests()), parentVersion });
 * const r = await publisher.maybePublish(input);
 */
export function studentSnapshotInput(model: StudentModel, o: StudentSnapshotOptions): Promise<PublishInput> {
  return captureToInput(captureStudent(model), o);
}
