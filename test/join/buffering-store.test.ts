import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BufferingStore } from '../../src/join/buffering-store.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import type { JoinStateStore, StateEntry } from '../../src/join/types.ts';
import { SqliteJoinStore } from '../../src/store/sqlite-store.ts';
import { applyStoreOp } from './store-model.ts';

// Enough keys for the overlay's expiry heap to have right subtrees below a sweep's bound.
const keys = ['r:a', 'r:b', 'r:c', 'r:d', 'i:a', 'i:b', 'i:c', 'd:a', 'd:b', 'd:c', 'd:d', 'd:e'];
// Puts outweigh the rest so that the overlay holds many entries when a sweep comes.
const op = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('put' as const),
      k: fc.constantFrom(...keys),
      at: fc.integer({ min: 0, max: 20 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.constantFrom(...keys) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('sweep' as const),
      bound: fc.integer({ min: 0, max: 25 }),
      limit: fc.integer({ min: 1, max: 12 }),
    }),
  },
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
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const { store: inner, done } = makeInner();
      const s = new BufferingStore(inner);
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

describe('BufferingStore', () => {
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
