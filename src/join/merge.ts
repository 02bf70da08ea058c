/**
 * Event-time merge of a task's two input partitions, after Kafka Streams' `PartitionGroup`.
 *
 * Why: join outcomes (joined vs late vs unmatched) depend on the order in which the two inputs are
 * interleaved, and a transport interleaves two partitions arbitrarily (fetch sizes, timing). To make
 * the output a pure function of the two partition logs, the task buffers records per input and
 * always processes the head with the smallest (ts, topic order, offset) — and only while both
 * buffers are non-empty, unless the empty side is *caught up* (its consumed position equals the
 * partition's end offset, or end-of-file for files). Then the file transport and the Kafka
 * transport give the same labels byte for byte for pre-produced data, whatever the batching.
 *
 * Records that have no usable event time (undecodable, invalid) carry `ts = -Infinity`: they go
 * out as soon as they reach the head of their buffer. They only produce dead letters and never
 * touch state, so this keeps determinism without holding them back.
 *
 * Pure: no I/O, no clock.
 */

/** One buffered record. `item` is opaque to the merge. */
export interface MergeEntry<T> {
  ts: number;
  offset: number;
  item: T;
}

/** Index of an input: 0 = the first topic (ranker outputs), 1 = the second (impressions). */
export type MergeSide = 0 | 1;

class Fifo<T> {
  #items: Array<T | undefined> = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(x: T): void {
    this.#items.push(x);
  }
  peek(): T | undefined {
    return this.#items[this.#head];
  }
  shift(): T | undefined {
    const x = this.#items[this.#head];
    if (x === undefined) return undefined;
    // Let go of the record now: consumed slots held thousands of records (their decoded objects
    // and column buffers) until the next compaction, so they outlived scavenges, were promoted
    // and left for the old-generation GC (2.5 KB per request survived a scavenge this way).
    this.#items[this.#head] = undefined;
    this.#head++;
    // Compact now and then so the array does not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return x;
  }
  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/**
 * Buffers two inputs and releases records in event-time order.
 *
 * @example
 * const m = new PartitionMerge<string>();
 * m.push(0, [{ ts: 5, offset: 0, item: 'r0' }]);
 * m.next(); // undefined: side 1 is empty and not caught up
 * m.setCaughtUp(1, true);
 * m.next(); // { side: 0, entry: { ts: 5, offset: 0, item: 'r0' } }
 */
export class PartitionMerge<T> {
  readonly #buffers: [Fifo<MergeEntry<T>>, Fifo<MergeEntry<T>>] = [new Fifo(), new Fifo()];
  readonly #caughtUp: [boolean, boolean] = [false, false];

  /** Appends records of one side (in offset order). */
  push(side: MergeSide, entries: Iterable<MergeEntry<T>>): void {
    const buf = this.#buffers[side];
    for (const e of entries) buf.push(e);
  }

  /**
   * Whether `side` has nothing more to deliver right now (consumed position == end offset, or
   * end of input). Only consulted while that side's buffer is empty.
   */
  setCaughtUp(side: MergeSide, caughtUp: boolean): void {
    this.#caughtUp[side] = caughtUp;
  }

  isCaughtUp(side: MergeSide): boolean {
    return this.#caughtUp[side];
  }

  /** Records buffered on a side. */
  buffered(side: MergeSide): number {
    return this.#buffers[side].length;
  }

  /** The side that blocks progress (empty and not caught up), or null. */
  blockedOn(): MergeSide | null {
    const [a, b] = this.#buffers;
    if (a.length === 0 && b.length === 0) return null;
    if (a.length === 0 && !this.#caughtUp[0]) return 0;
    if (b.length === 0 && !this.#caughtUp[1]) return 1;
    return null;
  }

  /** The next record in merged order, or undefined when none may be released yet. */
  next(): { side: MergeSide; entry: MergeEntry<T> } | undefined {
    const [a, b] = this.#buffers;
    const ha = a.peek();
    const hb = b.peek();
    if (ha === undefined && hb === undefined) return undefined;
    if (ha === undefined) return this.#caughtUp[0] ? { side: 1, entry: b.shift()! } : undefined;
    if (hb === undefined) return this.#caughtUp[1] ? { side: 0, entry: a.shift()! } : undefined;
    // Smallest (ts, side, offset); side 0 wins ties, offsets are per side so never compared.
    if (hb.ts < ha.ts) return { side: 1, entry: b.shift()! };
    return { side: 0, entry: a.shift()! };
  }

  /** Drops everything buffered (after a rewind or a rebalance). */
  clear(): void {
    this.#buffers[0].clear();
    this.#buffers[1].clear();
    this.#caughtUp[0] = false;
    this.#caughtUp[1] = false;
  }
}
