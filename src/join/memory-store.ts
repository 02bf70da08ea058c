/**
 * In-memory {@link JoinStateStore} for unit tests and small file runs. The service uses the SQLite
 * store (src/store/), which keeps millions of open requests out of the JS heap.
 */
import { type ExpiryPosition, isAfter, type JoinStateStore, type StateEntry } from './types.ts';

/**
 * @example
 * const s = new MemoryJoinStore();
 * s.put('d:r1', { kind: 'joined', ts: 1, expiresAt: 11 });
 * s.expiring(12, 10); // [['d:r1', {...}]]
 */
export class MemoryJoinStore implements JoinStateStore {
  readonly #map = new Map<string, StateEntry>();
  #streamTime: number | null = null;
  /** Cached minimum expiresAt; recomputed lazily after the entry holding it is deleted. */
  #min: number | null = null;
  #minDirty = false;

  get(key: string): StateEntry | undefined {
    return this.#map.get(key);
  }
  put(key: string, entry: StateEntry): void {
    const old = this.#map.get(key);
    if (old !== undefined && old.expiresAt === this.#min) this.#minDirty = true;
    this.#map.set(key, entry);
    if (!this.#minDirty && (this.#min === null || entry.expiresAt < this.#min)) this.#min = entry.expiresAt;
  }
  delete(key: string): void {
    const old = this.#map.get(key);
    if (old === undefined) return;
    this.#map.delete(key);
    if (old.expiresAt === this.#min) this.#minDirty = true;
  }
  expiring(bound: number, limit: number, after?: ExpiryPosition): Array<[string, StateEntry]> {
    const hits: Array<[string, StateEntry]> = [];
    for (const kv of this.#map)
      if (kv[1].expiresAt < bound && (after === undefined || isAfter(kv[1].expiresAt, kv[0], after)))
        hits.push(kv);
    hits.sort((a, b) => a[1].expiresAt - b[1].expiresAt || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return hits.slice(0, limit);
  }
  minExpiresAt(): number | null {
    if (this.#minDirty) {
      let min: number | null = null;
      for (const e of this.#map.values()) if (min === null || e.expiresAt < min) min = e.expiresAt;
      this.#min = min;
      this.#minDirty = false;
    }
    return this.#map.size === 0 ? null : this.#min;
  }
  scan(prefix: string): Array<[string, StateEntry]> {
    return [...this.#map].filter(([k]) => k.startsWith(prefix));
  }
  streamTime(): number | null {
    return this.#streamTime;
  }
  setStreamTime(ts: number): void {
    this.#streamTime = ts;
  }
  size(): number {
    return this.#map.size;
  }
}
