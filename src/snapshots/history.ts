/**
 * A user vector from a history given at query time: what a recall service does for a user the
 * snapshot never saw (or whose history moved on since the snapshot). Needs a snapshot of a
 * behaviour tower (train.historyLength > 0), which carries the raw item id embeddings
 * (`item_embeddings`) and a user tower whose input ends in the pooled history:
 *
 *   vector = user_tower([e_u (known user) or 0 ‖ context (0: none) ‖ mean of e_i over the history])
 *
 * The vector ends in the constant 1 of the prior column, like every served user vector, so it
 * ranks the items table by the same score (docs/SNAPSHOTS.md "The score").
 */
import * as tf from '@tensorflow/tfjs';
import { RankdistillError } from '../errors.ts';
import type { ModelSpec } from '../train/model.ts';
import type { LoadedSnapshot } from './store.ts';
import type { VectorTable } from './table.ts';
import { loadSnapshotModel } from './tfjs.ts';

const rowMaps = new WeakMap<VectorTable, Map<string, number>>();
function rowOf(t: VectorTable, id: string): number {
  let m = rowMaps.get(t);
  if (m === undefined) {
    m = new Map(t.ids.map((x, i) => [x, i]));
    rowMaps.set(t, m);
  }
  return m.get(id) ?? -1;
}

/**
 * The served vector of a user with `history` (item ids, any order), from a loaded snapshot.
 *
 * @throws RankdistillError SNAPSHOT_NOT_FOUND when the snapshot has no behaviour tower.
 * @example
 * const { vector, unknown } = await userVectorFromHistory(snap, { history: ['i3', 'i9', 'i12'] });
 * recallForUser(snap, vector, 100);
 */
export async function userVectorFromHistory(
  snap: LoadedSnapshot,
  o: { history: readonly string[]; user?: string; context?: Float32Array },
): Promise<{ vector: Float32Array; used: number; unknown: string[]; userKnown: boolean }> {
  const spec = snap.manifest.extra.spec as ModelSpec | undefined;
  const items = snap.table('item_embeddings');
  if (spec?.history !== true || items === undefined || snap.manifest.models.user_tower === undefined)
    throw new RankdistillError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot v${snap.version}: expected a behaviour user tower (train.historyLength > 0: item_embeddings table and a user_tower reading the history), found none`,
    );
  const d = spec.dim;
  const Fc = spec.contextBuckets;
  const x = new Float32Array(d + Fc + d);
  let userKnown = false;
  const emb = snap.table('user_embeddings');
  if (o.user !== undefined && emb !== undefined) {
    const r = rowOf(emb, o.user);
    if (r >= 0) {
      x.set(emb.vectors.subarray(r * emb.dim, r * emb.dim + d), 0);
      userKnown = true;
    }
  }
  if (o.context !== undefined) x.set(o.context.subarray(0, Fc), d);
  const unknown: string[] = [];
  let used = 0;
  for (const id of new Set(o.history)) {
    const r = rowOf(items, id);
    if (r < 0) {
      unknown.push(id);
      continue;
    }
    used++;
    for (let k = 0; k < d; k++)
      x[d + Fc + k] = (x[d + Fc + k] as number) + (items.vectors[r * items.dim + k] as number);
  }
  if (used > 1) for (let k = 0; k < d; k++) x[d + Fc + k] = (x[d + Fc + k] as number) / used;
  const tower = await loadSnapshotModel(snap, 'user_tower');
  try {
    const out = tf.tidy(() => (tower.predict(tf.tensor2d(x, [1, x.length])) as tf.Tensor).dataSync());
    return { vector: Float32Array.from(out), used, unknown, userKnown };
  } finally {
    tower.dispose();
  }
}
