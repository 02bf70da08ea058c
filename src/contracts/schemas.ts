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
}
interface Readable {
  _read(tap: Tap): unknown;
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
  /** Last key sequence seen and a compiled literal constructor for it (see {@link buildMap}). */
  #shape: { keys: string[]; make: (v: unknown[]) => Record<string, unknown> } | undefined;

  _read(tap: Tap): Record<string, unknown> {
    const values = this.valuesType as unknown as Readable;
    const keys: string[] = [];
    const vals: unknown[] = [];
    for (let n = blockCount(tap); n !== 0; n = blockCount(tap)) {
      while (n-- > 0) {
        keys.push(tap.readString());
        vals.push(values._read(tap));
      }
    }
    // avsc resolvers (writer schema ≠ reader) borrow this method with `this` = a Resolver: no cache.
    const shape = #shape in this ? this.#shape : undefined;
    if (shape !== undefined && sameKeys(shape.keys, keys)) return shape.make(vals);
    const compiled = compileShape(keys);
    if (compiled !== undefined) {
      if (#shape in this) this.#shape = { keys, make: compiled };
      return compiled(vals);
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) out[keys[i] as string] = vals[i];
    return out;
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

type Ctor = new (schema: unknown, opts: unknown) => avro.Type;

/** `typeHook` that swaps in the bounded readers. */
export function boundedTypeHook(schema: avro.Schema, opts: unknown): avro.Type | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const t = (schema as { type?: unknown }).type;
  if (t === 'array') return new (BoundedArrayType as unknown as Ctor)(schema, opts);
  if (t === 'map') return new (BoundedMapType as unknown as Ctor)(schema, opts);
  return undefined;
}
