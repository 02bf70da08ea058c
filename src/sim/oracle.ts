/**
 * The ceiling of candidate-list recall on a simulated world: the retriever that knows the true
 * affinities and the candidate mix.
 *
 * The target "the teacher's top 10 of THIS request's candidate list" depends on which candidates the
 * request happened to draw. The best any retriever can do without seeing the list is to return, for
 * the user, the 100 items most likely to land in the teacher's top 10 over the mix: this module
 * estimates them by Monte Carlo — `draws` simulated requests of the user, candidates drawn by the
 * simulator's own {@link CandidateSource}, scored like the teacher (true affinity + its noise), and
 * the 100 items most often in the top 10. The quality bench and the demo report it as the ceiling.
 */
import type { CandidateSink, CandidateSource } from './mix.ts';
import { Rng } from './rng.ts';
import { itemId, trueAffinity } from './world.ts';

export interface OracleOptions {
  /** Simulated requests per user [500]. */
  draws?: number;
  /** Candidates per request (as simulated). */
  candidates: number;
  /** The teacher's noise std (SimOptions.teacherNoise). */
  teacherNoise: number;
  /** Teacher top K counted per draw [10]. */
  k?: number;
  /** Items retrieved [100]. */
  n?: number;
  seed?: number;
}

/**
 * A per-user cache of the oracle's retrieved ids.
 *
 * @example
 * const oracle = new Oracle(new CandidateSource(world, 'default', 7), { candidates: 50, teacherNoise: 0.5 });
 * oracle.retrieve(42); // Set of the 100 item ids of user 42
 */
export class Oracle {
  private readonly source: CandidateSource;
  private readonly o: Required<OracleOptions>;
  private readonly cache = new Map<number, Set<string>>();
  private readonly rng: Rng;

  constructor(source: CandidateSource, o: OracleOptions) {
    this.source = source;
    this.o = { draws: 500, k: 10, n: 100, seed: 1, ...o };
    this.rng = new Rng(this.o.seed, 'oracle');
  }

  /** The oracle's top-n item ids for user index `u`. */
  retrieve(u: number): ReadonlySet<string> {
    let set = this.cache.get(u);
    if (set !== undefined) return set;
    const { draws, candidates, teacherNoise, k, n } = this.o;
    const w = this.source.world;
    const stamp = new Int32Array(w.items).fill(-1);
    const cand: number[] = [];
    let draw = 0;
    const sink: CandidateSink = {
      add: (j) => {
        if (stamp[j] === draw) return false;
        stamp[j] = draw;
        cand.push(j);
        return true;
      },
      has: (j) => stamp[j] === draw,
      get size() {
        return cand.length;
      },
    };
    const counts = new Map<number, number>();
    for (let t = 0; t < draws; t++) {
      draw = t;
      cand.length = 0;
      this.source.fill(u, this.rng, sink, candidates);
      const scored = cand.map((j) => ({ j, s: trueAffinity(w, u, j) + teacherNoise * this.rng.normal() }));
      scored.sort((a, b) => b.s - a.s);
      for (let r = 0; r < Math.min(k, scored.length); r++) {
        const j = (scored[r] as { j: number }).j;
        counts.set(j, (counts.get(j) ?? 0) + 1);
      }
    }
    set = new Set(
      [...counts.entries()]
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, n)
        .map(([j]) => itemId(j)),
    );
    this.cache.set(u, set);
    return set;
  }
}
