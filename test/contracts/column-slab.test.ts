import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { slabFloat64, slabInt32, slabUint8 } from '../../src/contracts/column-slab.ts';

describe('column slabs', () => {
  test('arrays never overlap, also across slabs, and doubles stay 8-byte aligned', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('i32', 'f64', 'u8'), fc.integer({ min: 0, max: 40_000 })), {
          minLength: 1,
          maxLength: 60,
        }),
        (specs) => {
          // Enough sizes to pass several 256-KB slabs; each array is filled with its own tag.
          const arrays = specs.map(([kind, n], k) => {
            const a = kind === 'i32' ? slabInt32(n) : kind === 'f64' ? slabFloat64(n) : slabUint8(n);
            assert.equal(a.length, n);
            if (a instanceof Float64Array) assert.equal(a.byteOffset % 8, 0);
            a.fill(k % 251);
            return a;
          });
          arrays.forEach((a, k) => {
            assert.ok(
              a.every((x) => x === k % 251),
              `array ${k} was overwritten`,
            );
          });
        },
      ),
      { numRuns: 60 },
    );
  });
});
