/**
 * Contract checks beyond the Avro schema, shared by the label generators and the service's input
 * validation. Avro guarantees types; it cannot say that a double is finite, that an id is not
 * empty or that a list has no duplicates. A record failing these checks becomes a dead letter
 * whose reason is the string returned here.
 *
 * Decisions (documented in the report and in DESIGN.md terms):
 * - Duplicate item ids in a RankerOutput are REJECTED, not de-duplicated: the teacher gave one
 *   item two ranks, so its rank (and every label derived from it) is ambiguous, and silently
 *   keeping one copy would hide a bug upstream. The dead letter keeps the raw record.
 * - Duplicate item ids or duplicate positions in an Impression are rejected likewise (the click
 *   and the shown order would be ambiguous).
 * - NaN / ±Infinity anywhere in a number the labels or the student consume (score, objectives,
 *   item features, context) is rejected: one NaN poisons a training batch.
 * - labelRequest re-checks only what the labels are computed from (ids, ts, scores, objectives,
 *   duplicates); features and context are merely copied into the labels, so their finiteness is
 *   left to validateRankerOutput, which the service applies to every record at ingestion. Checking
 *   them twice cost ~15% of labeling throughput at 4 features per item, and grows with features.
 * - An Impression with no items is VALID (the request was matched but nothing was shown).
 * - A RankerOutput with no items is invalid (there is nothing to label).
 */
import type { Impression, RankerOutput } from '../contracts/index.ts';
import { IdIndex, idHash } from './id-index.ts';
import type { ViewScratch } from './teacher.ts';

const ownIndex = new IdIndex();
const shownIndex = new IdIndex();

function badId(v: unknown): boolean {
  return typeof v !== 'string' || v.length === 0;
}

function badTs(v: unknown): boolean {
  return typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : String(v);
}

/** Name of the first non-finite value of a map, or null. */
function nonFiniteKey(m: Record<string, number> | null): string | null {
  if (m === null) return null;
  for (const k in m) {
    if (!Number.isFinite(m[k])) return k;
  }
  return null;
}

function allFinite(m: Record<string, number>): boolean {
  for (const k in m) if (!Number.isFinite(m[k])) return false;
  return true;
}

function itemReason(it: RankerOutput['items'][number], i: number): string {
  if (badId(it.item_id)) return `items[${i}].item_id must be a non-empty string, found ${show(it.item_id)}`;
  if (!Number.isFinite(it.score)) return `items[${i}].score must be finite, found ${show(it.score)}`;
  const objBad = nonFiniteKey(it.objectives);
  if (objBad !== null)
    return `items[${i}].objectives.${objBad} must be finite, found ${show(it.objectives?.[objBad])}`;
  const featBad = nonFiniteKey(it.features);
  return `items[${i}].features.${featBad} must be finite, found ${show(it.features?.[featBad ?? ''])}`;
}

/**
 * {@link validateRankerOutput}, building `index` (item_id → list index) on the way, so the
 * generators reuse the table the duplicate check had to build anyway. With `copiedMaps` false
 * the features and context (copied into the labels, never computed on) are not checked. With a
 * `scratch`, the item scores are copied into `scratch.zRanker` (index i ← items[i].score) by the
 * same pass: the teacher view needs them and the items are in cache right now. Ids are hashed in
 * that pass too ({@link IdIndex.hashSlots}).
 * @internal
 * @example
 * const index = new IdIndex();
 * if (checkRankerOutput(record, index, true) === null) index.get('item-7'); // its list index, or -1
 */
export function checkRankerOutput(
  r: RankerOutput,
  index: IdIndex,
  copiedMaps: boolean,
  scratch: ViewScratch | null = null,
): string | null {
  if (badId(r.request_id)) return `request_id must be a non-empty string, found ${show(r.request_id)}`;
  if (badId(r.user_id)) return `user_id must be a non-empty string, found ${show(r.user_id)}`;
  if (badTs(r.ts)) return `ts must be a non-negative integer (epoch ms), found ${show(r.ts)}`;
  if (typeof r.model_version !== 'string')
    return `model_version must be a string, found ${show(r.model_version)}`;
  const ctxBad = copiedMaps ? nonFiniteKey(r.context) : null;
  if (ctxBad !== null) return `context.${ctxBad} must be finite, found ${show(r.context?.[ctxBad])}`;
  const items = r.items;
  if (!Array.isArray(items) || items.length === 0)
    return 'items must hold at least one candidate, found none';
  const n = items.length;
  const hashes = index.hashSlots(n);
  const scores = scratch === null ? null : scratch.ensure(n, 0).zRanker;
  // Hot loop: branch-light checks only; the message is built on the (rare) failure path.
  for (let i = 0; i < n; i++) {
    const it = items[i]!;
    const id = it.item_id;
    const score = it.score;
    if (typeof id !== 'string' || id.length === 0 || !Number.isFinite(score)) return itemReason(it, i);
    const o = it.objectives;
    if (o !== null && !allFinite(o)) return itemReason(it, i);
    const f = it.features;
    if (copiedMaps && f !== null && !allFinite(f)) return itemReason(it, i);
    hashes[i] = idHash(id);
    if (scores !== null) scores[i] = score;
  }
  const dup = index.buildHashed(items, n);
  if (dup >= 0) {
    const id = items[dup]!.item_id;
    return `item_id ${show(id)} appears twice (items[${index.get(id)}] and items[${dup}]); each candidate must appear once`;
  }
  return null;
}

/**
 * Checks a RankerOutput beyond its Avro schema. Returns null when it can be labeled, otherwise a
 * reason for the dead letter: empty request_id/user_id, bad ts, NaN/±∞ in scores, objectives,
 * features or context, no items, empty or duplicate item ids (rejected, see the module doc).
 *
 * @example
 * const reason = validateRankerOutput(record);
 * if (reason !== null) deadLetter('INVALID', reason);
 */
export function validateRankerOutput(r: RankerOutput): string | null {
  return checkRankerOutput(r, ownIndex, true);
}

/**
 * Checks an Impression beyond its Avro schema. Returns null when valid, otherwise a reason:
 * empty request_id/user_id, bad ts, empty item id, position not an integer ≥ 1, duplicate item
 * ids or positions, negative or non-finite dwell. An empty item list is valid.
 *
 * @example
 * validateImpression({ request_id: 'r', user_id: 'u', ts: 1, items: [] }) === null
 */
export function validateImpression(imp: Impression): string | null {
  if (badId(imp.request_id)) return `request_id must be a non-empty string, found ${show(imp.request_id)}`;
  if (badId(imp.user_id)) return `user_id must be a non-empty string, found ${show(imp.user_id)}`;
  if (badTs(imp.ts)) return `ts must be a non-negative integer (epoch ms), found ${show(imp.ts)}`;
  const items = imp.items;
  if (!Array.isArray(items)) return `items must be an array, found ${show(items)}`;
  if (items.length === 0) return null;
  const n = items.length;
  let increasing = true;
  for (let i = 0; i < n; i++) {
    const it = items[i]!;
    if (badId(it.item_id)) return `items[${i}].item_id must be a non-empty string, found ${show(it.item_id)}`;
    const p = it.position;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1) {
      return `items[${i}].position must be an integer >= 1, found ${show(p)}`;
    }
    if (typeof it.clicked !== 'boolean')
      return `items[${i}].clicked must be a boolean, found ${show(it.clicked)}`;
    const d = it.dwell_ms;
    if (d !== null && (typeof d !== 'number' || !Number.isFinite(d) || d < 0)) {
      return `items[${i}].dwell_ms must be null or a finite number >= 0, found ${show(d)}`;
    }
    if (i > 0 && items[i - 1]!.position >= p) increasing = false;
  }
  const dup = shownIndex.build(items, n);
  if (dup >= 0) {
    const id = items[dup]!.item_id;
    return `item_id ${show(id)} shown twice (items[${shownIndex.get(id)}] and items[${dup}]); each item must be shown once`;
  }
  if (!increasing) {
    // Display order is usually position order; only otherwise look for a repeated position.
    const positions = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const p = items[i]!.position;
      const prev = positions.get(p);
      if (prev !== undefined) {
        return `position ${p} used twice (items[${prev}] and items[${i}]); positions must be distinct`;
      }
      positions.set(p, i);
    }
  }
  return null;
}
