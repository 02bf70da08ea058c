/**
 * An Impression read from its Avro binary encoding into columns instead of objects.
 *
 * Why: decoded, an impression of 10 shown items is ~25 heap objects (each item, its id string,
 * its dwell box), ~1.1 KB per request at 20 candidates, and its decode took ~5% of the labeling
 * service's CPU. The labels only need each shown item's id (to find its candidate), position and
 * click: parsed into columns — byte ranges and hashes of the ids in the record's own buffer, and
 * typed arrays of positions and clicks — a request costs a handful of objects, and the ids are
 * matched against the ranker's as bytes (see {@link ColumnIndex.getBytes}).
 *
 * The contract, as for ranker columns (src/contracts/ranker-columns.ts):
 * {@link parseImpressionColumns} returns columns ONLY when the generic path (`decodeAvro` +
 * `validateImpression`) would decode the record, accept it and give the same values. Anything
 * else returns null and the caller takes the generic path, which then makes the dead letter or
 * the labels. So columns require, beyond validity: ASCII request, user and item ids (UTF-8
 * decoding is then the identity), booleans and union branches written as one byte, varints of at
 * most 7 bytes, and no trailing bytes.
 *
 * Pure: no I/O.
 */

import { fmix32 } from '../hash.ts';
import { cur, readAscii, readLong, sameBytes } from './column-cursor.ts';
import { slabInt32, slabUint8 } from './column-slab.ts';
import type { Impression, ShownItem } from './types.gen.ts';

/**
 * A parsed Impression. The header fields are plain values; `items` is decoded from the bytes on
 * first access (the generic path needs them only after a fallback), so the object can stand in
 * for an Impression anywhere.
 */
export class ImpressionColumns implements Impression {
  readonly request_id: string;
  readonly user_id: string;
  readonly ts: number;
  /** The record's bytes (plain Avro binary of the Impression schema). */
  readonly buf: Buffer;
  /** Number of shown items. */
  readonly m: number;
  /** Per shown item j: [2j] id start, [2j+1] id end (offsets into buf). */
  readonly ids: Int32Array;
  /** Per shown item: hash of its id bytes (idBytesHash, the hash ranker columns use). */
  readonly hashes: Int32Array;
  /** Per shown item: its display position (≥ 1, distinct). */
  readonly positions: Int32Array;
  /** Per shown item: 1 if clicked, else 0. */
  readonly clicked: Uint8Array;
  #decoded: Impression | undefined;
  readonly #decode: (buf: Buffer) => Impression;

  /** @internal use {@link parseImpressionColumns} */
  constructor(fields: Omit<ImpressionColumns, 'items' | 'decoded'>, decode: (buf: Buffer) => Impression) {
    this.request_id = fields.request_id;
    this.user_id = fields.user_id;
    this.ts = fields.ts;
    this.buf = fields.buf;
    this.m = fields.m;
    this.ids = fields.ids;
    this.hashes = fields.hashes;
    this.positions = fields.positions;
    this.clicked = fields.clicked;
    this.#decode = decode;
  }

  /** The record decoded the generic way (once, on demand). */
  decoded(): Impression {
    this.#decoded ??= this.#decode(this.buf);
    return this.#decoded;
  }

  get items(): ShownItem[] {
    return this.decoded().items;
  }
}

/**
 * Number of shown items of an impression in either form.
 *
 * @example
 * shownCount(impression); // impression.items.length, without decoding columns
 */
export function shownCount(imp: Impression): number {
  return imp instanceof ImpressionColumns ? imp.m : imp.items.length;
}

/** Skips an array of strings (any bytes: they are not read) at `cur.pos`. */
function skipStrings(buf: Buffer, end: number): void {
  for (;;) {
    let count = readLong(buf, end);
    if (cur.bad) return;
    if (count === 0) return;
    if (count < 0) {
      count = -count;
      readLong(buf, end); // block size in bytes
      if (cur.bad) return;
    }
    for (let k = 0; k < count; k++) {
      const len = readLong(buf, end);
      if (cur.bad || len < 0 || cur.pos + len > end) {
        cur.bad = true;
        return;
      }
      cur.pos += len;
    }
  }
}

let scratchIds = new Int32Array(2 * 64);
let scratchHashes = new Int32Array(64);
let scratchPositions = new Int32Array(64);
let scratchClicked = new Uint8Array(64);
/** Open-addressing table over the shown ids, for the duplicate check (generation-stamped). */
let dupSlots = new Int32Array(256);
let dupGen = new Uint32Array(256);
let dupStamp = 0;

function grow(cap: number): void {
  const ids = new Int32Array(2 * cap);
  ids.set(scratchIds);
  scratchIds = ids;
  const hs = new Int32Array(cap);
  hs.set(scratchHashes);
  scratchHashes = hs;
  const ps = new Int32Array(cap);
  ps.set(scratchPositions);
  scratchPositions = ps;
  const cs = new Uint8Array(cap);
  cs.set(scratchClicked);
  scratchClicked = cs;
}

/**
 * Whether two of the m ids `ids[2j..2j+1]` (byte ranges of `buf`, with their `hashes`) are the
 * same bytes.
 */
function hasDuplicateId(buf: Buffer, m: number, ids: Int32Array, hashes: Int32Array): boolean {
  let cap = dupSlots.length;
  while (cap < 2 * m) cap *= 2;
  if (cap !== dupSlots.length) {
    dupSlots = new Int32Array(cap);
    dupGen = new Uint32Array(cap);
    dupStamp = 0;
  }
  dupStamp = (dupStamp + 1) >>> 0;
  if (dupStamp === 0) {
    dupGen.fill(0);
    dupStamp = 1;
  }
  const mask = cap - 1;
  for (let i = 0; i < m; i++) {
    const h = hashes[i]!;
    let s = h & mask;
    while (dupGen[s] === dupStamp) {
      const j = dupSlots[s]!;
      if (hashes[j] === h && sameBytes(buf, ids[2 * i]!, ids[2 * i + 1]!, buf, ids[2 * j]!, ids[2 * j + 1]!))
        return true;
      s = (s + 1) & mask;
    }
    dupGen[s] = dupStamp;
    dupSlots[s] = i;
  }
  return false;
}

/** Whether the first m `positions` are distinct (they are ≥ 1). */
function distinctPositions(m: number, positions: Int32Array): boolean {
  let increasing = true;
  for (let i = 1; i < m; i++) if (positions[i - 1]! >= positions[i]!) increasing = false;
  if (increasing) return true; // the usual display order
  const seen = new Set<number>();
  for (let i = 0; i < m; i++) {
    const p = positions[i]!;
    if (seen.has(p)) return false;
    seen.add(p);
  }
  return true;
}

/**
 * Parses an Impression's plain Avro binary into columns, or returns null when the record must
 * take the generic path (see the module doc: bad, invalid or non-canonical input, which the
 * generic path then dead-letters or labels).
 *
 * `decode` decodes the bytes the generic way, for the lazy `items`.
 *
 * @example
 * const imp = parseImpressionColumns(raw, (b) => decodeOrThrow('Impression', b));
 * if (imp !== null) imp.positions[0]; // the first shown item's position
 */
export function parseImpressionColumns(
  buf: Buffer,
  decode: (buf: Buffer) => Impression,
): ImpressionColumns | null {
  const end = buf.length;
  cur.pos = 0;
  cur.bad = false;
  const request_id = readAscii(buf, end, true);
  const user_id = readAscii(buf, end, true);
  const ts = readLong(buf, end);
  if (cur.bad || ts < 0 || !Number.isSafeInteger(ts)) return null;
  let m = 0;
  for (;;) {
    let count = readLong(buf, end);
    if (cur.bad) return null;
    if (count === 0) break;
    if (count < 0) {
      count = -count;
      readLong(buf, end);
      if (cur.bad) return null;
    }
    // Each item takes at least 5 bytes (id ≥ 2, position, clicked, two union branches).
    if (count > (end - cur.pos) / 5) return null;
    if (m + count > scratchHashes.length) grow(Math.max(m + count, 2 * scratchHashes.length));
    for (let c = 0; c < count; c++, m++) {
      const len = readLong(buf, end);
      if (cur.bad || len <= 0 || cur.pos + len > end) return null;
      const start = cur.pos;
      cur.pos += len;
      // ASCII check and idBytesHash in one pass over the id.
      let h = 0x811c9dc5 ^ len;
      for (let i = start; i < cur.pos; i++) {
        const b = buf[i]!;
        if (b > 0x7f) return null;
        h = Math.imul(h ^ b, 0x01000193);
      }
      scratchIds[2 * m] = start;
      scratchIds[2 * m + 1] = cur.pos;
      scratchHashes[m] = fmix32(h);
      const position = readLong(buf, end);
      if (cur.bad || position < 1 || position > 0x7fffffff) return null;
      scratchPositions[m] = position;
      if (cur.pos + 2 > end) return null;
      const clicked = buf[cur.pos++]!;
      if (clicked > 1) return null;
      scratchClicked[m] = clicked;
      const dwellBranch = buf[cur.pos++]!;
      if (dwellBranch === 2) {
        const dwell = readLong(buf, end);
        if (cur.bad || dwell < 0) return null;
      } else if (dwellBranch !== 0) return null;
      if (cur.pos >= end) return null;
      const actionsBranch = buf[cur.pos++]!;
      if (actionsBranch === 2) {
        skipStrings(buf, end);
        if (cur.bad) return null;
      } else if (actionsBranch !== 0) return null;
    }
  }
  if (cur.pos !== end) return null;
  return impressionColumnsOf(
    request_id,
    user_id,
    ts,
    buf,
    m,
    scratchIds,
    scratchHashes,
    scratchPositions,
    scratchClicked,
    decode,
  );
}

/**
 * The columns of an impression whose m shown items a parser (Avro above, NDJSON in
 * ./json-columns.ts) left in its scratch arrays, or null when two ids or two positions are the same
 * (the validator's INVALID). The arrays are copied into views of shared slabs: an ArrayBuffer (or
 * typed array over 64 bytes) per record cost ~2 µs.
 */
export function impressionColumnsOf(
  request_id: string,
  user_id: string,
  ts: number,
  buf: Buffer,
  m: number,
  scratchIds: Int32Array,
  scratchHashes: Int32Array,
  scratchPositions: Int32Array,
  scratchClicked: Uint8Array,
  decode: (buf: Buffer) => Impression,
): ImpressionColumns | null {
  if (m > 1 && (hasDuplicateId(buf, m, scratchIds, scratchHashes) || !distinctPositions(m, scratchPositions)))
    return null;
  const ids = slabInt32(2 * m);
  ids.set(scratchIds.subarray(0, 2 * m));
  const hashes = slabInt32(m);
  hashes.set(scratchHashes.subarray(0, m));
  const positions = slabInt32(m);
  positions.set(scratchPositions.subarray(0, m));
  const clicked = slabUint8(m);
  clicked.set(scratchClicked.subarray(0, m));
  return new ImpressionColumns({ request_id, user_id, ts, buf, m, ids, hashes, positions, clicked }, decode);
}
