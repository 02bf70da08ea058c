/**
 * Who sends a request and which candidates the teacher gets: the two scenarios of the simulator.
 *
 * - `default` (the simulator's original world, kept draw for draw): users uniformly at random;
 *   candidates 30% by popularity, 40% uniformly from the user's TOP_CATEGORIES categories, the rest
 *   uniformly from the catalog.
 * - `realistic`: what a production log looks like —
 *   - heavy-tailed user activity: user u sends requests with weight exp(σ·z_u), z_u ~ N(0, 1)
 *     (σ = REALISTIC.activitySigma, a log-normal: with ~50 requests per user on average the median
 *     user sends ~20 and the most active ones several hundred);
 *   - candidates mostly from a noisy personalised retriever: REALISTIC.personal of them drawn
 *     uniformly from the user's retriever pool, the top REALISTIC.pool items by
 *     affinity + N(0, REALISTIC.retrieverNoise²) (a stale, imperfect upstream model, fixed per
 *     user), REALISTIC.popular by popularity, the rest uniform (exploration);
 *   - milder popularity skew (Zipf exponent REALISTIC.zipf instead of 1; see resolveSimOptions).
 *
 * {@link CandidateSource.fill} is the one place both the generator and the quality bench's oracle
 * (a Monte Carlo over the candidate mix) draw candidates from, so the oracle knows exactly the mix
 * the teacher's lists come from.
 */
import { Rng } from './rng.ts';
import { TOP_CATEGORIES, trueAffinity, type World } from './world.ts';

export type Scenario = 'default' | 'realistic';

/** Constants of the realistic scenario (see the module comment). */
export const REALISTIC = {
  activitySigma: 1.3,
  personal: 0.6,
  popular: 0.2,
  pool: 300,
  retrieverNoise: 1.0,
  zipf: 0.7,
} as const;

/** Where a candidate list is collected: `add` returns false for an item already in it. */
export interface CandidateSink {
  add(j: number): boolean;
  has(j: number): boolean;
  readonly size: number;
}

/**
 * The scenario's user and candidate draws over a world.
 *
 * @example
 * const src = new CandidateSource(world, 'realistic', 7);
 * const u = src.pickUser(rng); src.fill(u, rng, sink, 50);
 */
export class CandidateSource {
  readonly world: World;
  readonly scenario: Scenario;
  readonly seed: number;
  private readonly activityCdf: Float64Array | null;
  private readonly pools = new Map<number, Int32Array>();

  constructor(world: World, scenario: Scenario, seed: number) {
    this.world = world;
    this.scenario = scenario;
    this.seed = seed;
    if (scenario === 'realistic') {
      const rng = new Rng(seed, 'activity');
      const cdf = new Float64Array(world.users);
      let acc = 0;
      for (let u = 0; u < world.users; u++) {
        acc += Math.exp(REALISTIC.activitySigma * rng.normal());
        cdf[u] = acc;
      }
      for (let u = 0; u < world.users; u++) cdf[u] = (cdf[u] as number) / acc;
      this.activityCdf = cdf;
    } else this.activityCdf = null;
  }

  /** The user of the next request. */
  pickUser(rng: Rng): number {
    const cdf = this.activityCdf;
    if (cdf === null) return rng.int(this.world.users);
    return searchCdf(cdf, rng.next());
  }

  /** Fills `sink` up to `C` candidates for user `u` with the scenario's mix. */
  fill(u: number, rng: Rng, sink: CandidateSink, C: number): void {
    const w = this.world;
    if (this.scenario === 'default') {
      const nPop = Math.round(C * 0.3);
      const nPref = Math.round(C * 0.4);
      for (let k = 0; k < nPop && sink.size < C; k++) {
        for (let t = 0; t < 8 && !sink.add(searchCdf(w.popCdf, rng.next())); t++);
      }
      for (let k = 0; k < nPref && sink.size < C; k++) {
        for (let t = 0; t < 8; t++) {
          const cat = w.userTopCategories[u * TOP_CATEGORIES + rng.int(TOP_CATEGORIES)] as number;
          const list = w.categoryItems[cat] as Int32Array;
          if (list.length > 0 && sink.add(list[rng.int(list.length)] as number)) break;
        }
      }
    } else {
      const nPop = Math.round(C * REALISTIC.popular);
      const nPers = Math.round(C * REALISTIC.personal);
      const pool = this.pool(u);
      for (let k = 0; k < nPers && sink.size < C; k++) {
        for (let t = 0; t < 8 && !sink.add(pool[rng.int(pool.length)] as number); t++);
      }
      for (let k = 0; k < nPop && sink.size < C; k++) {
        for (let t = 0; t < 8 && !sink.add(searchCdf(w.popCdf, rng.next())); t++);
      }
    }
    while (sink.size < C) {
      let j = rng.int(w.items);
      while (sink.has(j)) j = (j + 1) % w.items;
      sink.add(j);
    }
  }

  /** The user's retriever pool (realistic): top `pool` items by a noisy affinity, fixed per user. */
  pool(u: number): Int32Array {
    let p = this.pools.get(u);
    if (p !== undefined) return p;
    const w = this.world;
    const rng = new Rng(this.seed * 1_000_003 + u, 'retriever');
    const n = Math.min(REALISTIC.pool, w.items);
    // a bounded min-heap of the best n (noisy score, item)
    const hs = new Float64Array(n);
    const hj = new Int32Array(n);
    let h = 0;
    for (let j = 0; j < w.items; j++) {
      const s = trueAffinity(w, u, j) + REALISTIC.retrieverNoise * rng.normal();
      if (h < n) {
        let i = h++;
        while (i > 0) {
          const par = (i - 1) >> 1;
          if ((hs[par] as number) <= s) break;
          hs[i] = hs[par] as number;
          hj[i] = hj[par] as number;
          i = par;
        }
        hs[i] = s;
        hj[i] = j;
      } else if (s > (hs[0] as number)) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= n) break;
          const r = l + 1;
          const c = r < n && (hs[r] as number) < (hs[l] as number) ? r : l;
          if ((hs[c] as number) >= s) break;
          hs[i] = hs[c] as number;
          hj[i] = hj[c] as number;
          i = c;
        }
        hs[i] = s;
        hj[i] = j;
      }
    }
    p = hj.slice(0, h);
    this.pools.set(u, p);
    return p;
  }
}

/** The first index whose cumulative weight exceeds x (binary search). */
export function searchCdf(cdf: Float64Array, x: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((cdf[mid] as number) > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
