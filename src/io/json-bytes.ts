/**
 * `Buffer.from(JSON.stringify(value))` written straight to UTF-8 bytes, for the NDJSON outputs of
 * replay and file labelling: profiled on an NDJSON → NDJSON replay, `JSON.stringify` of the labels
 * (plus the UTF-16 string it builds and its UTF-8 copy) cost about as much as parsing the input.
 * Here plain-ASCII strings are copied byte for byte, integers are written digit by digit, object
 * keys come from a cache of their encoded `"key":` bytes, and records are written one after
 * another into a slab and handed out as views of it (as src/labels/encoded.ts does for Avro).
 *
 * Same bytes as `JSON.stringify` for plain data: keys in `for … in` order (= the order
 * `JSON.stringify` uses for plain objects), `undefined`/function/symbol members left out of
 * objects and written as `null` in arrays, non-finite numbers as `null`, `-0` as `0`, strings
 * needing escapes through `JSON.stringify` itself. Anything else (a Buffer or other non-plain
 * object, `toJSON`, a bigint, a top-level `undefined`) returns null: the caller takes its usual
 * path. test/io/json-bytes.test.ts checks equality with `JSON.stringify` on arbitrary values.
 * Pure: no I/O; module state is only the slab (writing is never re-entered).
 */

const SLAB_BYTES = 256 * 1024;

/**
 * The buffer records are written into. Writers keep the position in a local in hot loops
 * (`let a = s.at` … `s.at = a`) and call {@link Slab.ensure} before each bounded step.
 *
 * - `'views'`: records are written one after another and handed out as views, valid for good (a
 *   slab is never written twice; a full one is left to its views).
 * - `'reuse'`: every record is written at the start of the same buffer (grown when a record needs
 *   more), so a record is valid only until the next one begins. For callers that copy it at once
 *   (the replay's part files): the memory stays in cache, and no fresh 256 KiB slab is allocated
 *   and faulted in every few records (~5% of the label writer's time at 200 candidates).
 *
 * @example
 * const s = new Slab('views');
 * s.begin();
 * s.ensure(2);
 * s.out[s.at++] = 0x7b;
 * s.out[s.at++] = 0x7d;
 * s.take().toString(); // '{}'
 */
export class Slab {
  out = Buffer.allocUnsafeSlow(SLAB_BYTES);
  /** `out` as a DataView, for {@link fragmentAt}. */
  view = new DataView(this.out.buffer, this.out.byteOffset, this.out.length);
  at = 0;
  /** Where the record being written starts. */
  start = 0;
  readonly #reuse: boolean;

  constructor(mode: 'views' | 'reuse') {
    this.#reuse = mode === 'reuse';
  }

  /** Starts a record at the current position (at the buffer's start when reusing). */
  begin(): void {
    if (this.#reuse) this.at = 0;
    this.start = this.at;
  }

  /**
   * Room for `extra` more bytes at `at`: the record so far moves to a new buffer when the current
   * one is full (`out`, `view` and `at` change then).
   */
  ensure(extra: number): void {
    // Small, so the writers' hot loops inline it; the move is a call of its own.
    if (this.at + extra > this.out.length) this.#grow(extra);
  }

  #grow(extra: number): void {
    const part = this.at - this.start;
    const size = Math.max(SLAB_BYTES, 2 * (part + extra));
    const slab = Buffer.allocUnsafeSlow(this.#reuse ? Math.max(size, 2 * this.out.length) : size);
    this.out.copy(slab, 0, this.start, this.at);
    this.out = slab;
    this.view = new DataView(slab.buffer, slab.byteOffset, slab.length);
    this.start = 0;
    this.at = part;
  }

  /** The record written since {@link begin}, as a view of the buffer. */
  take(): Buffer {
    const b = this.out.subarray(this.start, this.at);
    this.start = this.at;
    return b;
  }

  /** Drops the record written since {@link begin}. */
  drop(): void {
    this.at = this.start;
  }
}

const slab = new Slab('views');

/** `"key":` bytes of object keys seen so far (label and feature names: a few hundred at most). */
const KEYS = new Map<string, Buffer>();
const KEYS_MAX = 65_536;

/**
 * The bytes `"key":` of an object key (`JSON.stringify(key) + ':'` in UTF-8), cached.
 *
 * @example
 * keyBytes('rank').toString(); // '"rank":'
 */
export function keyBytes(k: string): Buffer {
  let b = KEYS.get(k);
  if (b === undefined) {
    b = Buffer.from(`${JSON.stringify(k)}:`, 'utf8');
    if (KEYS.size < KEYS_MAX) KEYS.set(k, b);
  }
  return b;
}

/**
 * Copies `b` to `o` at `a` (room checked by the caller); returns the new position. Byte by
 * byte: for the short keys and ids written here a native copy call costs more.
 */
export function bytesAt(o: Uint8Array, a: number, b: Uint8Array): number {
  const n = b.length;
  for (let i = 0; i < n; i++) o[a + i] = b[i] as number;
  return a + n;
}

/**
 * A constant ASCII text of at most 32 bytes (keys with their punctuation, `,"rank":`) as four
 * little-endian doubles (padded with spaces) and, last, its length. Eight printable ASCII bytes
 * read as a double are always a finite normal number (top byte 0x20–0x7e), so the doubles store
 * back the same bytes: four stores instead of a byte loop, ~3× faster on the label writers.
 */
export type Fragment = Float64Array;

/**
 * The {@link Fragment} of `text` (printable ASCII, at most 32 bytes).
 *
 * @example
 * fragmentAt(slab.view, slab.at, fragment(',"rank":')); // the position after the 8 bytes
 */
export function fragment(text: string): Fragment {
  if (!/^[\x20-\x7e]{0,32}$/.test(text)) throw new RangeError(`not a fragment: ${JSON.stringify(text)}`);
  const b = Buffer.alloc(32, 0x20);
  b.write(text, 'latin1');
  const f = new Float64Array(5);
  for (let i = 0; i < 4; i++) f[i] = b.readDoubleLE(8 * i);
  f[4] = text.length;
  return f;
}

/** Most bytes {@link fragmentAt} stores past the position (it writes whole doubles). */
export const FRAGMENT_MAX = 32;

/**
 * Writes a fragment at `a` of the slab's `view` (room for {@link FRAGMENT_MAX} bytes checked by
 * the caller); returns the position after its text. The bytes past the text are padding that
 * the next write overwrites or that lies beyond the record.
 */
export function fragmentAt(dv: DataView, a: number, f: Fragment): number {
  dv.setFloat64(a, f[0] as number, true);
  dv.setFloat64(a + 8, f[1] as number, true);
  dv.setFloat64(a + 16, f[2] as number, true);
  dv.setFloat64(a + 24, f[3] as number, true);
  return a + (f[4] as number);
}

function key(k: string): void {
  const b = keyBytes(k);
  slab.ensure(b.length);
  slab.at = bytesAt(slab.out, slab.at, b);
}

/** Most bytes {@link stringAt} writes for a string of `n` UTF-16 units (`\u001f` is 6). */
export function stringMax(n: number): number {
  return 6 * n + 2;
}

/**
 * Writes `JSON.stringify(s)` in UTF-8 at `a` of `o`, which has room for {@link stringMax} bytes;
 * returns the new position. Plain ASCII (ids) is copied byte by byte; control characters, '"',
 * '\\' and everything beyond ASCII take JSON.stringify's own escaping.
 *
 * @example
 * stringAt(buf, 0, 'i7'); // 4: buf holds '"i7"'
 */
export function stringAt(o: Buffer, a: number, s: string): number {
  const n = s.length;
  o[a] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7f) return a + o.write(JSON.stringify(s), a, 'utf8');
    o[a + 1 + i] = c;
  }
  o[a + 1 + n] = 0x22;
  return a + n + 2;
}

function str(s: string): void {
  slab.ensure(stringMax(s.length));
  slab.at = stringAt(slab.out, slab.at, s);
}

/** Writes an ASCII string (null, true, false). */
function lit(s: string): void {
  const n = s.length;
  slab.ensure(n);
  const o = slab.out;
  const a = slab.at;
  for (let i = 0; i < n; i++) o[a + i] = s.charCodeAt(i);
  slab.at = a + n;
}

/** Writes one byte. */
function byte(b: number): void {
  slab.ensure(1);
  slab.out[slab.at++] = b;
}

function num(x: number): void {
  slab.ensure(NUMBER_MAX);
  slab.at = numberAt(slab.out, slab.at, x);
}

/** Most bytes {@link numberAt} writes: `-1.7976931348623157e+308` is 24. */
export const NUMBER_MAX = 25;

/** 10^d for d = 0..22, all exact doubles. */
const POW10 = Array.from({ length: 23 }, (_, d) => 10 ** d);
/** Above 2^50 the short-decimal search below stops (see numberAt). */
const SHORT_MAX = 2 ** 50;

/**
 * Writes `JSON.stringify(x)` (a number's shortest round-trip digits, or `null` when not finite)
 * at `a` of `o`, which has room for {@link NUMBER_MAX} bytes; returns the new position.
 *
 * Integers below 2^53 are written digit by digit (JS prints them whole, -0 as 0). Other values in
 * [1e-6, 2^50) — where JS prints plain decimals, no exponent — look for the fewest fraction digits
 * d that give back x: m = round(|x|·10^d), x === m / 10^d (a correctly rounded division of two
 * exact doubles: exactly the double the text "m·10^-d" parses to). That is the text
 * Number.prototype.toString gives (ECMA-262 Number::toString: the fewest significant digits that
 * give back x, the nearest such when several do), because below 2^50 the steps 10^-d are wider
 * than x's rounding interval (|x|·10^d < 2^50 ⇒ ulp(x)·10^d < 1/4, so one candidate at most, and
 * the rounding error of |x|·10^d, < 1/8, cannot make Math.round miss it), and fewer fraction
 * digits means fewer significant digits here. Values with more digits (1/3, exponents) take
 * String(x). Short decimals such as features and logits copied from the input skip V8's
 * shortest-digits search and the string it allocates.
 *
 * @example
 * numberAt(buf, 0, -0.25); // 5: buf holds '-0.25'
 */
export function numberAt(o: Uint8Array, a: number, x: number): number {
  if (x === (x | 0)) return intAt(o, a, x | 0);
  const ax = x < 0 ? -x : x;
  if (ax < 9007199254740992 && Math.floor(ax) === ax) {
    if (x < 0) o[a++] = 0x2d;
    return digitsAt(o, a, ax, digitCount(ax));
  }
  if (ax >= 1e-6 && ax < SHORT_MAX) {
    let d = 1;
    if (ax < 1000) {
      // One shot at 6 fraction digits first: if any d ≤ 6 gives back x, so does 6 (the same
      // decimal with zeros appended: one candidate per d), and stripping the zeros gives the
      // fewest. Most features and logits have a few decimals; int32 arithmetic throughout.
      const y = ax * 1e6;
      const m = Math.round(y);
      const e = y - m;
      if ((e < 0 ? -e : e) <= y * 2 ** -48 && m / 1e6 === ax) {
        if (x < 0) o[a++] = 0x2d;
        const whole = Math.floor(ax) | 0;
        let frac = (m - whole * 1e6) | 0; // > 0: x is not an integer
        let digits = 6;
        for (let q = (frac / 10) | 0; frac === 10 * q; q = (frac / 10) | 0) {
          frac = q;
          digits--;
        }
        a = intAt(o, a, whole);
        o[a++] = 0x2e;
        return digitsAt(o, a, frac, digits);
      }
      d = 7;
    }
    for (; d < 23; d++) {
      const p = POW10[d] as number;
      const y = ax * p;
      if (y >= SHORT_MAX) break;
      const m = Math.round(y);
      // A match has |y − m| ≤ y·2^-52 (see above): most other d are dismissed without dividing.
      const e = y - m;
      if ((e < 0 ? -e : e) <= y * 2 ** -48 && m / p === ax) {
        if (x < 0) o[a++] = 0x2d;
        // ⌊m / p⌋ is ⌊|x|⌋ (m / p is |x|, and an integer part below 2^53 survives the
        // division's rounding); no floating remainder, which V8 leaves to a C call.
        const whole = Math.floor(ax);
        const frac = m - whole * p;
        a = digitsAt(o, a, whole, digitCount(whole));
        o[a++] = 0x2e;
        return digitsAt(o, a, frac, d); // zero-padded to d digits
      }
    }
  }
  const s = Number.isFinite(x) ? String(x) : 'null';
  const n = s.length;
  for (let i = 0; i < n; i++) o[a + i] = s.charCodeAt(i);
  return a + n;
}

/** Decimal digits of a non-negative integer below 2^53 (1 for 0). */
function digitCount(v: number): number {
  let n = 1;
  while (n < 16 && v >= (POW10[n] as number)) n++;
  return n;
}

/** The `n` lowest decimal digits of a non-negative integer below 2^53, zero-padded, at `a`. */
function digitsAt(o: Uint8Array, a: number, v: number, n: number): number {
  let i = a + n - 1;
  // Above int32, floating steps (exact: v and 10 are integers, v − r divisible by 10).
  for (; v > 0x7fffffff; i--) {
    const r = v % 10;
    o[i] = 0x30 + r;
    v = (v - r) / 10;
  }
  let w = v | 0;
  for (; i >= a; i--) {
    const q = (w / 10) | 0;
    o[i] = 0x30 + (w - 10 * q);
    w = q;
  }
  return a + n;
}

/** An int32 (-0 as 0) at `a`; returns the new position. */
function intAt(o: Uint8Array, a: number, v: number): number {
  if (v < 0) {
    o[a++] = 0x2d;
    if (v === -2147483648) return digitsAt(o, a, 2147483648, 10);
    v = -v;
  }
  // Ranks, grades, gains and labels: one to three digits, written without loops.
  if (v < 10) {
    o[a] = 0x30 + v;
    return a + 1;
  }
  if (v < 100) {
    const t = (v * 205) >> 11; // ⌊v / 10⌋ for v < 1029
    o[a] = 0x30 + t;
    o[a + 1] = 0x30 + v - 10 * t;
    return a + 2;
  }
  if (v < 1000) {
    const h = (v * 41) >> 12; // ⌊v / 100⌋ for v < 1000
    const r = v - 100 * h;
    const t = (r * 205) >> 11;
    o[a] = 0x30 + h;
    o[a + 1] = 0x30 + t;
    o[a + 2] = 0x30 + r - 10 * t;
    return a + 3;
  }
  return digitsAt(o, a, v, digitCount(v));
}

/** Writes a value; false when it is not plain data (nothing usable was written then). */
function value(v: unknown): boolean {
  switch (typeof v) {
    case 'string':
      str(v);
      return true;
    case 'number':
      num(v);
      return true;
    case 'boolean':
      lit(v ? 'true' : 'false');
      return true;
    case 'object':
      if (v === null) {
        lit('null');
        return true;
      }
      return Array.isArray(v) ? array(v) : object(v as Record<string, unknown>);
    default:
      return false;
  }
}

function array(a: readonly unknown[]): boolean {
  if (Object.getPrototypeOf(a) !== Array.prototype) return false;
  byte(0x5b);
  const n = a.length;
  for (let i = 0; i < n; i++) {
    if (i > 0) byte(0x2c);
    const x = a[i];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') lit('null');
    else if (!value(x)) return false;
  }
  byte(0x5d);
  return true;
}

function object(o: Record<string, unknown>): boolean {
  const proto = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || typeof o.toJSON === 'function') return false;
  byte(0x7b);
  let first = true;
  for (const k in o) {
    const x = o[k];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    if (!first) byte(0x2c);
    first = false;
    key(k);
    if (!value(x)) return false;
  }
  byte(0x7d);
  return true;
}

/**
 * The UTF-8 bytes of `JSON.stringify(value)`, or null when `value` is not plain data (see the
 * module comment). The result is a view into a shared slab: it stays valid (slabs are never
 * written twice), but copy it if it must outlive many more records without pinning the slab.
 *
 * @example
 * jsonBytes({ id: 'r1:pointwise', ts: 5 })?.toString(); // '{"id":"r1:pointwise","ts":5}'
 * jsonBytes(Buffer.from('x')); // null (JSON.stringify would call its toJSON)
 */
export function jsonBytes(v: unknown): Buffer | null {
  slab.begin();
  if (!value(v)) {
    slab.drop();
    return null;
  }
  return slab.take();
}
