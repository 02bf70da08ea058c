import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { KeyFilter, keyFingerprint } from '../../src/store/key-filter.ts';

describe('KeyFilter', () => {
  test('fast-check: adds, removes and lookups match a multiset model (collisions, wrap-around, growth)', () => {
    // Fingerprints whose low bits (the home slot) crowd the last slots of the first table, so
    // probe runs wrap around its end and backward-shift deletion crosses it; several equal
    // fingerprints, as two keys with the same print would give.
    const fp = fc.oneof(
      fc.integer({ min: 1, max: 40 }).map((k) => ((k << 10) | (1023 - (k % 5))) >>> 0),
      fc.constantFrom(7, 7 + 1024, 0xffffffff),
      fc.integer({ min: 1, max: 0xffffffff }),
    );
    const op = fc.oneof(
      { weight: 3, arbitrary: fc.record({ t: fc.constant('add' as const), fp }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('remove' as const), fp }) },
      {
        weight: 1,
        arbitrary: fc.record({ t: fc.constant('bulk' as const), n: fc.integer({ min: 1, max: 700 }) }),
      },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const f = new KeyFilter();
        const model = new Map<number, number>();
        const seen = new Set<number>();
        const picked = new Set<number>();
        for (const o of ops) {
          if (o.t !== 'bulk') picked.add(o.fp);
          if (o.t === 'add') {
            f.add(o.fp);
            model.set(o.fp, (model.get(o.fp) ?? 0) + 1);
            seen.add(o.fp);
          } else if (o.t === 'remove') {
            const held = (model.get(o.fp) ?? 0) > 0;
            assert.equal(f.remove(o.fp), held);
            if (held) model.set(o.fp, model.get(o.fp)! - 1);
          } else {
            // past the 50% load of the first table: grows while holding everything
            for (let i = 0; i < o.n; i++) {
              const v = (0x9e3779b1 * (i + 1)) >>> 0 || 1;
              f.add(v);
              model.set(v, (model.get(v) ?? 0) + 1);
              seen.add(v);
            }
          }
          assert.equal(
            f.size,
            [...model.values()].reduce((a, b) => a + b, 0),
          );
          // after every step (a rehash would repair a misplaced print): the hand-picked ones
          for (const v of picked) assert.equal(f.has(v), (model.get(v) ?? 0) > 0, `fingerprint ${v}`);
        }
        for (const v of seen) assert.equal(f.has(v), (model.get(v) ?? 0) > 0, `fingerprint ${v}`);
      }),
      { numRuns: 200 },
    );
  });

  test('clear() forgets every fingerprint', () => {
    const f = new KeyFilter();
    for (let i = 1; i <= 3000; i++) f.add(i);
    f.clear();
    assert.equal(f.size, 0);
    for (let i = 1; i <= 3000; i++) assert.equal(f.has(i), false);
  });

  test('keyFingerprint is never 0 (the empty slot) and tells neighbouring keys apart', () => {
    const prints = new Set<number>();
    for (let i = 0; i < 20_000; i++) {
      for (const p of ['r:', 'i:', 'd:']) {
        const v = keyFingerprint(`${p}req-${i}`);
        assert.notEqual(v, 0);
        assert.ok(Number.isInteger(v) && v > 0 && v <= 0xffffffff);
        prints.add(v);
      }
    }
    // 60k keys in 2^32 prints: a handful of collisions at most, never a systematic one.
    assert.ok(prints.size >= 60_000 - 5, `${60_000 - prints.size} collisions`);
    assert.notEqual(keyFingerprint(''), 0);
  });
});
