/**
 * Hash helpers shared by the id indexes (src/labels/id-index.ts over strings,
 * src/contracts/ranker-columns.ts over id bytes).
 */

/**
 * murmur3's fmix32 finalizer: spreads every input bit over the low bits used as a table slot.
 *
 * @example
 * fmix32(1) !== fmix32(2); // neighbouring inputs land far apart
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
