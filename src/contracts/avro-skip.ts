/**
 * Finds where an Avro record ends without decoding it: a skipper compiled once from a schema.
 *
 * Why: records in an Avro object container block are concatenated with no length in front, so a
 * reader must walk a record to find the next. Decoding each record into objects only to find its
 * end cost the file replay most of its time, while the labeler's column parsers
 * (ranker-columns.ts, impression-columns.ts) want the record's bytes and nothing else. Walking the
 * bytes is several times cheaper than building the objects.
 *
 * The contract: the skipper is at most as lenient as avsc's decoder with our type hooks. When it
 * returns an end, decoding at the same start succeeds and ends at the same byte; it returns −1 on
 * anything unusual (negative lengths or block counts, union or enum indexes out of range, varints
 * that may not hold a safe integer, bytes past the end), where the caller falls back to decoding,
 * which then reports the error as before. So splitting by the skipper never changes which records
 * a file holds or how a bad one is reported.
 *
 * Pure: no I/O.
 */

/** Returns the end of the value starting at `pos` (≤ `end`), or −1 (see the module doc). */
export type Skipper = (buf: Uint8Array, pos: number, end: number) => number;

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'bytes']);

type Schema = string | Schema[] | { type: Schema; [k: string]: unknown };

/**
 * A varint's end, or −1. At most 7 bytes (49 bits, a safe integer); longer ones are legal Avro but
 * are left to the decoder, which knows whether their value is safe.
 */
function varintEnd(buf: Uint8Array, pos: number, end: number): number {
  for (let i = 0; i < 7; i++) {
    if (pos >= end) return -1;
    if ((buf[pos++] as number) < 0x80) return pos;
  }
  return -1;
}

/** Value of the varint at pos (zig-zag decoded); the caller checked it with {@link varintEnd}. */
function varintValue(buf: Uint8Array, pos: number): number {
  let n = 0;
  let mul = 1;
  for (;;) {
    const b = buf[pos++] as number;
    n += (b & 0x7f) * mul;
    if (b < 0x80) break;
    mul *= 128;
  }
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** The skipper of a length-prefixed value (string, bytes). */
const skipLengthPrefixed: Skipper = (buf, pos, end) => {
  const p = varintEnd(buf, pos, end);
  if (p < 0) return -1;
  const len = varintValue(buf, pos);
  if (len < 0 || p + len > end) return -1;
  return p + len;
};

const skipVarint: Skipper = varintEnd;

function fixedSkipper(size: number): Skipper {
  return (_buf, pos, end) => (pos + size <= end ? pos + size : -1);
}

/** Blocks of `count` items (array) or key/value pairs (map), ended by a 0 count. */
function blocksSkipper(item: Skipper): Skipper {
  return (buf, pos, end) => {
    for (;;) {
      const p = varintEnd(buf, pos, end);
      if (p < 0) return -1;
      const count = varintValue(buf, pos);
      pos = p;
      if (count === 0) return pos;
      if (count < 0) return -1; // legal (a block with a byte size), left to the decoder
      for (let i = 0; i < count; i++) {
        pos = item(buf, pos, end);
        if (pos < 0) return -1;
      }
    }
  };
}

function indexSkipper(n: number, branch: (i: number) => Skipper | null): Skipper {
  return (buf, pos, end) => {
    const p = varintEnd(buf, pos, end);
    if (p < 0) return -1;
    const i = varintValue(buf, pos);
    if (i < 0 || i >= n) return -1;
    const s = branch(i);
    return s === null ? p : s(buf, p, end);
  };
}

/**
 * Compiles the skipper of a schema (JSON form, as in schemas/*.avsc).
 *
 * @throws Error for a schema it does not know (a bug: our contracts use only standard types).
 * @example
 * const skip = compileSkipper(schemaJson('Impression'));
 * const end = skip(block, 0, block.length); // −1: let the decoder look at it
 */
export function compileSkipper(schema: unknown): Skipper {
  const named = new Map<string, Skipper>();
  const compile = (s: Schema, ns: string | undefined): Skipper => {
    if (Array.isArray(s)) {
      const branches = s.map((b) => compile(b, ns));
      const nulls = s.map(
        (b) => b === 'null' || (typeof b === 'object' && !Array.isArray(b) && b.type === 'null'),
      );
      return indexSkipper(branches.length, (i) => (nulls[i] ? null : (branches[i] as Skipper)));
    }
    if (typeof s === 'string') {
      switch (s) {
        case 'null':
          return (_b, pos) => pos;
        case 'boolean':
          return fixedSkipper(1);
        case 'int':
        case 'long':
          return skipVarint;
        case 'float':
          return fixedSkipper(4);
        case 'double':
          return fixedSkipper(8);
        case 'string':
        case 'bytes':
          return skipLengthPrefixed;
        default: {
          const full = s.includes('.') || ns === undefined ? s : `${ns}.${s}`;
          const ref = named.get(full) ?? named.get(s);
          if (ref === undefined) throw new Error(`avro-skip: unknown type ${s}`);
          return ref;
        }
      }
    }
    const t = s.type;
    // `{ "type": "long", "logicalType": … }` and friends: the underlying type's bytes.
    if (typeof t !== 'string' || PRIMITIVES.has(t)) return compile(t, ns);
    const name = typeof s.name === 'string' ? s.name : undefined;
    const space = typeof s.namespace === 'string' ? s.namespace : ns;
    const fullName =
      name === undefined ? undefined : name.includes('.') || space === undefined ? name : `${space}.${name}`;
    switch (t) {
      case 'record':
      case 'error': {
        // Registered before its fields compile, so a recursive reference finds it.
        let fields: Skipper[] = [];
        const rec: Skipper = (buf, pos, end) => {
          for (let i = 0; i < fields.length && pos >= 0; i++) pos = (fields[i] as Skipper)(buf, pos, end);
          return pos;
        };
        if (fullName !== undefined) {
          named.set(fullName, rec);
          if (name !== undefined) named.set(name, rec);
        }
        fields = (s.fields as Array<{ type: Schema }>).map((f) => compile(f.type, space));
        return rec;
      }
      case 'enum': {
        const sk = indexSkipper((s.symbols as unknown[]).length, () => null);
        if (fullName !== undefined) named.set(fullName, sk);
        return sk;
      }
      case 'fixed': {
        const sk = fixedSkipper(s.size as number);
        if (fullName !== undefined) named.set(fullName, sk);
        return sk;
      }
      case 'array':
        return blocksSkipper(compile(s.items as Schema, ns));
      case 'map': {
        const value = compile(s.values as Schema, ns);
        return blocksSkipper((buf, pos, end) => {
          const p = skipLengthPrefixed(buf, pos, end);
          return p < 0 ? -1 : value(buf, p, end);
        });
      }
      default:
        return compile(t, ns);
    }
  };
  return compile(schema as Schema, undefined);
}
