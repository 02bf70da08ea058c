// kafkajs 2.2.4 encodes every produced record in its own zero-filled Encoder and copies the bytes
// through four more growing Encoders (~14 µs per message here); patches/kafkajs+2.2.4.patch adds
// an uncompressed fast path to src/protocol/requests/produce/v3/request.js that writes the same
// record set once. kafkajs's own path stays in the module as `encodePartition`, the reference these
// tests hold the fast path to, byte for byte; the decode test checks the bytes mean what was sent.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import fc from 'fast-check';

const require = createRequire(import.meta.url);
const path = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js');

interface Msg {
  key?: Buffer | string | null | undefined;
  value: Buffer | string | null;
  headers?: Record<string, Buffer | string | Array<Buffer | string>>;
  timestamp?: number | string;
}
interface PartitionArgs {
  partition: number;
  messages: Msg[];
  dateNow: number;
  firstTimestamp: number | string;
  maxTimestamp: number | string;
  producerId: number;
  producerEpoch: number;
  firstSequence: number;
  transactional: boolean;
}
interface EncoderLike {
  buffer: Buffer;
}
interface RequestArgs {
  acks: number;
  timeout: number;
  transactionalId: string | null;
  producerId: number;
  producerEpoch: number;
  compression: number;
  topicData: Array<{
    topic: string;
    partitions: Array<{ partition: number; firstSequence: number; messages: Msg[] }>;
  }>;
}
interface ProduceRequest {
  apiKey: number;
  apiVersion: number;
  encode: (opts?: { reserve?: number }) => Promise<EncoderLike & { reserved?: number }>;
}
const produce = require(path) as ((a: RequestArgs) => ProduceRequest) & {
  encodeUncompressedPartition: (a: PartitionArgs) => EncoderLike | null;
  encodePartition: (a: PartitionArgs & { compression: number }) => Promise<EncoderLike>;
  encodeGeneric: (a: RequestArgs) => Promise<EncoderLike & { size(): number }>;
};
const createRequest = require('kafkajs/src/protocol/request.js') as (a: {
  correlationId: number;
  clientId: string | null;
  request: ProduceRequest;
}) => Promise<EncoderLike>;
interface KafkaEncoder {
  writeInt16(v: number): KafkaEncoder;
  writeInt32(v: number): KafkaEncoder;
  writeString(v: string | null): KafkaEncoder;
  writeEncoder(e: unknown): KafkaEncoder;
  size(): number;
  buffer: Buffer;
}
const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => KafkaEncoder;
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (
  b: Buffer,
) => {
  readInt32(): number;
};
const decodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (d: unknown) => Promise<{
  firstTimestamp: string;
  maxTimestamp: string;
  inTransaction: boolean;
  records: Array<{
    key: Buffer | null;
    value: Buffer | null;
    timestamp: string;
    offset: string;
    headers: Record<string, Buffer | Buffer[]>;
  }>;
}>;

/** Same first/max timestamps as kafkajs's partitionsEncoder computes them (a default sort). */
function args(
  messages: Msg[],
  rest: Omit<PartitionArgs, 'messages' | 'firstTimestamp' | 'maxTimestamp'>,
): PartitionArgs {
  const ts = messages
    .map((m) => m.timestamp)
    .filter((t) => t != null)
    .sort();
  const timestamps = ts.length === 0 ? [rest.dateNow] : ts;
  return {
    ...rest,
    messages,
    firstTimestamp: timestamps[0]!,
    maxTimestamp: timestamps[timestamps.length - 1]!,
  };
}

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const header = fc.oneof(bytes, fc.array(bytes, { maxLength: 3 }));
const message: fc.Arbitrary<Msg> = fc.record(
  {
    key: fc.oneof(fc.constant(null), fc.constant(undefined), bytes),
    value: fc.oneof(fc.constant(null), bytes),
    // prefixed: kafkajs's header decoder folds a key like `toString` into Object.prototype's
    headers: fc.dictionary(
      fc.string({ unit: 'binary', maxLength: 8 }).map((k) => `h${k}`),
      header,
      { maxKeys: 3, noNullPrototype: true },
    ),
    timestamp: fc.oneof(
      fc.integer({ min: 1_700_000_000_000, max: 1_700_100_000_000 }),
      // now and then a delta beyond the fast path's ±2^30 ms, which it must decline
      fc.integer({ min: 1_700_000_000_000, max: 1_703_000_000_000 }),
      fc.integer({ min: 1_700_000_000_000, max: 1_700_000_900_000 }).map(String),
    ),
  },
  { requiredKeys: ['value'] },
);
const batchRest = fc.record({
  partition: fc.nat({ max: 1000 }),
  dateNow: fc.integer({ min: 1_700_000_000_000, max: 1_700_000_999_999 }),
  producerId: fc.oneof(fc.constant(-1), fc.nat()),
  producerEpoch: fc.nat({ max: 32_000 }),
  firstSequence: fc.nat(),
  transactional: fc.boolean(),
});

describe('kafkajs produce encoding (patched fast path)', () => {
  test('the patched module is what kafkajs loads', () => {
    const src = readFileSync(path, 'utf8');
    assert.match(src, /rankdistill patch/, `unpatched ${path}: did postinstall (patch-package) run?`);
    assert.equal(typeof produce.encodeUncompressedPartition, 'function');
    assert.equal(typeof produce.encodePartition, 'function');
  });

  test('writes the same bytes as kafkajs’s own record-set encoding, or declines', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { maxLength: 40 }), batchRest, async (messages, rest) => {
        const a = args(messages, rest);
        const reference = (await produce.encodePartition({ ...a, compression: 0 })).buffer;
        const fast = produce.encodeUncompressedPartition(a);
        // Declining is allowed only for what the fast path documents: deltas beyond ±2^30 ms.
        const deltas = messages.map((m) => Number(m.timestamp ?? rest.dateNow) - Number(a.firstTimestamp));
        if (fast === null) {
          assert.ok(
            deltas.some((d) => Math.abs(d) >= 2 ** 30),
            'declined a batch it covers',
          );
          return;
        }
        assert.deepEqual(fast.buffer, reference);
      }),
      { numRuns: 300 },
    );
  });

  test('frames whole produce requests as kafkajs’s own request and record-set encoding does', async () => {
    // kafkajs 2.2.4's request framing (protocol/request.js before the patch), over its own payload.
    const frame = (
      apiKey: number,
      apiVersion: number,
      correlationId: number,
      clientId: string | null,
      payload: unknown,
    ) => {
      const body = new Encoder();
      body
        .writeInt16(apiKey)
        .writeInt16(apiVersion)
        .writeInt32(correlationId)
        .writeString(clientId)
        .writeEncoder(payload);
      const framed = new Encoder();
      return framed.writeInt32(body.size()).writeEncoder(body).buffer;
    };
    const partitionData = fc.record({
      partition: fc.nat({ max: 1000 }),
      firstSequence: fc.nat(),
      messages: fc.array(message, { maxLength: 12 }),
    });
    const requestArgs = fc.record({
      acks: fc.constantFrom(-1, 0, 1),
      timeout: fc.nat(),
      transactionalId: fc.oneof(fc.constant(null), fc.string({ maxLength: 12 })),
      producerId: fc.oneof(fc.constant(-1), fc.nat()),
      producerEpoch: fc.nat({ max: 32_000 }),
      compression: fc.constant(0),
      topicData: fc.array(
        fc.record({
          topic: fc.string({ minLength: 1, maxLength: 20 }),
          partitions: fc.array(partitionData, { minLength: 1, maxLength: 3 }),
        }),
        { maxLength: 4 },
      ),
    });
    const realNow = Date.now;
    try {
      await fc.assert(
        fc.asyncProperty(
          requestArgs,
          fc.nat(),
          fc.oneof(fc.constant(null), fc.string({ maxLength: 10 })),
          fc.integer({ min: 1_700_000_000_000, max: 1_700_000_999_999 }),
          async (a, correlationId, clientId, now) => {
            // Both encodings read the clock for messages without a timestamp.
            Date.now = () => now;
            const request = produce(a);
            const reference = frame(
              request.apiKey,
              request.apiVersion,
              correlationId,
              clientId,
              await produce.encodeGeneric(a),
            );
            const framed = await createRequest({ correlationId, clientId, request });
            assert.deepEqual(framed.buffer, reference);
            // The single-buffer path is taken whenever every partition is covered.
            const covered = a.topicData.every((t) =>
              t.partitions.every((p) => {
                const stamps = p.messages.map((m) => Number(m.timestamp ?? now));
                const first = p.messages.some((m) => m.timestamp != null)
                  ? Number(
                      p.messages
                        .map((m) => m.timestamp)
                        .filter((x) => x != null)
                        .sort()[0],
                    )
                  : now;
                return stamps.every((t) => Math.abs(t - first) < 2 ** 30);
              }),
            );
            assert.equal((await request.encode({ reserve: 7 })).reserved === 7, covered);
          },
        ),
        { numRuns: 200 },
      );
    } finally {
      Date.now = realNow;
    }
  });

  test('declines what it does not cover, so that kafkajs’s path (and its errors) apply', () => {
    const base = {
      partition: 0,
      dateNow: 1_700_000_000_000,
      producerId: 1,
      producerEpoch: 0,
      firstSequence: 0,
      transactional: false,
    };
    for (const m of [
      { key: 42 as unknown as string, value: 'v' },
      { value: { a: 1 } as unknown as string },
      { value: 'v', headers: { h: 7 as unknown as string } },
      { value: 'v', timestamp: 'not a time' },
    ])
      assert.equal(
        produce.encodeUncompressedPartition(args([{ value: 'ok' }, m], base)),
        null,
        JSON.stringify(m),
      );
  });

  test('decodes, with kafkajs’s own batch decoder, to the messages that were encoded', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(message, { minLength: 1, maxLength: 20 }),
        batchRest,
        async (messages, rest) => {
          const a = args(messages, rest);
          const fast = produce.encodeUncompressedPartition(a);
          fc.pre(fast !== null);
          const d = new Decoder(fast!.buffer);
          assert.equal(d.readInt32(), rest.partition);
          assert.equal(d.readInt32(), fast!.buffer.length - 8);
          const batch = await decodeBatch(d);
          assert.equal(batch.inTransaction, rest.transactional);
          assert.equal(batch.records.length, messages.length);
          const asBuf = (v: Buffer | string | null | undefined) =>
            v == null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
          batch.records.forEach((r, i) => {
            const m = messages[i]!;
            assert.equal(r.offset, String(i));
            assert.deepEqual(r.key, asBuf(m.key));
            assert.deepEqual(r.value, asBuf(m.value));
            assert.equal(Number(r.timestamp), Number(m.timestamp ?? rest.dateNow));
            // kafkajs's decoder folds repeated header keys into an array, a single one into a value.
            const want: Record<string, Buffer | Array<Buffer | null> | null> = {};
            for (const [k, v] of Object.entries(m.headers ?? {})) {
              const vs = (Array.isArray(v) ? v : [v]).map(asBuf);
              if (vs.length > 0) want[k] = vs.length === 1 ? vs[0]! : vs;
            }
            assert.deepEqual({ ...r.headers }, want);
          });
        },
      ),
      { numRuns: 150 },
    );
  });
});
