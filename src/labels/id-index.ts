/**
 * A reusable, allocation-free hash index from item_id to list index, for the duplicate check of
 * validation and the impression → candidate lookup of the teacher view.
 *
 * Why not a Map: building a fresh Map of 200 string keys per request (growing through six
 * rehashes) was the single largest cost of labeling in the benchmark. This open-addressing table
 * is reused across requests (a generation stamp marks live slots, so nothing is cleared).
 *
 * Hashing is two-speed, because reading characters is what costs: first a QUICK hash of the id's
 * length and its last 4 UTF-16 code units (catalog ids usually differ at the end), packed a byte
 * apart into one 32-bit word (lossless for Latin-1 ids) and spread by one Fibonacci multiply
 * (Knuth, TAOCP vol. 3 §6.4: the slot is the product's TOP bits). If that clusters — ids sharing
 * a long suffix, probes exceeding twice the list length — the list is re-indexed with the FULL
 * hash (length, first 8 and last 16 code units, or all of them up to 24). Colliding ids are
 * always told apart by a full string comparison, so the hash choice affects speed, never
 * correctness.
 *
 * One table per owner; the owner must finish using it before the next {@link IdIndex.build}.
 */

import { fmix32 } from '../hash.ts';

const EMPTY_GEN = 0;
const QUICK = 0;
const FULL = 1;

/** Anything with an item id (RankedItem, ShownItem). */
export interface Keyed {
  readonly item_id: string;
}

/** FNV-1a style over pairs of code units s[from..to) (each 16 bits, so a pair packs losslessly). */
function mixRange(h: number, s: string, from: number, to: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) h = Math.imul(h ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), 0x01000193);
  if (i < to) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * The QUICK hash {@link IdIndex.build} tries first. Exported for callers that hash ids during
 * their own pass over the list ({@link IdIndex.hashSlots}).
 *
 * @example
 * idHash('item-0012345') === idHash('item-0012345'); // a 32-bit integer
 */
export function idHash(s: string): number {
  const len = s.length;
  let x: number;
  if (len >= 4) {
    x =
      s.charCodeAt(len - 1) ^
      (s.charCodeAt(len - 2) << 8) ^
      (s.charCodeAt(len - 3) << 16) ^
      (s.charCodeAt(len - 4) << 24);
  } else {
    x = 0;
    for (let i = 0; i < len; i++) x = (x << 8) ^ s.charCodeAt(i);
  }
  // Fibonacci hashing: the high bits of the product depend on every bit of x.
  return Math.imul(x ^ Math.imul(len, 0x27d4eb2f), 0x9e3779b1);
}

function fullHash(s: string): number {
  const len = s.length;
  const h = 0x811c9dc5 ^ len;
  if (len <= 24) return fmix32(mixRange(h, s, 0, len));
  return fmix32(mixRange(mixRange(h, s, 0, 8), s, len - 16, len));
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
  private slots = new Int32Array(1024);
  private stamps = new Int32Array(1024);
  /** Hash of each indexed item, by list index: a probe compares strings only when these match. */
  private hashes = new Int32Array(256);
  private gen = EMPTY_GEN;
  private mask = 1023;
  private shift = 22; // 32 − log2(table size): slots come from the hash's top bits
  private mode = QUICK;
  private items: readonly Keyed[] = [];

  /**
   * Indexes the item_id of `items[0..n)`. Returns the index of the first item whose id was
   * already seen (a duplicate), or −1. Items after a duplicate are not indexed.
   */
  build(items: readonly Keyed[], n: number): number {
    const hashes = this.hashSlots(n);
    for (let i = 0; i < n; i++) hashes[i] = idHash(items[i]!.item_id);
    return this.buildHashed(items, n);
  }

  /**
   * The buffer to write `idHash(items[i].item_id)` into, at index i, before
   * {@link IdIndex.buildHashed}: lets a validation pass that already reads every id hash it on
   * the way instead of walking the list twice. Valid until the next call on this index.
   *
   * @example
   * const h = ix.hashSlots(items.length);
   * for (let i = 0; i < items.length; i++) h[i] = idHash(items[i].item_id);
   * ix.buildHashed(items, items.length); // same result as ix.build(items, items.length)
   */
  hashSlots(n: number): Int32Array {
    this.ensure(n);
    return this.hashes;
  }

  /** {@link IdIndex.build} of a list whose ids are already hashed into {@link IdIndex.hashSlots}. */
  buildHashed(items: readonly Keyed[], n: number): number {
    this.items = items;
    const r = this.fill(items, n, QUICK, 2 * n + 8);
    return r === -2 ? this.fill(items, n, FULL, Number.POSITIVE_INFINITY) : r;
  }

  /** Index of `id` in the list of the last build, or −1. */
  get(id: string): number {
    const gen = this.gen;
    const slots = this.slots;
    const stamps = this.stamps;
    const mask = this.mask;
    const items = this.items;
    const hashes = this.hashes;
    const h = this.mode === QUICK ? idHash(id) : fullHash(id);
    let k = h >>> this.shift;
    while (stamps[k] === gen) {
      const i = slots[k]!;
      if (hashes[i] === h && items[i]!.item_id === id) return i;
      k = (k + 1) & mask;
    }
    return -1;
  }

  /**
   * One indexing pass: dup index, −1, or −2 when more than `budget` extra probes were needed.
   * QUICK reads the hashes already in `hashes`; FULL computes and stores its own.
   */
  private fill(items: readonly Keyed[], n: number, mode: number, budget: number): number {
    const gen = this.nextGen();
    this.mode = mode;
    const slots = this.slots;
    const stamps = this.stamps;
    const mask = this.mask;
    const shift = this.shift;
    const hashes = this.hashes;
    let probes = 0;
    for (let i = 0; i < n; i++) {
      let h: number;
      if (mode === QUICK) h = hashes[i]!;
      else {
        h = fullHash(items[i]!.item_id);
        hashes[i] = h;
      }
      let k = h >>> shift;
      while (stamps[k] === gen) {
        const j = slots[k]!;
        if (hashes[j] === h && items[j]!.item_id === items[i]!.item_id) return i;
        k = (k + 1) & mask;
        if (++probes > budget) return -2;
      }
      stamps[k] = gen;
      slots[k] = i;
    }
    return -1;
  }

  private ensure(n: number): void {
    if (this.hashes.length < n) this.hashes = new Int32Array(Math.max(n, 2 * this.hashes.length));
    // Load factor ≤ 1/4 keeps linear probing short (the tables of 200 ids still fit in L1).
    if (this.slots.length >= 4 * n) return;
    let size = this.slots.length;
    while (size < 4 * n) size *= 2;
    this.slots = new Int32Array(size);
    this.stamps = new Int32Array(size);
    this.mask = size - 1;
    this.shift = 32 - Math.log2(size);
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
