/**
 * Seeded randomness of the label generators.
 *
 * Labels must be a pure function of the joined request (DESIGN.md "Label semantics"): the same
 * request gives the same labels live, in a replay and after a crash. So every random choice is
 * drawn from a generator seeded with a hash of `request_id` alone — never Math.random, never the
 * clock.
 *
 * - Hash: 32-bit FNV-1a (Fowler/Noll/Vo, http://www.isthe.com/chongo/tech/comp/fnv/) over the
 *   UTF-8 bytes of the id, so other languages reproduce it from the same bytes.
 * - Generator: mulberry32 (Tommy Ettinger, public domain): one 32-bit state word, full period
 *   2^32, passes gjrand/PractRand to large sizes — plenty for picking a few dozen pairs.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const TWO_POW_32 = 4294967296;
const TWO_POW_21 = 2097152;
const TWO_POW_53 = 9007199254740992;

/**
 * 32-bit FNV-1a hash of the UTF-8 encoding of `s` (unsigned).
 *
 * @example
 * fnv1a32('') === 0x811c9dc5; fnv1a32('a') === 0xe40c292c;
 */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    // Encode the code point as UTF-8 on the fly (lone surrogates become U+FFFD, as TextEncoder does).
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else c = 0xfffd;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * mulberry32 pseudo-random generator. Not cryptographic; deterministic for a given seed.
 *
 * @example
 * const rng = Rng.forRequest('req-42');
 * const i = rng.int(10); // 0..9, the same every time for 'req-42'
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed | 0;
  }

  /** A generator seeded from the request id only (FNV-1a of its UTF-8 bytes). */
  static forRequest(requestId: string): Rng {
    return new Rng(fnv1a32(requestId));
  }

  /** Next unsigned 32-bit integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /**
   * Uniform integer in [0, bound), bound ≥ 1. Up to 2^21 one 32-bit draw is scaled (bias below
   * 2^-11, irrelevant for sampling training pairs); above, a 53-bit draw is used.
   */
  int(bound: number): number {
    if (bound <= TWO_POW_21) return Math.floor((this.nextU32() * bound) / TWO_POW_32);
    const hi = this.nextU32() * TWO_POW_21;
    const lo = this.nextU32() >>> 11;
    return Math.floor(((hi + lo) / TWO_POW_53) * bound);
  }
}
