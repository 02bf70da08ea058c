/**
 * The live distillation-quality gauge (progressive validation, Blum, Kalai & Langford, COLT 1999):
 * each training request — or a `share` of them, chosen by a hash of request_id — is scored by the
 * CURRENT published snapshot before the trainer learns from it, so the figure is the quality of
 * the model that is serving, on today's traffic, never on data it was trained on.
 *
 * Per scored request (the same metrics as the held-out evaluation, src/train/eval.ts, through the
 * snapshot's served score `servedScorer`):
 * - `recall_at_100_of_top10`: the teacher's top 10 in the student's top 100 over the catalog;
 * - `ndcg_at_10`: the student's order of the request's candidates against the teacher's grades;
 * - `popular_*`: the same for most-popular — items ranked by how often they were in the teacher's
 *   top 10 of the requests seen BEFORE this one (counted over every request the gauge sees) — the
 *   reference line: a student below it is not worth serving.
 *
 * Kept per snapshot version (cumulative) and over the last `window` scored requests (moving). A
 * drop: every `window` scored requests, the mean recall of that window is compared with the mean
 * of every scored request before it; lower by more than `dropThreshold` → a `drop` event (the
 * trainer logs a warning, a counter an alert watches is incremented, docs/OPERATIONS.md).
 *
 * Cost: a sampled request waits in a buffer of `chunk` and is scored in one matrix product with
 * the others (the scorer is frozen, so when it is scored does not matter; a new scorer flushes
 * the buffer first). The popular reference is kept in one map of counts.
 *
 * One record kind is gauged, the first pointwise or listwise kind the stream shows (a request's
 * records of two kinds would count twice); pairwise records carry no full order and are skipped.
 */

import { ndcgAt, type ServedScorer, scoreRequests } from './eval.ts';
import type { EvalRequest, LabelRecord } from './examples.ts';
import { evalRequestOf } from './examples.ts';
import { fnv1a } from './hash.ts';

export interface GaugeOptions {
  /** Share of training requests scored, by hash of request_id (1: all) [0.02]. */
  share: number;
  /** Scored requests in the moving window and in each drop check [200]. */
  window: number;
  /** A window whose recall is this far below the mean before it is a drop [0.05]. */
  dropThreshold: number;
  /** Requests scored per matrix product [64]. */
  chunk?: number;
  /** Width of the hashed context (the trainer's contextBuckets). */
  contextBuckets: number;
}

/** Live figures of one snapshot version (cumulative) and of the moving window. */
export interface LiveQuality {
  /** The serving snapshot's version. */
  version: number;
  /** Requests it scored (cumulative). */
  requests: number;
  recall_at_100_of_top10: number;
  ndcg_at_10: number;
  popular_recall_at_100_of_top10: number;
  popular_ndcg_at_10: number;
  /** The last `window` scored requests (any version). */
  window_requests: number;
  window_recall_at_100_of_top10: number;
  window_ndcg_at_10: number;
  window_popular_recall_at_100_of_top10: number;
  window_popular_ndcg_at_10: number;
}

export type GaugeEvent =
  | { type: 'scored'; version: number; requests: number }
  /** A completed tumbling window of `window` scored requests: its mean live recall and NDCG. */
  | { type: 'window'; version: number; recall: number; ndcg: number; popRecall: number }
  | {
      type: 'drop';
      version: number;
      /** Mean recall of the window that dropped, and of every scored request before it. */
      window: number;
      before: number;
      threshold: number;
    };

const METRICS = ['recall', 'ndcg', 'popRecall', 'popNdcg'] as const;
type Sums = Record<(typeof METRICS)[number], number> & { n: number };
const zero = (): Sums => ({ n: 0, recall: 0, ndcg: 0, popRecall: 0, popNdcg: 0 });

/** See the module comment. */
export class ProgressiveGauge {
  private readonly o: Required<GaugeOptions>;
  private readonly listeners: ((e: GaugeEvent) => void)[] = [];
  private scorer: ServedScorer | null = null;
  private version = 0;
  private kind: 'pointwise' | 'listwise' | undefined;
  private pending: { req: EvalRequest; popRecall: number; popNdcg: number }[] = [];
  private readonly counts = new Map<string, number>();
  private popularTop = new Set<string>();
  private seenSinceTop = 0;
  private readonly perVersion = new Map<number, Sums>();
  // moving window: ring buffer of the last `window` scored requests
  private readonly ring: Float64Array;
  private ringAt = 0;
  private ringFill = 0;
  // drop check: tumbling windows against everything before them
  private tumbling = zero();
  private before = zero();
  private readonly threshold: number;

  constructor(o: GaugeOptions) {
    this.o = { chunk: 64, ...o };
    this.ring = new Float64Array(this.o.window * METRICS.length);
    this.threshold = Math.min(1, Math.max(0, o.share)) * 2 ** 32;
  }

  /** Listens to scored batches and drops. */
  on(f: (e: GaugeEvent) => void): void {
    this.listeners.push(f);
  }

  /** The snapshot version scoring now (0: none yet). */
  get servingVersion(): number {
    return this.version;
  }

  /**
   * Makes `scorer` (snapshot `version`'s served score) the one that scores from now on; what the
   * previous one had buffered is scored by it first.
   */
  setScorer(version: number, scorer: ServedScorer | null): void {
    this.flush();
    this.scorer = scorer;
    this.version = scorer === null ? 0 : version;
  }

  /** Takes a training record BEFORE the trainer learns from it (see the module comment). */
  observe(r: LabelRecord): void {
    if (r.kind === 'pairwise') return;
    this.kind ??= r.kind;
    if (r.kind !== this.kind) return;
    const sampled = this.scorer !== null && fnv1a(r.value.request_id, 0x6a09) < this.threshold;
    if (sampled) {
      const req = evalRequestOf(r, this.o.contextBuckets);
      if (this.seenSinceTop >= 256 || this.popularTop.size === 0) this.refreshPopular();
      const top = req.teacher.slice(0, 10);
      let hit = 0;
      for (const id of top) if (this.popularTop.has(id)) hit++;
      const order = [...req.teacher]
        .map((id) => ({ id, c: this.counts.get(id) ?? 0, h: fnv1a(id, 0x71e) }))
        .sort((a, b) => b.c - a.c || a.h - b.h)
        .map((x) => x.id);
      this.pending.push({
        req,
        popRecall: top.length > 0 ? hit / top.length : 0,
        popNdcg: ndcgAt(order, req.grades, 10),
      });
      if (this.pending.length >= this.o.chunk) this.flush();
    }
    // then count it for the popular reference of later requests
    const items = [...r.value.items].sort((a, b) => a.rank - b.rank).slice(0, 10);
    for (const it of items) this.counts.set(it.item_id, (this.counts.get(it.item_id) ?? 0) + 1);
    this.seenSinceTop++;
  }

  /** Scores what is buffered. */
  flush(): void {
    if (this.pending.length === 0 || this.scorer === null) {
      this.pending = [];
      return;
    }
    const batch = this.pending;
    this.pending = [];
    const per = scoreRequests(
      this.scorer,
      batch.map((b) => b.req),
    );
    let v = this.perVersion.get(this.version);
    if (v === undefined) {
      v = zero();
      this.perVersion.set(this.version, v);
    }
    const w = METRICS.length;
    batch.forEach((b, i) => {
      const x = {
        recall: per.recall_at_100_of_top10[i] as number,
        ndcg: per.ndcg_at_10[i] as number,
        popRecall: b.popRecall,
        popNdcg: b.popNdcg,
      };
      for (const m of METRICS) {
        (v as Sums)[m] += x[m];
        this.tumbling[m] += x[m];
      }
      (v as Sums).n++;
      this.tumbling.n++;
      METRICS.forEach((m, j) => {
        this.ring[this.ringAt * w + j] = x[m];
      });
      this.ringAt = (this.ringAt + 1) % this.o.window;
      this.ringFill = Math.min(this.o.window, this.ringFill + 1);
      if (this.tumbling.n >= this.o.window) this.checkDrop();
    });
    this.emit({ type: 'scored', version: this.version, requests: v.n });
  }

  /** Figures of the serving version (null before anything was scored by it). */
  live(): LiveQuality | null {
    const v = this.perVersion.get(this.version);
    if (this.version === 0 || v === undefined || v.n === 0) return null;
    const w = METRICS.length;
    const win = zero();
    for (let i = 0; i < this.ringFill; i++)
      METRICS.forEach((m, j) => {
        win[m] += this.ring[i * w + j] as number;
      });
    win.n = this.ringFill;
    const mean = (s: Sums, m: (typeof METRICS)[number]) => (s.n > 0 ? s[m] / s.n : 0);
    return {
      version: this.version,
      requests: v.n,
      recall_at_100_of_top10: mean(v, 'recall'),
      ndcg_at_10: mean(v, 'ndcg'),
      popular_recall_at_100_of_top10: mean(v, 'popRecall'),
      popular_ndcg_at_10: mean(v, 'popNdcg'),
      window_requests: win.n,
      window_recall_at_100_of_top10: mean(win, 'recall'),
      window_ndcg_at_10: mean(win, 'ndcg'),
      window_popular_recall_at_100_of_top10: mean(win, 'popRecall'),
      window_popular_ndcg_at_10: mean(win, 'popNdcg'),
    };
  }

  /** Cumulative figures of every version that scored, by version. */
  byVersion(): Map<
    number,
    { requests: number; recall: number; ndcg: number; popRecall: number; popNdcg: number }
  > {
    const out = new Map<
      number,
      { requests: number; recall: number; ndcg: number; popRecall: number; popNdcg: number }
    >();
    for (const [k, s] of this.perVersion)
      if (s.n > 0)
        out.set(k, {
          requests: s.n,
          recall: s.recall / s.n,
          ndcg: s.ndcg / s.n,
          popRecall: s.popRecall / s.n,
          popNdcg: s.popNdcg / s.n,
        });
    return out;
  }

  private checkDrop(): void {
    const t = this.tumbling;
    this.emit({
      type: 'window',
      version: this.version,
      recall: t.recall / t.n,
      ndcg: t.ndcg / t.n,
      popRecall: t.popRecall / t.n,
    });
    if (this.before.n > 0) {
      const window = t.recall / t.n;
      const before = this.before.recall / this.before.n;
      if (before - window > this.o.dropThreshold)
        this.emit({ type: 'drop', version: this.version, window, before, threshold: this.o.dropThreshold });
    }
    for (const m of METRICS) this.before[m] += t[m];
    this.before.n += t.n;
    this.tumbling = zero();
  }

  private refreshPopular(): void {
    this.seenSinceTop = 0;
    const top = [...this.counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, 100);
    this.popularTop = new Set(top.map(([id]) => id));
  }

  private emit(e: GaugeEvent): void {
    for (const f of this.listeners) f(e);
  }
}
