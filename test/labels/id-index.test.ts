import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { IdIndex } from '../../src/labels/id-index.ts';

const keyed = (ids: string[]) => ids.map((item_id) => ({ item_id }));

/** What a Map says: each id's first index (up to the first repeat), and that repeat's index or −1. */
function reference(ids: readonly string[]): { first: Map<string, number>; dup: number } {
  const first = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) {
    if (first.has(ids[i]!)) return { first, dup: i };
    first.set(ids[i]!, i);
  }
  return { first, dup: -1 };
}

describe('IdIndex', () => {
  test('maps ids to their index and reports the first duplicate', () => {
    const ix = new IdIndex();
    assert.equal(ix.build(keyed(['a', 'b', 'c']), 3), -1);
    assert.equal(ix.get('c'), 2);
    assert.equal(ix.get('zz'), -1);
    assert.equal(ix.build(keyed(['a', 'b', 'a', 'b']), 4), 2);
    assert.equal(ix.get('a'), 0);
  });

  test('a new build forgets the previous list', () => {
    const ix = new IdIndex();
    ix.build(keyed(['x', 'y']), 2);
    ix.build(keyed(['y']), 1);
    assert.equal(ix.get('x'), -1);
    assert.equal(ix.get('y'), 0);
  });

  test('agrees with a Map on arbitrary lists (collisions, growth, long ids)', () => {
    const ix = new IdIndex();
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), fc.string({ minLength: 25, maxLength: 40 })),
          {
            maxLength: 700,
          },
        ),
        (ids) => {
          const { first, dup } = reference(ids);
          if (ix.build(keyed(ids), ids.length) !== dup) return false;
          for (const [id, i] of first) if (ix.get(id) !== i) return false;
          return true;
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('IdIndex with ids sharing a long suffix (quick hash clusters, full hash takes over)', () => {
  test('still finds every id and the duplicate', () => {
    const ix = new IdIndex();
    const ids = Array.from({ length: 300 }, (_, i) => `${i}:catalog-product`);
    assert.equal(ix.build(keyed(ids), ids.length), -1);
    for (let i = 0; i < ids.length; i += 37) assert.equal(ix.get(ids[i]!), i);
    assert.equal(ix.get('9999:catalog-product'), -1);
    assert.equal(ix.build(keyed([...ids, ids[123]!]), ids.length + 1), ids.length);
    // and back to quick-hash lists afterwards
    assert.equal(ix.build(keyed(['x1', 'x2']), 2), -1);
    assert.equal(ix.get('x2'), 1);
  });
});

describe('IdIndex on non-Latin-1 and mid-length ids (quick hash packs code units a byte apart)', () => {
  test('agrees with a Map', () => {
    const ix = new IdIndex();
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
            fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }),
            fc.integer({ min: 0, max: 999 }).map((i) => `item-${String(i).padStart(7, '0')}`),
          ),
          { maxLength: 400 },
        ),
        (ids) => {
          const { first, dup } = reference(ids);
          if (ix.build(keyed(ids), ids.length) !== dup) return false;
          for (const [id, i] of first) if (ix.get(id) !== i) return false;
          return ix.get('\u{1F600}absent') === -1;
        },
      ),
      { numRuns: 80 },
    );
  });
});
