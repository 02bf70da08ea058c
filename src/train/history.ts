/**
 * The user's behaviour the user tower reads: per user, the most recent positives — the teacher's
 * top K of each request and the clicked items — newest last, at most `length` distinct items.
 *
 * Where it lives and why (docs/DESIGN-history.md): in the trainer's state, updated in the order the
 * trainer consumes label records, and saved in every checkpoint (history.json). A trainer resumed
 * from a checkpoint continues from exactly the state that checkpoint's positions imply, and a
 * replay of the same label records from the start rebuilds the same state, because the update is a
 * pure function of the records in consumption order (no clocks, no randomness).
 *
 * A request's own items are never part of its history: {@link HistoryStore.before} leaves out the
 * entries the same request added and the items given (the three label kinds of one request arrive
 * as separate records, so the store may already hold items from the request's other records).
 *
 * Pure: no tfjs, no I/O.
 */
import type { LabelRecord } from './examples.ts';

export interface HistoryOptions {
  /** Most recent distinct items kept per user. */
  length: number;
  /** Teacher ranks 1..topK of a request count as positives. */
  topK: number;
}

/**
 * @example
 * const h = new HistoryStore({ length: 20, topK: 5 });
 * h.observe(record);                  // after the record's units were made
 * h.before('u1', new Set(['i3']));    // ['i9', 'i4', ...] without i3
 */
export class HistoryStore {
  readonly o: HistoryOptions;
  /** Per user: [item, request that added it], oldest first. */
  private readonly byUser = new Map<string, [string, string][]>();

  constructor(o: HistoryOptions) {
    this.o = o;
  }

  get users(): number {
    return this.byUser.size;
  }

  /**
   * The user's history, oldest first, without the items in `exclude` (the current request's items)
   * and without what request `requestId` added.
   */
  before(user: string, exclude?: ReadonlySet<string>, requestId?: string): string[] {
    const h = this.byUser.get(user);
    if (h === undefined) return [];
    const out: string[] = [];
    for (const [id, req] of h) if (req !== requestId && exclude?.has(id) !== true) out.push(id);
    return out;
  }

  /** Adds a record's positives (teacher ranks ≤ topK, clicked items) to its user's history. */
  observe(r: LabelRecord): void {
    const v = r.value;
    const pos: string[] = [];
    if (r.kind === 'pairwise') {
      for (const p of r.value.pairs) if (p.pos_rank <= this.o.topK) pos.push(p.pos_item);
    } else {
      const items = [...r.value.items].sort((a, b) => a.rank - b.rank);
      for (const it of items)
        if (it.rank <= this.o.topK || ('clicked' in it && it.clicked === true)) pos.push(it.item_id);
    }
    this.add(v.user_id, pos, v.request_id);
  }

  /** Appends items to a user's history (moved to the newest end when already there). */
  add(user: string, items: readonly string[], requestId = ''): void {
    if (items.length === 0 || this.o.length <= 0) return;
    let h = this.byUser.get(user);
    if (h === undefined) {
      h = [];
      this.byUser.set(user, h);
    }
    for (const id of items) {
      const at = h.findIndex((e) => e[0] === id);
      if (at >= 0) h.splice(at, 1);
      h.push([id, requestId]);
    }
    if (h.length > this.o.length) h.splice(0, h.length - this.o.length);
  }

  /**
   * The whole state as JSON-ready pairs, users in first-seen order (a checkpoint's history.json):
   * `[user, [[item, request], ...]]`.
   */
  toJSON(): [string, [string, string][]][] {
    return [...this.byUser.entries()].map(([u, h]) => [u, h.map(([i, r]) => [i, r] as [string, string])]);
  }

  /** Replaces the state with a stored one. */
  restore(stored: readonly (readonly [string, readonly (readonly [string, string])[]])[]): void {
    this.byUser.clear();
    for (const [u, h] of stored)
      this.byUser.set(
        u,
        h.slice(-this.o.length).map(([i, r]) => [i, r]),
      );
  }
}

/**
 * Every item a label record names (its request's candidates as far as the record shows them): what
 * the request's history must leave out.
 *
 * @example
 * store.before(r.value.user_id, recordItems(r));
 */
export function recordItems(r: LabelRecord): Set<string> {
  const out = new Set<string>();
  if (r.kind === 'pairwise')
    for (const p of r.value.pairs) {
      out.add(p.pos_item);
      out.add(p.neg_item);
    }
  else for (const it of r.value.items) out.add(it.item_id);
  return out;
}
