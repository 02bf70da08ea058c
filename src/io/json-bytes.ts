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
let out = Buffer.allocUnsafeSlow(SLAB_BYTES);
let at = 0;
/** Where the record being written starts. */
let recStart = 0;

/** Room for `extra` more bytes: a full slab is left to its views and the record so far moves on. */
function ensure(extra: number): void {
  if (at + extra <= out.length) return;
  const part = at - recStart;
  const slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, 2 * (part + extra)));
  out.copy(slab, 0, recStart, at);
  out = slab;
  recStart = 0;
  at = part;
}

/** `"key":` bytes of object keys seen so far (label and feature names: a few hundred at most). */
const KEYS = new Map<string, Buffer>();
const KEYS_MAX = 65_536;

function key(k: string): void {
  let b = KEYS.get(k);
  if (b === undefined) {
    b = Buffer.from(`${JSON.stringify(k)}:`, 'utf8');
    if (KEYS.size < KEYS_MAX) KEYS.set(k, b);
  }
  const n = b.length;
  ensure(n);
  for (let i = 0; i < n; i++) out[at + i] = b[i] as number;
  at += n;
}

function str(s: string): void {
  const n = s.length;
  ensure(n + 2);
  out[at] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    // Control characters, '"', '\\' and everything beyond ASCII: JSON.stringify's own escaping.
    // Bytes are copied one by one: Buffer#write's native call costs more than these short ids.
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7f) {
      const j = JSON.stringify(s);
      ensure(3 * j.length);
      at += out.write(j, at, 'utf8');
      return;
    }
    out[at + 1 + i] = c;
  }
  out[at + 1 + n] = 0x22;
  at += n + 2;
}

/** Writes an ASCII string (a number's digits, null, true, false). */
function ascii(s: string): void {
  const n = s.length;
  ensure(n);
  for (let i = 0; i < n; i++) out[at + i] = s.charCodeAt(i);
  at += n;
}

const lit = ascii;

function num(x: number): void {
  if (x === (x | 0)) {
    // int32, -0 included (written as 0, as JSON.stringify does)
    ensure(11);
    let v = x | 0;
    if (v < 0) {
      out[at++] = 0x2d;
      if (v === -2147483648) {
        ascii('2147483648');
        return;
      }
      v = -v;
    }
    if (v < 10) {
      out[at++] = 0x30 + v;
      return;
    }
    let digits = 1;
    for (let t = v; t >= 10; t = (t / 10) | 0) digits++;
    for (let i = at + digits - 1; i >= at; i--) {
      out[i] = 0x30 + (v % 10);
      v = (v / 10) | 0;
    }
    at += digits;
    return;
  }
  if (!Number.isFinite(x)) {
    lit('null');
    return;
  }
  ascii(String(x));
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
  ensure(1);
  out[at++] = 0x5b;
  const n = a.length;
  for (let i = 0; i < n; i++) {
    if (i > 0) {
      ensure(1);
      out[at++] = 0x2c;
    }
    const x = a[i];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') lit('null');
    else if (!value(x)) return false;
  }
  ensure(1);
  out[at++] = 0x5d;
  return true;
}

function object(o: Record<string, unknown>): boolean {
  const proto = Object.getPrototypeOf(o);
  if ((proto !== Object.prototype && proto !== null) || typeof o.toJSON === 'function') return false;
  ensure(1);
  out[at++] = 0x7b;
  let first = true;
  for (const k in o) {
    const x = o[k];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    if (!first) {
      ensure(1);
      out[at++] = 0x2c;
    }
    first = false;
    key(k);
    if (!value(x)) return false;
  }
  ensure(1);
  out[at++] = 0x7d;
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
  recStart = at;
  if (!value(v)) {
    at = recStart;
    return null;
  }
  return out.subarray(recStart, at);
}
