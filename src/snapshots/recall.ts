/**
 * Exact top-k recall over a snapshot's item table: one matrix-vector product over the row-major
 * Float32Array and a bounded min-heap of the k best — O(n·d + n·log k) time, O(k) extra memory,
 * no TensorFlow.js. It is what proves a snapshot usable by a recall service, the ground truth an
 * ANN index is measured against, and fast enough to serve (bench/recall.bench.ts).
 *
 * Order: score descending, ties by lower row first (the same order as a stable full sort).
 */
import { RankdistillError } from '../errors.ts';
import type { LoadedSnapshot } from './store.ts';
import type { VectorTable } from './table.ts';

export interface TopK {
  /** Row indices, best first. */
  rows: Int32Array;
  scores: Float32Array;
}

/**
 * The k rows of `matrix` (`n × dim`, row-major) with the largest dot product with `query`.
 *
 * @throws RankdistillError TRAIN_INPUT_INVALID when shapes disagree or the query is not finite.
 * @example
 * topK(Float32Array.of(1, 0, 0, 1, 1, 1), 2, Float32Array.of(1, 2), 2); // rows [2, 1], scores [3, 2]
 */
export function topK(matrix: Float32Array, dim: number, query: Float32Array, k: number): TopK {
  if (query.length !== dim || matrix.length % dim !== 0)
    throw new RankdistillError(
      'TRAIN_INPUT_INVALID',
      `topK: expected a query of ${dim} values and a matrix of n×${dim}, found ${query.length} and ${matrix.length}`,
    );
  for (let j = 0; j < dim; j++) {
    if (!Number.isFinite(query[j] as number))
      throw new RankdistillError(
        'TRAIN_INPUT_INVALID',
        `topK: expected a finite query, found ${query[j]} at ${j}`,
      );
  }
  const n = matrix.length / dim;
  const size = Math.max(0, Math.min(Math.floor(k), n));
  // min-heap of the best `size` so far; root = the worst kept (lowest score, then highest row)
  const hs = new Float32Array(size);
  const hr = new Int32Array(size);
  let h = 0;
  const q = query;
  for (let r = 0, base = 0; r < n; r++, base += dim) {
    let s = 0;
    let j = 0;
    for (; j + 3 < dim; j += 4) {
      s +=
        (matrix[base + j] as number) * (q[j] as number) +
        (matrix[base + j + 1] as number) * (q[j + 1] as number) +
        (matrix[base + j + 2] as number) * (q[j + 2] as number) +
        (matrix[base + j + 3] as number) * (q[j + 3] as number);
    }
    for (; j < dim; j++) s += (matrix[base + j] as number) * (q[j] as number);
    s = Math.fround(s);
    if (h < size) {
      // sift up
      let i = h++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(s, r, hs[p] as number, hr[p] as number)) break;
        hs[i] = hs[p] as number;
        hr[i] = hr[p] as number;
        i = p;
      }
      hs[i] = s;
      hr[i] = r;
    } else if (size > 0 && s > (hs[0] as number)) {
      // replace the root, sift down (a later row with an equal score is worse: not taken)
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        const rr = l + 1;
        let c = l;
        if (rr < size && worse(hs[rr] as number, hr[rr] as number, hs[l] as number, hr[l] as number)) c = rr;
        if (!worse(hs[c] as number, hr[c] as number, s, r)) break;
        hs[i] = hs[c] as number;
        hr[i] = hr[c] as number;
        i = c;
      }
      hs[i] = s;
      hr[i] = r;
    }
  }
  const order = Array.from({ length: size }, (_, i) => i).sort(
    (a, b) => (hs[b] as number) - (hs[a] as number) || (hr[a] as number) - (hr[b] as number),
  );
  return {
    rows: Int32Array.from(order, (i) => hr[i] as number),
    scores: Float32Array.from(order, (i) => hs[i] as number),
  };
}

// (s1, r1) ranks below (s2, r2): lower score, or equal score and later row
function worse(s1: number, r1: number, s2: number, r2: number): boolean {
  return s1 < s2 || (s1 === s2 && r1 > r2);
}

/**
 * The top k items of a user from a loaded snapshot: the user's vector from the snapshot's `users`
 * table (known users; no tfjs) or the given `userVector`, against every item by exact dot product.
 *
 * @throws RankdistillError SNAPSHOT_NOT_FOUND when the user is unknown and no vector is given.
 * @example
 * const { ids, scores } = recallForUser(loadSnapshotDir('snapshots/v3'), 'u42', 100);
 */
export function recallForUser(
  snap: LoadedSnapshot,
  user: string | Float32Array,
  k: number,
): { ids: string[]; scores: Float32Array } {
  const items = snap.table('items');
  if (!items)
    throw new RankdistillError(
      'SNAPSHOT_CORRUPT',
      `snapshot ${snap.dir}: expected an items table, found none`,
    );
  const q = typeof user === 'string' ? userVector(snap, user) : user;
  return recallFromTable(items, q, k);
}

/**
 * The vector of a known user from the snapshot's `users` table.
 *
 * @throws RankdistillError SNAPSHOT_NOT_FOUND when the snapshot has no users table or not this user.
 * @example
 * const q = userVector(snap, 'u42'); // Float32Array(dim)
 */
export function userVector(snap: LoadedSnapshot, userId: string): Float32Array {
  const users = snap.table('users');
  if (!users)
    throw new RankdistillError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot v${snap.version}: expected a users table for user ${userId}, found none (compute the vector with the exported user tower)`,
    );
  const row = userRow(users, userId);
  if (row < 0)
    throw new RankdistillError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot v${snap.version}: expected user ${JSON.stringify(userId)} in the users table (${users.ids.length} users), found none`,
      { details: { userId } },
    );
  return users.vectors.slice(row * users.dim, row * users.dim + users.dim);
}

const rowIndex = new WeakMap<VectorTable, Map<string, number>>();
function userRow(t: VectorTable, id: string): number {
  let m = rowIndex.get(t);
  if (!m) {
    m = new Map(t.ids.map((x, i) => [x, i]));
    rowIndex.set(t, m);
  }
  return m.get(id) ?? -1;
}

/**
 * Top k ids of a table for a query vector.
 *
 * @example
 * recallFromTable({ ids: ['a', 'b'], dim: 1, vectors: Float32Array.of(1, 2) }, Float32Array.of(1), 1); // { ids: ['b'], ... }
 */
export function recallFromTable(
  t: VectorTable,
  query: Float32Array,
  k: number,
): { ids: string[]; scores: Float32Array } {
  const top = topK(t.vectors, t.dim, query, k);
  return { ids: Array.from(top.rows, (r) => t.ids[r] as string), scores: top.scores };
}
