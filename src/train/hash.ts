/**
 * Small, stable hashes and a seeded PRNG for the trainer: id hashing (the table's overflow
 * fallback), feature hashing, the held-out split and the frequency estimator all need a hash that
 * is the same in every process and every run, so a checkpoint written by one run means the same
 * thing to the next.
 */

/**
 * 32-bit FNV-1a of a string's UTF-16 code units, with an optional seed mixed into the offset basis.
 *
 * @example
 * fnv1a('item-42') === fnv1a('item-42'); // stable across runs and processes
 */
export function fnv1a(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // final avalanche (murmur3 fmix32) so low bits are usable for modulo
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * mulberry32: a tiny seeded PRNG returning floats in [0, 1). Deterministic initialisation of
 * embedding rows and dense weights makes runs reproducible.
 *
 * @example
 * const rand = mulberry32(7); rand(); // 0 <= x < 1
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Whether a request belongs to the held-out evaluation slice: a fixed hash of its request id,
 * so the slice is the same in every run and is never trained on. `from` shifts the slice to the
 * hash range [from, from + percent)% (the validation slice sits right after the evaluation one).
 *
 * @example
 * isHeldOut('req-1', 5); // true for about 5% of request ids
 */
export function isHeldOut(requestId: string, percent: number, from = 0): boolean {
  if (percent <= 0) return false;
  const b = fnv1a(requestId, 0x5eed) % 10_000;
  const lo = Math.round(from * 100);
  return b >= lo && b < lo + Math.round(percent * 100);
}
