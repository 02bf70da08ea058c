/**
 * A tiny synthetic teacher for tests and benchmarks: users and items with hidden latent vectors,
 * the teacher's score is their dot product, and each request ranks a random candidate set. Label
 * records of every kind come out, shaped like the label generators' (src/labels) output.
 * Deterministic for a seed. Not a simulator of user behaviour (that is src/sim).
 */
import type { ListwiseLabels, PairwiseLabels, PointwiseLabels } from '../contracts/types.gen.ts';
import type { LabelRecord } from './examples.ts';
import { mulberry32 } from './hash.ts';

export interface SyntheticOptions {
  users: number;
  items: number;
  /** Latent dimension of the hidden teacher. */
  latent?: number;
  /** Candidates per request. */
  candidates?: number;
  /** Top K positives of pointwise labels. */
  k?: number;
  seed?: number;
  /** Add click ground truth (clicked = teacher top-3 with noise). */
  clicks?: boolean;
}

/**
 * Generates `requests` requests' labels of the given kinds.
 *
 * @example
 * const recs = syntheticLabels({ users: 50, items: 200 }, 1000, ['pointwise']);
 */
export class SyntheticTeacher {
  readonly o: Required<SyntheticOptions>;
  private readonly u: Float32Array;
  private readonly v: Float32Array;
  private readonly rand: () => number;
  private n = 0;

  constructor(o: SyntheticOptions) {
    this.o = { latent: 4, candidates: 20, k: 5, seed: 1, clicks: false, ...o };
    const r = mulberry32(this.o.seed);
    const g = () => (r() + r() + r() - 1.5) * 2;
    this.u = Float32Array.from({ length: this.o.users * this.o.latent }, g);
    this.v = Float32Array.from({ length: this.o.items * this.o.latent }, g);
    this.rand = mulberry32(this.o.seed + 99);
  }

  /** The teacher's score of (user, item). */
  score(user: number, item: number): number {
    let s = 0;
    const d = this.o.latent;
    for (let k = 0; k < d; k++) s += (this.u[user * d + k] as number) * (this.v[item * d + k] as number);
    return s;
  }

  /** The next request's label records of the given kinds. */
  next(kinds: readonly LabelRecord['kind'][]): LabelRecord[] {
    const id = this.n++;
    const user = Math.floor(this.rand() * this.o.users);
    const cand = new Set<number>();
    while (cand.size < Math.min(this.o.candidates, this.o.items))
      cand.add(Math.floor(this.rand() * this.o.items));
    const ranked = [...cand].map((i) => ({ i, s: this.score(user, i) })).sort((a, b) => b.s - a.s);
    const base = {
      request_id: `r${this.o.seed}-${id}`,
      user_id: `u${user}`,
      ts: 1_700_000_000_000 + id,
      model_version: 'synthetic',
      matched: this.o.clicks,
      context: null,
    };
    const out: LabelRecord[] = [];
    for (const kind of kinds) {
      if (kind === 'pointwise') {
        const value: PointwiseLabels = {
          ...base,
          id: `${base.request_id}:pointwise`,
          items: ranked.map((x, r) => ({
            item_id: `i${x.i}`,
            rank: r + 1,
            label: r < this.o.k ? 1 : 0,
            weight: r < this.o.k ? 1 + 1 / (r + 1) : 1,
            teacher_logit: x.s,
            soft_target: null,
            clicked: this.o.clicks ? r < 3 && this.rand() < 0.7 : null,
            features: null,
          })),
        };
        out.push({ kind, value });
      } else if (kind === 'pairwise') {
        const pairs: PairwiseLabels['pairs'] = [];
        for (let p = 0; p < this.o.k; p++) {
          for (let m = 0; m < 2; m++) {
            const nr = p + 1 + Math.floor(this.rand() * (ranked.length - p - 1));
            pairs.push({
              pos_item: `i${ranked[p]?.i}`,
              neg_item: `i${ranked[nr]?.i}`,
              pos_rank: p + 1,
              neg_rank: nr + 1,
              weight: 1,
            });
          }
        }
        const value: PairwiseLabels = { ...base, id: `${base.request_id}:pairwise`, pairs };
        out.push({ kind, value });
      } else {
        const value: ListwiseLabels = {
          ...base,
          id: `${base.request_id}:listwise`,
          items: ranked.map((x, r) => {
            const grade = Math.max(0, 5 - Math.floor(r / 5));
            return { item_id: `i${x.i}`, rank: r + 1, grade, gain: 2 ** grade - 1, teacher_logit: x.s };
          }),
        };
        out.push({ kind, value });
      }
    }
    return out;
  }
}
