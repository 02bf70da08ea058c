// The skipper that splits Avro blocks into records (src/contracts/avro-skip.ts) must never accept
// bytes that avsc's decoder rejects, and must end where the decoder ends: the file replay relies on
// it to split blocks exactly as the decoding reader does.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import avro from 'avsc';
import fc from 'fast-check';
import { compileSkipper } from '../../src/contracts/avro-skip.ts';
import { encodeAvro } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import {
  avroType,
  boundedTypeHook,
  CONTRACT_NAMES,
  type ContractName,
  schemaJson,
} from '../../src/contracts/schemas.ts';
import { applyByteEdits, arbByteEdits } from './helpers.ts';

/** End of avsc's decode at `pos`, or −1 when it fails (throws or runs out of bytes). */
function decodeEnd(name: ContractName | avro.Type, buf: Buffer, pos: number): number {
  try {
    const t = typeof name === 'string' ? avroType(name) : name;
    return (t.decode(buf, pos) as { offset: number }).offset;
  } catch {
    return -1;
  }
}

const ranker: RankerOutput = {
  request_id: 'r-1',
  user_id: 'u-7',
  ts: 1_700_000_000_000,
  model_version: 'm3',
  context: { hour: 13, device: 2 },
  items: Array.from({ length: 12 }, (_, i) => ({
    item_id: `item-${i}`,
    score: 1.5 - i / 7,
    objectives: i % 3 === 0 ? { ctr: 0.1 * i } : null,
    features: i % 2 === 0 ? { f0: i, f1: -i / 3 } : null,
  })),
};
const impression: Impression = {
  request_id: 'r-1',
  user_id: 'u-7',
  ts: 1_700_000_000_500,
  items: [
    { item_id: 'item-3', position: 1, clicked: true, dwell_ms: 4_200, actions: ['like'] },
    { item_id: 'item-0', position: 2, clicked: false, dwell_ms: null, actions: null },
  ],
};

describe('compileSkipper', () => {
  test('ends every valid record where the decoder ends, also inside a block', () => {
    for (const [name, rec] of [
      ['RankerOutput', ranker],
      ['Impression', impression],
    ] as const) {
      const one = encodeAvro(name, rec as never);
      const block = Buffer.concat([one, one, one]);
      const skip = compileSkipper(schemaJson(name));
      assert.equal(skip(one, 0, one.length), one.length);
      assert.equal(skip(block, one.length, block.length), 2 * one.length);
      assert.equal(skip(one, 0, one.length - 1), -1, 'a cut record is refused');
    }
  });

  test('every contract schema compiles', () => {
    for (const name of CONTRACT_NAMES) assert.equal(typeof compileSkipper(schemaJson(name)), 'function');
  });

  test('fast-check: on corrupted records, an accepted end is the decoder end', () => {
    for (const [name, rec] of [
      ['RankerOutput', ranker],
      ['Impression', impression],
    ] as const) {
      const valid = encodeAvro(name, rec as never);
      const skip = compileSkipper(schemaJson(name));
      let accepted = 0;
      fc.assert(
        fc.property(arbByteEdits, (edits) => {
          const buf = applyByteEdits(Buffer.from(valid), edits);
          const end = skip(buf, 0, buf.length);
          if (end >= 0) {
            accepted++;
            assert.equal(decodeEnd(name, buf, 0), end, `decoder end for ${buf.toString('hex')}`);
          }
        }),
        { numRuns: 3000 },
      );
      assert.ok(accepted > 0, `${name}: some corrupted records are still walkable`);
    }
  });

  test('fast-check: arbitrary bytes, an accepted end is the decoder end', () => {
    const skips = new Map(CONTRACT_NAMES.map((n) => [n, compileSkipper(schemaJson(n))]));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(...CONTRACT_NAMES), (bytes, name) => {
        const buf = Buffer.from(bytes);
        const end = (skips.get(name) as ReturnType<typeof compileSkipper>)(buf, 0, buf.length);
        if (end >= 0) assert.equal(decodeEnd(name, buf, 0), end);
      }),
      { numRuns: 3000 },
    );
  });
});

// Random valid encodings of a schema, written byte by byte (not by avsc's encoder), so they also
// take forms avsc never writes: arrays and maps split into several blocks, counts and lengths of
// two varint bytes (64 or more), any bytes in floats, doubles and strings.

type Json = string | Json[] | { [k: string]: unknown };

/** Zig-zag varint of a safe integer. */
function varint(v: number): number[] {
  let z = v >= 0 ? v * 2 : -v * 2 - 1;
  const out: number[] = [];
  while (z >= 128) {
    out.push((z % 128) | 0x80);
    z = Math.floor(z / 128);
  }
  out.push(z);
  return out;
}

const arbLengthPrefixed = fc
  .oneof(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ minLength: 60, maxLength: 70 }))
  .map((b) => [...varint(b.length), ...b]);

/** Items written as blocks: `cuts` splits them into several blocks (empty ones never written). */
function blocks(items: number[][], cuts: number[]): number[] {
  const at = [...new Set(cuts.map((c) => c % (items.length + 1)))].sort((a, b) => a - b);
  const out: number[] = [];
  let from = 0;
  for (const to of [...at, items.length]) {
    if (to > from) {
      out.push(...varint(to - from));
      for (const item of items.slice(from, to)) for (const b of item) out.push(b);
    }
    from = Math.max(from, to);
  }
  out.push(0);
  return out;
}

/**
 * Valid encodings of `schema`. Longs stay within ±2^48 (7 varint bytes: longer ones are legal but
 * refused by the skipper, see the unit test). Long arrays and maps (64-70 items) only at the top.
 */
function arbEncoded(
  schema: Json,
  named = new Map<string, Json>(),
  ns?: string,
  depth = 0,
): fc.Arbitrary<number[]> {
  if (Array.isArray(schema)) {
    return fc.oneof(
      ...schema.map((b, i) => arbEncoded(b, named, ns, depth).map((bytes) => [...varint(i), ...bytes])),
    );
  }
  if (typeof schema === 'string') {
    switch (schema) {
      case 'null':
        return fc.constant([]);
      case 'boolean':
        return fc.integer({ min: 0, max: 1 }).map((b) => [b]);
      case 'int':
        return fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map(varint);
      case 'long':
        return fc.integer({ min: -(2 ** 48), max: 2 ** 48 - 1 }).map(varint);
      case 'float':
        return fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => [...b]);
      case 'double':
        return fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => [...b]);
      case 'string':
      case 'bytes':
        return arbLengthPrefixed;
      default: {
        const ref = named.get(schema.includes('.') || ns === undefined ? schema : `${ns}.${schema}`);
        assert.ok(ref !== undefined, `test schema names ${schema} before defining it`);
        return arbEncoded(ref, named, ns, depth);
      }
    }
  }
  const t = schema.type as Json;
  if (typeof t !== 'string' || !['record', 'enum', 'fixed', 'array', 'map'].includes(t)) {
    return arbEncoded(t, named, ns, depth);
  }
  const space = typeof schema.namespace === 'string' ? schema.namespace : ns;
  if (typeof schema.name === 'string') named.set(`${space}.${schema.name}`, schema);
  switch (t) {
    case 'record': {
      const fields = (schema.fields as Array<{ type: Json }>).map((f) =>
        arbEncoded(f.type, named, space, depth),
      );
      return fc.tuple(...fields).map((parts) => parts.flat());
    }
    case 'enum':
      return fc.nat((schema.symbols as string[]).length - 1).map(varint);
    case 'fixed':
      return fc
        .uint8Array({ minLength: schema.size as number, maxLength: schema.size as number })
        .map((b) => [...b]);
    default: {
      const item =
        t === 'array'
          ? arbEncoded(schema.items as Json, named, ns, depth + 1)
          : fc
              .tuple(arbLengthPrefixed, arbEncoded(schema.values as Json, named, ns, depth + 1))
              .map(([k, v]) => [...k, ...v]);
      const items =
        depth === 0
          ? fc.oneof(fc.array(item, { maxLength: 4 }), fc.array(item, { minLength: 64, maxLength: 70 }))
          : fc.array(item, { maxLength: 3 });
      return fc.tuple(items, fc.array(fc.nat(), { maxLength: 2 })).map(([xs, cuts]) => blocks(xs, cuts));
    }
  }
}

/**
 * Random schemas of every kind the skipper compiles (records, enums, fixed, unions of primitives
 * and a record, arrays, maps, logical types), named afterwards. Array items always take a byte
 * or more: a count of zero-byte items (`null`, an empty record) above the bytes left is refused by
 * both (see the unit test), so the generator could not write them freely.
 */
const arbSchema: fc.Arbitrary<Json> = fc
  .letrec<{ node: Json; record: Json; nonEmpty: Json }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', maxDepth: 3, depthIdentifier: 'schema' },
      fc.constantFrom<Json>('null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'bytes'),
      fc.constantFrom<Json>(
        { type: 'long', logicalType: 'timestamp-millis' },
        { type: 'int', logicalType: 'date' },
        { type: 'string', logicalType: 'uuid' },
        { type: 'bytes', logicalType: 'decimal', precision: 6, scale: 2 },
        { type: 'double' },
      ),
      fc
        .integer({ min: 1, max: 4 })
        .map((n) => ({ type: 'enum', symbols: Array.from({ length: n }, (_, i) => `S${i}`) })),
      fc.integer({ min: 0, max: 5 }).map((size) => ({ type: 'fixed', size })),
      tie('record'),
      tie('nonEmpty').map((items) => ({ type: 'array', items })),
      tie('node').map((values) => ({ type: 'map', values })),
      fc
        .tuple(
          fc.subarray(['null', 'boolean', 'int', 'long', 'double', 'string'], { minLength: 1 }),
          fc.option(tie('record'), { nil: undefined }),
        )
        .map(([prims, rec]) => (rec === undefined ? prims : [...prims, rec])),
    ),
    record: fc.array(tie('node'), { maxLength: 4 }).map((types) => ({
      type: 'record',
      fields: types.map((type, i) => ({ name: `f${i}`, type })),
    })),
    nonEmpty: fc.oneof(
      { depthIdentifier: 'schema' },
      fc.constantFrom<Json>('boolean', 'int', 'string', 'double'),
      tie('node').map((type) => ({
        type: 'record',
        fields: [
          { name: 'k', type: 'int' },
          { name: 'v', type },
        ],
      })),
    ),
  }))
  .node.map((s) => nameTypes(s, { n: 0 }));

/** A copy of `s` with every record, enum and fixed named N0, N1, … (unions never hold a union). */
function nameTypes(s: Json, seq: { n: number }): Json {
  if (Array.isArray(s)) return s.map((b) => nameTypes(b, seq));
  if (typeof s === 'string') return s;
  const out: { [k: string]: unknown } = { ...s };
  if (s.type === 'record' || s.type === 'enum' || s.type === 'fixed') out.name = `N${seq.n++}`;
  if (s.type === 'record') {
    out.fields = (s.fields as Array<{ name: string; type: Json }>).map((f) => ({
      ...f,
      type: nameTypes(f.type, seq),
    }));
  }
  if (s.type === 'array') out.items = nameTypes(s.items as Json, seq);
  if (s.type === 'map') out.values = nameTypes(s.values as Json, seq);
  return out;
}

/** avsc's decoder of a schema with our type hooks (block counts bounded by the bytes left), as for the contracts. */
function decoderOf(schema: Json): avro.Type {
  return avro.Type.forSchema(schema as avro.Schema, { wrapUnions: true, typeHook: boundedTypeHook });
}

/** The skipper's end equals the decoder's (the bytes in hex only on failure: they can be long). */
function assertDecoderEnd(skipped: number, decoded: number, buf: Buffer): void {
  if (skipped !== decoded)
    assert.fail(`skipper end ${skipped}, decoder end ${decoded} for ${buf.toString('hex')}`);
}

// The properties below stop at their first counterexample (endOnFailure): shrinking a schema and
// its encoding takes minutes, and the seed printed on failure replays the case.

/** A schema with a valid encoding of it, and a second one (another record in the same block). */
const arbSchemaAndBytes = arbSchema.chain((schema) =>
  fc.tuple(fc.constant(schema), arbEncoded(schema), arbEncoded(schema)),
);

describe('compileSkipper on random schemas and encodings', () => {
  test('fast-check: a valid encoding ends where avsc ends, alone and followed by another record', () => {
    let multiBlock = 0;
    fc.assert(
      fc.property(arbSchemaAndBytes, ([schema, one, two]) => {
        const type = decoderOf(schema);
        const skip = compileSkipper(schema);
        const a = Buffer.from(one);
        assert.equal(decodeEnd(type, a, 0), a.length, 'the test wrote a valid encoding');
        assert.equal(skip(a, 0, a.length), a.length);
        const block = Buffer.concat([a, Buffer.from(two)]);
        assert.equal(skip(block, 0, block.length), a.length);
        assert.equal(skip(block, a.length, block.length), block.length);
        if (one.length > 300) multiBlock++;
      }),
      { numRuns: 400, endOnFailure: true },
    );
    assert.ok(multiBlock > 0, 'some encodings have long arrays or maps');
  });

  test('fast-check: corrupted or cut short, an accepted end is where avsc ends on the same bytes', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(arbSchemaAndBytes, arbByteEdits, fc.nat(), ([schema, one], edits, cut) => {
        const type = decoderOf(schema);
        const skip = compileSkipper(schema);
        const buf = applyByteEdits(Buffer.from(one), edits);
        const end = skip(buf, 0, buf.length);
        if (end >= 0) assertDecoderEnd(end, decodeEnd(type, buf, 0), buf);
        // `end` before the buffer's end: the bytes after it must not count (they are another record's).
        const short = cut % (buf.length + 1);
        const e = skip(buf, 0, short);
        if (e >= 0) {
          assertDecoderEnd(e, decodeEnd(type, buf.subarray(0, short), 0), buf.subarray(0, short));
          accepted++;
        } else refused++;
      }),
      { numRuns: 1500, endOnFailure: true },
    );
    assert.ok(accepted > 0 && refused > 0, `accepted ${accepted}, refused ${refused}: both happen`);
  });

  for (const name of CONTRACT_NAMES) {
    test(`fast-check: ${name}: valid encodings end where our decoder ends; corrupted ones never elsewhere`, () => {
      const schema = schemaJson(name) as Json;
      const skip = compileSkipper(schema);
      fc.assert(
        fc.property(arbEncoded(schema), arbByteEdits, fc.nat(), (bytes, edits, cut) => {
          const buf = Buffer.from(bytes);
          assert.equal(decodeEnd(name, buf, 0), buf.length, 'the test wrote a valid encoding');
          assert.equal(skip(buf, 0, buf.length), buf.length);
          const bad = applyByteEdits(Buffer.from(bytes), edits);
          const end = skip(bad, 0, bad.length);
          if (end >= 0) assertDecoderEnd(end, decodeEnd(name, bad, 0), bad);
          const short = cut % (buf.length + 1);
          const e = skip(buf, 0, short);
          if (e >= 0) assertDecoderEnd(e, decodeEnd(name, buf.subarray(0, short), 0), buf.subarray(0, short));
        }),
        { numRuns: 150, endOnFailure: true },
      );
    });
  }

  test('a recursive schema: ends where avsc ends; nested deeper than the stack, −1 rather than a throw', () => {
    const schema = {
      type: 'record',
      name: 'Node',
      fields: [
        { name: 'v', type: 'int' },
        { name: 'next', type: ['null', 'Node'] },
      ],
    };
    const type = avro.Type.forSchema(schema as avro.Schema);
    const skip = compileSkipper(schema);
    const list = (depth: number) => {
      const out: number[] = [];
      for (let i = 0; i < depth; i++) out.push(...varint(i), ...varint(i === depth - 1 ? 0 : 1));
      return Buffer.from(out);
    };
    const shallow = list(50);
    assert.equal(skip(shallow, 0, shallow.length), decodeEnd(type, shallow, 0));
    assert.equal(skip(shallow, 0, shallow.length), shallow.length);
    assert.equal(skip(shallow, 0, shallow.length - 1), -1);
    const deep = list(500_000);
    assert.equal(skip(deep, 0, deep.length), -1);
  });

  test('legal encodings it leaves to the decoder: a varint of 8 bytes, a block with its byte size', () => {
    const long = Buffer.from(varint(2 ** 50));
    assert.equal(long.length, 8);
    assert.equal(decodeEnd(avro.Type.forSchema('long'), long, 0), 8);
    assert.equal(compileSkipper('long')(long, 0, 8), -1);
    // [1, 2] as one block of count −2 with its size (2 bytes), then the end.
    const arr = Buffer.from([...varint(-2), ...varint(2), ...varint(1), ...varint(2), 0]);
    const arrType = avro.Type.forSchema({ type: 'array', items: 'int' });
    assert.deepEqual(arrType.decode(arr, 0), { value: [1, 2], offset: arr.length });
    assert.equal(compileSkipper({ type: 'array', items: 'int' })(arr, 0, arr.length), -1);
  });

  test('union and enum indexes: accepted exactly where the decoder accepts them', () => {
    for (const schema of [
      { type: 'enum', name: 'E', symbols: ['A', 'B', 'C'] },
      ['null', 'int', 'string'],
      ['string', { type: 'record', name: 'R', fields: [{ name: 'x', type: 'int' }] }],
    ] as Json[]) {
      const skip = compileSkipper(schema);
      const type = decoderOf(schema);
      let accepted = 0;
      for (let i = -3; i <= 5; i++) {
        // The index as written and overlong (two bytes), then a byte that is an int or a 1-byte string.
        for (const index of [varint(i), [(varint(i)[0] as number) | 0x80, 0]]) {
          const buf = Buffer.from([...index, 2, 0x61]);
          const end = skip(buf, 0, buf.length);
          assert.equal(end, decodeEnd(type, buf, 0), `${JSON.stringify(schema)} index bytes ${index}`);
          if (end >= 0) accepted++;
        }
      }
      assert.ok(accepted >= 4, `${JSON.stringify(schema)}: the valid indexes are accepted`);
    }
  });

  test('a count of zero-byte items above the bytes left is refused, as our decoder refuses it', () => {
    const schema: Json = { type: 'array', items: 'null' };
    const buf = Buffer.from([...varint(3), 0]);
    assert.equal(
      decodeEnd(avro.Type.forSchema(schema as avro.Schema), buf, 0),
      buf.length,
      'plain avsc takes it',
    );
    assert.equal(decodeEnd(decoderOf(schema), buf, 0), -1);
    assert.equal(compileSkipper(schema)(buf, 0, buf.length), -1);
    const fits = Buffer.from([...varint(1), 0]);
    assert.equal(compileSkipper(schema)(fits, 0, fits.length), fits.length);
    // 2^29 doubles said to be in 9 bytes: refused at once, not after 2^29 steps.
    const doubles = Buffer.from([...varint(2 ** 29), ...new Array<number>(9).fill(0)]);
    assert.equal(compileSkipper({ type: 'array', items: 'double' })(doubles, 0, doubles.length), -1);
  });

  test('a count above the bytes left is refused, as our decoder refuses it', () => {
    // An Impression whose items count says 100 with 3 bytes left.
    const head = encodeAvro('Impression', { ...impression, items: [] });
    const bad = Buffer.concat([head.subarray(0, head.length - 1), Buffer.from([...varint(100), 1, 2, 3])]);
    assert.equal(decodeEnd('Impression', bad, 0), -1);
    assert.equal(compileSkipper(schemaJson('Impression'))(bad, 0, bad.length), -1);
  });
});
