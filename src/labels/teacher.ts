/**
 * The teacher's view of one joined request: the label order (who is rank 1, 2, …), the teacher
 * logit of every candidate (or none in `rank` mode) and the ground-truth click of every shown
 * candidate. Every generator reads this view; none looks at the raw records' order again.
 *
 * Signal fusion (`labels.teacher.signal = 'logits'`):
 *   z_i = score_i                                  when objectiveWeights is empty
 *   z_i = Σ_k w_k · objectives_i[k]                otherwise (multi-objective rankers fuse their
 *                                                  per-objective logits with fixed weights)
 * An item lacking a weighted objective makes the request fail (`missingLogits: 'error'`) or uses
 * its own score as z (`missingLogits: 'score'`; the whole item falls back, never a partial sum).
 * In `rank` mode no logit is read or emitted: only the order carries the knowledge.
 *
 * Order source:
 * - `ranker`: the teacher's list order, rank = index + 1 (no copy, no sort).
 * - `impression`: the post-re-rank order. Candidates that were shown come first, by ascending
 *   display position; then the candidates that were not shown, in the teacher's order. Shown
 *   items that are not among the candidates (the front end inserted them: ads, editorial picks)
 *   are IGNORED: they have no teacher score and the student can only learn from candidates.
 *   Without an impression (an unmatched request) or with an empty one, this is the ranker order.
 */

import type { LabelsConfig } from '../config/schema.ts';
import { ImpressionColumns, shownCount } from '../contracts/impression-columns.ts';
import type { Impression, RankedItem, RankerOutput } from '../contracts/index.ts';
import { LabelInputError, RankdistillError } from '../errors.ts';
/** item_id → candidate index, −1 when not a candidate ({@link IdIndex} or a column index). */
export interface IdLookup {
  get(id: string): number;
  /** Lookup of an id held as bytes with its idBytesHash (indexes over columns have it). */
  getBytes?(buf: Buffer, start: number, end: number, h: number): number;
}

type TeacherConfig = LabelsConfig['teacher'];

/**
 * The joined request as the generators see it. Arrays are indexed by label position (rank − 1)
 * and may be LONGER than n when built on a {@link ViewScratch}: read indices 0..n−1 only.
 */
export interface TeacherView {
  /** Number of candidates. */
  readonly n: number;
  /** The ranker's candidates, untouched. */
  readonly items: readonly RankedItem[];
  /** Label position → index into `items`; null when the label order is the ranker's order. */
  readonly order: Int32Array | null;
  /** Teacher logit by label position; null in `rank` mode. */
  readonly z: Float64Array | null;
  /** Teacher logit by ranker index (the same array as `z` when `order` is null); null in `rank` mode. */
  readonly zRanker: Float64Array | null;
  /** Click by label position: 1 clicked, 0 shown and not clicked, −1 not shown; null when unmatched. */
  readonly clicked: Int8Array | null;
}

/**
 * Reusable buffers for views that live only until the next call (labelRequest's own view): a
 * typed-array allocation per request cost more than the arithmetic on small lists.
 *
 * @example
 * const scratch = new ViewScratch();
 * const view = resolveTeacher(ranker, impression, cfg.teacher, index, scratch); // valid until the next call
 */
export class ViewScratch {
  z = new Float64Array(256);
  zRanker = new Float64Array(256);
  order = new Int32Array(256);
  clicked = new Int8Array(256);
  clickedRanker = new Int8Array(256);
  shownIdx = new Int32Array(64);
  shownPos = new Float64Array(64);
  grades = new Int32Array(256);
  gradesByIndex = new Int32Array(256);

  /** Grows the buffers to hold n candidates and m shown items. */
  ensure(n: number, m: number): this {
    if (this.z.length < n) {
      const size = Math.max(n, 2 * this.z.length);
      this.z = new Float64Array(size);
      this.zRanker = new Float64Array(size);
      this.order = new Int32Array(size);
      this.clicked = new Int8Array(size);
      this.clickedRanker = new Int8Array(size);
      this.grades = new Int32Array(size);
      this.gradesByIndex = new Int32Array(size);
    }
    if (this.shownIdx.length < m) {
      const size = Math.max(m, 2 * this.shownIdx.length);
      this.shownIdx = new Int32Array(size);
      this.shownPos = new Float64Array(size);
    }
    return this;
  }
}

interface Fusion {
  keys: string[];
  weights: Float64Array;
}

const fusionCache = new WeakMap<Record<string, number>, Fusion>();

function fusionOf(w: Record<string, number>): Fusion {
  let f = fusionCache.get(w);
  if (f === undefined) {
    const keys = Object.keys(w).sort();
    f = { keys, weights: Float64Array.from(keys, (k) => w[k]!) };
    fusionCache.set(w, f);
  }
  return f;
}

/**
 * Teacher logits in ranker order. Throws LabelInputError when a weighted objective is missing and
 * `missingLogits` is 'error'. `scoresInZ`: z already holds the scores (copied by validation).
 */
function logits(
  items: readonly RankedItem[],
  cfg: TeacherConfig,
  z: Float64Array,
  scoresInZ: boolean,
): Float64Array {
  const n = items.length;
  const f = fusionOf(cfg.objectiveWeights);
  const keys = f.keys;
  const nk = keys.length;
  if (nk === 0) {
    if (!scoresInZ) for (let i = 0; i < n; i++) z[i] = items[i]!.score;
    return z;
  }
  const w = f.weights;
  const fallBack = cfg.missingLogits === 'score';
  for (let i = 0; i < n; i++) {
    const it = items[i]!;
    const obj = it.objectives;
    let s = 0;
    let missing: string | null = null;
    for (let k = 0; k < nk; k++) {
      const key = keys[k]!;
      const v = obj === null ? undefined : obj[key];
      if (v === undefined) {
        missing = key;
        break;
      }
      s += w[k]! * v;
    }
    if (missing === null) z[i] = s;
    else if (fallBack) z[i] = it.score;
    else {
      throw new LabelInputError(
        `items[${i}] (item_id ${JSON.stringify(it.item_id)}) has no objective logit "${missing}", which labels.teacher.objectiveWeights requires (found ${obj === null ? 'no objectives' : `objectives {${Object.keys(obj).join(', ')}}`}); set labels.teacher.missingLogits to 'score' to fall back to the score`,
        { item_id: it.item_id, objective: missing },
      );
    }
  }
  return z;
}

/**
 * Builds the teacher view of a validated request. `index` maps item_id → ranker index (built by
 * the validation pass over `ranker.items`); it is only read when an impression has shown items.
 * With a `scratch`, the view's arrays are the scratch buffers, valid until its next use.
 * `scoresInZ` (only with a scratch): `scratch.zRanker[0..n)` already holds the item scores, as
 * checkRankerOutput copies them when given that buffer; the copy is then skipped.
 *
 * @example
 * const view = resolveTeacher(ranker, impression, cfg.teacher, index);
 * view.z?.[0]; // logit of rank 1
 */
export function resolveTeacher(
  ranker: RankerOutput,
  impression: Impression | null,
  cfg: TeacherConfig,
  index: IdLookup,
  scratch: ViewScratch | null = null,
  scoresInZ = false,
): TeacherView {
  const items = ranker.items;
  const n = items.length;
  const m = impression === null ? 0 : shownCount(impression);
  const sc = scratch === null ? null : scratch.ensure(n, m);
  const zRanker =
    cfg.signal === 'logits'
      ? sc === null
        ? logits(items, cfg, new Float64Array(n), false)
        : logits(items, cfg, sc.zRanker, scoresInZ)
      : null;
  return withOrder(n, items, zRanker, impression, cfg, index, sc);
}

/** No candidate objects: the view of {@link resolveTeacherColumns}. */
const NO_ITEMS: readonly RankedItem[] = Object.freeze([]);

/**
 * {@link resolveTeacher} for a candidate list held as columns (see src/contracts/ranker-columns.ts)
 * rather than objects: `scratch.zRanker[0..n)` must hold the item scores, and `index` must map the
 * item ids to list indices. Only for configs without objective fusion (the scores are the logits);
 * the view's `items` is empty, so only column writers (src/labels/encoded.ts) may read it.
 *
 * @example
 * scratch.ensure(n, 0).zRanker.set(scores);
 * const view = resolveTeacherColumns(n, impression, cfg.teacher, index, scratch);
 */
export function resolveTeacherColumns(
  n: number,
  impression: Impression | null,
  cfg: TeacherConfig,
  index: IdLookup,
  scratch: ViewScratch,
): TeacherView {
  if (Object.keys(cfg.objectiveWeights).length > 0) {
    throw new RankdistillError(
      'CONFIG_INVALID',
      'labels.teacher.objectiveWeights is set: objective fusion needs the candidate objects, so the column path does not apply (check columnsSupported first)',
    );
  }
  const sc = scratch.ensure(n, impression === null ? 0 : shownCount(impression));
  return withOrder(n, NO_ITEMS, cfg.signal === 'logits' ? sc.zRanker : null, impression, cfg, index, sc);
}

/** The label order and clicks of a view whose ranker-order logits are known. */
function withOrder(
  n: number,
  items: readonly RankedItem[],
  zRanker: Float64Array | null,
  impression: Impression | null,
  cfg: TeacherConfig,
  index: IdLookup,
  sc: ViewScratch | null,
): TeacherView {
  if (impression === null) return { n, items, order: null, z: zRanker, zRanker, clicked: null };
  const m = shownCount(impression);

  const clickedRanker = (sc === null ? new Int8Array(n) : sc.clickedRanker).fill(-1, 0, n);
  // Candidate indices of shown items, and their positions, in impression order.
  const shownIdx = sc === null ? new Int32Array(m) : sc.shownIdx;
  const shownPos = sc === null ? new Float64Array(m) : sc.shownPos;
  let s = 0;
  let sortedByPos = true;
  const getBytes = index.getBytes;
  if (impression instanceof ImpressionColumns && getBytes !== undefined) {
    // Ids held as bytes: matched against the candidates' bytes, no string made.
    const { buf, ids, hashes, positions, clicked } = impression;
    for (let j = 0; j < m; j++) {
      const idx = getBytes.call(index, buf, ids[2 * j]!, ids[2 * j + 1]!, hashes[j]!);
      if (idx < 0) continue; // not a candidate: ignored (see module doc)
      const p = positions[j]!;
      clickedRanker[idx] = clicked[j]!;
      shownIdx[s] = idx;
      shownPos[s] = p;
      if (s > 0 && shownPos[s - 1]! > p) sortedByPos = false;
      s++;
    }
  } else {
    const shown = impression.items;
    for (let j = 0; j < m; j++) {
      const it = shown[j]!;
      const idx = index.get(it.item_id);
      if (idx < 0) continue; // not a candidate: ignored (see module doc)
      clickedRanker[idx] = it.clicked ? 1 : 0;
      shownIdx[s] = idx;
      shownPos[s] = it.position;
      if (s > 0 && shownPos[s - 1]! > it.position) sortedByPos = false;
      s++;
    }
  }
  if (cfg.orderSource === 'ranker' || s === 0) {
    return { n, items, order: null, z: zRanker, zRanker, clicked: clickedRanker };
  }

  if (!sortedByPos) {
    // Small (the shown slate): insertion sort by position; positions are distinct (validated).
    for (let a = 1; a < s; a++) {
      const p = shownPos[a]!;
      const x = shownIdx[a]!;
      let b = a - 1;
      while (b >= 0 && shownPos[b]! > p) {
        shownPos[b + 1] = shownPos[b]!;
        shownIdx[b + 1] = shownIdx[b]!;
        b--;
      }
      shownPos[b + 1] = p;
      shownIdx[b + 1] = x;
    }
  }
  const order = sc === null ? new Int32Array(n) : sc.order;
  for (let j = 0; j < s; j++) order[j] = shownIdx[j]!;
  let r = s;
  for (let i = 0; i < n; i++) if (clickedRanker[i] === -1) order[r++] = i;

  const clicked = sc === null ? new Int8Array(n) : sc.clicked;
  let z: Float64Array | null = null;
  for (let p = 0; p < n; p++) clicked[p] = clickedRanker[order[p]!]!;
  if (zRanker !== null) {
    z = sc === null ? new Float64Array(n) : sc.z;
    for (let p = 0; p < n; p++) z[p] = zRanker[order[p]!]!;
  }
  return { n, items, order, z, zRanker, clicked };
}
