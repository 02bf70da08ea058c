// The file replay splits records as the producer does (kafkajs' DefaultPartitioner over the
// user id), and finds the user id of an NDJSON line without parsing it.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Partitioners } from 'kafkajs';
import { ndjsonUserId } from '../../src/replay/file-partitions.ts';
import { murmur2, partitionOfKey } from '../../src/replay/partitioning.ts';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (
  key: Buffer,
) => number;

describe('partitionOfKey', () => {
  test('fast-check: murmur2 equals kafkajs murmur2 on arbitrary bytes (every length mod 4, high bits set)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        assert.equal(murmur2(bytes), kafkajsMurmur2(Buffer.from(bytes)));
      }),
      { numRuns: 3000 },
    );
    for (const edge of [
      [],
      [0xff],
      [0xff, 0xff],
      [0xff, 0xff, 0xff],
      [0xff, 0xff, 0xff, 0xff],
      [0x80, 0, 0, 0x80, 1],
    ])
      assert.equal(murmur2(Uint8Array.from(edge)), kafkajsMurmur2(Buffer.from(edge)));
  });

  test('fast-check: same partition as kafkajs DefaultPartitioner for the key', () => {
    const producer = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 16 }), (id, n) => {
        const partitionMetadata = Array.from({ length: n }, (_, i) => ({
          partitionId: i,
          leader: 0,
          replicas: [0],
          isr: [0],
          partitionErrorCode: 0,
        }));
        const want = producer({ topic: 't', partitionMetadata, message: { key: id, value: null } });
        assert.equal(partitionOfKey(Buffer.from(id, 'utf8'), n), want);
      }),
      { numRuns: 500 },
    );
  });
});

describe('ndjsonUserId', () => {
  test('fast-check: the user_id of any JSON record, whatever the spacing and escapes', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.boolean(), (rid, uid, spaced) => {
        const rec = { request_id: rid, user_id: uid, ts: 1, items: [] };
        const line = Buffer.from(
          spaced ? JSON.stringify(rec, null, 1).replace(/\n/g, ' ') : JSON.stringify(rec),
        );
        assert.deepEqual(ndjsonUserId(line), Buffer.from(uid, 'utf8'));
      }),
      { numRuns: 500 },
    );
  });

  test('null when there is no user_id string', () => {
    assert.equal(ndjsonUserId(Buffer.from('{"request_id":"r1","user_id":7}')), null);
    assert.equal(ndjsonUserId(Buffer.from('{"request_id":"r1"')), null);
    assert.equal(ndjsonUserId(Buffer.from('{"user_id":"unterminated')), null);
  });
});
