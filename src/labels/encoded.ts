/**
 * The label generators' output written straight to Avro bytes from a {@link RankerColumns}: the
 * same records {@link labelRequest} returns, encoded as `encodeAvro` would encode them, without
 * building the record objects. Item ids and features are copied from the ranker output's bytes.
 *
 * The semantics stay in one place: the order, logits and clicks come from the same teacher view
 * (resolveTeacherColumns), the grades from listwiseGrades, the pairs from pairPositions and
 * PairWeights, the weights from positiveWeights, the soft targets from sigmoid. What is written
 * here is only the field layout of the three label schemas; test/labels/encoded.test.ts checks
 * byte equality with `encodeAvro(labelRequest(…))` over random requests and every config.
 *
 * Configs with objective fusion need the candidate objects: {@link columnsSupported} says when
 * this path applies. Pure: no I/O.
 */
import type { LabelsConfig } from '../config/schema.ts';
import { encodeAvro } from '../contracts/codec.ts';
import { ImpressionColumns, shownCount } from '../contracts/impression-columns.ts';
import type { Impression } from '../contracts/index.ts';
import { ColumnIndex, type RankerColumns } from '../contracts/ranker-columns.ts';
import { labelRequest } from './index.ts';
import { listwiseGrades } from './listwise.ts';
import { GAINS } from './ndcg.ts';
import { PairWeights, pairPositions } from './pairwise.ts';
import { positiveWeights, sigmoid } from './pointwise.ts';
import { Rng } from './rng.ts';
import { resolveTeacherColumns, type TeacherView, ViewScratch } from './teacher.ts';
import { validateImpression } from './validate.ts';

/** Avro binary of a request's label records; a kind is null when it is disabled in the config. */
export interface EncodedLabels {
  pointwise: Buffer | null;
  pairwise: Buffer | null;
  listwise: Buffer | null;
}

/**
 * Whether {@link labelColumnsEncoded} handles this config (no objective fusion).
 *
 * @example
 * columnsSupported(labelsSchema.parse({})); // true
 */
export function columnsSupported(cfg: LabelsConfig): boolean {
  return Object.keys(cfg.teacher.objectiveWeights).length === 0;
}

/**
 * Output slabs: records are written one after another into a slab and handed out as views of it,
 * not copied out. Copying each record into a Buffer of its own took ~3% of the labeler's CPU at
 * 20 candidates, and its small allocations churned the Buffer pool. A slab stays alive until the
 * last view into it is let go (its records sent). Module-level: writing is never re-entered.
 */
const SLAB_BYTES = 256 * 1024;
let out = Buffer.allocUnsafeSlow(SLAB_BYTES);
/** Doubles go through a DataView: V8 inlines its unaligned stores, unlike Buffer.writeDoubleLE. */
let outView = new DataView(out.buffer, out.byteOffset, out.length);
let at = 0;
/** Where the record being written starts (set by {@link begin}, handed out by {@link take}). */
let recStart = 0;

/** Room for `extra` more bytes: a full slab is left to its views and the record so far moves on. */
function ensure(extra: number): void {
  if (at + extra <= out.length) return;
  const part = at - recStart;
  const slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, 2 * (part + extra)));
  out.copy(slab, 0, recStart, at);
  out = slab;
  outView = new DataView(out.buffer, out.byteOffset, out.length);
  recStart = 0;
  at = part;
}

/** Starts a record at the current position. */
function begin(): void {
  recStart = at;
}

/** Zig-zag varint of a safe integer. */
function long(n: number): void {
  ensure(10);
  if (n >= -0x40000000 && n < 0x40000000) {
    let z = (n << 1) ^ (n >> 31);
    while (z & ~0x7f) {
      out[at++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    out[at++] = z;
    return;
  }
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  while (z >= 128) {
    out[at++] = (z % 128) | 0x80;
    z = Math.floor(z / 128);
  }
  out[at++] = z;
}

/** DataView over the ranker output being labeled (its RankerColumns.view, set by labelColumnsEncoded). */
let srcView: DataView = new DataView(new ArrayBuffer(0));

/**
 * Copies src[s..e) to o at a (room checked by the caller), 4 bytes per step through DataViews
 * (little-endian on both sides, so the bytes are unchanged); returns the new position. Byte
 * stores cost ~2 ns each here, and ids and features are most of what the records copy.
 */
function copyWords(
  o: Buffer,
  dv: DataView,
  a: number,
  src: Buffer,
  sdv: DataView,
  s: number,
  e: number,
): number {
  for (; s + 4 <= e; s += 4, a += 4) dv.setInt32(a, sdv.getInt32(s, true), true);
  for (; s < e; s++) o[a++] = src[s]!;
  return a;
}

function copy(src: Buffer, start: number, end: number): void {
  const len = end - start;
  ensure(len);
  if (len < 48) {
    at = copyWords(out, outView, at, src, srcView, start, end);
  } else {
    src.copy(out, at, start, end);
    at += len;
  }
}

/** The record written since {@link begin}: a view of the slab (which is never written again there). */
function take(): Buffer {
  const b = out.subarray(recStart, at);
  recStart = at;
  return b;
}

/** The ASCII bytes of each label id's suffix (`<request_id>:pointwise` …). */
const SUFFIX = {
  pointwise: Buffer.from(':pointwise', 'latin1'),
  pairwise: Buffer.from(':pairwise', 'latin1'),
  listwise: Buffer.from(':listwise', 'latin1'),
} as const;

/**
 * The fields every label record starts with: id, request_id, user_id, ts, model_version, matched,
 * context. All but the id's suffix, ts and matched are the ranker output's own bytes: request_id
 * and user_id are its first two fields, model_version follows its ts, and the parser accepted
 * only canonical encodings of them (ASCII, minimal length varints).
 */
function header(r: RankerColumns, suffix: Buffer, ts: number, matched: boolean): void {
  const buf = r.buf;
  const idLen = r.request_id.length; // ASCII: one byte per character
  long(idLen + suffix.length);
  copy(buf, r.userStart - idLen, r.userStart);
  ensure(suffix.length);
  for (let i = 0; i < suffix.length; i++) out[at++] = suffix[i]!;
  copy(buf, 0, r.tsStart);
  long(ts);
  copy(buf, r.versionStart, r.contextStart);
  ensure(1);
  out[at++] = matched ? 1 : 0;
  copy(buf, r.contextStart, r.contextEnd);
}

/**
 * The `id` of a label record in plain Avro: the first field of every label schema, an Avro
 * string (zigzag varint length, then UTF-8), read without decoding the rest.
 *
 * @example
 * labelId(encodeAvro('PointwiseLabels', labels)); // 'r1:pointwise'
 */
export function labelId(value: Buffer): string {
  let shift = 0;
  let n = 0;
  let i = 0;
  for (;;) {
    const b = value[i++]!;
    n |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  const len = (n >>> 1) ^ -(n & 1);
  return value.toString('utf8', i, i + len);
}

const index = new ColumnIndex();
const scratch = new ViewScratch();

/**
 * The Avro bytes of `labelRequest({ ranker, impression }, cfg)`'s records, for a ranker output
 * parsed into columns (which implies it passed validateRankerOutput). Throws what labelRequest
 * throws, for the same input (a bad impression, a mismatched request or user, logit-thresholds
 * in rank mode). Requires {@link columnsSupported}(cfg).
 *
 * @example
 * const cols = parseRankerColumns(raw, decodeRanker);
 * if (cols !== null && columnsSupported(cfg)) labelColumnsEncoded(cols, impression, cfg).pointwise; // Avro bytes
 */
export function labelColumnsEncoded(
  r: RankerColumns,
  impression: Impression | null,
  cfg: LabelsConfig,
): EncodedLabels {
  const v = columnsView(r, impression, cfg);
  // labelRequest throws the LabelInputError that names the problem.
  if (v === null) return encodeAll(labelRequest({ ranker: r.decoded(), impression }, cfg));
  const { ts, matched, view, grades } = v;
  srcView = r.view;
  let pointwise: Buffer | null = null;
  if (cfg.pointwise.enabled) {
    begin();
    header(r, SUFFIX.pointwise, ts, matched);
    pointwiseItems(r, view, cfg.pointwise);
    pointwise = take();
  }
  let pairwise: Buffer | null = null;
  if (cfg.pairwise.enabled) {
    begin();
    header(r, SUFFIX.pairwise, ts, matched);
    pairs(r, view, cfg.pairwise, grades);
    pairwise = take();
  }
  let listwise: Buffer | null = null;
  if (cfg.listwise.enabled && grades !== null) {
    begin();
    header(r, SUFFIX.listwise, ts, matched);
    gradedItems(r, view, grades);
    listwise = take();
  }
  return { pointwise, pairwise, listwise };
}

/** What the column label writers (Avro here, JSON in ./json.ts) write from: see {@link columnsView}. */
export interface ColumnsView {
  /** The labels' ts (the later of ranker output and impression). */
  ts: number;
  matched: boolean;
  view: TeacherView;
  /** Listwise grades, when listwise labels or ΔNDCG pair weights need them. */
  grades: Int32Array | null;
}

/**
 * The teacher view and grades of a request held as columns, or null when labelRequest must
 * handle it (an impression that is invalid or of another request or user: it throws the error
 * that names the problem). Valid until the next call (module scratch).
 */
export function columnsView(
  r: RankerColumns,
  impression: Impression | null,
  cfg: LabelsConfig,
): ColumnsView | null {
  if (
    impression !== null &&
    // Impression columns were validated by their parser.
    ((!(impression instanceof ImpressionColumns) && validateImpression(impression) !== null) ||
      impression.request_id !== r.request_id ||
      impression.user_id !== r.user_id)
  ) {
    return null;
  }
  const n = r.n;
  const ts = impression !== null && impression.ts > r.ts ? impression.ts : r.ts;
  scratch.ensure(n, 0).zRanker.set(r.scores);
  if (impression !== null && shownCount(impression) > 0) index.build(r, n);
  const view = resolveTeacherColumns(n, impression, cfg.teacher, index, scratch);
  const pw = cfg.pairwise;
  const needGrades = cfg.listwise.enabled || (pw.enabled && pw.weightByDeltaNdcg);
  const grades = needGrades ? listwiseGrades(view, cfg.listwise, scratch) : null;
  return { ts, matched: impression !== null, view, grades };
}

function encodeAll(l: ReturnType<typeof labelRequest>): EncodedLabels {
  return {
    pointwise: l.pointwise === null ? null : encodeAvro('PointwiseLabels', l.pointwise),
    pairwise: l.pairwise === null ? null : encodeAvro('PairwiseLabels', l.pairwise),
    listwise: l.listwise === null ? null : encodeAvro('ListwiseLabels', l.listwise),
  };
}

/** PointwiseItem array, as pointwiseItems (pointwise.ts) fills it. */
function pointwiseItems(r: RankerColumns, view: TeacherView, cfg: LabelsConfig['pointwise']): void {
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
  long(n);
  // The hot loop keeps the position in a local (the module-level one is synced around calls).
  let o = out;
  let dv = outView;
  const sdv = srcView;
  let a = at;
  for (let p = 0; p < n; p++) {
    const i = order === null ? p : order[p]!;
    const idStart = offs[4 * i]!;
    const idEnd = offs[4 * i + 1]!;
    const fStart = offs[4 * i + 2]!;
    const fEnd = offs[4 * i + 3]!;
    // id (≤ 5-byte length) + rank (≤ 5) + label 1 + weight 8 + 2 unions of 9 + clicked 2.
    const need = idEnd - idStart + (fEnd - fStart) + 44;
    if (a + need > o.length) {
      at = a;
      ensure(need);
      o = out;
      dv = outView;
      a = at; // the record may have moved to a new slab
    }
    a = idAt(o, dv, a, buf, sdv, idStart, idEnd);
    a = natAt(o, a, p + 1); // rank
    o[a++] = p < k ? 2 : 0; // label 1 / 0 as a zig-zag int
    dv.setFloat64(a, p < k ? w[p]! : 1, true);
    a += 8;
    if (z === null) o[a++] = 0;
    else {
      o[a++] = 2;
      dv.setFloat64(a, z[p]!, true);
      a += 8;
    }
    if (soft) {
      o[a++] = 2;
      dv.setFloat64(a, sigmoid(z[p]! * invT), true);
      a += 8;
    } else o[a++] = 0;
    const c = clicked === null ? -1 : clicked[p]!;
    if (c === -1) o[a++] = 0;
    else {
      o[a++] = 2;
      o[a++] = c === 1 ? 1 : 0;
    }
    a = copyWords(o, dv, a, buf, sdv, fStart, fEnd);
  }
  at = a;
  long(0);
}

/**
 * Zig-zag varint of an int in [0, 2^30) written at `a` of `o` (room checked by the caller);
 * returns the new position. The hot loops write through locals: the module-level position is a
 * context slot, loaded and stored on every access.
 */
function natAt(o: Buffer, a: number, n: number): number {
  let z = n << 1;
  while (z & ~0x7f) {
    o[a++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  o[a++] = z;
  return a;
}

/** An id (a string of the ranker's bytes [s, e)), length first, at `a` of `o`; returns the new position. */
function idAt(o: Buffer, dv: DataView, a: number, src: Buffer, sdv: DataView, s: number, e: number): number {
  return copyWords(o, dv, natAt(o, a, e - s), src, sdv, s, e);
}

/** GradedItem array, as listwiseItems (listwise.ts) fills it. */
function gradedItems(r: RankerColumns, view: TeacherView, grades: Int32Array): void {
  const n = view.n;
  const z = view.z;
  const order = view.order;
  const buf = r.buf;
  const offs = r.offsets;
  const gains = GAINS;
  long(n);
  let o = out;
  let dv = outView;
  const sdv = srcView;
  let a = at;
  for (let p = 0; p < n; p++) {
    const i = order === null ? p : order[p]!;
    const s = offs[4 * i]!;
    const e = offs[4 * i + 1]!;
    // id (≤ 5-byte length) + rank (≤ 5) + grade (≤ 10) + gain 8 + logit union 9.
    const need = e - s + 37;
    if (a + need > o.length) {
      at = a;
      ensure(need);
      o = out;
      dv = outView;
      a = at; // the record may have moved to a new slab
    }
    a = idAt(o, dv, a, buf, sdv, s, e);
    a = natAt(o, a, p + 1);
    const g = grades[p]!;
    if (g >= 0 && g < 0x40000000) a = natAt(o, a, g);
    else {
      at = a;
      long(g); // room ensured above, so nothing moves
      a = at;
    }
    dv.setFloat64(a, g < 32 ? gains[g]! : 2 ** g - 1, true);
    a += 8;
    if (z === null) o[a++] = 0;
    else {
      o[a++] = 2;
      dv.setFloat64(a, z[p]!, true);
      a += 8;
    }
  }
  at = a;
  long(0);
}

/** ItemPair array, as pairwisePairs (pairwise.ts) fills it. */
function pairs(
  r: RankerColumns,
  view: TeacherView,
  cfg: LabelsConfig['pairwise'],
  grades: Int32Array | null,
): void {
  const pp = pairPositions(view.n, cfg, Rng.forRequest(r.request_id));
  const w = PairWeights.of(cfg, grades, view.n);
  const order = view.order;
  const buf = r.buf;
  const offs = r.offsets;
  const len = pp.len;
  if (len > 0) {
    long(len);
    let o = out;
    let dv = outView;
    const sdv = srcView;
    let a = at;
    for (let q = 0; q < len; q++) {
      const i = pp.pos[q]!;
      const j = pp.neg[q]!;
      const x = order === null ? i : order[i]!;
      const y = order === null ? j : order[j]!;
      const xs = offs[4 * x]!;
      const xe = offs[4 * x + 1]!;
      const ys = offs[4 * y]!;
      const ye = offs[4 * y + 1]!;
      // Two ids (≤ 5-byte lengths) + two ranks (≤ 5) + weight 8.
      const need = xe - xs + (ye - ys) + 28;
      if (a + need > o.length) {
        at = a;
        ensure(need);
        o = out;
        dv = outView;
        a = at; // the record may have moved to a new slab
      }
      a = idAt(o, dv, a, buf, sdv, xs, xe);
      a = idAt(o, dv, a, buf, sdv, ys, ye);
      a = natAt(o, a, i + 1);
      a = natAt(o, a, j + 1);
      dv.setFloat64(a, w.weight(i, j), true);
      a += 8;
    }
    at = a;
  }
  long(0);
}
