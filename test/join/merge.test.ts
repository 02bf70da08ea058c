import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type MergeChunk, type MergeEntry, type MergeSide, PartitionMerge } from '../../src/join/merge.ts';

type E = MergeEntry<string>;

function drainAll(m: PartitionMerge<string>, out: string[]): void {
  for (let n = m.next(); n !== undefined; n = m.next()) out.push(n.entry.item);
}

function sideEntries(side: MergeSide, ts: number[]): E[] {
  return ts.map((t, i) => ({ ts: t, offset: i, item: `${side}:${i}@${t}` }));
}

/** Both inputs pushed at once, then both marked ended. */
function allAtOnce(a: E[], b: E[]): string[] {
  const m = new PartitionMerge<string>();
  m.push(0, a);
  m.push(1, b);
  m.setCaughtUp(0, true);
  m.setCaughtUp(1, true);
  const out: string[] = [];
  drainAll(m, out);
  return out;
}

const tsArb = fc.array(fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(Number.NEGATIVE_INFINITY)), {
  maxLength: 30,
});

describe('PartitionMerge', () => {
  test('releases the smallest (ts, side, offset) head; ranker side wins ties', () => {
    const out = allAtOnce(sideEntries(0, [1, 5, 5]), sideEntries(1, [0, 5, 9]));
    assert.deepEqual(out, ['1:0@0', '0:0@1', '0:1@5', '0:2@5', '1:1@5', '1:2@9']);
  });

  test('waits while one side is empty and not caught up', () => {
    const m = new PartitionMerge<string>();
    m.push(0, sideEntries(0, [1, 2]));
    assert.equal(m.next(), undefined);
    assert.equal(m.blockedOn(), 1);
    m.setCaughtUp(1, true);
    assert.equal(m.next()?.entry.item, '0:0@1');
  });

  test('any chunking of the two inputs into arrival batches gives the all-at-once order', () => {
    fc.assert(
      fc.property(
        tsArb,
        tsArb,
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 5 })), { maxLength: 60 }),
        fc.boolean(),
        (ta, tb, schedule, eofFlags) => {
          const a = sideEntries(0, ta);
          const b = sideEntries(1, tb);
          const expected = allAtOnce(a, b);
          const m = new PartitionMerge<string>();
          const pos = [0, 0];
          const inputs = [a, b];
          const out: string[] = [];
          const deliver = (side: MergeSide, n: number) => {
            const src = inputs[side]!;
            const chunk = src.slice(pos[side], pos[side]! + n);
            pos[side]! += chunk.length;
            m.push(side, chunk);
            // A transport marks a side caught up only when it really reached the end of its log.
            if (eofFlags && pos[side] === src.length) m.setCaughtUp(side, true);
            drainAll(m, out);
          };
          for (const [first, n] of schedule) deliver(first ? 0 : 1, n);
          deliver(0, a.length);
          deliver(1, b.length);
          m.setCaughtUp(0, true);
          m.setCaughtUp(1, true);
          drainAll(m, out);
          assert.deepEqual(out, expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('chunks give the all-at-once order and make an entry only when it reaches the head', () => {
    fc.assert(
      fc.property(
        tsArb,
        tsArb,
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 10 }),
        (ta, tb, sizes) => {
          const a = sideEntries(0, ta);
          const b = sideEntries(1, tb);
          const made: [number, number] = [0, 0];
          const released: [number, number] = [0, 0];
          /** A chunk that counts the entries it made and checks they are asked for once, in order. */
          const chunk = (side: MergeSide, entries: E[], base: number): MergeChunk<string> => ({
            length: entries.length,
            entry: (i) => {
              assert.equal(base + i, made[side], 'entries are made once each, in order');
              made[side]++;
              return entries[i]!;
            },
          });
          const m = new PartitionMerge<string>();
          for (const [side, src] of [
            [0, a],
            [1, b],
          ] as const) {
            for (let at = 0, k = 0; at < src.length; k++) {
              const n = sizes[k % sizes.length]!;
              m.pushChunk(side, chunk(side, src.slice(at, at + n), at));
              at += n;
            }
          }
          m.setCaughtUp(0, true);
          m.setCaughtUp(1, true);
          assert.equal(m.buffered(0) + m.buffered(1), a.length + b.length);
          const out: string[] = [];
          for (let n = m.next(); n !== undefined; n = m.next()) {
            out.push(n.entry.item);
            released[n.side]++;
            // Only the heads exist as entries: at most one made and not yet released per side.
            assert.ok(made[0] - released[0] <= 1 && made[1] - released[1] <= 1);
          }
          assert.deepEqual(out, allAtOnce(a, b));
          assert.deepEqual(made, [a.length, b.length]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
