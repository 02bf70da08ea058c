import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BufferingStore } from '../../src/join/buffering-store.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import type { JoinStateStore, StateEntry } from '../../src/join/types.ts';
import { SqliteJoinStore } from '../../src/store/sqlite-store.ts';
import { applyStoreOp, assertScan, type StoreOp, storeOpArbs } from './store-model.ts';

// Enough keys for the overlay's expiry heap to have right subtrees below a sweep's bound.
const keys = ['r:a', 'r:b', 'r:c', 'r:d', 'i:a', 'i:b', 'i:c', 'd:a', 'd:b', 'd:c', 'd:d', 'd:e'];
// Puts outweigh the rest so that the overlay holds many entries when a sweep comes.
const model = storeOpArbs(keys, fc.integer({ min: 1, max: 12 }), true);
const op = fc.oneof(
  { weight: 4, arbitrary: model.put },
  { weight: 1, arbitrary: model.del },
  { weight: 2, arbitrary: model.sweep },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('time' as const), ts: fc.integer({ min: 0, max: 100 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constantFrom('buffer' as const, 'apply' as const, 'discard' as const) }),
  },
);

/**
 * Runs ops against a BufferingStore over `inner` and against a map model: while buffering, the
 * model's view is the overlay's; `discard` returns to the state at `buffer`, `apply` keeps it.
 */
function check(makeInner: () => { store: JoinStateStore; done: () => void }) {
  fc.assert(
    // Small read-ahead pages, so that sweeps cross page ends and reach the last one.
    fc.property(fc.array(op, { maxLength: 80 }), fc.integer({ min: 1, max: 4 }), (ops, page) => {
      const { store: inner, done } = makeInner();
      const s = new BufferingStore(inner, page);
      let live = new Map<string, StateEntry>();
      let at: { map: Map<string, StateEntry>; time: number | null } | null = null;
      let time: number | null = null;
      for (const o of ops) {
        if (o.t === 'put' || o.t === 'del' || o.t === 'sweep') {
          applyStoreOp(s, live, o);
        } else if (o.t === 'time') {
          s.setStreamTime(o.ts);
          time = o.ts;
        } else if (o.t === 'buffer') {
          if (!s.buffering) at = { map: new Map(live), time };
          s.buffer();
        } else if (o.t === 'apply') {
          s.apply();
          at = null;
        } else {
          s.discard();
          if (at !== null) {
            live = at.map;
            time = at.time;
          }
          at = null;
        }
        // While buffering the store underneath keeps the state of when buffering began.
        if (s.buffering && at !== null) {
          for (const k of keys) assert.deepEqual(inner.get(k), at.map.get(k), `inner ${k}`);
        }
        assert.equal(s.size(), live.size);
        assert.equal(s.streamTime(), time);
        for (const k of keys) assert.deepEqual(s.get(k), live.get(k), k);
        assertScan(s, live);
        const trueMin = live.size === 0 ? null : Math.min(...[...live.values()].map((e) => e.expiresAt));
        const min = s.minExpiresAt();
        if (trueMin === null) assert.ok(min === null || s.buffering, 'no minimum of an empty store');
        else assert.ok(min !== null && min <= trueMin, `minExpiresAt ${min} above the true ${trueMin}`);
        if (!s.buffering) assert.equal(min, trueMin);
      }
      done();
    }),
    { numRuns: 300 },
  );
}

/** A memory store that counts the rows its `expiring` returns. */
class CountingStore extends MemoryJoinStore {
  rowsRead = 0;
  override expiring(...args: Parameters<MemoryJoinStore['expiring']>): Array<[string, StateEntry]> {
    const rows = super.expiring(...args);
    this.rowsRead += rows.length;
    return rows;
  }
}

/** Puts, deletes and sweeps (from the start of the order, as the operator's) while buffering. */
const buffered = storeOpArbs(keys, fc.integer({ min: 1, max: 12 }), false);
const bufferedOp: fc.Arbitrary<StoreOp> = fc.oneof(buffered.put, buffered.del, buffered.sweep);

describe('BufferingStore', () => {
  test('fast-check: while buffering over a filled store, sweeps see the overlay over it (small read-ahead pages)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...keys), fc.integer({ min: 0, max: 20 })), { maxLength: 12 }),
        fc.array(bufferedOp, { maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        (filled, ops, page) => {
          const inner = new MemoryJoinStore();
          const live = new Map<string, StateEntry>();
          for (const [k, at] of filled) applyStoreOp(inner, live, { t: 'put', k, at });
          const s = new BufferingStore(inner, page);
          s.buffer();
          for (const o of ops) {
            applyStoreOp(s, live, o);
            assert.equal(s.size(), live.size);
            const trueMin = live.size === 0 ? null : Math.min(...[...live.values()].map((e) => e.expiresAt));
            const min = s.minExpiresAt();
            if (trueMin !== null)
              assert.ok(min !== null && min <= trueMin, `minExpiresAt ${min} above ${trueMin}`);
            assertScan(s, live);
          }
          s.apply();
          for (const k of keys) assert.deepEqual(inner.get(k), live.get(k), k);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a sweep that expires rows one by one while buffering reads each inner row about once', () => {
    // The operator's pattern once entries expire steadily: on each record, ask for what expired,
    // delete it (in the overlay while a commit is in flight). Re-reading every row the overlay
    // already deleted made this quadratic in the rows expired per batch.
    const n = 3_000;
    const inner = new CountingStore();
    for (let i = 0; i < n; i++)
      inner.put(`d:${String(i).padStart(5, '0')}`, { kind: 'joined', ts: i, expiresAt: i });
    const s = new BufferingStore(inner);
    s.buffer();
    const expired: string[] = [];
    for (let wm = 0; wm <= n; wm++) {
      for (;;) {
        const min = s.minExpiresAt();
        if (min === null || min >= wm) break;
        const batch = s.expiring(wm, 64);
        if (batch.length === 0) break;
        for (const [k] of batch) {
          s.delete(k);
          expired.push(k);
        }
      }
      // and now and then a new entry, as joins add markers
      if (wm % 3 === 0) s.put(`d:new${wm}`, { kind: 'joined', ts: wm, expiresAt: wm + n }, true);
    }
    assert.equal(expired.length, n);
    assert.deepEqual(expired, [...expired].sort());
    assert.ok(inner.rowsRead <= 3 * n, `read ${inner.rowsRead} inner rows to expire ${n}`);
    assert.equal(s.size(), Math.floor(n / 3) + 1);
  });

  test('fast-check: over a memory store, any sequence matches a map model (buffer, apply, discard)', () => {
    check(() => ({ store: new MemoryJoinStore(), done: () => undefined }));
  });

  test('fast-check: the same over the SQLite store inside its open transaction', () => {
    check(() => {
      const store = SqliteJoinStore.open(':memory:');
      store.begin();
      return { store, done: () => store.close() };
    });
  });
});
