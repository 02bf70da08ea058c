// The map model both join-store property tests check a store against (test/store/sqlite-store
// and test/join/buffering-store): puts, deletes and sweeps applied to the store and the model.
import assert from 'node:assert/strict';
import type { JoinStateStore, StateEntry } from '../../src/join/types.ts';

/** A store operation of the model tests. */
export type StoreOp =
  | { t: 'put'; k: string; at: number }
  | { t: 'del'; k: string }
  | { t: 'sweep'; bound: number; limit: number };

/**
 * Applies `o` to the store and to the model `live`; a sweep asserts that the store's `expiring`
 * returns what the model holds below the bound, in (expiresAt, key) order.
 */
export function applyStoreOp(s: JoinStateStore, live: Map<string, StateEntry>, o: StoreOp): void {
  if (o.t === 'put') {
    const e: StateEntry = { kind: 'joined', ts: o.at, expiresAt: o.at };
    // isNew exactly as the operator passes it: the key was just looked up and absent.
    s.put(o.k, e, s.get(o.k) === undefined);
    live.set(o.k, e);
  } else if (o.t === 'del') {
    s.delete(o.k);
    live.delete(o.k);
  } else {
    const want = [...live]
      .filter(([, e]) => e.expiresAt < o.bound)
      .sort((a, b) => a[1].expiresAt - b[1].expiresAt || (a[0] < b[0] ? -1 : 1))
      .slice(0, o.limit);
    assert.deepEqual(s.expiring(o.bound, o.limit), want);
  }
}
