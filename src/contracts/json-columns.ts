/**
 * RankerOutput and Impression NDJSON lines read into the same columns as their Avro bytes
 * (./ranker-columns.ts, ./impression-columns.ts), without JSON.parse.
 *
 * Why: profiled on an NDJSON → NDJSON replay at 200 candidates, the full decode of the input lines
 * (JSON.parse into objects, feature maps included, then the schema check) was ~31% of the CPU and
 * the garbage it left most of the GC's ~14%, where Avro input takes the column path. Here a line
 * is scanned once: ids become byte ranges of the line (with their idBytesHash), scores a
 * Float64Array, positions and clicks typed arrays, and the maps are checked and skipped; the label
 * writers (src/labels/json.ts labelColumnsJson) copy the ids and the feature and context maps'
 * text straight into the label lines.
 *
 * The contract: a parser returns columns ONLY when `decodeJson` + the validator would accept the
 * line and give the same values, and the copied texts are what `JSON.stringify` writes for the
 * decoded values. Anything it is not sure of returns null, and the caller takes the full decode,
 * which then makes the usual dead letter or labels. So columns require, beyond validity:
 * - every string ASCII without escapes (a backslash, a control or non-ASCII byte: full decode);
 * - known fields only, none repeated (JSON.parse keeps the last of a repeated key);
 * - maps written compactly (no whitespace inside), with keys that a JS object keeps in text order
 *   (not starting with a digit, not `__proto__`), none repeated, at most 32;
 * - numbers in maps, ts, positions and dwell times in the form JSON.stringify gives them back:
 *   no exponent, at most 15 significant digits, no trailing fraction zeros, no `-0` (see
 *   {@link canonicalNumber}); scores may be any finite JSON number (they are parsed, not copied).
 * Whitespace between the other tokens is allowed. test/contracts/json-columns.test.ts compares
 * the parsers with the full decode on random, corrupted and edge-case lines.
 *
 * Pure: no I/O. Module state is scratch only (a parse is never re-entered).
 */

import { fmix32 } from '../hash.ts';
import { decodeJson } from './codec.ts';
import { sameBytes } from './column-cursor.ts';
import { type ImpressionColumns, impressionColumnsOf } from './impression-columns.ts';
import { RankerColumns, rankerSlabs } from './ranker-columns.ts';
import type { Impression, RankerOutput } from './types.gen.ts';

/** A decoder of NDJSON lines known to decode (a column parser accepted them): a failure is a bug. */
export function jsonDecoderOrThrow<N extends 'RankerOutput' | 'Impression'>(
  name: N,
): (b: Buffer) => N extends 'RankerOutput' ? RankerOutput : Impression {
  return (b) => {
    const d = decodeJson(name, b);
    if (!d.ok) throw d.error;
    return d.value as never;
  };
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Scan position and the last string's / number's / value's range (module scratch). */
let p = 0;
let sStart = 0;
let sEnd = 0;
let nStart = 0;
let nEnd = 0;

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function ws(b: Buffer): void {
  const end = b.length;
  while (p < end && isWs(b[p]!)) p++;
}

/** A string at p (after optional whitespace): sets sStart/sEnd (its content), false if unsure. */
function str(b: Buffer): boolean {
  ws(b);
  if (b[p] !== QUOTE) return false;
  const start = p + 1;
  const end = b.length;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      sStart = start;
      sEnd = i;
      p = i + 1;
      return true;
    }
    // Escapes, control characters (invalid JSON) and non-ASCII: the full decode decides.
    if (c === 0x5c || c < 0x20 || c > 0x7e) return false;
  }
  return false;
}

/** Expects byte `c` after optional whitespace. */
function expect(b: Buffer, c: number): boolean {
  ws(b);
  if (b[p] !== c) return false;
  p++;
  return true;
}

/** Whether the bytes at p spell `lit` (true, false, null); moves past it. */
function literal(b: Buffer, lit: string): boolean {
  for (let i = 0; i < lit.length; i++) if (b[p + i] !== lit.charCodeAt(i)) return false;
  p += lit.length;
  return true;
}

/** Flags of the last number scanned by {@link num}. */
let nCanonical = false;
let nInteger = false;
let nDigits = 0;
let nExponent = false;

/**
 * A JSON number at p (no whitespace skipped): sets nStart/nEnd and the flags; false when the
 * bytes are not a JSON number.
 *
 * Canonical (`nCanonical`): no exponent, at most 15 significant digits and at most 15 integer
 * digits, no trailing fraction zeros, at most 5 zeros between the point and the first non-zero
 * digit of a value below 1, and not `-0`. Such a text is what JSON.stringify writes for the
 * double it parses to: decimals of at most 15 significant digits map to distinct doubles (DBL_DIG),
 * so the shortest round-trip digits of that double are the text's own, and values in [1e-6, 1e21)
 * are written without an exponent.
 */
function num(b: Buffer): boolean {
  const end = b.length;
  const start = p;
  let i = p;
  let neg = false;
  if (b[i] === 0x2d) {
    neg = true;
    i++;
  }
  const intStart = i;
  let c = i < end ? b[i]! : 0;
  if (c === 0x30) i++;
  else if (c >= 0x31 && c <= 0x39) {
    while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
  } else return false;
  const intDigits = i - intStart;
  const zeroInt = c === 0x30;
  let fracDigits = 0;
  let leadZeros = 0;
  let lastFrac = 0;
  let integer = true;
  if (b[i] === 0x2e) {
    integer = false;
    i++;
    const fs = i;
    while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    fracDigits = i - fs;
    if (fracDigits === 0) return false;
    lastFrac = b[i - 1]!;
    if (zeroInt) while (leadZeros < fracDigits && b[fs + leadZeros] === 0x30) leadZeros++;
  }
  let exponent = false;
  c = i < end ? b[i]! : 0;
  if (c === 0x65 || c === 0x45) {
    exponent = true;
    integer = false;
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const es = i;
    while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    if (i === es) return false;
  }
  nStart = start;
  nEnd = i;
  p = i;
  const sig = zeroInt ? fracDigits - leadZeros : intDigits + fracDigits;
  nDigits = sig;
  nExponent = exponent;
  nInteger = integer && !neg;
  nCanonical =
    !exponent &&
    sig <= 15 &&
    intDigits <= 15 &&
    (integer || lastFrac !== 0x30) &&
    !(zeroInt && !integer && leadZeros > 5) &&
    !(neg && zeroInt && (integer || leadZeros === fracDigits));
  return true;
}

/** 10^d for d = 0..22, all exact doubles. */
const POW10 = Array.from({ length: 23 }, (_, d) => 10 ** d);

/**
 * The value of the number last scanned by {@link num}, as JSON.parse gives it. At most 15
 * significant digits and no exponent: the digits as an integer m < 2^53 over 10^d (d ≤ 22), one
 * correctly rounded division of two exact doubles, so exactly the double the text denotes.
 * Anything else goes through Number() of the text (JSON numbers are valid Number() input, and
 * the conversion is the same).
 */
function numValue(b: Buffer): number {
  if (nDigits > 15 || nDigits === 0 || nExponent) {
    return Number(b.toString('latin1', nStart, nEnd));
  }
  let m = 0;
  let d = 0;
  let frac = false;
  let neg = false;
  for (let i = nStart; i < nEnd; i++) {
    const c = b[i]!;
    if (c === 0x2d) neg = true;
    else if (c === 0x2e) frac = true;
    else {
      m = m * 10 + (c - 0x30);
      if (frac) d++;
    }
  }
  if (d > 22) return Number(b.toString('latin1', nStart, nEnd));
  const v = m / (POW10[d] as number);
  return neg ? -v : v;
}

/** A non-negative integer in canonical form (plain digits) at p, or -1. */
function natural(b: Buffer): number {
  ws(b);
  if (!num(b) || !nInteger || !nCanonical) return -1;
  let v = 0;
  for (let i = nStart; i < nEnd; i++) v = v * 10 + (b[i]! - 0x30);
  return v;
}

/** The end of a run of decimal digits from `i`. */
function digitsEnd(b: Buffer, i: number, end: number): number {
  for (; i < end; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) break;
  }
  return i;
}

/**
 * The end of a canonical number (see {@link num}) at `q`, or −1: anything else, including
 * invalid JSON, for the full decode to judge. Locals only: this runs for every map value.
 */
function canonicalEnd(b: Buffer, q: number, end: number): number {
  let i = q;
  const neg = b[i] === 0x2d;
  if (neg) i++;
  const first = i < end ? b[i]! : 0;
  if (first === 0x30) {
    i++;
    if (b[i] === 0x2e) {
      i++;
      const fs = i;
      while (i < end && b[i] === 0x30) i++;
      if (i - fs > 5) return -1; // below 1e-6: written with an exponent
      const ns = i;
      i = digitsEnd(b, i, end);
      const sig = i - ns;
      if (sig === 0 || sig > 15 || b[i - 1] === 0x30) return -1; // 0.0, -0.0, trailing zeros
    } else if (neg) return -1; // -0
  } else if (first >= 0x31 && first <= 0x39) {
    const is = i;
    i++;
    i = digitsEnd(b, i, end);
    const intDigits = i - is;
    if (intDigits > 15) return -1;
    if (b[i] === 0x2e) {
      i++;
      const fs = i;
      i = digitsEnd(b, i, end);
      const fd = i - fs;
      if (fd === 0 || intDigits + fd > 15 || b[i - 1] === 0x30) return -1;
    }
  } else return -1;
  const c = i < end ? b[i]! : 0;
  return c === 0x65 || c === 0x45 ? -1 : i;
}

const MAX_KEYS = 32;
const keyStarts = new Int32Array(MAX_KEYS);
const keyEnds = new Int32Array(MAX_KEYS);
const PROTO = Buffer.from('__proto__', 'latin1');

/**
 * A compact `map<double>` object at `q` (see the module doc: canonical numbers, keys a JS object
 * keeps in text order, none repeated): returns the position after it, or −1.
 */
function skipMap(b: Buffer, q: number, end: number): number {
  if (b[q] !== 0x7b) return -1;
  q++;
  if (b[q] === 0x7d) return q + 1;
  for (let k = 0; ; k++) {
    if (k >= MAX_KEYS || b[q] !== QUOTE) return -1;
    const ks = ++q;
    let c = 0;
    for (; q < end; q++) {
      c = b[q]!;
      if (c === QUOTE) break;
      if (c === 0x5c || c < 0x20 || c > 0x7e) return -1;
    }
    if (q >= end) return -1;
    const ke = q++;
    const first = b[ks]!;
    // Array-index-like keys are reordered by JS objects; __proto__ is not an own key.
    if (ke > ks && first >= 0x30 && first <= 0x39) return -1;
    if (ke - ks === 9 && sameBytes(b, ks, ke, PROTO, 0, 9)) return -1;
    for (let j = 0; j < k; j++) if (sameBytes(b, keyStarts[j]!, keyEnds[j]!, b, ks, ke)) return -1;
    keyStarts[k] = ks;
    keyEnds[k] = ke;
    if (b[q] !== COLON) return -1;
    q = canonicalEnd(b, q + 1, end);
    if (q < 0) return -1;
    c = b[q++]!;
    if (c === 0x7d) return q;
    if (c !== COMMA) return -1;
  }
}

/**
 * A `map<double>` or null at p (after optional whitespace), in the form {@link skipMap} takes:
 * returns its text's start and sets p past it, or −1. `mapEnd` is where its text ends; `mapNull`
 * whether it is the literal null.
 */
let mapEnd = 0;
let mapNull = false;
function map(b: Buffer): number {
  ws(b);
  const start = p;
  if (b[p] === 0x6e) {
    if (!literal(b, 'null')) return -1;
    mapEnd = p;
    mapNull = true;
    return start;
  }
  const q = skipMap(b, p, b.length);
  if (q < 0) return -1;
  mapNull = false;
  p = q;
  mapEnd = q;
  return start;
}

/** Field names of the two contracts, as bit flags (a repeated field: full decode). */
const F = { RequestId: 1, UserId: 2, Ts: 4, ModelVersion: 8, Context: 16, Items: 32 } as const;

/** The request_id, user_id and ts fields both contracts start with, as {@link headerField} reads them. */
const head = { request_id: '', user_id: '', userStart: 0, userEnd: 0, ts: -1 };

/**
 * Reads the value of field [ks, ke) when it is request_id, user_id or ts into {@link head};
 * returns its flag (F), 0 when the field is another one (p unmoved), −1 when unsure or repeated.
 */
function headerField(b: Buffer, ks: number, ke: number, seen: number): number {
  if (is(b, ks, ke, 'request_id')) {
    if (seen & F.RequestId || !str(b) || sEnd === sStart) return -1;
    head.request_id = b.toString('latin1', sStart, sEnd);
    return F.RequestId;
  }
  if (is(b, ks, ke, 'user_id')) {
    if (seen & F.UserId || !str(b) || sEnd === sStart) return -1;
    head.userStart = sStart;
    head.userEnd = sEnd;
    head.user_id = b.toString('latin1', sStart, sEnd);
    return F.UserId;
  }
  if (is(b, ks, ke, 'ts')) {
    if (seen & F.Ts) return -1;
    head.ts = natural(b);
    return head.ts < 0 ? -1 : F.Ts;
  }
  return 0;
}

/** The bytes of string [s, e) equal `name`. */
function is(b: Buffer, s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (b[s + i] !== name.charCodeAt(i)) return false;
  return true;
}

/** Hash of the id bytes [s, e) (idBytesHash, inline: the strings are ASCII already). */
function hashOf(b: Buffer, s: number, e: number): number {
  let h = 0x811c9dc5 ^ (e - s);
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return fmix32(h);
}

/** The end of the line after the top-level record: only whitespace may follow. */
function atEnd(b: Buffer): boolean {
  ws(b);
  return p === b.length;
}

let scratchOffsets = new Int32Array(4 * 256);
let scratchScores = new Float64Array(256);
let scratchHashes = new Int32Array(256);

/** A copy of `a` with room for `len` elements. */
function grown<A extends Int32Array | Float64Array | Uint8Array>(a: A, len: number): A {
  const b = new (a.constructor as new (n: number) => A)(len);
  b.set(a);
  return b;
}

function growRanker(n: number): void {
  const cap = Math.max(2 * scratchScores.length, n);
  scratchOffsets = grown(scratchOffsets, 4 * cap);
  scratchScores = grown(scratchScores, cap);
  scratchHashes = grown(scratchHashes, cap);
}

const ITEM_HEAD = Buffer.from('{"item_id":"', 'latin1');
const SCORE_KEY = Buffer.from('","score":', 'latin1');
const OBJECTIVES_KEY = Buffer.from(',"objectives":', 'latin1');
const FEATURES_KEY = Buffer.from(',"features":', 'latin1');

/** Whether the bytes of `l` are at `q`. */
function litAt(b: Buffer, q: number, l: Buffer): boolean {
  const n = l.length;
  if (q + n > b.length) return false;
  for (let i = 0; i < n; i++) if (b[q + i] !== l[i]) return false;
  return true;
}

/** A compact map or null at `q` ({@link skipMap}): the position after it, or −1. */
function mapAt(b: Buffer, q: number, end: number): number {
  if (b[q] === 0x6e) return b[q + 1] === 0x75 && b[q + 2] === 0x6c && b[q + 3] === 0x6c ? q + 4 : -1;
  return skipMap(b, q, end);
}

/**
 * One RankedItem at p in the compact layout producers write
 * (`{"item_id":"…","score":…,"objectives":…,"features":…}`, the two maps optional) into scratch
 * slot n, its punctuation and keys compared as constant bytes; false when the item is laid out
 * otherwise (p unchanged then: {@link rankedItem} reads it field by field).
 */
function compactItem(b: Buffer, n: number): boolean {
  const end = b.length;
  const start = p;
  let q = p;
  if (!litAt(b, q, ITEM_HEAD)) return false;
  q += ITEM_HEAD.length;
  const idS = q;
  for (; q < end; q++) {
    const c = b[q]!;
    if (c === QUOTE) break;
    if (c === 0x5c || c < 0x20 || c > 0x7e) return false;
  }
  const idE = q;
  if (idE === idS || !litAt(b, q, SCORE_KEY)) return false;
  p = q + SCORE_KEY.length;
  if (!num(b)) {
    p = start;
    return false;
  }
  const score = numValue(b);
  q = p;
  p = start;
  if (!Number.isFinite(score)) return false;
  if (litAt(b, q, OBJECTIVES_KEY)) {
    q = mapAt(b, q + OBJECTIVES_KEY.length, end);
    if (q < 0) return false;
  }
  let fS = -1;
  let fE = -1;
  if (litAt(b, q, FEATURES_KEY)) {
    const s = q + FEATURES_KEY.length;
    q = mapAt(b, s, end);
    if (q < 0) return false;
    if (b[s] !== 0x6e) {
      fS = s;
      fE = q;
    }
  }
  if (b[q] !== 0x7d) return false;
  p = q + 1;
  scratchOffsets[4 * n] = idS;
  scratchOffsets[4 * n + 1] = idE;
  scratchOffsets[4 * n + 2] = fS;
  scratchOffsets[4 * n + 3] = fE;
  scratchScores[n] = score;
  scratchHashes[n] = hashOf(b, idS, idE);
  return true;
}

/** One RankedItem at p into scratch slot n; false when unsure. */
function rankedItem(b: Buffer, n: number): boolean {
  ws(b);
  if (compactItem(b, n)) return true;
  if (!expect(b, 0x7b)) return false;
  let seen = 0;
  let idS = -1;
  let idE = -1;
  let score = Number.NaN;
  let fS = -1;
  let fE = -1;
  ws(b);
  if (b[p] === 0x7d) return false; // no item_id: the full decode says so
  for (;;) {
    if (!str(b)) return false;
    const ks = sStart;
    const ke = sEnd;
    if (!expect(b, COLON)) return false;
    if (is(b, ks, ke, 'item_id')) {
      if (seen & 1 || !str(b) || sEnd === sStart) return false;
      seen |= 1;
      idS = sStart;
      idE = sEnd;
    } else if (is(b, ks, ke, 'score')) {
      ws(b);
      if (seen & 2 || !num(b)) return false;
      seen |= 2;
      score = numValue(b);
      if (!Number.isFinite(score)) return false;
    } else if (is(b, ks, ke, 'objectives')) {
      if (seen & 4 || map(b) < 0) return false;
      seen |= 4;
    } else if (is(b, ks, ke, 'features')) {
      if (seen & 8) return false;
      seen |= 8;
      const s = map(b);
      if (s < 0) return false;
      if (!mapNull) {
        fS = s;
        fE = mapEnd;
      }
    } else return false;
    ws(b);
    const c = b[p++];
    if (c === 0x7d) break;
    if (c !== COMMA) return false;
  }
  if ((seen & 3) !== 3) return false;
  scratchOffsets[4 * n] = idS;
  scratchOffsets[4 * n + 1] = idE;
  scratchOffsets[4 * n + 2] = fS;
  scratchOffsets[4 * n + 3] = fE;
  scratchScores[n] = score;
  scratchHashes[n] = hashOf(b, idS, idE);
  return true;
}

/**
 * Parses a RankerOutput NDJSON line into columns, or returns null when the line must take the
 * full decode (see the module doc: bad, invalid or unusual input, which the full decode then
 * dead-letters or labels). `decode` decodes the line the full way, for the lazy `items` and
 * `context`.
 *
 * For a line, {@link RankerColumns}' Avro field positions read: `userStart`/`tsStart` the
 * user_id's bytes (its string content), `contextStart`/`contextEnd` the context map's text (−1
 * when null), `offsets[4i+2..3]` a candidate's features text (−1 when null); `json` is true.
 *
 * @example
 * const cols = parseRankerJson(line, jsonDecoderOrThrow('RankerOutput'));
 * if (cols !== null) cols.scores[0]; // the first candidate's score
 */
export function parseRankerJson(b: Buffer, decode: (buf: Buffer) => RankerOutput): RankerColumns | null {
  p = 0;
  if (!expect(b, 0x7b)) return null;
  let seen = 0;
  let model_version = '';
  let ctxS = -1;
  let ctxE = -1;
  let n = 0;
  ws(b);
  if (b[p] === 0x7d) return null;
  for (;;) {
    if (!str(b)) return null;
    const ks = sStart;
    const ke = sEnd;
    if (!expect(b, COLON)) return null;
    const h = headerField(b, ks, ke, seen);
    if (h < 0) return null;
    if (h > 0) seen |= h;
    else if (is(b, ks, ke, 'model_version')) {
      if (seen & F.ModelVersion || !str(b)) return null;
      seen |= F.ModelVersion;
      model_version = b.toString('latin1', sStart, sEnd);
    } else if (is(b, ks, ke, 'context')) {
      if (seen & F.Context) return null;
      seen |= F.Context;
      const s = map(b);
      if (s < 0) return null;
      if (!mapNull) {
        ctxS = s;
        ctxE = mapEnd;
      }
    } else if (is(b, ks, ke, 'items')) {
      if (seen & F.Items || !expect(b, 0x5b)) return null;
      seen |= F.Items;
      ws(b);
      if (b[p] === 0x5d) return null; // no candidates: the full path's INVALID
      for (;;) {
        if (n >= scratchScores.length) growRanker(n + 1);
        if (!rankedItem(b, n)) return null;
        n++;
        ws(b);
        const c = b[p++];
        if (c === 0x5d) break;
        if (c !== COMMA) return null;
      }
    } else return null;
    ws(b);
    const c = b[p++];
    if (c === 0x7d) break;
    if (c !== COMMA) return null;
  }
  if ((seen & ~F.Context) !== (F.RequestId | F.UserId | F.Ts | F.ModelVersion | F.Items)) return null;
  if (!atEnd(b)) return null;
  const cols = rankerSlabs(b, n, scratchScores, scratchOffsets, scratchHashes);
  if (cols === null) return null;
  return new RankerColumns(
    {
      request_id: head.request_id,
      user_id: head.user_id,
      ts: head.ts,
      model_version,
      buf: b,
      view: new DataView(b.buffer, b.byteOffset, b.length),
      n,
      offsets: cols.offsets,
      scores: cols.scores,
      hashes: cols.hashes,
      userStart: head.userStart,
      tsStart: head.userEnd,
      versionStart: -1,
      contextStart: ctxS,
      contextEnd: ctxE,
      json: true,
    },
    decode,
  );
}

let impIds = new Int32Array(2 * 64);
let impHashes = new Int32Array(64);
let impPositions = new Int32Array(64);
let impClicked = new Uint8Array(64);

function growImpression(m: number): void {
  const cap = Math.max(2 * impHashes.length, m);
  impIds = grown(impIds, 2 * cap);
  impHashes = grown(impHashes, cap);
  impPositions = grown(impPositions, cap);
  impClicked = grown(impClicked, cap);
}

/** An array of strings or null at p (the `actions` field); false when unsure. */
function strings(b: Buffer): boolean {
  ws(b);
  if (b[p] === 0x6e) return literal(b, 'null');
  if (b[p] !== 0x5b) return false;
  p++;
  ws(b);
  if (b[p] === 0x5d) {
    p++;
    return true;
  }
  for (;;) {
    if (!str(b)) return false;
    ws(b);
    const c = b[p++];
    if (c === 0x5d) return true;
    if (c !== COMMA) return false;
  }
}

/** One ShownItem at p into scratch slot m; false when unsure. */
function shownItem(b: Buffer, m: number): boolean {
  if (!expect(b, 0x7b)) return false;
  let seen = 0;
  ws(b);
  if (b[p] === 0x7d) return false;
  for (;;) {
    if (!str(b)) return false;
    const ks = sStart;
    const ke = sEnd;
    if (!expect(b, COLON)) return false;
    if (is(b, ks, ke, 'item_id')) {
      if (seen & 1 || !str(b) || sEnd === sStart) return false;
      seen |= 1;
      impIds[2 * m] = sStart;
      impIds[2 * m + 1] = sEnd;
      impHashes[m] = hashOf(b, sStart, sEnd);
    } else if (is(b, ks, ke, 'position')) {
      if (seen & 2) return false;
      seen |= 2;
      const v = natural(b);
      if (v < 1 || v > 0x7fffffff) return false;
      impPositions[m] = v;
    } else if (is(b, ks, ke, 'clicked')) {
      if (seen & 4) return false;
      seen |= 4;
      ws(b);
      if (b[p] === 0x74 && literal(b, 'true')) impClicked[m] = 1;
      else if (b[p] === 0x66 && literal(b, 'false')) impClicked[m] = 0;
      else return false;
    } else if (is(b, ks, ke, 'dwell_ms')) {
      if (seen & 8) return false;
      seen |= 8;
      ws(b);
      if (b[p] === 0x6e) {
        if (!literal(b, 'null')) return false;
      } else if (natural(b) < 0) return false;
    } else if (is(b, ks, ke, 'actions')) {
      if (seen & 16 || !strings(b)) return false;
      seen |= 16;
    } else return false;
    ws(b);
    const c = b[p++];
    if (c === 0x7d) break;
    if (c !== COMMA) return false;
  }
  return (seen & 7) === 7;
}

/**
 * Parses an Impression NDJSON line into columns, or returns null when the line must take the full
 * decode (see the module doc). `decode` decodes the line the full way, for the lazy `items`.
 *
 * @example
 * const imp = parseImpressionJson(line, jsonDecoderOrThrow('Impression'));
 * if (imp !== null) imp.positions[0]; // the first shown item's position
 */
export function parseImpressionJson(
  b: Buffer,
  decode: (buf: Buffer) => Impression,
): ImpressionColumns | null {
  p = 0;
  if (!expect(b, 0x7b)) return null;
  let seen = 0;
  let m = 0;
  ws(b);
  if (b[p] === 0x7d) return null;
  for (;;) {
    if (!str(b)) return null;
    const ks = sStart;
    const ke = sEnd;
    if (!expect(b, COLON)) return null;
    const h = headerField(b, ks, ke, seen);
    if (h < 0) return null;
    if (h > 0) seen |= h;
    else if (is(b, ks, ke, 'items')) {
      if (seen & F.Items || !expect(b, 0x5b)) return null;
      seen |= F.Items;
      ws(b);
      if (b[p] === 0x5d) p++;
      else {
        for (;;) {
          if (m >= impHashes.length) growImpression(m + 1);
          if (!shownItem(b, m)) return null;
          m++;
          ws(b);
          const c = b[p++];
          if (c === 0x5d) break;
          if (c !== COMMA) return null;
        }
      }
    } else return null;
    ws(b);
    const c = b[p++];
    if (c === 0x7d) break;
    if (c !== COMMA) return null;
  }
  if (seen !== (F.RequestId | F.UserId | F.Ts | F.Items)) return null;
  if (!atEnd(b)) return null;
  return impressionColumnsOf(
    head.request_id,
    head.user_id,
    head.ts,
    b,
    m,
    impIds,
    impHashes,
    impPositions,
    impClicked,
    decode,
  );
}
