/**
 * A reusable, allocation-free hash index from item_id to list index, for the duplicate check of
 * validation and the impression → candidate lookup of the teacher view.
 *
 * Why not a Map: building a fresh Map of 200 string keys per request (growing through six
 * rehashes) was the single largest cost of labeling in the benchmark; this open-addressing table
 * is reused across requests (a generation stamp marks live slots, so nothing is cleared) and
 * hashes each id once, FNV-1a style over pairs of UTF-16 code units. Long ids are hashed by their length,
 * first 8 and last 16 code units (ids usually differ at the end); ids that collide are still told
 * apart by a full string comparison, so a collision costs speed, never correctness.
 *
 * One table per owner; the owner must finish using it before the next {@link IdIndex.build}.
 */

const EMPTY_GEN = 0;

/** Anything with an item id (RankedItem, ShownItem). */
export interface Keyed {
  readonly item_id: string;
}

function hashId(s: string): number {
  const len = s.length;
  let h = 0x811c9dc5 ^ len;
  // Two UTF-16 code units per step (lossless: each is 16 bits), FNV-1a style.
  if (len <= 24) {
    let i = 0;
    for (; i + 1 < len; i += 2)
      h = Math.imul(h ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x01000193);
    if (i < len) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  } else {
    for (let i = 0; i < 8; i += 2)
      h = Math.imul(h ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x01000193);
    for (let i = len - 16; i < len; i += 2) {
      h = Math.imul(h ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x01000193);
    }
  }
  // Final avalanche (murmur3 fmix32) so the low bits used as the slot are well mixed.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * item_id → index of the list it was built from.
 *
 * @example
 * const ix = new IdIndex();
 * const items = [{ item_id: 'a' }, { item_id: 'b' }, { item_id: 'a' }];
 * ix.build(items, 3); // 2: index of the first duplicate (-1 when none)
 * ix.get('b'); // 1
 */
export class IdIndex {
  private slots = new Int32Array(512);
  private stamps = new Int32Array(512);
  private gen = EMPTY_GEN;
  private mask = 511;
  private items: readonly Keyed[] = [];

  /**
   * Indexes the item_id of `items[0..n)`. Returns the index of the first item whose id was
   * already seen (a duplicate), or −1. Items after a duplicate are not indexed.
   */
  build(items: readonly Keyed[], n: number): number {
    this.ensure(n);
    const gen = this.nextGen();
    const slots = this.slots;
    const stamps = this.stamps;
    const mask = this.mask;
    this.items = items;
    for (let i = 0; i < n; i++) {
      const id = items[i]!.item_id;
      let k = hashId(id) & mask;
      while (stamps[k] === gen) {
        if (items[slots[k]!]!.item_id === id) return i;
        k = (k + 1) & mask;
      }
      stamps[k] = gen;
      slots[k] = i;
    }
    return -1;
  }

  /** Index of `id` in the list of the last build, or −1. */
  get(id: string): number {
    const gen = this.gen;
    const slots = this.slots;
    const stamps = this.stamps;
    const mask = this.mask;
    const items = this.items;
    let k = hashId(id) & mask;
    while (stamps[k] === gen) {
      const i = slots[k]!;
      if (items[i]!.item_id === id) return i;
      k = (k + 1) & mask;
    }
    return -1;
  }

  private ensure(n: number): void {
    // Load factor ≤ 1/2 keeps linear probing short.
    if (this.slots.length >= 2 * n) return;
    let size = this.slots.length;
    while (size < 2 * n) size *= 2;
    this.slots = new Int32Array(size);
    this.stamps = new Int32Array(size);
    this.mask = size - 1;
    this.gen = EMPTY_GEN;
  }

  private nextGen(): number {
    if (this.gen === 0x7fffffff) {
      this.stamps.fill(EMPTY_GEN);
      this.gen = EMPTY_GEN;
    }
    return ++this.gen;
  }
}
