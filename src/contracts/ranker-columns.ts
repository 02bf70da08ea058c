/**
 * A RankerOutput read from its Avro binary encoding into columns instead of objects.
 *
 * Why: at 200 candidates a decoded RankerOutput is ~1,200 heap objects (each item, its id string,
 * its score and feature boxes, its features map), and the labels made from it another ~1,000,
 * which the labeling service then encodes back to Avro. Profiles of the service put Avro decode,
 * encode and the garbage they leave at over a third of its CPU. Parsed into columns — byte ranges
 * of the item ids and features in the record's own buffer, and the scores in a Float64Array —
 * a request costs a handful of objects, and the label writers (src/labels/encoded.ts) copy the
 * ids and features bytes straight into the label records.
 *
 * The contract: {@link parseRankerColumns} returns columns ONLY when the generic path
 * (`decodeAvro` + `validateRankerOutput`, then `encodeAvro` of the labels) would decode the
 * record, accept it and write the copied parts as the very same bytes. Anything else returns
 * null and the caller takes the generic path, which then produces the usual dead letter or
 * labels. So columns require, beyond validity (non-empty ids, non-negative safe ts, finite
 * numbers, at least one candidate, no duplicate ids):
 * - ASCII ids and map keys (UTF-8 decoding and re-encoding is then the identity);
 * - maps in the form avsc writes them — one block with a minimal count, then 0 — and keys that
 *   a JS object keeps in insertion order (not array indices, not `__proto__`), none repeated;
 * - union branches written as one byte, and no trailing bytes.
 * Producers using avsc, the Java or the Python Avro library write exactly this.
 *
 * Pure: no I/O.
 */

import { fmix32 } from '../hash.ts';
import { cur, readAscii, readAsciiRange, readLong, sameBytes } from './column-cursor.ts';
import { slabFloat64, slabInt32 } from './column-slab.ts';
import type { RankedItem, RankerOutput } from './types.gen.ts';

/**
 * A parsed RankerOutput. The header fields are plain values; `items` and `context` are decoded
 * from the bytes on first access (the generic path needs them only after a fallback), so the
 * object can stand in for a RankerOutput anywhere.
 */
export class RankerColumns implements RankerOutput {
  readonly request_id: string;
  readonly user_id: string;
  readonly ts: number;
  readonly model_version: string;
  /** The record's bytes (plain Avro binary of the RankerOutput schema). */
  readonly buf: Buffer;
  /** A DataView over `buf` (same offsets), for word-wide reads. */
  readonly view: DataView;
  /** Number of candidates (≥ 1). */
  readonly n: number;
  /** Per candidate i: [4i] id start, [4i+1] id end, [4i+2] features start, [4i+3] features end (offsets into buf). */
  readonly offsets: Int32Array;
  /** Per candidate: its score. */
  readonly scores: Float64Array;
  /** Per candidate: hash of its id bytes ({@link idBytesHash}). */
  readonly hashes: Int32Array;
  /** Where the user_id field starts (the request_id's bytes end here). */
  readonly userStart: number;
  /** Where the ts field starts (after request_id and user_id). */
  readonly tsStart: number;
  /** Where the model_version field starts (after ts). */
  readonly versionStart: number;
  /** Byte range of the context union (branch byte and map). */
  readonly contextStart: number;
  readonly contextEnd: number;
  /**
   * True when `buf` is an NDJSON line (src/contracts/json-columns.ts), whose reading of the
   * positions above that parser documents; false for Avro bytes.
   */
  readonly json: boolean;
  #decoded: RankerOutput | undefined;
  readonly #decode: (buf: Buffer) => RankerOutput;

  /** @internal use {@link parseRankerColumns} */
  constructor(
    fields: Omit<RankerColumns, 'items' | 'context' | 'decoded'>,
    decode: (buf: Buffer) => RankerOutput,
  ) {
    this.request_id = fields.request_id;
    this.user_id = fields.user_id;
    this.ts = fields.ts;
    this.model_version = fields.model_version;
    this.buf = fields.buf;
    this.view = fields.view;
    this.n = fields.n;
    this.offsets = fields.offsets;
    this.scores = fields.scores;
    this.hashes = fields.hashes;
    this.userStart = fields.userStart;
    this.tsStart = fields.tsStart;
    this.versionStart = fields.versionStart;
    this.contextStart = fields.contextStart;
    this.contextEnd = fields.contextEnd;
    this.json = fields.json;
    this.#decode = decode;
  }

  /** The record decoded the generic way (once, on demand). */
  decoded(): RankerOutput {
    this.#decoded ??= this.#decode(this.buf);
    return this.#decoded;
  }

  get items(): RankedItem[] {
    return this.decoded().items;
  }

  get context(): Record<string, number> | null {
    return this.decoded().context;
  }
}

/**
 * Hash of an id's bytes (FNV-1a, then murmur3's finalizer). {@link idStringHash} gives the same
 * value for the same ASCII string.
 *
 * @example
 * idBytesHash(Buffer.from('item-7'), 0, 6) === idStringHash('item-7'); // true
 */
export function idBytesHash(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5 ^ (end - start);
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return fmix32(h);
}

/**
 * {@link idBytesHash} of a string's ASCII bytes; −1 when the string is not ASCII (no parsed id
 * can equal it). Callers must still compare the bytes: −1 is also a possible hash.
 *
 * @example
 * idStringHash('é'); // −1
 */
export function idStringHash(s: string): number {
  const len = s.length;
  let h = 0x811c9dc5 ^ len;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return fmix32(h);
}

/**
 * item_id → candidate index over the id bytes of one {@link RankerColumns} (open addressing,
 * reused across requests: a generation stamp marks live slots, nothing is cleared).
 *
 * @example
 * const ix = new ColumnIndex();
 * ix.build(cols); // −1: no duplicate
 * ix.get('item-7'); // its index, or −1
 */
export class ColumnIndex {
  #slots = new Int32Array(512);
  #gen = new Uint32Array(512);
  #mask = 511;
  #stamp = 0;
  #cols: { buf: Buffer; offsets: Int32Array; hashes: Int32Array } | null = null;

  /**
   * Indexes the ids of `cols` (its hashes must be filled). Returns the index of the first id
   * that repeats an earlier one, or −1.
   */
  build(cols: { buf: Buffer; offsets: Int32Array; hashes: Int32Array }, n: number): number {
    this.#cols = cols;
    let cap = this.#slots.length;
    while (cap < 2 * n) cap *= 2;
    if (cap !== this.#slots.length) {
      this.#slots = new Int32Array(cap);
      this.#gen = new Uint32Array(cap);
      this.#mask = cap - 1;
      this.#stamp = 0;
    }
    this.#stamp = (this.#stamp + 1) >>> 0;
    if (this.#stamp === 0) {
      this.#gen.fill(0);
      this.#stamp = 1;
    }
    const stamp = this.#stamp;
    const slots = this.#slots;
    const gen = this.#gen;
    const mask = this.#mask;
    const { buf, offsets, hashes } = cols;
    for (let i = 0; i < n; i++) {
      const h = hashes[i]!;
      let s = h & mask;
      while (gen[s] === stamp) {
        const j = slots[s]!;
        if (
          hashes[j] === h &&
          sameBytes(buf, offsets[4 * i]!, offsets[4 * i + 1]!, buf, offsets[4 * j]!, offsets[4 * j + 1]!)
        )
          return i;
        s = (s + 1) & mask;
      }
      gen[s] = stamp;
      slots[s] = i;
    }
    return -1;
  }

  /**
   * Index of the id held as the bytes `buf[start, end)`, whose {@link idBytesHash} is `h`, in the
   * list last built, or −1 (an impression's ids held as columns: no string is made).
   */
  getBytes(buf: Buffer, start: number, end: number, h: number): number {
    const cols = this.#cols;
    if (cols === null) return -1;
    const { buf: own, offsets, hashes } = cols;
    const slots = this.#slots;
    const gen = this.#gen;
    const mask = this.#mask;
    const stamp = this.#stamp;
    for (let s = h & mask; gen[s] === stamp; s = (s + 1) & mask) {
      const j = slots[s]!;
      if (hashes[j] === h && sameBytes(own, offsets[4 * j]!, offsets[4 * j + 1]!, buf, start, end)) return j;
    }
    return -1;
  }

  /** Index of `id` in the list last built, or −1. */
  get(id: string): number {
    const cols = this.#cols;
    if (cols === null) return -1;
    const h = idStringHash(id);
    const { buf, offsets, hashes } = cols;
    const slots = this.#slots;
    const gen = this.#gen;
    const mask = this.#mask;
    const stamp = this.#stamp;
    for (let s = h & mask; gen[s] === stamp; s = (s + 1) & mask) {
      const j = slots[s]!;
      if (hashes[j] === h && equalsAscii(buf, offsets[4 * j]!, offsets[4 * j + 1]!, id)) return j;
    }
    return -1;
  }
}

function equalsAscii(buf: Buffer, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) if (buf[start + i] !== s.charCodeAt(i)) return false;
  return true;
}

const dupIndex = new ColumnIndex();

/**
 * A parser's n candidates (scores, id and feature offsets, id hashes in its scratch arrays) copied
 * into views of shared slabs, or null when two ids are the same (the validator's INVALID). Shared
 * with the NDJSON parser (./json-columns.ts). Slabs, because an ArrayBuffer (or typed array over
 * 64 bytes) per record cost ~2 µs.
 */
export function rankerSlabs(
  buf: Buffer,
  n: number,
  scores: Float64Array,
  offsets: Int32Array,
  hashes: Int32Array,
): { buf: Buffer; scores: Float64Array; offsets: Int32Array; hashes: Int32Array } | null {
  const cols = { buf, scores: slabFloat64(n), offsets: slabInt32(4 * n), hashes: slabInt32(n) };
  cols.scores.set(scores.subarray(0, n));
  cols.offsets.set(offsets.subarray(0, 4 * n));
  cols.hashes.set(hashes.subarray(0, n));
  return dupIndex.build(cols, n) >= 0 ? null : cols;
}

/** Whether the finite-double check passes for the 8 bytes at `at` (exponent not all ones). */
function finiteAt(buf: Buffer, at: number): boolean {
  return (buf[at + 7]! & 0x7f) !== 0x7f || (buf[at + 6]! & 0xf0) !== 0xf0;
}

const keyStarts = new Int32Array(32);
const keyEnds = new Int32Array(32);

/**
 * Skips a `["null", {map of double}]` union at `p`: returns the position after it, or −1 unless
 * it is in canonical form (one-byte branch, one block with a minimal count, then 0) with ASCII
 * keys that a JS object keeps in order, none repeated, and finite values. Local positions
 * throughout: this runs twice per candidate.
 */
function skipNullableDoubleMap(buf: Buffer, p: number, end: number): number {
  if (p >= end) return -1;
  const branch = buf[p++];
  if (branch === 0) return p;
  if (branch !== 2 || p >= end) return -1;
  const count = buf[p++]!;
  if (count === 0) return p;
  // Counts of 1..32 entries: one varint byte (zig-zag 2..64); anything else takes the generic path.
  if (count & 1 || count > 2 * keyStarts.length) return -1;
  const n = count >>> 1;
  for (let k = 0; k < n; k++) {
    if (p >= end) return -1;
    const lb = buf[p++]!;
    // Key lengths of 0..63 bytes: one varint byte; longer keys take the generic path.
    if (lb & 0x81) return -1;
    const len = lb >>> 1;
    const start = p;
    const stop = p + len;
    if (stop + 8 > end) return -1;
    const first = buf[start]!;
    // Array-index-like keys are reordered by JS objects; __proto__ is not an own key.
    if (len !== 0 && first >= 0x30 && first <= 0x39) return -1;
    for (let i = start; i < stop; i++) if (buf[i]! > 0x7f) return -1;
    if (len === 9 && buf.toString('latin1', start, stop) === '__proto__') return -1;
    for (let q = 0; q < k; q++) if (sameBytes(buf, keyStarts[q]!, keyEnds[q]!, buf, start, stop)) return -1;
    keyStarts[k] = start;
    keyEnds[k] = stop;
    p = stop;
    if (!finiteAt(buf, p)) return -1;
    p += 8;
  }
  if (p >= end || buf[p] !== 0) return -1;
  return p + 1;
}

/**
 * Parses a RankerOutput's plain Avro binary (`buf[start..]`, written with our schema) into
 * columns, or returns null when the record must take the generic path (see the module doc: bad
 * or non-canonical input, which the generic path then dead-letters or labels).
 *
 * `decode` decodes the bytes the generic way, for the lazy `items` and `context`.
 *
 * @example
 * const cols = parseRankerColumns(raw, (b) => decodeOrThrow('RankerOutput', b));
 * if (cols !== null) cols.scores[0]; // the first candidate's score
 */
export function parseRankerColumns(buf: Buffer, decode: (buf: Buffer) => RankerOutput): RankerColumns | null {
  const end = buf.length;
  cur.pos = 0;
  cur.bad = false;
  const request_id = readAscii(buf, end, true);
  const userStart = cur.pos;
  const user_id = readAscii(buf, end, true);
  const tsStart = cur.pos;
  const ts = readLong(buf, end);
  if (cur.bad || ts < 0 || !Number.isSafeInteger(ts)) return null;
  const versionStart = cur.pos;
  const model_version = readAscii(buf, end, false);
  if (cur.bad) return null;
  const contextStart = cur.pos;
  const contextEnd = skipNullableDoubleMap(buf, cur.pos, end);
  if (contextEnd < 0) return null;
  cur.pos = contextEnd;
  // Items: blocks of (count, items); a negative count is followed by the block's byte size.
  // Parsed into module scratch (and its own position, a local), copied out once at the end.
  let n = 0;
  let offsets = scratchOffsets;
  let scores = scratchScores;
  let hashes = scratchHashes;
  // DataView reads of the scores: V8 inlines them (Buffer.readDoubleLE is a checked JS call).
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  let p = cur.pos;
  for (;;) {
    cur.pos = p;
    let count = readLong(buf, end);
    if (cur.bad) return null;
    if (count < 0) {
      count = -count;
      readLong(buf, end);
      if (cur.bad) return null;
    }
    p = cur.pos;
    if (count === 0) break;
    if (n + count > scores.length) {
      // Each item takes at least 12 bytes (id ≥ 2, score 8, two unions): bounds a hostile count.
      if (count > (end - p) / 12) return null;
      const cap = Math.max(n + count, 2 * scores.length);
      const o = new Int32Array(4 * cap);
      o.set(offsets.subarray(0, 4 * n));
      scratchOffsets = offsets = o;
      const sc = new Float64Array(cap);
      sc.set(scores.subarray(0, n));
      scratchScores = scores = sc;
      const hs = new Int32Array(cap);
      hs.set(hashes.subarray(0, n));
      scratchHashes = hashes = hs;
    }
    for (let c = 0; c < count; c++, n++) {
      // Ids of 1..63 bytes have a one-byte length (the common case, read inline).
      const lb = p < end ? buf[p]! : 0;
      let idStart: number;
      let idEnd: number;
      if (lb !== 0 && (lb & 0x81) === 0) {
        idStart = p + 1;
        idEnd = idStart + (lb >>> 1);
        if (idEnd > end) return null;
      } else {
        cur.pos = p;
        idEnd = readAsciiRange(buf, end, true);
        if (cur.bad) return null;
        idStart = cur.strStart;
      }
      // ASCII check and idBytesHash in one pass over the id.
      let h = 0x811c9dc5 ^ (idEnd - idStart);
      for (let i = idStart; i < idEnd; i++) {
        const b = buf[i]!;
        if (b > 0x7f) return null;
        h = Math.imul(h ^ b, 0x01000193);
      }
      hashes[n] = fmix32(h);
      p = idEnd;
      offsets[4 * n] = idStart;
      offsets[4 * n + 1] = idEnd;
      if (p + 8 > end || !finiteAt(buf, p)) return null;
      scores[n] = dv.getFloat64(p, true);
      p += 8;
      const featStart = skipNullableDoubleMap(buf, p, end); // objectives: validated, not copied
      if (featStart < 0) return null;
      const featEnd = skipNullableDoubleMap(buf, featStart, end);
      if (featEnd < 0) return null;
      offsets[4 * n + 2] = featStart;
      offsets[4 * n + 3] = featEnd;
      p = featEnd;
    }
  }
  if (n === 0 || p !== end) return null;
  const cols = rankerSlabs(buf, n, scores, offsets, hashes);
  if (cols === null) return null;
  return new RankerColumns(
    {
      request_id,
      user_id,
      ts,
      model_version,
      buf,
      view: dv,
      n,
      offsets: cols.offsets,
      scores: cols.scores,
      hashes: cols.hashes,
      userStart,
      tsStart,
      versionStart,
      contextStart,
      contextEnd,
      json: false,
    },
    decode,
  );
}

let scratchOffsets = new Int32Array(4 * 256);
let scratchScores = new Float64Array(256);
let scratchHashes = new Int32Array(256);
