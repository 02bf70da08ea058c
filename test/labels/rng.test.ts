import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fnv1a32, Rng } from '../../src/labels/rng.ts';

/** Reference FNV-1a over the UTF-8 bytes, the obvious way. */
function fnvRef(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/** Reference mulberry32 as published (closure form). */
function mulberryRef(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

describe('fnv1a32', () => {
  test('matches the published FNV-1a test vectors', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  });

  test('hashes the UTF-8 bytes (non-ASCII, astral, lone surrogates)', () => {
    for (const s of ['é', '€uro', 'req-😀-1', 'x\ud800y', '\udc00']) assert.equal(fnv1a32(s), fnvRef(s), s);
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => fnv1a32(s) === fnvRef(s)));
  });
});

describe('Rng', () => {
  test('is mulberry32 seeded with FNV-1a of the request id', () => {
    const ref = mulberryRef(fnv1a32('req-42'));
    const rng = Rng.forRequest('req-42');
    for (let i = 0; i < 100; i++) assert.equal(rng.nextU32(), ref());
  });

  test('same request id, same sequence; other id, other sequence', () => {
    const a = Rng.forRequest('r1');
    const b = Rng.forRequest('r1');
    const c = Rng.forRequest('r2');
    const sa = Array.from({ length: 8 }, () => a.int(1000));
    assert.deepEqual(
      Array.from({ length: 8 }, () => b.int(1000)),
      sa,
    );
    assert.notDeepEqual(
      Array.from({ length: 8 }, () => c.int(1000)),
      sa,
    );
  });

  test('int(bound) stays in [0, bound) for small and 53-bit bounds', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 2 ** 40 }), (seed, bound) => {
        const rng = new Rng(seed);
        for (let i = 0; i < 20; i++) {
          const v = rng.int(bound);
          if (!Number.isInteger(v) || v < 0 || v >= bound) return false;
        }
        return true;
      }),
    );
  });

  test('int covers every value of a small range', () => {
    const rng = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(rng.int(5));
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
  });
});
