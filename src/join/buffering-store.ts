/**
 * A {@link JoinStateStore} layer that can hold writes in memory for a while: while
 * {@link BufferingStore.buffering}, puts, deletes and the stream time go to an overlay that reads
 * see first, and the store underneath is not written; {@link BufferingStore.apply} writes the
 * overlay through.
 *
 * Why: the service commits a batch's SQLite transaction only after the batch's Kafka transaction
 * committed (so the state never runs ahead of the changelog and offsets). The Kafka commit takes a
 * few round trips; with this layer the next batch is processed meanwhile, its state changes held
 * here, and written into the next SQLite transaction once the previous one committed. Without it
 * the task idled for every commit (a quarter of the time with one task per thread at 20
 * candidates).
 *
 * Reads during buffering see the overlay over the store; `expiring` merges both in
 * (expiresAt, key) order, skipping rows the overlay replaced or deleted. The store underneath is
 * not written while buffering, so its rows can be read ahead in pages and rows the overlay hides
 * stay hidden: `expiring` serves the sweeps from the read-ahead rows, past the leading run of
 * hidden ones. A sweep runs on nearly every record once entries expire steadily; asking the store
 * underneath each time re-read every row expired so far in the batch (quadratic: the service ran
 * 6× slower at 20 candidates), and even one indexed SQLite query per sweep cost ~20 µs.
 * `minExpiresAt` may be below the true minimum while buffering (a row deleted in the overlay still
 * counts), never above it, which is what the operator's sweep needs: it then asks `expiring`,
 * which finds the truth.
 *
 * Pure: no I/O.
 */
import { type ExpiryItem, heapMin, heapPush } from './expiry-heap.ts';
import { type ExpiryPosition, isAfter, type JoinStateStore, type StateEntry } from './types.ts';

/**
 * Inner rows read ahead per query while buffering: the first page of a buffering period is
 * {@link FIRST_PAGE} rows and each next one twice the last, up to PAGE. A period (one commit's
 * round trips) usually sweeps a few dozen rows — marker blocks, lone records — and every row read
 * is copied out of SQLite: whole 256-row pages read ~10× the rows swept (3% of the labeler's CPU).
 */
const PAGE = 256;
const FIRST_PAGE = 16;
/**
 * Passed read-ahead rows are dropped from memory once there are this many and they are at least
 * half of the rows held (so each row is copied O(1) times): pending entries may carry kilobytes.
 */
const COMPACT_AT = 512;

/**
 * @example
 * const s = new BufferingStore(new MemoryJoinStore());
 * s.buffer();
 * s.put('d:r1', { kind: 'joined', ts: 1, expiresAt: 11 }); // in the overlay only
 * s.apply(); // now in the store underneath
 */
export class BufferingStore implements JoinStateStore {
  readonly inner: JoinStateStore;
  #buffering = false;
  /** Overlay: the entry, or null for a delete. */
  #over = new Map<string, StateEntry | null>();
  /**
   * Min-heap of (expiresAt, key) over the overlay's entries; items of keys since deleted or
   * re-put with another expiry are skipped (and dropped from the top) lazily. The operator sweeps
   * on nearly every record once entries expire steadily, so the overlay's expiring entries are
   * found by walking the heap's items below the bound, not by scanning the overlay.
   */
  #heap: ExpiryItem[] = [];
  /** Stream time set while buffering. */
  #streamTime: number | null = null;
  /** Entries added minus removed by the overlay. */
  #sizeDelta = 0;
  /**
   * While buffering, the store underneath is not written, so its rows in (expiresAt, key) order
   * can be read ahead once: `#rows` holds them from the first one not known to be hidden by the
   * overlay (`#pos`), read in pages (growing to {@link PAGE}) as sweeps reach them; `#exhausted` once a
   * short page showed there are no more.
   */
  #rows: Array<[string, StateEntry]> = [];
  #pos = 0;
  /** Position of the last row read ahead (the next page starts after it). */
  #readTo: ExpiryPosition | undefined;
  #exhausted = false;
  /** Keys of the inner rows the latest `expiring` returned. */
  #returned = new Set<string>();

  /** Inner rows read ahead per query at most ({@link PAGE}; tests use small pages to cross their ends). */
  readonly #page: number;
  /** Rows the next read-ahead asks for. */
  #ahead: number;

  constructor(inner: JoinStateStore, page = PAGE) {
    this.inner = inner;
    this.#page = page;
    this.#ahead = Math.min(FIRST_PAGE, page);
  }

  /** Whether writes are held in the overlay. */
  get buffering(): boolean {
    return this.#buffering;
  }

  /** Starts holding writes (a no-op when already buffering). */
  buffer(): void {
    this.#buffering = true;
  }

  /** Writes the overlay through to the store underneath and stops buffering. */
  apply(): void {
    for (const [key, e] of this.#over) {
      if (e === null) this.inner.delete(key);
      else this.inner.put(key, e, this.inner.get(key) === undefined);
    }
    if (this.#streamTime !== null) this.inner.setStreamTime(this.#streamTime);
    this.discard();
  }

  /** Drops the overlay (its batch was rolled back) and stops buffering. */
  discard(): void {
    this.#over = new Map();
    this.#heap = [];
    this.#streamTime = null;
    this.#sizeDelta = 0;
    this.#rows = [];
    this.#pos = 0;
    this.#ahead = Math.min(FIRST_PAGE, this.#page);
    this.#readTo = undefined;
    this.#exhausted = false;
    this.#returned.clear();
    this.#buffering = false;
  }

  get(key: string): StateEntry | undefined {
    if (this.#over.size > 0) {
      const o = this.#over.get(key);
      if (o !== undefined) return o ?? undefined;
    }
    return this.inner.get(key);
  }

  put(key: string, entry: StateEntry, isNew?: boolean): void {
    if (!this.#buffering) {
      this.inner.put(key, entry, isNew);
      return;
    }
    if (isNew === true || this.get(key) === undefined) this.#sizeDelta++;
    this.#over.set(key, entry);
    heapPush(this.#heap, { at: entry.expiresAt, key });
  }

  delete(key: string): void {
    if (!this.#buffering) {
      this.inner.delete(key);
      return;
    }
    const o = this.#over.get(key);
    // A row the last sweep returned is known to exist (the store underneath is not written while
    // buffering): the sweep deletes each, and asking SQLite again cost a query per expired entry.
    const exists =
      o !== undefined ? o !== null : this.#returned.has(key) || this.inner.get(key) !== undefined;
    if (exists) this.#sizeDelta--;
    this.#over.set(key, null);
  }

  expiring(bound: number, limit: number, after?: ExpiryPosition): Array<[string, StateEntry]> {
    if (this.#over.size === 0) return this.inner.expiring(bound, limit, after);
    const over = this.#over;
    const hits: Array<[string, StateEntry]> = [];
    if (after === undefined) this.#innerExpiring(bound, limit, hits);
    else {
      // From a caller's position (not the sweep's path): read the store underneath directly.
      let from = after;
      for (;;) {
        const rows = this.inner.expiring(bound, this.#page, from);
        for (const kv of rows) if (!over.has(kv[0]) && hits.length < limit) hits.push(kv);
        if (rows.length < this.#page || hits.length >= limit) break;
        const last = rows[rows.length - 1]!;
        from = { at: last[1].expiresAt, key: last[0] };
      }
    }
    // The overlay's entries below the bound: the heap items below it form a subtree at the root
    // (usually empty: the overlay holds the batch's new entries, which expire in the future).
    const h = this.#heap;
    if (h.length === 0 || h[0]!.at >= bound) return hits.length > limit ? hits.slice(0, limit) : hits;
    const seen = new Set<string>();
    const stack = [0];
    while (stack.length > 0) {
      const i = stack.pop()!;
      const item = h[i];
      if (item === undefined || item.at >= bound) continue;
      const e = over.get(item.key);
      if (
        e != null &&
        e.expiresAt === item.at &&
        !seen.has(item.key) &&
        (after === undefined || isAfter(e.expiresAt, item.key, after))
      ) {
        seen.add(item.key);
        hits.push([item.key, e]);
      }
      stack.push(2 * i + 1, 2 * i + 2);
    }
    hits.sort((a, b) => a[1].expiresAt - b[1].expiresAt || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return hits.length > limit ? hits.slice(0, limit) : hits;
  }

  /**
   * Up to `limit` visible inner rows below `bound` into `hits`, from the read-ahead rows; moves
   * `#pos` over the leading hidden ones (rows returned are not passed: the caller may not delete
   * them).
   */
  #innerExpiring(bound: number, limit: number, hits: Array<[string, StateEntry]>): void {
    if (this.#pos >= COMPACT_AT && this.#pos * 2 >= this.#rows.length) {
      this.#rows = this.#rows.slice(this.#pos);
      this.#pos = 0;
    }
    const over = this.#over;
    const returned = this.#returned;
    returned.clear();
    let leading = true;
    for (let i = this.#pos; ; i++) {
      if (i === this.#rows.length && !this.#readAhead()) return;
      const kv = this.#rows[i]!;
      if (kv[1].expiresAt >= bound) return;
      if (over.has(kv[0])) {
        if (leading) this.#pos = i + 1;
      } else {
        leading = false;
        hits.push(kv);
        returned.add(kv[0]);
        if (hits.length >= limit) return;
      }
    }
  }

  /** Appends the next page of inner rows; false when there are none. */
  #readAhead(): boolean {
    if (this.#exhausted) return false;
    const n = this.#ahead;
    this.#ahead = Math.min(2 * n, this.#page);
    const page = this.inner.expiring(Number.POSITIVE_INFINITY, n, this.#readTo);
    if (page.length < n) this.#exhausted = true;
    for (const kv of page) this.#rows.push(kv);
    const last = page[page.length - 1];
    if (last !== undefined) this.#readTo = { at: last[1].expiresAt, key: last[0] };
    return page.length > 0;
  }

  minExpiresAt(): number | null {
    let inner = this.inner.minExpiresAt();
    // Rows passed so far are hidden: the visible inner minimum is not below the next row's expiry,
    // and there is none once every row was read and passed.
    if (inner !== null) {
      const next = this.#rows[this.#pos];
      if (next !== undefined) {
        if (inner < next[1].expiresAt) inner = next[1].expiresAt;
      } else if (this.#exhausted) inner = null;
    }
    const over = this.#overMin();
    if (over === null) return inner;
    return inner === null || over < inner ? over : inner;
  }

  /** The store's entries under `prefix` as the overlay shows them. */
  scan(prefix: string): Array<[string, StateEntry]> {
    const out = this.inner.scan(prefix).filter(([k]) => !this.#over.has(k));
    for (const [k, e] of this.#over) if (e !== null && k.startsWith(prefix)) out.push([k, e]);
    return out;
  }

  /** Smallest expiresAt of the overlay's entries (dropping stale heap items), or null. */
  #overMin(): number | null {
    return heapMin(this.#heap, this.#over);
  }

  streamTime(): number | null {
    return this.#streamTime ?? this.inner.streamTime();
  }

  setStreamTime(ts: number): void {
    if (this.#buffering) this.#streamTime = ts;
    else this.inner.setStreamTime(ts);
  }

  size(): number {
    return this.inner.size() + this.#sizeDelta;
  }
}
