/**
 * From label records to training units: one unit per pointwise item, per BPR pair and per
 * listwise list, each carrying its request (user id, hashed context). Pure: no tfjs, no I/O.
 *
 * Features are hashed (the "hashing trick", Weinberger et al., ICML 2009): a record's
 * `Record<string, number>` becomes a fixed-width vector with x[hash(name) mod F] += value, so any
 * feature names work without a vocabulary and the model's input width never changes.
 */
import type { ListwiseLabels, PairwiseLabels, PointwiseLabels } from '../contracts/types.gen.ts';
import { fnv1a, isHeldOut } from './hash.ts';

/** A label record of any kind, tagged. */
export type LabelRecord =
  | { kind: 'pointwise'; value: PointwiseLabels }
  | { kind: 'pairwise'; value: PairwiseLabels }
  | { kind: 'listwise'; value: ListwiseLabels };

export type LabelKind = LabelRecord['kind'];

/** The request a unit belongs to. */
export interface RequestInfo {
  requestId: string;
  user: string;
  /** Hashed context features, `contextBuckets` wide. */
  ctx: Float32Array;
}

export interface PointUnit {
  kind: 'point';
  req: RequestInfo;
  item: string;
  /** Hashed item features of this occurrence, when the label carried features. */
  features: Float32Array | undefined;
  /** Teacher target: the soft target when present, else the 0/1 label. */
  target: number;
  /** Ground truth click (0/1), meaningful when `known` is 1. */
  clicked: number;
  known: number;
  weight: number;
  /** The teacher's label (1 = among the top K), used to choose in-batch anchors. */
  positive: boolean;
}

export interface PairUnit {
  kind: 'pair';
  req: RequestInfo;
  pos: string;
  neg: string;
  weight: number;
}

export interface ListUnit {
  kind: 'list';
  req: RequestInfo;
  items: string[];
  gains: Float32Array;
  grades: Int32Array;
}

export type Unit = PointUnit | PairUnit | ListUnit;

/**
 * Hashes a feature record into a fixed-width vector (zeros for null or width 0).
 *
 * @example
 * hashFeatures({ hour: 13, mobile: 1 }, 16); // Float32Array(16) with two non-zero slots
 */
export function hashFeatures(
  f: Readonly<Record<string, number>> | null | undefined,
  width: number,
): Float32Array {
  const out = new Float32Array(width);
  if (f == null || width === 0) return out;
  for (const [k, v] of Object.entries(f)) {
    if (!Number.isFinite(v)) continue;
    const h = fnv1a(k, 0xfea7);
    // signed hashing keeps collisions unbiased (Weinberger et al.)
    const slot = h % width;
    out[slot] = (out[slot] as number) + ((h >>> 31) & 1 ? -v : v);
  }
  return out;
}

export interface UnitOptions {
  contextBuckets: number;
  itemFeatureBuckets: number;
  /** Longest list kept (the teacher's order is kept; the tail is dropped). */
  maxListLength: number;
}

/**
 * The training units of one label record.
 *
 * @example
 * toUnits({ kind: 'pairwise', value: rec }, { contextBuckets: 16, itemFeatureBuckets: 16, maxListLength: 50 });
 */
export function toUnits(r: LabelRecord, o: UnitOptions): Unit[] {
  const v = r.value;
  const req: RequestInfo = {
    requestId: v.request_id,
    user: v.user_id,
    ctx: hashFeatures(v.context, o.contextBuckets),
  };
  switch (r.kind) {
    case 'pointwise':
      return r.value.items.map((it) => ({
        kind: 'point',
        req,
        item: it.item_id,
        features: it.features == null ? undefined : hashFeatures(it.features, o.itemFeatureBuckets),
        target: it.soft_target ?? it.label,
        clicked: it.clicked === true ? 1 : 0,
        known: it.clicked === null ? 0 : 1,
        weight: it.weight,
        positive: it.label >= 0.5,
      }));
    case 'pairwise':
      return r.value.pairs.map((p) => ({
        kind: 'pair',
        req,
        pos: p.pos_item,
        neg: p.neg_item,
        weight: p.weight,
      }));
    case 'listwise': {
      const items = r.value.items.slice(0, o.maxListLength);
      if (items.length < 2) return [];
      return [
        {
          kind: 'list',
          req,
          items: items.map((i) => i.item_id),
          gains: Float32Array.from(items, (i) => i.gain),
          grades: Int32Array.from(items, (i) => i.grade),
        },
      ];
    }
  }
}

/**
 * One held-out request as the evaluation sees it: the teacher's order and grades, and clicks
 * where an impression was joined.
 */
export interface EvalRequest {
  requestId: string;
  user: string;
  ctx: Float32Array;
  /** Candidates in the teacher's order (rank 1 first). */
  teacher: string[];
  /** Teacher grade per candidate (listwise labels; else derived from the rank). */
  grades: Map<string, number>;
  /** Clicks of shown candidates. */
  clicks: Map<string, boolean>;
}

/** Grade from a teacher rank when no listwise label is at hand: buckets of 5 from grade 5 down. */
export function gradeFromRank(rank: number): number {
  return Math.max(0, 5 - Math.floor((rank - 1) / 5));
}

/**
 * Collects the held-out slice (a fixed hash of request_id, `percent` of requests) into evaluation
 * requests, merging a request's pointwise and listwise records. Bounded: keeps the first `max`
 * requests, then replaces at random (reservoir sampling), so memory stays flat on a long stream.
 *
 * @example
 * const h = new HeldOut(5, 2000, 16);
 * if (h.offer(record)) return; // held out: never trained on
 */
export class HeldOut {
  private readonly byId = new Map<string, EvalRequest>();
  private seen = 0;
  private readonly rand: () => number;

  constructor(
    readonly percent: number,
    readonly max: number,
    readonly contextBuckets: number,
    rand: () => number = Math.random,
  ) {
    this.rand = rand;
  }

  /** True when the record is held out (and was absorbed); false when it is for training. */
  offer(r: LabelRecord): boolean {
    const v = r.value;
    if (!isHeldOut(v.request_id, this.percent)) return false;
    if (r.kind === 'pairwise') return true; // pairs carry no full order: held out, not evaluated
    let e = this.byId.get(v.request_id);
    if (e === undefined) {
      this.seen++;
      if (this.byId.size >= this.max) {
        // reservoir: keep with probability max/seen, evicting a random request
        if (this.rand() * this.seen >= this.max) return true;
        const keys = [...this.byId.keys()];
        this.byId.delete(keys[Math.floor(this.rand() * keys.length)] as string);
      }
      e = {
        requestId: v.request_id,
        user: v.user_id,
        ctx: hashFeatures(v.context, this.contextBuckets),
        teacher: [],
        grades: new Map(),
        clicks: new Map(),
      };
      this.byId.set(v.request_id, e);
    }
    const sorted = [...r.value.items].sort((a, b) => a.rank - b.rank);
    if (e.teacher.length === 0) e.teacher = sorted.map((i) => i.item_id);
    if (r.kind === 'listwise') for (const it of r.value.items) e.grades.set(it.item_id, it.grade);
    else {
      for (const it of r.value.items) {
        if (!e.grades.has(it.item_id)) e.grades.set(it.item_id, gradeFromRank(it.rank));
        if (it.clicked !== null) e.clicks.set(it.item_id, it.clicked);
      }
    }
    return true;
  }

  /** The evaluation requests collected so far. */
  requests(): EvalRequest[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }
}
