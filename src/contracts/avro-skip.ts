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

/** What the bytes of a schema are made of: the schema reduced to what walking it needs. */
type Walk =
  | { k: 'null' }
  /** boolean, float, double, fixed: `size` bytes, whatever they hold (avsc checks none). */
  | { k: 'fixed'; size: number }
  /** int, long. */
  | { k: 'varint' }
  /** string, bytes. */
  | { k: 'lengthPrefixed' }
  /** A union (`null` for a branch of no bytes) or an enum (every branch `null`). */
  | { k: 'index'; branches: Array<Walk | null> }
  | { k: 'array'; items: Walk }
  | { k: 'map'; values: Walk }
  | RecordWalk
  /** A record named again after its definition: a call of its own function (it may be recursive). */
  | { k: 'ref'; target: RecordWalk };

interface RecordWalk {
  k: 'record';
  id: number;
  fields: Walk[];
}

/** End of the varint at `pos`, or −1. At most 7 bytes (49 bits, a safe integer); longer ones are legal Avro but are left to the decoder, which knows whether their value is safe. */
function skipVarint(buf: Uint8Array, pos: number, end: number): number {
  for (let i = 0; i < 7; i++) {
    if (pos >= end) return -1;
    if ((buf[pos++] as number) < 0x80) return pos;
  }
  return -1;
}

/** The varint at `pos` as written (zig-zag encoded: even = non-negative, value n / 2), or −1 as {@link skipVarint}. */
function rawVarint(buf: Uint8Array, pos: number, end: number): number {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < 7; i++) {
    if (pos >= end) return -1;
    const b = buf[pos++] as number;
    n += (b & 0x7f) * mul;
    if (b < 0x80) return n;
    mul *= 128;
  }
  return -1;
}

/** End of a length-prefixed value (string, bytes) at `pos`, or −1 (negative length, past `end`). */
function skipLengthPrefixed(buf: Uint8Array, pos: number, end: number): number {
  const p = skipVarint(buf, pos, end);
  if (p < 0) return -1;
  const n = rawVarint(buf, pos, end);
  if (n % 2 !== 0) return -1;
  const e = p + n / 2;
  return e <= end ? e : -1;
}

/** Reduces a schema (JSON form) to a {@link Walk}, resolving names as Avro does. */
function walkOf(schema: unknown): Walk {
  const named = new Map<string, Walk>();
  let records = 0;
  const walk = (s: Schema, ns: string | undefined): Walk => {
    if (Array.isArray(s)) {
      return { k: 'index', branches: s.map((b) => walk(b, ns)).map((w) => (w.k === 'null' ? null : w)) };
    }
    if (typeof s === 'string') {
      switch (s) {
        case 'null':
          return { k: 'null' };
        case 'boolean':
          return { k: 'fixed', size: 1 };
        case 'int':
        case 'long':
          return { k: 'varint' };
        case 'float':
          return { k: 'fixed', size: 4 };
        case 'double':
          return { k: 'fixed', size: 8 };
        case 'string':
        case 'bytes':
          return { k: 'lengthPrefixed' };
        default: {
          const full = s.includes('.') || ns === undefined ? s : `${ns}.${s}`;
          const ref = named.get(full) ?? named.get(s);
          if (ref === undefined) throw new Error(`avro-skip: unknown type ${s}`);
          return ref.k === 'record' ? { k: 'ref', target: ref } : ref;
        }
      }
    }
    const t = s.type;
    // `{ "type": "long", "logicalType": … }` and friends: the underlying type's bytes.
    if (typeof t !== 'string' || PRIMITIVES.has(t)) return walk(t, ns);
    const name = typeof s.name === 'string' ? s.name : undefined;
    const space = typeof s.namespace === 'string' ? s.namespace : ns;
    const fullName =
      name === undefined ? undefined : name.includes('.') || space === undefined ? name : `${space}.${name}`;
    switch (t) {
      case 'record':
      case 'error': {
        // Registered before its fields, so a recursive reference finds it.
        const rec: RecordWalk = { k: 'record', id: records++, fields: [] };
        if (fullName !== undefined) {
          named.set(fullName, rec);
          if (name !== undefined) named.set(name, rec);
        }
        for (const f of s.fields as Array<{ type: Schema }>) rec.fields.push(walk(f.type, space));
        return rec;
      }
      case 'enum': {
        const w: Walk = { k: 'index', branches: (s.symbols as unknown[]).map(() => null) };
        if (fullName !== undefined) named.set(fullName, w);
        return w;
      }
      case 'fixed': {
        const size = s.size;
        if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
          throw new Error(`avro-skip: fixed ${fullName} has no valid size`);
        }
        const w: Walk = { k: 'fixed', size };
        if (fullName !== undefined) named.set(fullName, w);
        return w;
      }
      case 'array':
        return { k: 'array', items: walk(s.items as Schema, ns) };
      case 'map':
        return { k: 'map', values: walk(s.values as Schema, ns) };
      default:
        return walk(t, ns);
    }
  };
  return walk(schema as Schema, undefined);
}

/*
 * The generated code. Variables: `buf`, `end`, `pos` (the position so far) and `n` (the last
 * varint read, as written: zig-zag encoded). Bounds are checked lazily but soundly: a byte is read
 * only at a position checked to be < end, positions never go back (lengths and counts are checked
 * non-negative), and the skipper returns a position only when it is ≤ end; so a string's or a
 * double's bytes are added without a check, and one past `end` is caught by the next read, the
 * next block count (bounded by the bytes left) or the final check. Only numbers computed here are
 * written into the code, never a string of the schema.
 */

/** Reads the varint at pos into `n` (as written) and moves past it; −1 when there is none. */
const READ_N =
  'if (pos >= end) return -1;\n' +
  'n = buf[pos];\n' +
  'if (n < 0x80) pos++;\n' +
  'else if ((n = rawVarint(buf, pos, end)) < 0) return -1;\n' +
  'else pos = skipVarint(buf, pos, end);\n';

/** The statements that move `pos` past a value of `w` (loop counters named by `depth`). */
function codeOf(w: Walk, depth: number, refs: Set<RecordWalk>): string {
  switch (w.k) {
    case 'null':
      return '';
    case 'fixed':
      return w.size === 0 ? '' : `pos += ${w.size};\n`;
    case 'varint':
      return (
        'if (pos >= end) return -1;\n' +
        'if (buf[pos] < 0x80) pos++;\n' +
        'else if ((pos = skipVarint(buf, pos, end)) < 0) return -1;\n'
      );
    case 'lengthPrefixed':
      return (
        // One byte, even (a length 0-63): in place; anything else (negative too) by the helper.
        'if (pos >= end) return -1;\n' +
        'n = buf[pos];\n' +
        'if ((n & 0x81) === 0) pos += 1 + (n >> 1);\n' +
        'else if ((pos = skipLengthPrefixed(buf, pos, end)) < 0) return -1;\n'
      );
    case 'index': {
      // Branch i is written as 2i; an odd value (a negative index) matches no branch.
      const bodies = w.branches.map((b) => (b === null ? '' : codeOf(b, depth, refs)));
      let code = READ_N;
      const empty: number[] = [];
      bodies.forEach((body, i) => {
        if (body === '') empty.push(2 * i);
        else code += `if (n === ${2 * i}) {\n${body}} else `;
      });
      if (empty.length === bodies.length)
        return `${READ_N}if ((n & 1) !== 0 || n >= ${2 * bodies.length}) return -1;\n`;
      return `${code}${empty.length === 0 ? 'return -1;\n' : `if (${empty.map((v) => `n !== ${v}`).join(' && ')}) return -1;\n`}`;
    }
    case 'array':
    case 'map': {
      const item =
        w.k === 'array'
          ? codeOf(w.items, depth + 1, refs)
          : codeOf({ k: 'lengthPrefixed' }, depth + 1, refs) + codeOf(w.values, depth + 1, refs);
      const c = `c${depth}`;
      // A negative count (a block with its byte size) is legal, but left to the decoder. A count
      // above the bytes left is refused, as the decoder refuses it (schemas.ts, blockCount), and
      // so is one of 2^30 items or more: the counter stays a small integer (n >> 1); with n / 2
      // V8 ran the whole skipper 1.5-2x slower.
      return (
        'for (;;) {\n' +
        READ_N +
        'if (n === 0) break;\n' +
        'if ((n & 1) !== 0 || n > 2 * (end - pos) || n >= 0x80000000) return -1;\n' +
        `for (let ${c} = n >> 1; ${c} > 0; ${c}--) {\n${item}}\n` +
        '}\n'
      );
    }
    case 'record':
      return w.fields.map((f) => codeOf(f, depth, refs)).join('');
    case 'ref':
      refs.add(w.target);
      return `if ((pos = r${w.target.id}(buf, pos, end)) < 0) return -1;\n`;
  }
}

/**
 * Compiles the skipper of a schema (JSON form, as in schemas/*.avsc).
 *
 * Generated code (`new Function`, as avsc compiles its own readers): one function per schema with
 * every type inlined (a loop per array or map, a test per union branch, a string's length read in
 * place), so a record costs a few operations per value instead of a closure call per value. A
 * record named again after its definition gets a function of its own, called there.
 *
 * @throws Error for a schema it does not know (a bug: our contracts use only standard types).
 * @example
 * const skip = compileSkipper(schemaJson('Impression'));
 * const end = skip(block, 0, block.length); // −1: let the decoder look at it
 */
export function compileSkipper(schema: unknown): Skipper {
  const refs = new Set<RecordWalk>();
  const main = codeOf(walkOf(schema), 0, refs);
  const fns: string[] = [];
  const done = new Set<RecordWalk>();
  for (let pending = [...refs]; pending.length > 0; pending = [...refs].filter((r) => !done.has(r))) {
    for (const r of pending) {
      done.add(r);
      fns.push(`function r${r.id}(buf, pos, end) {\nlet n = 0;\n${codeOf(r, 0, refs)}return pos;\n}\n`);
    }
  }
  const body =
    fns.length === 0
      ? `return function skip(buf, pos, end) {\nlet n = 0;\n${main}return pos <= end ? pos : -1;\n};`
      : // A recursive schema may nest deeper than the stack: −1, and the decoder reports it.
        `${fns.join('')}function walk(buf, pos, end) {\nlet n = 0;\n${main}return pos <= end ? pos : -1;\n}\n` +
        'return function skip(buf, pos, end) {\ntry {\nreturn walk(buf, pos, end);\n} catch (e) {\n' +
        'if (e instanceof RangeError) return -1;\nthrow e;\n}\n};';
  const factory = new Function('skipVarint', 'rawVarint', 'skipLengthPrefixed', body);
  return factory(skipVarint, rawVarint, skipLengthPrefixed) as Skipper;
}
