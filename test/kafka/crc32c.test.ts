// kafkajs computes a CRC32C over every produced record batch. Its own byte-at-a-time loop was 12% of the
// labeler's CPU, so patches/kafkajs+2.2.4.patch (applied by patch-package on postinstall) makes
// kafkajs/src/protocol/recordBatch/crc32C/index.js use @node-rs/crc32, keeping kafkajs's loop as the
// fallback. These tests pin that the patched checksum is bit-for-bit kafkajs's (unsigned 32-bit) and
// that the patch is really applied: a fresh `npm ci` without postinstall would fail here.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import fc from 'fast-check';

const require = createRequire(import.meta.url);

type Crc = (buffer: Buffer) => number;
interface PatchedCrc extends Crc {
  implementation?: string;
}

const crcDir = 'kafkajs/src/protocol/recordBatch/crc32C';
/** The module kafkajs's record batch encoder requires (patched). */
const crc32C = require(`${crcDir}/index.js`) as PatchedCrc;
/** kafkajs's original byte-at-a-time implementation (left untouched by the patch). */
const original = require(`${crcDir}/crc32C.js`) as Crc;
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (opts: { records: unknown[] }) => Promise<{ buffer: Buffer }>;
};
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (opts: {
  offsetDelta: number;
  key: Buffer;
  value: Buffer;
}) => unknown;

describe('kafkajs crc32C (patched to @node-rs/crc32)', () => {
  test('the patch is applied and the native library is in use', () => {
    const source = readFileSync(require.resolve(`${crcDir}/index.js`), 'utf8');
    assert.match(source, /@node-rs\/crc32/, 'kafkajs crc32C/index.js is unpatched: did postinstall run?');
    assert.equal(crc32C.implementation, '@node-rs/crc32');
  });

  test('known CRC-32C (Castagnoli) vectors, as unsigned 32-bit numbers', () => {
    assert.equal(crc32C(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32C(Buffer.alloc(0)), 0);
    assert.equal(crc32C(Buffer.alloc(32)), 0x8a9136aa);
    assert.equal(crc32C(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  });

  test('equals kafkajs original on random buffers of several sizes, including views into a larger buffer', () => {
    for (const size of [1, 3, 7, 8, 15, 16, 17, 63, 64, 1000, 4096, 16_384, 25_000, 65_537, 1 << 20]) {
      const buf = randomBytes(size);
      const expected = original(buf);
      assert.equal(crc32C(buf), expected, `size ${size}`);
      assert.ok(expected >= 0 && expected <= 0xffffffff && Number.isInteger(expected));
      // A view with a non-zero byteOffset, as an Encoder's buffer can be.
      const view = randomBytes(size + 13).subarray(5, 5 + size);
      assert.equal(crc32C(view), original(view), `view of size ${size}`);
    }
  });

  test('property: equals kafkajs original for any byte array', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        assert.equal(crc32C(buf), original(buf));
      }),
      { numRuns: 300 },
    );
  });

  test('an encoded record batch carries the CRC of its body', async () => {
    const records = Array.from({ length: 20 }, (_, i) =>
      Record({ offsetDelta: i, key: Buffer.from(`k${i}`), value: randomBytes(500 + i) }),
    );
    const { buffer } = await RecordBatch({ records });
    // firstOffset int64, length int32, partitionLeaderEpoch int32, magic int8, then the CRC over the rest.
    assert.equal(buffer.readInt8(16), 2);
    assert.equal(buffer.readUInt32BE(17), original(buffer.subarray(21)));
  });
});
