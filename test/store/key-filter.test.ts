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

  test('fast-check: with values, adds, removes and valuesOf match a multiset of (fingerprint, value) pairs', () => {
    // Few fingerprints crowding few home slots at every table size up to 2^16 (5 and 5 + 2^16;
    // 2^16 - 1 and 2^17 + 2^16 - 1 at the end of the table, wrapping), few values: equal pairs,
    // equal prints with other values, long probe runs that wrap and shift.
    const crowd = [5, 5 + 65536, 65535, 65535 + 131072];
    const fp = fc.oneof(fc.constantFrom(...crowd), fc.integer({ min: 1, max: 60 }));
    const value = fc.integer({ min: 0, max: 3 });
    const op = fc.oneof(
      { weight: 3, arbitrary: fc.record({ t: fc.constant('add' as const), fp, value }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('remove' as const), fp, value }) },
      {
        weight: 1,
        arbitrary: fc.record({ t: fc.constant('bulk' as const), n: fc.integer({ min: 1, max: 700 }) }),
      },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const f = new KeyFilter(true);
        const model: Array<[number, number]> = [];
        const valuesOf = (p: number) =>
          model
            .filter(([x]) => x === p)
            .map(([, v]) => v)
            .sort();
        for (const o of ops) {
          if (o.t === 'add') {
            f.add(o.fp, o.value);
            model.push([o.fp, o.value]);
          } else if (o.t === 'remove') {
            const at = model.findIndex(([x, v]) => x === o.fp && v === o.value);
            assert.equal(f.remove(o.fp, o.value), at >= 0);
            if (at >= 0) model.splice(at, 1);
          } else {
            for (let i = 0; i < o.n; i++) {
              const v = (0x9e3779b1 * (i + 1)) >>> 0 || 1;
              f.add(v, i);
              model.push([v, i]);
            }
          }
          assert.equal(f.size, model.length);
          for (const p of [...crowd, 1, 30, 60])
            assert.deepEqual(f.valuesOf(p).sort(), valuesOf(p), `fingerprint ${p}`);
        }
      }),
      {
        numRuns: 100,
        // The shift that must carry a value: 5 + 2^16 sits past its home slot 5 until 5 goes.
        examples: [
          [
            [
              { t: 'add', fp: 5, value: 1 },
              { t: 'add', fp: 5 + 65536, value: 2 },
              { t: 'remove', fp: 5, value: 1 },
            ],
          ],
        ],
      },
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
