/**
 * Label records as NDJSON lines: the UTF-8 bytes of `JSON.stringify(record)` for the three label
 * contracts, written by writers that know each record's field order instead of walking it as
 * generic data (src/io/json-bytes.ts). Profiled on an NDJSON → NDJSON replay at 200 candidates,
 * the generic walk of the labels was ~30% of the CPU: a `for … in` and a key-cache lookup per
 * field, a type switch per value, and `String(x)` per double. Here the keys are constant byte
 * runs (`,"rank":`), ids are copied byte by byte, integers and short decimals are written digit by
 * digit (numberAt), and only the feature and context maps are walked.
 *
 * Field order: the order of the labelers' object literals (src/labels/*.ts), which is the order of
 * the Avro schemas (schemas/*.avsc) and so also the order of records decoded by avsc. JSON.stringify
 * writes own keys in creation order, so a record is written here only when its own keys are the
 * schema's, in that order: checked on the record and on the first element of its array (the
 * elements of one array are built by one object literal, or one Avro record type). Any value of
 * an unexpected type (undefined, a string where a number belongs, a non-plain map, a toJSON
 * method) makes the writer give up and return null: the caller then takes the generic path.
 * test/labels/json.test.ts checks byte equality with JSON.stringify on the labelers' records.
 *
 * Pure: no I/O; module state is only the slab and key caches (writing is never re-entered).
 */
import type { LabelsConfig } from '../config/schema.ts';
import type {
  Impression,
  ItemPair,
  ListwiseLabels,
  PairwiseLabels,
  PointwiseLabels,
} from '../contracts/index.ts';
import type { RankerColumns } from '../contracts/ranker-columns.ts';
import {
  bytesAt,
  FRAGMENT_MAX,
  fragment,
  fragmentAt,
  keyBytes,
  NUMBER_MAX,
  numberAt,
  Slab,
  stringAt,
  stringMax,
} from '../io/json-bytes.ts';
import { columnsView, type EncodedLabels } from './encoded.ts';
import { labelRequest } from './index.ts';
import { GAINS } from './ndcg.ts';
import { PairWeights, pairPositions } from './pairwise.ts';
import { positiveWeights, sigmoid } from './pointwise.ts';
import { Rng } from './rng.ts';
import type { TeacherView } from './teacher.ts';

type LabelRecord = PointwiseLabels | PairwiseLabels | ListwiseLabels;

/** Records are copied by the caller before the next one (see labelJson): one reused buffer. */
const slab = new Slab('reuse');

/** ASCII bytes of a constant JSON fragment. */
const lit = (s: string): Buffer => Buffer.from(s, 'latin1');

const HEADER_KEYS = ['id', 'request_id', 'user_id', 'ts', 'model_version', 'matched', 'context'];
const POINTWISE_KEYS = [...HEADER_KEYS, 'items'];
const PAIRWISE_KEYS = [...HEADER_KEYS, 'pairs'];
const LISTWISE_KEYS = POINTWISE_KEYS;
const POINTWISE_ITEM_KEYS = [
  'item_id',
  'rank',
  'label',
  'weight',
  'teacher_logit',
  'soft_target',
  'clicked',
  'features',
];
const PAIR_KEYS = ['pos_item', 'neg_item', 'pos_rank', 'neg_rank', 'weight'];
const GRADED_ITEM_KEYS = ['item_id', 'rank', 'grade', 'gain', 'teacher_logit'];

const ID = lit('{"id":');
const REQUEST_ID = lit(',"request_id":');
const USER_ID = lit(',"user_id":');
const TS = lit(',"ts":');
const MODEL_VERSION = lit(',"model_version":');
const MATCHED_TRUE = lit(',"matched":true,"context":');
const MATCHED_FALSE = lit(',"matched":false,"context":');
const ITEMS = lit(',"items":[');
const PAIRS = lit(',"pairs":[');
const END = lit(']}');
const NULL = lit('null');
const NULL_F = fragment('null');

const PW_ITEM_ID = fragment('{"item_id":');
const PW_RANK = fragment(',"rank":');
const PW_LABEL = fragment(',"label":');
const PW_WEIGHT = fragment(',"weight":');
const PW_LOGIT = fragment(',"teacher_logit":');
const PW_SOFT = fragment(',"soft_target":');
const PW_CLICKED = fragment(',"clicked":');
// Common runs merged into one fragment each: label 0/1 with the weight key, a null soft target
// with the clicked key, the clicked value with the features key.
const PW_LABEL0 = fragment(',"label":0,"weight":');
const PW_LABEL1 = fragment(',"label":1,"weight":');
const PW_SOFT_NULL = fragment(',"soft_target":null,"clicked":');
const PW_NULL_FEATURES = fragment('null,"features":');
const PW_TRUE_FEATURES = fragment('true,"features":');
const PW_FALSE_FEATURES = fragment('false,"features":');

const PAIR_POS = fragment('{"pos_item":');
const PAIR_NEG = fragment(',"neg_item":');
const PAIR_POS_RANK = fragment(',"pos_rank":');
const PAIR_NEG_RANK = fragment(',"neg_rank":');
const PAIR_WEIGHT = fragment(',"weight":');

const LW_ITEM_ID = PW_ITEM_ID;
const LW_RANK = PW_RANK;
const LW_GRADE = fragment(',"grade":');
const LW_GAIN = fragment(',"gain":');
const LW_LOGIT = PW_LOGIT;

/**
 * Room for an element's fixed parts besides its strings: keys and punctuation (< 128 bytes), four
 * numbers and a literal, and the padding a fragment stores past its text.
 */
const FIXED_MAX = 128 + 4 * NUMBER_MAX + 5 + FRAGMENT_MAX;

/** Own enumerable keys exactly `keys`, in that order, and no toJSON (JSON.stringify would call it). */
function hasKeys(o: object, keys: readonly string[]): boolean {
  if (typeof (o as { toJSON?: unknown }).toJSON === 'function') return false;
  const own = Object.keys(o);
  if (own.length !== keys.length) return false;
  for (let i = 0; i < own.length; i++) if (own[i] !== keys[i]) return false;
  return true;
}

/** The elements of a label array: a plain array whose first element has exactly `keys`. */
function isRecordArray(a: unknown, keys: readonly string[]): a is readonly object[] {
  if (!Array.isArray(a) || Object.getPrototypeOf(a) !== Array.prototype) return false;
  const first: unknown = a[0];
  return a.length === 0 || (typeof first === 'object' && first !== null && hasKeys(first, keys));
}

/**
 * `"key":` bytes of a map's keys by position, remembered from the last map written with this
 * cache: feature maps of one input have the same keys in the same order, so a key is found by
 * one comparison instead of a hash lookup.
 */
class KeyCache {
  readonly names: string[] = [];
  readonly bytes: Buffer[] = [];

  at(i: number, k: string): Buffer {
    const b = this.bytes[i];
    if (b !== undefined && this.names[i] === k) return b;
    const kb = keyBytes(k);
    this.names[i] = k;
    this.bytes[i] = kb;
    return kb;
  }
}

const featureKeys = new KeyCache();
const contextKeys = new KeyCache();

/**
 * Writes a `map<double>` field's value (null, or an object of finite or non-finite numbers) at
 * the slab's position; false when it is anything else (nothing usable written then).
 */
function mapValue(m: unknown, keys: KeyCache): boolean {
  const s = slab;
  if (m === null) {
    s.ensure(4);
    s.at = bytesAt(s.out, s.at, NULL);
    return true;
  }
  if (typeof m !== 'object') return false;
  const proto = Object.getPrototypeOf(m);
  if ((proto !== Object.prototype && proto !== null) || Array.isArray(m)) return false;
  const map = m as Record<string, unknown>;
  if (typeof map.toJSON === 'function') return false;
  s.ensure(1);
  s.out[s.at++] = 0x7b;
  let i = 0;
  // for … in visits own keys in JSON.stringify's order (integer keys first, then creation order),
  // and nothing inherited: the prototype is Object.prototype or null, checked above.
  for (const k in map) {
    const x = map[k];
    if (typeof x !== 'number') return false;
    const kb = keys.at(i, k);
    s.ensure(kb.length + NUMBER_MAX + 1);
    let a = s.at;
    const o = s.out;
    if (i > 0) o[a++] = 0x2c;
    a = bytesAt(o, a, kb);
    s.at = numberAt(o, a, x);
    i++;
  }
  s.ensure(1);
  s.out[s.at++] = 0x7d;
  return true;
}

/** A number or null (the `["null", "double"]` fields) at `a`; -1 when it is neither. */
function optNumberAt(o: Buffer, dv: DataView, a: number, x: unknown): number {
  if (typeof x === 'number') return numberAt(o, a, x);
  return x === null ? fragmentAt(dv, a, NULL_F) : -1;
}

/**
 * The fields every label record starts with, up to and including the array's `[`: id,
 * request_id, user_id, ts, model_version, matched, context. False when a value has another type.
 */
function header(v: LabelRecord, open: Buffer): boolean {
  const { id, request_id, user_id, ts, model_version, matched } = v;
  if (
    typeof id !== 'string' ||
    typeof request_id !== 'string' ||
    typeof user_id !== 'string' ||
    typeof ts !== 'number' ||
    typeof model_version !== 'string' ||
    typeof matched !== 'boolean'
  ) {
    return false;
  }
  const s = slab;
  s.ensure(
    FIXED_MAX +
      stringMax(id.length) +
      stringMax(request_id.length) +
      stringMax(user_id.length) +
      stringMax(model_version.length),
  );
  const o = s.out;
  let a = bytesAt(o, s.at, ID);
  a = stringAt(o, a, id);
  a = bytesAt(o, a, REQUEST_ID);
  a = stringAt(o, a, request_id);
  a = bytesAt(o, a, USER_ID);
  a = stringAt(o, a, user_id);
  a = bytesAt(o, a, TS);
  a = numberAt(o, a, ts);
  a = bytesAt(o, a, MODEL_VERSION);
  a = stringAt(o, a, model_version);
  s.at = bytesAt(o, a, matched ? MATCHED_TRUE : MATCHED_FALSE);
  if (!mapValue(v.context, contextKeys)) return false;
  s.ensure(open.length);
  s.at = bytesAt(s.out, s.at, open);
  return true;
}

/** `]}` closing a record's array and the record; the record's bytes. */
function finish(): Buffer {
  const s = slab;
  s.ensure(2);
  s.at = bytesAt(s.out, s.at, END);
  return s.take();
}

function pointwiseItems(items: readonly object[]): boolean {
  const s = slab;
  const n = items.length;
  for (let p = 0; p < n; p++) {
    const it = items[p] as PointwiseLabels['items'][number];
    if (typeof it !== 'object' || it === null) return false;
    const { item_id, rank, label, weight, teacher_logit, soft_target, clicked } = it;
    if (
      typeof item_id !== 'string' ||
      typeof rank !== 'number' ||
      typeof label !== 'number' ||
      typeof weight !== 'number' ||
      (clicked !== null && typeof clicked !== 'boolean')
    ) {
      return false;
    }
    s.ensure(FIXED_MAX + stringMax(item_id.length));
    const o = s.out;
    const dv = s.view;
    let a = s.at;
    if (p > 0) o[a++] = 0x2c;
    a = fragmentAt(dv, a, PW_ITEM_ID);
    a = stringAt(o, a, item_id);
    a = fragmentAt(dv, a, PW_RANK);
    a = numberAt(o, a, rank);
    if (label === 0 || label === 1) a = fragmentAt(dv, a, label === 0 ? PW_LABEL0 : PW_LABEL1);
    else {
      a = fragmentAt(dv, a, PW_LABEL);
      a = numberAt(o, a, label);
      a = fragmentAt(dv, a, PW_WEIGHT);
    }
    a = numberAt(o, a, weight);
    a = fragmentAt(dv, a, PW_LOGIT);
    a = optNumberAt(o, dv, a, teacher_logit);
    if (a < 0) return false;
    if (soft_target === null) a = fragmentAt(dv, a, PW_SOFT_NULL);
    else {
      a = fragmentAt(dv, a, PW_SOFT);
      a = optNumberAt(o, dv, a, soft_target);
      if (a < 0) return false;
      a = fragmentAt(dv, a, PW_CLICKED);
    }
    s.at = fragmentAt(
      dv,
      a,
      clicked === null ? PW_NULL_FEATURES : clicked ? PW_TRUE_FEATURES : PW_FALSE_FEATURES,
    );
    if (!mapValue(it.features, featureKeys)) return false;
    s.ensure(1);
    s.out[s.at++] = 0x7d;
  }
  return true;
}

function pairs(list: readonly object[]): boolean {
  const s = slab;
  const n = list.length;
  for (let q = 0; q < n; q++) {
    const pr = list[q] as ItemPair;
    if (typeof pr !== 'object' || pr === null) return false;
    const { pos_item, neg_item, pos_rank, neg_rank, weight } = pr;
    if (
      typeof pos_item !== 'string' ||
      typeof neg_item !== 'string' ||
      typeof pos_rank !== 'number' ||
      typeof neg_rank !== 'number' ||
      typeof weight !== 'number'
    ) {
      return false;
    }
    s.ensure(FIXED_MAX + stringMax(pos_item.length) + stringMax(neg_item.length));
    const o = s.out;
    const dv = s.view;
    let a = s.at;
    if (q > 0) o[a++] = 0x2c;
    a = fragmentAt(dv, a, PAIR_POS);
    a = stringAt(o, a, pos_item);
    a = fragmentAt(dv, a, PAIR_NEG);
    a = stringAt(o, a, neg_item);
    a = fragmentAt(dv, a, PAIR_POS_RANK);
    a = numberAt(o, a, pos_rank);
    a = fragmentAt(dv, a, PAIR_NEG_RANK);
    a = numberAt(o, a, neg_rank);
    a = fragmentAt(dv, a, PAIR_WEIGHT);
    a = numberAt(o, a, weight);
    o[a++] = 0x7d;
    s.at = a;
  }
  return true;
}

function gradedItems(items: readonly object[]): boolean {
  const s = slab;
  const n = items.length;
  for (let p = 0; p < n; p++) {
    const it = items[p] as ListwiseLabels['items'][number];
    if (typeof it !== 'object' || it === null) return false;
    const { item_id, rank, grade, gain, teacher_logit } = it;
    if (
      typeof item_id !== 'string' ||
      typeof rank !== 'number' ||
      typeof grade !== 'number' ||
      typeof gain !== 'number'
    ) {
      return false;
    }
    s.ensure(FIXED_MAX + stringMax(item_id.length));
    const o = s.out;
    const dv = s.view;
    let a = s.at;
    if (p > 0) o[a++] = 0x2c;
    a = fragmentAt(dv, a, LW_ITEM_ID);
    a = stringAt(o, a, item_id);
    a = fragmentAt(dv, a, LW_RANK);
    a = numberAt(o, a, rank);
    a = fragmentAt(dv, a, LW_GRADE);
    a = numberAt(o, a, grade);
    a = fragmentAt(dv, a, LW_GAIN);
    a = numberAt(o, a, gain);
    a = fragmentAt(dv, a, LW_LOGIT);
    a = optNumberAt(o, dv, a, teacher_logit);
    if (a < 0) return false;
    o[a++] = 0x7d;
    s.at = a;
  }
  return true;
}

/** Writes one record with `body` writing its array; null (nothing kept) when a check fails. */
function record(
  v: unknown,
  keys: readonly string[],
  itemKeys: readonly string[],
  open: Buffer,
  body: (items: readonly object[]) => boolean,
): Buffer | null {
  if (typeof v !== 'object' || v === null || !hasKeys(v, keys)) return null;
  const array: unknown = (v as Record<string, unknown>)[keys[keys.length - 1] as string];
  if (!isRecordArray(array, itemKeys)) return null;
  slab.begin();
  if (!header(v as LabelRecord, open) || !body(array)) {
    slab.drop();
    return null;
  }
  return finish();
}

/**
 * The UTF-8 bytes of `JSON.stringify(v)` for a record of label contract `name`
 * (PointwiseLabels, PairwiseLabels or ListwiseLabels), or null when `v` is not shaped as the
 * labelers build it or `name` is another contract: take the generic path then (see the module
 * comment). The result is a view of a reused buffer, valid until the next labelJson call: copy it
 * (as the replay's part files do) before writing another record.
 *
 * @example
 * const labels = labelRequest(req, cfg);
 * labelJson('PointwiseLabels', labels.pointwise)?.toString() === JSON.stringify(labels.pointwise); // true
 */
export function labelJson(name: string, v: unknown): Buffer | null {
  switch (name) {
    case 'PointwiseLabels':
      return record(v, POINTWISE_KEYS, POINTWISE_ITEM_KEYS, ITEMS, pointwiseItems);
    case 'PairwiseLabels':
      return record(v, PAIRWISE_KEYS, PAIR_KEYS, PAIRS, pairs);
    case 'ListwiseLabels':
      return record(v, LISTWISE_KEYS, GRADED_ITEM_KEYS, ITEMS, gradedItems);
    default:
      return null;
  }
}

/**
 * Lines of {@link labelColumnsJson}: three records per request are handed out together, so they
 * are views of a slab that is never written twice (not the reused buffer of {@link labelJson}).
 */
const colSlab = new Slab('views');

const SUFFIX = {
  pointwise: lit(':pointwise'),
  pairwise: lit(':pairwise'),
  listwise: lit(':listwise'),
} as const;

/**
 * Copies `src[s, e)` to `o` at `a` (room checked by the caller); returns the new position. Short
 * runs byte by byte: a native copy call costs more there.
 */
function textAt(o: Buffer, a: number, src: Buffer, s: number, e: number): number {
  if (e - s >= 48) return a + src.copy(o, a, s, e);
  for (let i = s; i < e; i++) o[a++] = src[i]!;
  return a;
}

/**
 * Writes a quoted id (the ASCII, escape-free bytes [s, e) of the ranker's line) at `a` of `o`
 * (room checked by the caller); returns the new position.
 */
function idAt(o: Buffer, a: number, src: Buffer, s: number, e: number): number {
  o[a++] = 0x22;
  for (let i = s; i < e; i++) o[a++] = src[i]!;
  o[a++] = 0x22;
  return a;
}

/** The fields up to the array's `[`, from the line's own bytes (see parseRankerJson). */
function columnsHeader(r: RankerColumns, suffix: Buffer, ts: number, matched: boolean, open: Buffer): void {
  const c = colSlab;
  c.ensure(FIXED_MAX + 3 * r.request_id.length + r.user_id.length + r.model_version.length + 16);
  const o = c.out;
  let a = bytesAt(o, c.at, ID);
  a = stringAt(o, a, r.request_id) - 1; // ASCII without escapes: its closing quote goes last
  a = bytesAt(o, a, suffix);
  o[a++] = 0x22;
  a = bytesAt(o, a, REQUEST_ID);
  a = stringAt(o, a, r.request_id);
  a = bytesAt(o, a, USER_ID);
  a = idAt(o, a, r.buf, r.userStart, r.tsStart);
  a = bytesAt(o, a, TS);
  a = numberAt(o, a, ts);
  a = bytesAt(o, a, MODEL_VERSION);
  a = stringAt(o, a, r.model_version);
  c.at = bytesAt(o, a, matched ? MATCHED_TRUE : MATCHED_FALSE);
  if (r.contextStart < 0) {
    c.ensure(4);
    c.at = bytesAt(c.out, c.at, NULL);
  } else {
    c.ensure(r.contextEnd - r.contextStart);
    c.at = textAt(c.out, c.at, r.buf, r.contextStart, r.contextEnd);
  }
  c.ensure(open.length);
  c.at = bytesAt(c.out, c.at, open);
}

function columnsFinish(): Buffer {
  const c = colSlab;
  c.ensure(2);
  c.at = bytesAt(c.out, c.at, END);
  return c.take();
}

/** PointwiseItem objects as pointwiseItems (pointwise.ts) fills them, written as JSON. */
function pointwiseColumns(r: RankerColumns, view: TeacherView, cfg: LabelsConfig['pointwise']): void {
  const c = colSlab;
  const n = view.n;
  const w = positiveWeights(cfg);
  const k = Math.min(cfg.k, n);
  const z = view.z;
  const clicked = view.clicked;
  const order = view.order;
  const soft = z !== null && cfg.softTargets === true;
  const invT = 1 / cfg.temperature;
  const buf = r.buf;
  const offs = r.offsets;
  for (let p = 0; p < n; p++) {
    const i = order === null ? p : order[p]!;
    const idStart = offs[4 * i]!;
    const idEnd = offs[4 * i + 1]!;
    const fStart = offs[4 * i + 2]!;
    const fEnd = offs[4 * i + 3]!;
    c.ensure(FIXED_MAX + (idEnd - idStart) + (fStart < 0 ? 4 : fEnd - fStart));
    const o = c.out;
    const dv = c.view;
    let a = c.at;
    if (p > 0) o[a++] = 0x2c;
    a = fragmentAt(dv, a, PW_ITEM_ID);
    a = idAt(o, a, buf, idStart, idEnd);
    a = fragmentAt(dv, a, PW_RANK);
    a = numberAt(o, a, p + 1);
    a = fragmentAt(dv, a, p < k ? PW_LABEL1 : PW_LABEL0);
    a = numberAt(o, a, p < k ? w[p]! : 1);
    a = fragmentAt(dv, a, PW_LOGIT);
    a = z === null ? fragmentAt(dv, a, NULL_F) : numberAt(o, a, z[p]!);
    if (soft) {
      a = fragmentAt(dv, a, PW_SOFT);
      a = numberAt(o, a, sigmoid(z[p]! * invT));
      a = fragmentAt(dv, a, PW_CLICKED);
    } else a = fragmentAt(dv, a, PW_SOFT_NULL);
    const ck = clicked === null ? -1 : clicked[p]!;
    a = fragmentAt(dv, a, ck === -1 ? PW_NULL_FEATURES : ck === 1 ? PW_TRUE_FEATURES : PW_FALSE_FEATURES);
    a = fStart < 0 ? bytesAt(o, a, NULL) : textAt(o, a, buf, fStart, fEnd);
    o[a++] = 0x7d;
    c.at = a;
  }
}

/** GradedItem objects as listwiseItems (listwise.ts) fills them, written as JSON. */
function gradedColumns(r: RankerColumns, view: TeacherView, grades: Int32Array): void {
  const c = colSlab;
  const n = view.n;
  const z = view.z;
  const order = view.order;
  const buf = r.buf;
  const offs = r.offsets;
  for (let p = 0; p < n; p++) {
    const i = order === null ? p : order[p]!;
    const s = offs[4 * i]!;
    const e = offs[4 * i + 1]!;
    c.ensure(FIXED_MAX + (e - s));
    const o = c.out;
    const dv = c.view;
    let a = c.at;
    if (p > 0) o[a++] = 0x2c;
    a = fragmentAt(dv, a, LW_ITEM_ID);
    a = idAt(o, a, buf, s, e);
    a = fragmentAt(dv, a, LW_RANK);
    a = numberAt(o, a, p + 1);
    const g = grades[p]!;
    a = fragmentAt(dv, a, LW_GRADE);
    a = numberAt(o, a, g);
    a = fragmentAt(dv, a, LW_GAIN);
    a = numberAt(o, a, g < 32 ? GAINS[g]! : 2 ** g - 1);
    a = fragmentAt(dv, a, LW_LOGIT);
    a = z === null ? fragmentAt(dv, a, NULL_F) : numberAt(o, a, z[p]!);
    o[a++] = 0x7d;
    c.at = a;
  }
}

/** ItemPair objects as pairwisePairs (pairwise.ts) fills them, written as JSON. */
function pairColumns(
  r: RankerColumns,
  view: TeacherView,
  cfg: LabelsConfig['pairwise'],
  grades: Int32Array | null,
): void {
  const c = colSlab;
  const pp = pairPositions(view.n, cfg, Rng.forRequest(r.request_id));
  const w = PairWeights.of(cfg, grades, view.n);
  const order = view.order;
  const buf = r.buf;
  const offs = r.offsets;
  const len = pp.len;
  for (let q = 0; q < len; q++) {
    const i = pp.pos[q]!;
    const j = pp.neg[q]!;
    const x = order === null ? i : order[i]!;
    const y = order === null ? j : order[j]!;
    const xs = offs[4 * x]!;
    const xe = offs[4 * x + 1]!;
    const ys = offs[4 * y]!;
    const ye = offs[4 * y + 1]!;
    c.ensure(FIXED_MAX + (xe - xs) + (ye - ys));
    const o = c.out;
    const dv = c.view;
    let a = c.at;
    if (q > 0) o[a++] = 0x2c;
    a = fragmentAt(dv, a, PAIR_POS);
    a = idAt(o, a, buf, xs, xe);
    a = fragmentAt(dv, a, PAIR_NEG);
    a = idAt(o, a, buf, ys, ye);
    a = fragmentAt(dv, a, PAIR_POS_RANK);
    a = numberAt(o, a, i + 1);
    a = fragmentAt(dv, a, PAIR_NEG_RANK);
    a = numberAt(o, a, j + 1);
    a = fragmentAt(dv, a, PAIR_WEIGHT);
    a = numberAt(o, a, w.weight(i, j));
    o[a++] = 0x7d;
    c.at = a;
  }
}

/**
 * The NDJSON lines (`JSON.stringify` bytes) of `labelRequest({ ranker, impression }, cfg)`'s
 * records, for a ranker output parsed from an NDJSON line (parseRankerJson: `r.json`), written
 * from its columns: ids, context and features are the line's own text. Throws what labelRequest
 * throws, for the same input. Requires columnsSupported(cfg). The lines are views of a slab that
 * is not written again: they stay valid.
 *
 * @example
 * const cols = parseRankerJson(line, decodeRanker);
 * if (cols !== null) labelColumnsJson(cols, impression, cfg).pointwise?.toString(); // '{"id":…}'
 */
export function labelColumnsJson(
  r: RankerColumns,
  impression: Impression | null,
  cfg: LabelsConfig,
): EncodedLabels {
  const v = columnsView(r, impression, cfg);
  if (v === null) {
    const l = labelRequest({ ranker: r.decoded(), impression }, cfg); // throws what names the problem
    const line = (x: object | null) => (x === null ? null : Buffer.from(JSON.stringify(x)));
    return { pointwise: line(l.pointwise), pairwise: line(l.pairwise), listwise: line(l.listwise) };
  }
  const { ts, matched, view, grades } = v;
  let pointwise: Buffer | null = null;
  if (cfg.pointwise.enabled) {
    colSlab.begin();
    columnsHeader(r, SUFFIX.pointwise, ts, matched, ITEMS);
    pointwiseColumns(r, view, cfg.pointwise);
    pointwise = columnsFinish();
  }
  let pairwise: Buffer | null = null;
  if (cfg.pairwise.enabled) {
    colSlab.begin();
    columnsHeader(r, SUFFIX.pairwise, ts, matched, PAIRS);
    pairColumns(r, view, cfg.pairwise, grades);
    pairwise = columnsFinish();
  }
  let listwise: Buffer | null = null;
  if (cfg.listwise.enabled && grades !== null) {
    colSlab.begin();
    columnsHeader(r, SUFFIX.listwise, ts, matched, ITEMS);
    gradedColumns(r, view, grades);
    listwise = columnsFinish();
  }
  return { pointwise, pairwise, listwise };
}
