/**
 * Encoding and decoding of contract records: plain Avro binary, the Confluent wire format
 * (magic byte 0 + 4-byte big-endian schema id + Avro binary) and JSON.
 *
 * Decoders never throw: they return a {@link Decoded} with either the value or a typed
 * {@link DecodeError} carrying the reason, so bad input can be dead-lettered.
 */
import { isUtf8 } from 'node:buffer';
import type avro from 'avsc';
import { DecodeError, RankdistillError } from '../errors.ts';
import { avroType, type ContractName, type Contracts } from './schemas.ts';

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: DecodeError };

/** Wire formats accepted on input. */
export type WireFormat = 'avro' | 'confluent' | 'json';

const MAGIC = 0;

function fail<T>(name: ContractName, message: string, cause?: unknown, requestId?: string): Decoded<T> {
  const details = requestId === undefined ? { name } : { name, requestId };
  return {
    ok: false,
    error: new DecodeError(`${name}: ${message}`, cause === undefined ? { details } : { cause, details }),
  };
}

const REPLACEMENT = '\uFFFD';

/**
 * The first id of an input record (request_id, user_id, items[i].item_id) holding U+FFFD, or null.
 * Invalid UTF-8 decodes to U+FFFD (Avro strings and JSON text are UTF-8), and two different byte
 * strings would then become one id and join: such a record is refused (a dead letter), never
 * rewritten. A literal U+FFFD in an id is refused likewise: it cannot be told apart afterwards.
 * Only the generic decoders call this: the column parsers take ASCII ids only.
 *
 * @example
 * replacedId('RankerOutput', { request_id: 'r1', user_id: 'u\uFFFD', items: [] }); // 'user_id'
 */
export function replacedId(name: ContractName, v: unknown): string | null {
  if (name !== 'RankerOutput' && name !== 'Impression') return null;
  const r = v as { request_id: string; user_id: string; items: { item_id: string }[] };
  if (r.request_id.includes(REPLACEMENT)) return 'request_id';
  if (r.user_id.includes(REPLACEMENT)) return 'user_id';
  const items = r.items;
  for (let i = 0; i < items.length; i++) {
    if (items[i]!.item_id.includes(REPLACEMENT)) return `items[${i}].item_id`;
  }
  return null;
}

/** The request_id of a (possibly invalid) decoded record, when it is a clean string: for dead letters. */
function requestIdOf(v: unknown): string | undefined {
  const id = v !== null && typeof v === 'object' ? (v as { request_id?: unknown }).request_id : undefined;
  return typeof id === 'string' && id.length > 0 && !id.includes(REPLACEMENT) ? id : undefined;
}

/**
 * The decode failure of a record whose id holds U+FFFD (see {@link replacedId}), or null.
 *
 * @example
 * const bad = invalidIdFailure('Impression', value); if (bad) return bad;
 */
export function invalidIdFailure<T>(name: ContractName, value: unknown): Decoded<T> | null {
  const field = replacedId(name, value);
  if (field === null) return null;
  const id = field.startsWith('items[')
    ? (value as { items: { item_id: string }[] }).items[Number(/\d+/.exec(field)?.[0])]?.item_id
    : (value as Record<string, string>)[field];
  return fail(
    name,
    `${field} is not valid UTF-8 (it decodes to ${JSON.stringify(id)}: U+FFFD, the replacement character, would make different ids collide)`,
    undefined,
    requestIdOf(value),
  );
}

function invalidPaths(t: avro.Type, value: unknown): string[] {
  const paths: string[] = [];
  t.isValid(value, {
    errorHook: (path: string[], v: unknown, type: avro.Type) => {
      const shown = typeof v === 'string' ? JSON.stringify(v).slice(0, 40) : String(v).slice(0, 40);
      paths.push(`${path.join('.') || '<root>'}: expected ${typeName(type)}, found ${shown}`);
    },
  });
  return paths;
}

function typeName(t: avro.Type): string {
  return t.name ?? t.typeName;
}

/** Bytes of the largest scratch buffer kept between calls (larger records get a one-off buffer). */
const SCRATCH_MAX = 8 << 20;
let scratch = Buffer.allocUnsafeSlow(64 << 10);

/**
 * `t.toBuffer(v)` without its double write: avsc's toBuffer encodes into a fixed 1 KiB buffer and,
 * when the record does not fit (every label list of more than a few candidates), walks the whole
 * record a second time into a fresh buffer. Here the scratch buffer grows to the largest record
 * seen (up to {@link SCRATCH_MAX}), so a record is walked once and copied out. Same bytes: both
 * run avsc's own `_write`.
 */
function encodeWithScratch(t: avro.Type, v: unknown): Buffer {
  let pos = t.encode(v, scratch, 0);
  if (pos < 0) {
    // encode returns minus the missing bytes when the buffer is too small.
    const need = scratch.length - pos;
    const grown = Buffer.allocUnsafeSlow(Math.max(need, 2 * scratch.length));
    if (grown.length <= SCRATCH_MAX) scratch = grown;
    pos = t.encode(v, grown, 0);
    return Buffer.from(grown.subarray(0, pos));
  }
  return Buffer.from(scratch.subarray(0, pos));
}

/**
 * Encodes a record as plain Avro binary.
 *
 * @throws RankdistillError ENCODE_FAILED naming every invalid field.
 * @example
 * const buf = encodeAvro('RankerOutput', record);
 */
export function encodeAvro<N extends ContractName>(name: N, record: Contracts[N]): Buffer {
  const t = avroType(name);
  try {
    return encodeWithScratch(t, record);
  } catch (cause) {
    const paths = invalidPaths(t, record);
    throw new RankdistillError(
      'ENCODE_FAILED',
      `${name}: cannot encode record: ${paths.join('; ') || String(cause)}`,
      {
        cause,
        details: { name, paths },
      },
    );
  }
}

/**
 * Decodes plain Avro binary written with our schema. Trailing bytes are an error.
 *
 * @example
 * const r = decodeAvro('Impression', buf); if (r.ok) use(r.value); else deadLetter(r.error.message);
 */
export function decodeAvro<N extends ContractName>(
  name: N,
  buf: Buffer,
  writer?: avro.Type,
): Decoded<Contracts[N]> {
  return decodeAt(name, buf, 0, writer);
}

const resolvers = new WeakMap<avro.Type, Map<ContractName, avro.Type>>();

function decodeAt<N extends ContractName>(
  name: N,
  buf: Buffer,
  start: number,
  writer?: avro.Type,
): Decoded<Contracts[N]> {
  if (!Buffer.isBuffer(buf)) return fail(name, `expected a Buffer, found ${typeof buf}`);
  if (buf.length <= start) return fail(name, `empty payload (${buf.length} bytes)`);
  const reader = avroType(name);
  let resolver: avro.Type | undefined;
  if (writer !== undefined && writer !== reader) {
    let perWriter = resolvers.get(writer);
    if (perWriter === undefined) {
      perWriter = new Map();
      resolvers.set(writer, perWriter);
    }
    resolver = perWriter.get(name);
    if (resolver === undefined) {
      try {
        resolver = reader.createResolver(writer) as unknown as avro.Type;
      } catch (cause) {
        return fail(name, `writer schema cannot be resolved against ours: ${String(cause)}`, cause);
      }
      perWriter.set(name, resolver);
    }
  }
  let res: { value: unknown; offset: number };
  try {
    res = reader.decode(buf, start, resolver as never) as { value: unknown; offset: number };
  } catch (cause) {
    return fail(name, `corrupt Avro data: ${String((cause as Error)?.message ?? cause)}`, cause);
  }
  if (res.offset < 0) return fail(name, `truncated Avro data (${buf.length - start} bytes is too short)`);
  if (res.offset !== buf.length) {
    return fail(
      name,
      `${buf.length - res.offset} trailing bytes after the record (wrong schema or corrupt data)`,
    );
  }
  // No isValid() pass here: a value read by avsc is of its schema by construction (bad union
  // indexes and unsafe longs throw above), and the check cost ~10% of a decode. The fast-check
  // garbage tests assert decoded values are valid.
  return invalidIdFailure(name, res.value) ?? { ok: true, value: res.value as Contracts[N] };
}

/**
 * Encodes in the Confluent wire format: byte 0, a 4-byte big-endian schema id, Avro binary.
 *
 * @example
 * const buf = encodeConfluent('RankerOutput', record, 42);
 */
export function encodeConfluent<N extends ContractName>(
  name: N,
  record: Contracts[N],
  schemaId: number,
): Buffer {
  checkSchemaId(schemaId); // before encoding, so a bad id is reported whatever the record
  return frameConfluent(encodeAvro(name, record), schemaId);
}

/**
 * Frames Avro binary already encoded (byte 0, the 4-byte big-endian schema id, the bytes): what
 * {@link encodeConfluent} gives for the record the bytes encode.
 *
 * @example
 * const buf = frameConfluent(encodeAvro('RankerOutput', record), 42);
 */
export function frameConfluent(body: Buffer, schemaId: number): Buffer {
  checkSchemaId(schemaId);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = MAGIC;
  out.writeInt32BE(schemaId, 1);
  body.copy(out, 5);
  return out;
}

function checkSchemaId(schemaId: number): void {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0x7fffffff) {
    throw new RankdistillError(
      'ENCODE_FAILED',
      `schema id must be an integer in [0, 2^31), found ${schemaId}`,
    );
  }
}

/** Reads the schema id of a Confluent-framed payload, or a typed error. */
export function confluentSchemaId(buf: Buffer): Decoded<number> {
  if (!Buffer.isBuffer(buf) || buf.length < 5) {
    return {
      ok: false,
      error: new DecodeError(`Confluent frame needs at least 5 bytes, found ${buf?.length ?? 0}`),
    };
  }
  if (buf[0] !== MAGIC) {
    return {
      ok: false,
      error: new DecodeError(`Confluent frame must start with magic byte 0, found ${buf[0]}`),
    };
  }
  return { ok: true, value: buf.readInt32BE(1) };
}

/**
 * Decodes a Confluent-framed payload. `writerFor(id)` returns the writer schema registered under
 * the id (from a schema registry); without it the writer is assumed to be our own schema.
 */
export function decodeConfluent<N extends ContractName>(
  name: N,
  buf: Buffer,
  writerFor?: (schemaId: number) => avro.Type | undefined,
): Decoded<Contracts[N]> {
  const id = confluentSchemaId(buf);
  if (!id.ok) return fail(name, id.error.message);
  let writer: avro.Type | undefined;
  if (writerFor !== undefined) {
    writer = writerFor(id.value);
    if (writer === undefined) {
      return {
        ok: false,
        error: new DecodeError(`${name}: unknown schema id ${id.value}`, {
          code: 'SCHEMA_ID_UNKNOWN',
          details: { name, schemaId: id.value },
        }),
      };
    }
  }
  return decodeAt(name, buf, 5, writer);
}

/**
 * Encodes a record as JSON (plain JSON, unions unwrapped; bytes as base64 strings).
 */
export function encodeJson<N extends ContractName>(name: N, record: Contracts[N]): string {
  const t = avroType(name);
  if (!t.isValid(record)) {
    throw new RankdistillError(
      'ENCODE_FAILED',
      `${name}: invalid record: ${invalidPaths(t, record).join('; ')}`,
    );
  }
  // Top-level bytes fields (a dead letter's raw record and key) as base64 strings up front:
  // JSON.stringify would call Buffer#toJSON first, an array of one number per byte (~4% of an
  // NDJSON replay's CPU, for dead letters of 200-candidate lines), for the replacer to undo.
  // Same text: the copy has the same keys in the same order.
  const fields = record as unknown as Record<string, unknown>;
  let rec: unknown = record;
  for (const k in fields) {
    if (Buffer.isBuffer(fields[k])) {
      const copy: Record<string, unknown> = { ...fields };
      for (const j in copy) {
        const v = copy[j];
        if (Buffer.isBuffer(v)) copy[j] = v.toString('base64');
      }
      rec = copy;
      break;
    }
  }
  return JSON.stringify(rec, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer') {
      return Buffer.from((v as { data: number[] }).data).toString('base64');
    }
    return v;
  });
}

/**
 * Decodes a JSON record and validates it against the schema. Optional fields may be omitted
 * (they take their schema default, as Avro's resolution rules would give them).
 */
export function decodeJson<N extends ContractName>(name: N, input: string | Buffer): Decoded<Contracts[N]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof input === 'string' ? input : input.toString('utf8'));
  } catch (cause) {
    return fail(name, `invalid JSON: ${(cause as Error).message}`, cause);
  }
  const t = avroType(name);
  const filled = fillDefaults(t, parsed);
  if (!t.isValid(filled))
    return fail(
      name,
      `invalid record: ${invalidPaths(t, filled).join('; ')}`,
      undefined,
      requestIdOf(filled),
    );
  const bad = invalidIdFailure<Contracts[N]>(name, filled);
  if (bad !== null) return bad;
  // Invalid UTF-8 outside the ids (a context key, a model version) is refused too: the text is not
  // JSON (RFC 8259 §8.1). Checked last and natively: most lines are valid.
  if (typeof input !== 'string' && !isUtf8(input))
    return fail(name, 'the JSON text is not valid UTF-8', undefined, requestIdOf(filled));
  return { ok: true, value: filled as Contracts[N] };
}

/**
 * Fills omitted fields that have a default, recursively (records in arrays, maps and unions), and
 * turns base64 strings back into bytes where the schema says bytes. Works in place: the input is
 * a freshly parsed JSON value that nobody else holds (copying every object doubled decode time).
 */
function fillDefaults(t: avro.Type, v: unknown): unknown {
  switch (t.typeName) {
    case 'bytes':
      return typeof v === 'string' ? Buffer.from(v, 'base64') : v;
    case 'union:unwrapped': {
      if (v === null) return v;
      const branch = nonNullBranch(t);
      return branch === undefined ? v : fillDefaults(branch, v);
    }
    case 'array': {
      if (!Array.isArray(v)) return v;
      const items = (t as avro.types.ArrayType).itemsType;
      if (!needsFill(items)) return v;
      for (let i = 0; i < v.length; i++) v[i] = fillDefaults(items, v[i]);
      return v;
    }
    case 'map': {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
      const values = (t as avro.types.MapType).valuesType;
      if (!needsFill(values)) return v;
      const m = v as Record<string, unknown>;
      for (const k of Object.keys(m)) m[k] = fillDefaults(values, m[k]);
      return v;
    }
    case 'record': {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
      const out = v as Record<string, unknown>;
      for (const f of (t as avro.types.RecordType).fields) {
        const cur = out[f.name];
        if (cur === undefined) {
          const d = f.defaultValue();
          if (d !== undefined) out[f.name] = d;
        } else if (needsFill(f.type)) out[f.name] = fillDefaults(f.type, cur);
      }
      return out;
    }
    default:
      return v;
  }
}

const fillCache = new WeakMap<avro.Type, boolean>();

/** Whether values of this type can contain a record (defaults) or bytes (base64): else skip the walk. */
function needsFill(t: avro.Type): boolean {
  let r = fillCache.get(t);
  if (r === undefined) {
    fillCache.set(t, false); // recursion guard
    switch (t.typeName) {
      case 'record':
      case 'bytes':
        r = true;
        break;
      case 'array':
        r = needsFill((t as avro.types.ArrayType).itemsType);
        break;
      case 'map':
        r = needsFill((t as avro.types.MapType).valuesType);
        break;
      case 'union:unwrapped': {
        const b = nonNullBranch(t);
        r = b !== undefined && needsFill(b);
        break;
      }
      default:
        r = false;
    }
    fillCache.set(t, r);
  }
  return r;
}

function nonNullBranch(t: avro.Type): avro.Type | undefined {
  const branches = (t as unknown as { types: avro.Type[] }).types.filter((b) => b.typeName !== 'null');
  return branches.length === 1 ? branches[0] : undefined;
}

/**
 * Decodes a payload in the given wire format.
 *
 * @example
 * decode('RankerOutput', message.value, 'avro')
 */
export function decode<N extends ContractName>(
  name: N,
  buf: Buffer,
  format: WireFormat,
  writerFor?: (schemaId: number) => avro.Type | undefined,
): Decoded<Contracts[N]> {
  switch (format) {
    case 'avro':
      return decodeAvro(name, buf);
    case 'confluent':
      return decodeConfluent(name, buf, writerFor);
    case 'json':
      return decodeJson(name, buf);
  }
}

/**
 * A decoder of plain Avro bytes that are known to decode (a column parser accepted them, or they
 * decoded once before): a failure is a bug, thrown.
 *
 * @example
 * const decodeRanker = avroDecoderOrThrow('RankerOutput');
 */
export function avroDecoderOrThrow<N extends ContractName>(name: N): (b: Buffer) => Contracts[N] {
  return (b) => {
    const d = decode(name, b, 'avro');
    if (!d.ok) throw d.error;
    return d.value as Contracts[N];
  };
}
