// The map model both join-store property tests check a store against (test/store/sqlite-store
// and test/join/buffering-store): puts, deletes and sweeps applied to the store and the model.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type ExpiryPosition, isAfter, type JoinStateStore, type StateEntry } from '../../src/join/types.ts';

/** A store operation of the model tests. */
/** A sweep's optional start position over `keys`: sometimes none, sometimes any (at, key). */
function afterArb(keys: string[]): fc.Arbitrary<ExpiryPosition | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    fc.record({ at: fc.integer({ min: 0, max: 20 }), key: fc.constantFrom(...keys) }),
  );
}

/**
 * The model's puts, deletes and sweeps over `keys` as arbitraries; sweeps take `limit` and, when
 * `withAfter`, sometimes a start position.
 */
export function storeOpArbs(keys: string[], limit: fc.Arbitrary<number>, withAfter: boolean) {
  return {
    put: fc.record({
      t: fc.constant('put' as const),
      k: fc.constantFrom(...keys),
      at: fc.integer({ min: 0, max: 20 }),
    }),
    del: fc.record({ t: fc.constant('del' as const), k: fc.constantFrom(...keys) }),
    sweep: fc.record({
      t: fc.constant('sweep' as const),
      bound: fc.integer({ min: 0, max: 25 }),
      limit,
      after: withAfter ? afterArb(keys) : fc.constant(undefined),
    }),
  };
}

export type StoreOp =
  | { t: 'put'; k: string; at: number }
  | { t: 'del'; k: string }
  | { t: 'sweep'; bound: number; limit: number; after?: ExpiryPosition | undefined };

/** Asserts that the store's `scan` of each key prefix returns the model's entries under it. */
export function assertScan(
  s: JoinStateStore,
  live: Map<string, StateEntry>,
  prefixes = ['r:', 'i:', 'd:'],
): void {
  const byKey = (a: [string, StateEntry], b: [string, StateEntry]) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
  for (const p of prefixes) {
    const want = [...live].filter(([k]) => k.startsWith(p)).sort(byKey);
    assert.deepEqual(s.scan(p).sort(byKey), want, `scan('${p}')`);
  }
}

/**
 * Applies `o` to the store and to the model `live`; a sweep asserts that the store's `expiring`
 * returns what the model holds below the bound (and after its position, when it has one), in
 * (expiresAt, key) order.
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
    const after = o.after;
    const want = [...live]
      .filter(([k, e]) => e.expiresAt < o.bound && (after === undefined || isAfter(e.expiresAt, k, after)))
      .sort((a, b) => a[1].expiresAt - b[1].expiresAt || (a[0] < b[0] ? -1 : 1))
      .slice(0, o.limit);
    assert.deepEqual(s.expiring(o.bound, o.limit, after), want);
  }
}
