/**
 * A binary min-heap of (expiresAt, key) items in a plain array, shared by the stores that track
 * the expiry of entries they hold in memory (SqliteJoinStore's fresh entries, BufferingStore's
 * overlay). Callers validate items lazily against their maps: a heap item whose key was deleted
 * or re-put with another expiry is stale and skipped or popped.
 *
 * Pure: no I/O.
 */

/** One heap item: an entry's expiry and key. */
export interface ExpiryItem {
  at: number;
  key: string;
}

/**
 * Adds an item.
 *
 * @example
 * const h: ExpiryItem[] = [];
 * heapPush(h, { at: 5, key: 'r:a' });
 * heapPush(h, { at: 3, key: 'd:b' });
 * h[0]; // { at: 3, key: 'd:b' }
 */
export function heapPush(h: ExpiryItem[], x: ExpiryItem): void {
  let i = h.length;
  h.push(x);
  while (i > 0) {
    const p = (i - 1) >> 1;
    const hp = h[p] as ExpiryItem;
    if (hp.at <= x.at) break;
    h[i] = hp;
    i = p;
  }
  h[i] = x;
}

/**
 * Removes the smallest item.
 *
 * @example
 * heapPop(h); // h[0] is now the next smallest
 */
export function heapPop(h: ExpiryItem[]): void {
  const last = h.pop();
  if (last === undefined || h.length === 0) return;
  const n = h.length;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && (h[r] as ExpiryItem).at < (h[l] as ExpiryItem).at ? r : l;
    const hc = h[c] as ExpiryItem;
    if (hc.at >= last.at) break;
    h[i] = hc;
    i = c;
  }
  h[i] = last;
}

/**
 * The smallest expiry among the heap's valid items, popping stale ones off the top. An item is
 * valid while `entries` holds its key with that very expiry (a re-put with the same expiry gives
 * the same minimum, so it may stand for either).
 *
 * @example
 * heapMin(h, fresh); // null when no item is valid
 */
export function heapMin(
  h: ExpiryItem[],
  entries: { get(key: string): { expiresAt: number } | null | undefined },
): number | null {
  for (;;) {
    const top = h[0];
    if (top === undefined) return null;
    if (entries.get(top.key)?.expiresAt === top.at) return top.at;
    heapPop(h);
  }
}
