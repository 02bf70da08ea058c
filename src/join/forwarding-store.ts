/**
 * A {@link JoinStateStore} that passes every call to the store underneath: the base of the
 * decorators that change a few calls (src/join/changelog.ts, src/join/marker-blocks.ts), which
 * override only those.
 *
 * Pure: no I/O.
 */
import type { ExpiryPosition, JoinStateStore, StateEntry } from './types.ts';

/**
 * @example
 * class Counting extends ForwardingStore { puts = 0; override put(k: string, e: StateEntry, n?: boolean) { this.puts++; super.put(k, e, n); } }
 */
export class ForwardingStore implements JoinStateStore {
  readonly inner: JoinStateStore;

  constructor(inner: JoinStateStore) {
    this.inner = inner;
  }

  get(key: string): StateEntry | undefined {
    return this.inner.get(key);
  }
  put(key: string, entry: StateEntry, isNew?: boolean): void {
    this.inner.put(key, entry, isNew);
  }
  delete(key: string): void {
    this.inner.delete(key);
  }
  expiring(bound: number, limit: number, after?: ExpiryPosition): Array<[string, StateEntry]> {
    return this.inner.expiring(bound, limit, after);
  }
  minExpiresAt(): number | null {
    return this.inner.minExpiresAt();
  }
  scan(prefix: string): Array<[string, StateEntry]> {
    return this.inner.scan(prefix);
  }
  streamTime(): number | null {
    return this.inner.streamTime();
  }
  setStreamTime(ts: number): void {
    this.inner.setStreamTime(ts);
  }
  size(): number {
    return this.inner.size();
  }
}
