// kafkajs 2.2.4 decodes each fetched record's timestamp through ~20 Long objects and re-parses the
// batch's first timestamp and offset from strings per record; patches/kafkajs+2.2.4.patch adds a
// number fast path to src/protocol/recordBatch/record/v0/decoder.js. kafkajs's own decoder stays
// in the module as `decodeRecord`: these tests hold the patched decoder to its output, field for
// field, over random records and batch contexts (including the ones it must hand back to it).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import fc from 'fast-check';

const require = createRequire(import.meta.url);
const path = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/decoder.js');
type Decode = (d: unknown, ctx?: Record<string, unknown>) => Record<string, unknown>;
const decode = require(path) as Decode & { decodeRecord: Decode };
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => { offset: number };
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: {
  offsetDelta: number;
  timestampDelta: number | string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, Buffer | Buffer[]> | undefined;
}) => { buffer: Buffer };

const bytes = fc.oneof(
  fc.constant(null),
  fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)),
);
const record = fc.record({
  offsetDelta: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  timestampDelta: fc.oneof(
    fc.integer({ min: -100_000, max: 100_000 }),
    fc.integer({ min: -(2 ** 52), max: 2 ** 52 }),
    // beyond 7 varint bytes, and beyond 2^53: the Long path
    fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }).map(String),
  ),
  key: bytes,
  value: bytes,
  headers: fc.oneof(
    fc.constant(undefined),
    fc.dictionary(
      fc.string({ maxLength: 6 }).map((k) => `h${k}`),
      fc.uint8Array({ maxLength: 10 }).map((a) => Buffer.from(a)),
      { maxKeys: 3, noNullPrototype: true },
    ),
  ),
});
const context = fc.record({
  firstOffset: fc.oneof(fc.nat().map(String), fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String)),
  firstTimestamp: fc.oneof(
    fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }).map(String),
    fc.constant('-1'),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
  ),
  magicByte: fc.constant(2),
  isControlBatch: fc.boolean(),
  timestampType: fc.constantFrom(0, 1),
  maxTimestamp: fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }).map(String),
});

describe('kafkajs record decoding (patched fast path)', () => {
  test('the patched module is what kafkajs loads', () => {
    assert.match(readFileSync(path, 'utf8'), /rankdistill patch/, `unpatched ${path}: did postinstall run?`);
    assert.equal(typeof decode.decodeRecord, 'function');
  });

  test('decodes every record exactly as kafkajs’s own decoder does', () => {
    fc.assert(
      fc.property(record, context, (r, ctx) => {
        const buf = Record(r).buffer;
        // the batch decoder hands each record's bytes after its length varint
        const d1 = new Decoder(buf);
        const d2 = new Decoder(buf);
        const lengthBytes = buf.findIndex((b) => b < 0x80) + 1;
        d1.offset = lengthBytes;
        d2.offset = lengthBytes;
        const fast = decode(d1, ctx);
        const reference = decode.decodeRecord(d2, ctx);
        assert.deepEqual(fast, reference);
        assert.equal(d1.offset, d2.offset, 'both read the same bytes');
        assert.equal(fast.batchContext, ctx);
      }),
      { numRuns: 500 },
    );
  });
});
