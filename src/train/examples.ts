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
  /**
   * The user's recent positives before this request, its own items left out (src/train/history.ts;
   * set by the trainer when the user tower reads behaviour).
   */
  history?: readonly string[];
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
 * Identity of an evaluation set: how many requests, and a 32-bit hash of their sorted request ids
 * together with what the evaluation reads of each (teacher order, grades, clicks). Two metric sets
 * are comparable when, and only when, their identities are equal.
 */
export interface EvalSetIdentity {
  requests: number;
  hash: number;
}

/**
 * The identity of a set of evaluation requests (order-free: the ids are sorted first).
 *
 * @example
 * evalSetIdentity(heldOut.requests()); // { requests: 1000, hash: 2868143921 }
 */
export function evalSetIdentity(requests: readonly EvalRequest[]): EvalSetIdentity {
  const sorted = [...requests].sort((a, b) =>
    a.requestId < b.requestId ? -1 : a.requestId > b.requestId ? 1 : 0,
  );
  let h = 0x9e3779b9;
  for (const r of sorted) {
    const grades = [...r.grades.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const clicks = [...r.clicks.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const text = `${r.requestId}\u0001${r.user}\u0001${r.teacher.join('\u0002')}\u0001${grades.map(([i, g]) => `${i}=${g}`).join('\u0002')}\u0001${clicks.map(([i, c]) => `${i}=${c ? 1 : 0}`).join('\u0002')}\u0001${Array.from(r.ctx).join(',')}`;
    h = fnv1a(text, h);
  }
  return { requests: sorted.length, hash: h };
}

/** One evaluation request as stored in a trainer checkpoint (`eval.json`). */
export interface StoredEvalRequest {
  id: string;
  user: string;
  /** Hashed context (may be empty when contextBuckets is 0). */
  ctx: number[];
  teacher: string[];
  /** Grade of each teacher candidate, aligned with `teacher` (-1: none). */
  grades: number[];
  /** Grades of items outside `teacher` (rare: records of one request disagreeing). */
  otherGrades?: [string, number][];
  clicks: [string, boolean][];
}

function emptyEvalRequest(
  v: { request_id: string; user_id: string; context?: Readonly<Record<string, number>> | null },
  contextBuckets: number,
): EvalRequest {
  return {
    requestId: v.request_id,
    user: v.user_id,
    ctx: hashFeatures(v.context, contextBuckets),
    teacher: [],
    grades: new Map(),
    clicks: new Map(),
  };
}

/** Adds what a pointwise or listwise record says of its request (teacher order, grades, clicks). */
function absorbRecord(e: EvalRequest, r: Exclude<LabelRecord, { kind: 'pairwise' }>): void {
  const sorted = [...r.value.items].sort((a, b) => a.rank - b.rank);
  if (e.teacher.length === 0) e.teacher = sorted.map((i) => i.item_id);
  if (r.kind === 'listwise') for (const it of r.value.items) e.grades.set(it.item_id, it.grade);
  else {
    for (const it of r.value.items) {
      if (!e.grades.has(it.item_id)) e.grades.set(it.item_id, gradeFromRank(it.rank));
      if (it.clicked !== null) e.clicks.set(it.item_id, it.clicked);
    }
  }
}

/**
 * The evaluation request of one pointwise or listwise record (the live gauge scores requests one
 * record at a time; the held-out set merges a request's records).
 *
 * @example
 * const e = evalRequestOf({ kind: 'listwise', value: rec }, 16); e.teacher; // ids in teacher order
 */
export function evalRequestOf(
  r: Exclude<LabelRecord, { kind: 'pairwise' }>,
  contextBuckets: number,
): EvalRequest {
  const e = emptyEvalRequest(r.value, contextBuckets);
  absorbRecord(e, r);
  return e;
}

/**
 * Collects the held-out slice (a fixed hash of request_id, `percent` of requests) into evaluation
 * requests, merging a request's pointwise and listwise records.
 *
 * Which held-out requests are evaluated: the FIRST `max` distinct held-out requests in stream
 * order, then the set is frozen. Why not a random reservoir (the earlier design): the snapshot gate
 * compares a new snapshot's metrics with the current snapshot's, and that comparison is only fair
 * when both were measured on the same requests. A reservoir replaces requests at random, so every
 * checkpoint measured a different set and good snapshots were rejected for the set change alone.
 * A frozen set makes successive metrics comparable, is deterministic (the same input gives the
 * same set in every run: no Math.random), and is persisted in the trainer checkpoint
 * ({@link toJSON} / {@link restore}) so a resumed trainer evaluates on the very same requests.
 * Held-out requests past the cap are still held out: never trained on, just not evaluated.
 * While the set is filling (fewer than `max`), its identity ({@link identity}) changes from
 * checkpoint to checkpoint and the gate knows it (src/snapshots/gate.ts).
 *
 * Stream order is deterministic for files (and within one Kafka partition); across Kafka
 * partitions it depends on the interleaving of fetches, which is why the gate compares identities
 * instead of assuming them.
 *
 * @example
 * const h = new HeldOut(5, 2000, 16);
 * if (h.offer(record)) return; // held out: never trained on
 */
export class HeldOut {
  private readonly byId = new Map<string, EvalRequest>();
  private cached: EvalSetIdentity | undefined;

  constructor(
    readonly percent: number,
    readonly max: number,
    readonly contextBuckets: number,
    /** Start of the slice's hash range, in percent (see isHeldOut). */
    readonly from = 0,
    /**
     * `first`: the first `max` held-out requests, then frozen [default]. `latest`: the latest `max`
     * (the oldest leaves as a new one joins), so the set follows a drifting stream; the gate then
     * re-scores the current snapshot on each candidate's set (like with like).
     */
    readonly mode: 'first' | 'latest' = 'first',
  ) {}

  /** True when the record is held out (and was absorbed); false when it is for training. */
  offer(r: LabelRecord): boolean {
    const v = r.value;
    if (!isHeldOut(v.request_id, this.percent, this.from)) return false;
    if (r.kind === 'pairwise') return true; // pairs carry no full order: held out, not evaluated
    let e = this.byId.get(v.request_id);
    if (e === undefined) {
      if (this.byId.size >= this.max) {
        if (this.mode === 'first') return true; // frozen: held out, not evaluated
        const oldest = this.byId.keys().next().value;
        if (oldest !== undefined) this.byId.delete(oldest);
      }
      e = emptyEvalRequest(r.value, this.contextBuckets);
      this.byId.set(v.request_id, e);
    }
    this.cached = undefined;
    absorbRecord(e, r);
    return true;
  }

  /** The evaluation requests collected so far, in stream order. */
  requests(): EvalRequest[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Whether the set reached `max` requests (no new request joins it). */
  get full(): boolean {
    return this.byId.size >= this.max;
  }

  /** Identity of the current set (see {@link evalSetIdentity}); cached until the set changes. */
  identity(): EvalSetIdentity {
    this.cached ??= evalSetIdentity(this.requests());
    return this.cached;
  }

  /**
   * The set as JSON-ready records, in stream order (what a trainer checkpoint stores).
   *
   * @example
   * writeFileSync('eval.json', JSON.stringify(h.toJSON()));
   */
  toJSON(): StoredEvalRequest[] {
    return this.requests().map((r) => {
      const inTeacher = new Set(r.teacher);
      const other = [...r.grades.entries()].filter(([id]) => !inTeacher.has(id));
      return {
        id: r.requestId,
        user: r.user,
        ctx: Array.from(r.ctx),
        teacher: r.teacher,
        grades: r.teacher.map((id) => r.grades.get(id) ?? -1),
        ...(other.length > 0 ? { otherGrades: other } : {}),
        clicks: [...r.clicks.entries()],
      };
    });
  }

  /**
   * Replaces the set with stored requests (a resumed trainer). Requests beyond `max` are dropped;
   * a context of another width is re-sized (zero-filled or cut).
   *
   * @example
   * h.restore(JSON.parse(readFileSync('eval.json', 'utf8')));
   */
  restore(stored: readonly StoredEvalRequest[]): void {
    this.byId.clear();
    this.cached = undefined;
    for (const s of stored.slice(0, this.max)) this.byId.set(s.id, fromStored(s, this.contextBuckets));
  }
}

/**
 * An evaluation request back from its stored form.
 *
 * @example
 * const reqs = stored.map((s) => fromStored(s, 16));
 */
export function fromStored(s: StoredEvalRequest, contextBuckets: number): EvalRequest {
  const ctx = new Float32Array(contextBuckets);
  ctx.set(s.ctx.slice(0, contextBuckets));
  const grades = new Map<string, number>();
  s.teacher.forEach((id, i) => {
    const g = s.grades[i] ?? -1;
    if (g >= 0) grades.set(id, g);
  });
  for (const [id, g] of s.otherGrades ?? []) grades.set(id, g);
  return { requestId: s.id, user: s.user, ctx, teacher: [...s.teacher], grades, clicks: new Map(s.clicks) };
}
