/**
 * Loads the Avro contracts in `schemas/*.avsc` with avsc.
 *
 * The types are created once per process. Array and map readers are hardened: a corrupt block
 * count larger than the bytes left fails at once instead of looping or allocating billions of
 * slots (avsc trusts the count).
 */
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { RankdistillError } from '../errors.ts';
import type {
  DeadLetter,
  Impression,
  ListwiseLabels,
  PairwiseLabels,
  PointwiseLabels,
  RankerOutput,
  SnapshotAnnouncement,
} from './types.gen.ts';

/** Record type of every contract, by schema name. */
export interface Contracts {
  RankerOutput: RankerOutput;
  Impression: Impression;
  PointwiseLabels: PointwiseLabels;
  PairwiseLabels: PairwiseLabels;
  ListwiseLabels: ListwiseLabels;
  SnapshotAnnouncement: SnapshotAnnouncement;
  DeadLetter: DeadLetter;
}

export type ContractName = keyof Contracts;

export const CONTRACT_NAMES = [
  'RankerOutput',
  'Impression',
  'PointwiseLabels',
  'PairwiseLabels',
  'ListwiseLabels',
  'SnapshotAnnouncement',
  'DeadLetter',
] as const satisfies readonly ContractName[];

/** Directory holding the `.avsc` files shipped with the package. */
export const SCHEMA_DIR = new URL('../../schemas/', import.meta.url);

const cache = new Map<ContractName, avro.Type>();

/** The raw JSON schema of a contract, as written in `schemas/<name>.avsc`. */
export function schemaJson(name: ContractName): avro.Schema {
  try {
    return JSON.parse(readFileSync(new URL(`${name}.avsc`, SCHEMA_DIR), 'utf8')) as avro.Schema;
  } catch (cause) {
    throw new RankdistillError('SCHEMA_INVALID', `cannot read schemas/${name}.avsc: ${String(cause)}`, {
      cause,
    });
  }
}

/**
 * The avsc type of a contract.
 *
 * @example
 * const t = avroType('RankerOutput'); t.isValid(record);
 */
export function avroType<N extends ContractName>(name: N): avro.Type {
  let t = cache.get(name);
  if (t === undefined) {
    try {
      t = avro.Type.forSchema(schemaJson(name), { wrapUnions: 'auto', typeHook: boundedTypeHook });
    } catch (cause) {
      throw new RankdistillError(
        'SCHEMA_INVALID',
        `schemas/${name}.avsc is not a valid Avro schema: ${String(cause)}`,
        {
          cause,
        },
      );
    }
    cache.set(name, t);
  }
  return t;
}

/** Minimal view of avsc's internal Tap used by the hardened readers. */
interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
  writeLong(n: number): void;
  writeString(s: string): void;
}
interface Readable {
  _read(tap: Tap): unknown;
}
interface Writable {
  _write(tap: Tap, v: unknown): void;
}

function blockCount(tap: Tap): number {
  let n = tap.readLong();
  if (n < 0) {
    n = -n;
    tap.skipLong(); // block size in bytes, unused
  }
  // Every item of our contracts takes at least one byte, so a count larger than the bytes left
  // can only come from corrupt input.
  if (tap.pos > tap.buf.length) throw new Error('truncated: data ends inside an array or map');
  if (n > tap.buf.length - tap.pos) {
    throw new Error(`block count ${n} exceeds the ${Math.max(0, tap.buf.length - tap.pos)} bytes left`);
  }
  return n;
}

/**
 * avsc's array and map readers with the block count bounded by the bytes left (avsc types are
 * frozen, so the hardened readers are subclasses installed through `typeHook`).
 */
class BoundedArrayType extends avro.types.ArrayType {
  _read(tap: Tap): unknown[] {
    const items = this.itemsType as unknown as Readable;
    const out: unknown[] = [];
    for (let n = blockCount(tap); n !== 0; n = blockCount(tap)) {
      while (n-- > 0) out.push(items._read(tap));
    }
    return out;
  }
}

class BoundedMapType extends avro.types.MapType {
  /** Last key sequence read, its compiled literal constructor (see {@link compileShape}) and its keys' wire bytes. */
  #shape: MapShape | undefined;
  /** Last key sequence written and its keys' wire bytes. */
  #wshape: { keys: string[]; wire: Uint8Array[] } | undefined;

  _read(tap: Tap): Record<string, unknown> {
    const values = this.valuesType as unknown as Readable;
    // avsc resolvers (writer schema ≠ reader) borrow this method with `this` = a Resolver: no cache.
    const shape = #shape in this ? this.#shape : undefined;
    if (shape !== undefined) {
      // Fast path: one block holding the last key sequence, each key compared as wire bytes
      // (no string is created for it). Anything else rewinds and takes the generic path.
      const start = tap.pos;
      const n = shape.keys.length;
      if (blockCount(tap) === n) {
        const vals = new Array<unknown>(n);
        let i = 0;
        for (; i < n; i++) {
          if (!skipKey(tap, shape.wire[i] as Uint8Array)) break;
          vals[i] = values._read(tap);
        }
        if (i === n && blockCount(tap) === 0) return shape.make(vals);
      }
      tap.pos = start;
    }
    const keys: string[] = [];
    const vals: unknown[] = [];
    for (let n = blockCount(tap); n !== 0; n = blockCount(tap)) {
      while (n-- > 0) {
        keys.push(tap.readString());
        vals.push(values._read(tap));
      }
    }
    if (shape !== undefined && sameKeys(shape.keys, keys)) return shape.make(vals);
    const compiled = compileShape(keys);
    if (compiled !== undefined) {
      if (#shape in this) this.#shape = { keys, make: compiled, wire: keys.map(wireString) };
      return compiled(vals);
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) out[keys[i] as string] = vals[i];
    return out;
  }

  /**
   * avsc's map writer (same bytes: one block of all keys, then 0), with the keys of the last key
   * sequence written from cached wire bytes instead of being measured and encoded again.
   */
  _write(tap: Tap, val: unknown): void {
    if (!val || typeof val !== 'object' || Array.isArray(val)) {
      (avro.types.MapType.prototype as unknown as Writable)._write.call(this, tap, val); // throws avsc's error
      return;
    }
    const m = val as Record<string, unknown>;
    const values = this.valuesType as unknown as Writable;
    const keys = Object.keys(m);
    const n = keys.length;
    if (n !== 0) {
      let ws = this.#wshape;
      if (ws === undefined || !sameKeys(ws.keys, keys)) {
        ws =
          n <= 16 && keys.every((k) => k.length <= KEY_MAX_LEN)
            ? { keys, wire: keys.map(wireString) }
            : undefined;
        if (ws !== undefined) this.#wshape = ws;
      }
      tap.writeLong(n);
      for (let i = 0; i < n; i++) {
        const key = keys[i] as string;
        if (ws === undefined) tap.writeString(key);
        else writeRaw(tap, ws.wire[i] as Uint8Array);
        values._write(tap, m[key]);
      }
    }
    tap.writeLong(0);
  }
}

interface MapShape {
  keys: string[];
  make: (v: unknown[]) => Record<string, unknown>;
  /** Each key as Avro writes it: zig-zag varint length, then UTF-8. */
  wire: Uint8Array[];
}

/** An Avro string's bytes (zig-zag varint length + UTF-8), as Tap.writeString writes them. */
function wireString(s: string): Uint8Array {
  const utf8 = Buffer.from(s, 'utf8');
  const head: number[] = [];
  for (let z = utf8.length * 2; ; z = Math.floor(z / 128)) {
    if (z < 128) {
      head.push(z);
      break;
    }
    head.push((z & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from(head), utf8]);
}

/** If the tap's next bytes are exactly `wire`, consumes them and returns true. */
function skipKey(tap: Tap, wire: Uint8Array): boolean {
  const buf = tap.buf;
  const pos = tap.pos;
  const n = wire.length;
  if (pos + n > buf.length) return false;
  for (let i = 0; i < n; i++) if (buf[pos + i] !== wire[i]) return false;
  tap.pos = pos + n;
  return true;
}

/** Appends bytes at the tap's position (out-of-range writes are dropped, like avsc's own: the tap then reports invalid). */
function writeRaw(tap: Tap, wire: Uint8Array): void {
  const buf = tap.buf;
  const pos = tap.pos;
  const n = wire.length;
  for (let i = 0; i < n; i++) buf[pos + i] = wire[i] as number;
  tap.pos = pos + n;
}

/**
 * avsc's string writer with an ASCII fast path: short strings (< 64 UTF-16 units, the length fits
 * one varint byte) are written in one pass without measuring them with Buffer.byteLength first;
 * any other string, or one with a non-ASCII character, takes avsc's writer. Same bytes.
 */
class FastStringType extends avro.types.StringType {
  _write(tap: Tap, val: unknown): void {
    if (typeof val !== 'string') {
      (avro.types.StringType.prototype as unknown as Writable)._write.call(this, tap, val); // throws avsc's error
      return;
    }
    const n = val.length;
    const buf = tap.buf;
    const pos = tap.pos;
    if (n < 64 && pos + 1 + n <= buf.length) {
      buf[pos] = n << 1;
      let i = 0;
      for (; i < n; i++) {
        const c = val.charCodeAt(i);
        if (c >= 0x80) break;
        buf[pos + 1 + i] = c;
      }
      if (i === n) {
        tap.pos = pos + 1 + n;
        return;
      }
    }
    tap.writeString(val);
  }
}

function sameKeys(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Maps of one schema field usually carry the same few keys in the same order (`ctr`, `like`,
 * `dwell`). Filling `{}` with computed keys goes through V8's slow keyed-store path (~200 ns an
 * entry, most of the decode time of a 200-candidate RankerOutput); an object literal of a fixed
 * shape is built in a few ns. The literal is compiled once per key sequence; keys are embedded
 * with JSON.stringify (a valid, inert JS string literal), and unusual sequences (duplicates,
 * `__proto__`, long) keep the generic path.
 */
function compileShape(keys: string[]): ((v: unknown[]) => Record<string, unknown>) | undefined {
  if (keys.length === 0 || keys.length > 16 || new Set(keys).size !== keys.length) return undefined;
  if (keys.some((k) => k === '__proto__' || k.length > KEY_MAX_LEN)) return undefined;
  const body = `return {${keys.map((k, i) => `${JSON.stringify(k)}: v[${i}]`).join(', ')}};`;
  return new Function('v', body) as (v: unknown[]) => Record<string, unknown>;
}

const KEY_MAX_LEN = 64;

/**
 * `["null", X]` unions (every optional field of our contracts) with a branch test specialized to
 * X: avsc's generic writer classifies each value into a bucket by string (`getValueBucket`) and
 * looks the branch up in an object, on every optional field of every item. The tests below are
 * exactly avsc's buckets for these branch types, so the same values are accepted, with the same
 * bytes; anything else goes to avsc's writer, which throws its usual error.
 */
class NullableNumberUnion extends avro.types.UnwrappedUnionType {
  _write(tap: Tap, val: unknown): void {
    if (val === null) tap.writeLong(0);
    else if (typeof val === 'number') {
      tap.writeLong(1);
      (this.types[1] as unknown as Writable)._write(tap, val);
    } else (avro.types.UnwrappedUnionType.prototype as unknown as Writable)._write.call(this, tap, val);
  }
}
class NullableBooleanUnion extends avro.types.UnwrappedUnionType {
  _write(tap: Tap, val: unknown): void {
    if (val === null) tap.writeLong(0);
    else if (typeof val === 'boolean') {
      tap.writeLong(1);
      (this.types[1] as unknown as Writable)._write(tap, val);
    } else (avro.types.UnwrappedUnionType.prototype as unknown as Writable)._write.call(this, tap, val);
  }
}
class NullableStringUnion extends avro.types.UnwrappedUnionType {
  _write(tap: Tap, val: unknown): void {
    if (val === null) tap.writeLong(0);
    else if (typeof val === 'string') {
      tap.writeLong(1);
      (this.types[1] as unknown as Writable)._write(tap, val);
    } else (avro.types.UnwrappedUnionType.prototype as unknown as Writable)._write.call(this, tap, val);
  }
}
class NullableMapUnion extends avro.types.UnwrappedUnionType {
  _write(tap: Tap, val: unknown): void {
    if (val === null) tap.writeLong(0);
    else if (typeof val === 'object' && !Array.isArray(val) && !Buffer.isBuffer(val)) {
      tap.writeLong(1);
      (this.types[1] as unknown as Writable)._write(tap, val);
    } else (avro.types.UnwrappedUnionType.prototype as unknown as Writable)._write.call(this, tap, val);
  }
}

const NULLABLE_UNIONS: Record<string, unknown> = {
  double: NullableNumberUnion,
  float: NullableNumberUnion,
  int: NullableNumberUnion,
  long: NullableNumberUnion,
  boolean: NullableBooleanUnion,
  string: NullableStringUnion,
  map: NullableMapUnion,
};

/** The specialized class of a `["null", X]` union schema, or undefined (avsc decides). */
function nullableUnion(schema: unknown[]): Ctor | undefined {
  if (schema.length !== 2 || schema[0] !== 'null') return undefined;
  const x = schema[1];
  let t: unknown;
  if (typeof x === 'string') t = x;
  else if (typeof x === 'object' && x !== null && !Array.isArray(x)) {
    if ((x as { logicalType?: unknown }).logicalType !== undefined) return undefined;
    t = (x as { type?: unknown }).type;
  }
  return typeof t === 'string' && Object.hasOwn(NULLABLE_UNIONS, t)
    ? (NULLABLE_UNIONS[t] as Ctor)
    : undefined;
}

type Ctor = new (schema: unknown, opts: unknown) => avro.Type;

/** `typeHook` that swaps in the bounded readers. */
export function boundedTypeHook(schema: avro.Schema, opts: unknown): avro.Type | undefined {
  if (Array.isArray(schema)) {
    const U = nullableUnion(schema);
    return U === undefined ? undefined : new U(schema, opts);
  }
  if (typeof schema !== 'object' || schema === null) return undefined;
  const t = (schema as { type?: unknown }).type;
  if (t === 'array') return new (BoundedArrayType as unknown as Ctor)(schema, opts);
  if (t === 'map') return new (BoundedMapType as unknown as Ctor)(schema, opts);
  if (t === 'string' && (schema as { logicalType?: unknown }).logicalType === undefined)
    return new (FastStringType as unknown as Ctor)(schema, opts);
  return undefined;
}
