/**
 * A negative-lookup filter for the join state store: the multiset of 32-bit fingerprints of the
 * keys that are in SQLite. A fingerprint that is absent means the key is certainly absent, so
 * the store answers `get` (and `delete`) without a query.
 *
 * Why: the join operator asks for up to five keys per request (`d:`, `r:` and `i:` of its id on
 * each side's arrival), and almost all of them do not exist; each miss was a better-sqlite3 call
 * of ~1 µs, a quarter of the in-process cost of a request at 20 candidates. A Bloom filter cannot
 * forget deleted keys (markers and pending records are deleted all the time), a counting one
 * needs several counters per key; one open-addressing slot per key holding its fingerprint is
 * 4 bytes at most twice per key (8-16 MB for the 1M open requests the RSS benchmark holds) and
 * exact apart from fingerprint collisions (another key with the same 32 bits: a query that
 * finds nothing, as before the filter).
 *
 * Linear probing with backward-shift deletion (no tombstones, so lookups stay short under the
 * constant churn). Fingerprints are never 0, the empty slot. Equal fingerprints of different keys
 * take one slot each, so removing one leaves the other present.
 */
import { fmix32 } from '../hash.ts';

/**
 * The fingerprint of a state key: FNV-1a over its UTF-16 code units, then fmix32; never 0.
 *
 * @example
 * keyFingerprint('d:req-1') !== keyFingerprint('r:req-1'); // different keys, different prints (almost always)
 */
export function keyFingerprint(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return fmix32(h ^ key.length) >>> 0 || 1;
}

const MIN_CAPACITY = 1024;

/**
 * With `withValues`, each occurrence also carries a 32-bit value (a multiset of (fingerprint,
 * value) pairs): {@link MarkerBlockStore} keeps the block number of each done marker this way.
 *
 * @example
 * const f = new KeyFilter();
 * f.add(keyFingerprint('d:r1'));
 * f.has(keyFingerprint('d:r1')); // true
 * f.has(keyFingerprint('d:r2')); // false (certainly not stored)
 * const m = new KeyFilter(true);
 * m.add(keyFingerprint('r1'), 7);
 * m.valuesOf(keyFingerprint('r1')); // [7]
 */
export class KeyFilter {
  #slots = new Uint32Array(MIN_CAPACITY);
  /** Values beside #slots (same index), when the filter was made `withValues`. */
  #vals: Uint32Array | undefined;
  #mask = MIN_CAPACITY - 1;
  #size = 0;

  constructor(withValues = false) {
    if (withValues) this.#vals = new Uint32Array(MIN_CAPACITY);
  }

  /** Fingerprints held (with multiplicity). */
  get size(): number {
    return this.#size;
  }

  /** Whether some held fingerprint equals `fp` (false: no stored key has it). */
  has(fp: number): boolean {
    const s = this.#slots;
    const mask = this.#mask;
    for (let i = slotOf(fp, mask); ; i = (i + 1) & mask) {
      const v = s[i]!;
      if (v === fp) return true;
      if (v === 0) return false;
    }
  }

  /** The values of the held occurrences of `fp` (a filter `withValues`; else zeros). */
  valuesOf(fp: number): number[] {
    const out: number[] = [];
    const s = this.#slots;
    const mask = this.#mask;
    for (let i = slotOf(fp, mask); ; i = (i + 1) & mask) {
      const v = s[i]!;
      if (v === 0) return out;
      if (v === fp) out.push(this.#vals?.[i] ?? 0);
    }
  }

  /** Adds one occurrence of `fp` (a key written to the store), with `value` when `withValues`. */
  add(fp: number, value = 0): void {
    if (2 * (this.#size + 1) > this.#slots.length) this.#rehash(2 * this.#slots.length);
    const s = this.#slots;
    const mask = this.#mask;
    let i = slotOf(fp, mask);
    while (s[i] !== 0) i = (i + 1) & mask;
    s[i] = fp;
    if (this.#vals !== undefined) this.#vals[i] = value;
    this.#size++;
  }

  /**
   * Removes one occurrence of `fp` (a key deleted from the store), of the pair (`fp`, `value`)
   * when `withValues`; false when none is held.
   */
  remove(fp: number, value = 0): boolean {
    const s = this.#slots;
    const vals = this.#vals;
    const mask = this.#mask;
    let i = slotOf(fp, mask);
    for (;;) {
      const v = s[i]!;
      if (v === 0) return false;
      if (v === fp && (vals === undefined || vals[i] === value)) break;
      i = (i + 1) & mask;
    }
    // Backward shift: pull later members of the probe run into the hole when their home slot
    // is not cyclically in (hole, j], so every remaining fingerprint stays reachable from home.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const v = s[j]!;
      if (v === 0) break;
      const home = slotOf(v, mask);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        s[hole] = v;
        if (vals !== undefined) vals[hole] = vals[j]!;
        hole = j;
      }
    }
    s[hole] = 0;
    this.#size--;
    return true;
  }

  /** Forgets everything (and gives the memory back). */
  clear(): void {
    this.#slots = new Uint32Array(MIN_CAPACITY);
    if (this.#vals !== undefined) this.#vals = new Uint32Array(MIN_CAPACITY);
    this.#mask = MIN_CAPACITY - 1;
    this.#size = 0;
  }

  #rehash(capacity: number): void {
    const old = this.#slots;
    const oldVals = this.#vals;
    this.#slots = new Uint32Array(capacity);
    if (oldVals !== undefined) this.#vals = new Uint32Array(capacity);
    this.#mask = capacity - 1;
    const s = this.#slots;
    const vals = this.#vals;
    const mask = this.#mask;
    for (let k = 0; k < old.length; k++) {
      const v = old[k]!;
      if (v === 0) continue;
      let i = slotOf(v, mask);
      while (s[i] !== 0) i = (i + 1) & mask;
      s[i] = v;
      if (vals !== undefined) vals[i] = oldVals![k]!;
    }
  }
}

/** Home slot: the fingerprint's bits are already mixed (fmix32), so its low bits will do. */
function slotOf(fp: number, mask: number): number {
  return fp & mask;
}
