/**
 * Seeded pseudo-random numbers for the simulator: every draw comes from here, never from
 * Math.random, so the same seed gives the same world and the same streams on every machine.
 *
 * Generator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, from PractRand), 128 bits
 * of state, passes PractRand/BigCrush, and is a few 32-bit additions and shifts per draw — fast in
 * JavaScript's int32 arithmetic. State is seeded through splitmix32 from (seed, stream label), so
 * independent streams (world, requests, fates) do not shift each other when one draws more.
 */

/** FNV-1a hash of a string, 32 bits. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A seeded random stream. */
export class Rng {
  // Plain (not #private) fields: this is the simulator's hottest loop.
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  /**
   * @param seed any integer (negative and > 2^32 are folded in)
   * @param stream a label: different labels give independent streams for the same seed
   * @example
   * const r = new Rng(7, 'world'); r.next(); // same value on every run
   */
  constructor(seed: number, stream = '') {
    let x = (fnv1a(stream) ^ (seed >>> 0) ^ Math.floor(seed / 2 ** 32)) >>> 0;
    const sm = () => {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const a = this.a;
    const b = this.b;
    const c = this.c;
    const d = this.d;
    const t = (((a + b) | 0) + d) | 0;
    this.d = (d + 1) | 0;
    this.a = b ^ (b >>> 9);
    this.b = (c + (c << 3)) | 0;
    const r = (c << 21) | (c >>> 11);
    this.c = (r + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (Marsaglia's polar method, the second value cached). */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    let x: number;
    let y: number;
    let s: number;
    do {
      x = 2 * this.next() - 1;
      y = 2 * this.next() - 1;
      s = x * x + y * y;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = y * f;
    this.hasSpare = true;
    return x * f;
  }

  /** Exponential with the given mean. */
  exponential(mean: number): number {
    let u = this.next();
    while (u === 0) u = this.next();
    return -Math.log(u) * mean;
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}
