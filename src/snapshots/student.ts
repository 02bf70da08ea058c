/**
 * The adapter from the trainer's {@link StudentModel} to a snapshot: the only file of
 * src/snapshots that knows the model's internals (the rest takes bytes and tables).
 *
 * What a student snapshot holds:
 * - `items` table: the served score's item side for every known item (`servedScorer(model).items`,
 *   src/train/eval.ts: the item tower's output `model.itemVectors()`), the ANN
 *   index's input — width `outDim` (d for two-tower; d + 1 for FM, the last column the item bias
 *   b_i + w0);
 * - `users` table: every known user's vector with an empty context (user tower on [e_u ‖ 0]) — the
 *   tfjs-free recall of `rankdistill recall` for known users (for FM the last column is 1);
 * - `user_embeddings` table: the raw user id embeddings e_u (the tower's id input), so a service
 *   can apply the tower with a real request context;
 * - `model/user_tower/`: the user tower as a plain tfjs LayersModel: input [e_u ‖ hashed context]
 *   (width d + contextBuckets), output the user vector. Two-tower: the same dense layers (ReLU
 *   hidden, linear out) with the trained weights. FM: one linear layer computing
 *   [e_u + ctx·V_c, 1] (kernel [[I_d, 0], [V_c, 0]], bias [0…0, 1]).
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
  /** Copies of the user-side dense parameters, by name. */
  dense: Map<string, { values: Float32Array; shape: readonly number[] }>;
}

/** Vectors of every known user with an empty context, in chunks. */
function knownUserVectors(model: StudentModel, chunk = 8192): Float32Array {
  const n = model.users.size;
  const w = model.outDim;
  const out = new Float32Array(n * w);
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const rows = Int32Array.from({ length: m }, (_, i) => start + i);
    out.set(model.userVectors(rows, new Float32Array(m * model.opts.contextBuckets)), start * w);
  }
  return out;
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
    users: { ids: userIds, dim: model.outDim, vectors: knownUserVectors(model) },
    userEmbeddings: { ids: userIds, dim: model.users.dim, vectors: model.users.state().values.slice() },
    dense,
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
  const inDim = o.dim + o.contextBuckets;
  if (o.kind === 'two-tower') {
    const sizes = [...o.hidden, o.dim];
    const seq = tf.sequential();
    sizes.forEach((units, l) => {
      seq.add(
        tf.layers.dense({
          ...(l === 0 ? { inputShape: [inDim] } : {}),
          units,
          activation: l < sizes.length - 1 ? 'relu' : 'linear',
          name: `user_dense${l}`,
        }),
      );
    });
    seq.layers.forEach((layer, l) => {
      const k = cap.dense.get(`user/dense${l}/kernel`);
      const b = cap.dense.get(`user/dense${l}/bias`);
      if (!k || !b)
        throw new RankdistillError(
          'TRAIN_INPUT_INVALID',
          `user tower layer ${l}: expected dense parameters, found none`,
        );
      layer.setWeights([tf.tensor(k.values, [...k.shape]), tf.tensor(b.values, [...b.shape])]);
    });
    return seq;
  }
  const d = o.dim;
  const kernel = new Float32Array(inDim * (d + 1));
  for (let i = 0; i < d; i++) kernel[i * (d + 1) + i] = 1;
  const factors = cap.dense.get('user/factors');
  if (factors) {
    for (let c = 0; c < o.contextBuckets; c++)
      for (let j = 0; j < d; j++) kernel[(d + c) * (d + 1) + j] = factors.values[c * d + j] as number;
  }
  const bias = new Float32Array(d + 1);
  bias[d] = 1;
  const seq = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [inDim], units: d + 1, activation: 'linear', name: 'user_fm' })],
  });
  seq.layers[0]?.setWeights([tf.tensor2d(kernel, [inDim, d + 1]), tf.tensor1d(bias)]);
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
  return {
    files: [...towerFiles, ...(o.files ?? [])],
    items: cap.items,
    users: cap.users,
    tables: { user_embeddings: cap.userEmbeddings },
    models: { user_tower: 'model/user_tower/model.json' },
    model: { kind: cap.spec.kind, dim: cap.items.dim, params: cap.params },
    offsets: o.offsets,
    metrics: numbers(o.metrics),
    parentVersion: o.parentVersion,
    extra: { spec: cap.spec, ...(o.extra ?? {}) },
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
