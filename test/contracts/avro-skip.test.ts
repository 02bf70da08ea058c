// The skipper that splits Avro blocks into records (src/contracts/avro-skip.ts) must never accept
// bytes that avsc's decoder rejects, and must end where the decoder ends: the file replay relies on
// it to split blocks exactly as the decoding reader does.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { compileSkipper } from '../../src/contracts/avro-skip.ts';
import { encodeAvro } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { avroType, CONTRACT_NAMES, type ContractName, schemaJson } from '../../src/contracts/schemas.ts';
import { applyByteEdits, arbByteEdits } from './helpers.ts';

/** End of avsc's decode at `pos`, or −1 when it fails (throws or runs out of bytes). */
function decodeEnd(name: ContractName, buf: Buffer, pos: number): number {
  try {
    return (avroType(name).decode(buf, pos) as { offset: number }).offset;
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
