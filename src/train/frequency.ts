/**
 * Streaming item-frequency estimate for sampled negatives and the logQ correction.
 *
 * Yi et al., RecSys 2019, "Sampling-bias-corrected neural modeling for large corpus item
 * recommendations", Algorithm 2: two hashed arrays, A[h] = the last step item h was seen and
 * B[h] = an exponential moving average of the gap (in steps) between its occurrences:
 *   B[h] ← (1 − α)·B[h] + α·(t − A[h]);  A[h] ← t
 * The item's per-step (per-batch) sampling probability is p = 1/B[h]; the in-batch softmax uses
 * s − log p. Collisions only over-estimate frequencies, as the paper notes.
 *
 * Sampled negatives are drawn uniformly from a ring of the most recent positive occurrences, so
 * they follow the same (recent) unigram distribution the estimate measures. The arrays, the step
 * and the ring are part of the checkpoint.
 */
import { fnv1a } from './hash.ts';

export interface FrequencyState {
  step: number;
  lastSeen: Float64Array;
  gap: Float64Array;
  ring: string[];
  ringPos: number;
}

/**
 * @example
 * const f = new FrequencyEstimator(1 << 16, 0.01);
 * f.observe(['a', 'b']); f.logQ('a'); // log of the per-step probability of 'a'
 */
export class FrequencyEstimator {
  readonly buckets: number;
  readonly alpha: number;
  readonly ringSize: number;
  private s: FrequencyState;

  constructor(buckets = 1 << 20, alpha = 0.01, ringSize = 16_384) {
    this.buckets = buckets;
    this.alpha = alpha;
    this.ringSize = ringSize;
    this.s = {
      step: 0,
      lastSeen: new Float64Array(buckets),
      gap: new Float64Array(buckets),
      ring: [],
      ringPos: 0,
    };
  }

  /** Steps observed so far. */
  get step(): number {
    return this.s.step;
  }

  /** One step: the positive items of one batch (each item counted once per step). */
  observe(items: Iterable<string>): void {
    const t = ++this.s.step;
    const seen = new Set<number>();
    const { lastSeen, gap, ring } = this.s;
    for (const id of items) {
      const h = fnv1a(id, 0xf3e9) % this.buckets;
      if (!seen.has(h)) {
        seen.add(h);
        gap[h] = (1 - this.alpha) * (gap[h] as number) + this.alpha * (t - (lastSeen[h] as number));
        lastSeen[h] = t;
      }
      if (ring.length < this.ringSize) ring.push(id);
      else {
        ring[this.s.ringPos] = id;
        this.s.ringPos = (this.s.ringPos + 1) % this.ringSize;
      }
    }
  }

  /** Estimated probability that `id` occurs in a step, in (0, 1]. */
  probability(id: string): number {
    const h = fnv1a(id, 0xf3e9) % this.buckets;
    const g = this.s.gap[h] as number;
    // never seen: as rare as one occurrence in all steps so far
    if (g <= 0) return 1 / Math.max(1, this.s.step + 1);
    return Math.min(1, 1 / g);
  }

  /** log of {@link probability}. */
  logQ(id: string): number {
    return Math.log(this.probability(id));
  }

  /** `n` ids drawn uniformly from the recent positives (fewer when none were seen). */
  sample(n: number, rand: () => number): string[] {
    const ring = this.s.ring;
    if (ring.length === 0) return [];
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(ring[Math.floor(rand() * ring.length)] as string);
    return out;
  }

  state(): FrequencyState {
    return this.s;
  }

  restore(s: FrequencyState): void {
    this.s = s;
  }
}
