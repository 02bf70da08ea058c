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

/**
 * Records of one side pushed together, made into entries one at a time as they reach the head.
 *
 * Why: a side's buffer holds thousands of records (a fetch of small records is ~4,000 of them,
 * more while a commit is in flight). Held as objects — an entry, its record, the key and value
 * views — each lived through scavenges and was promoted: at 20 candidates the buffers were the
 * largest part of the 2.9 KB per request that survived a scavenge. A chunk keeps its records in
 * its own compact form until the merge reaches them.
 */
export interface MergeChunk<T> {
  readonly length: number;
  /** The i-th record; called once per index, in order. */
  entry(i: number): MergeEntry<T>;
}

/** A chunk over entries that exist already; each slot is let go once its entry is taken. */
class ArrayChunk<T> implements MergeChunk<T> {
  readonly #entries: Array<MergeEntry<T> | undefined>;
  readonly length: number;
  constructor(entries: Array<MergeEntry<T> | undefined>) {
    this.#entries = entries;
    this.length = entries.length;
  }
  entry(i: number): MergeEntry<T> {
    const e = this.#entries[i] as MergeEntry<T>;
    this.#entries[i] = undefined;
    return e;
  }
}

/** A queue of chunks read through a cursor; only the head record exists as an entry. */
class Fifo<T> {
  #chunks: Array<MergeChunk<T> | undefined> = [];
  /** The chunk holding the head, and the head's index in it. */
  #first = 0;
  #pos = 0;
  #head: MergeEntry<T> | undefined;
  #length = 0;
  get length(): number {
    return this.#length;
  }
  push(c: MergeChunk<T>): void {
    if (c.length === 0) return;
    this.#chunks.push(c);
    this.#length += c.length;
  }
  peek(): MergeEntry<T> | undefined {
    if (this.#head === undefined && this.#length > 0) {
      this.#head = (this.#chunks[this.#first] as MergeChunk<T>).entry(this.#pos);
    }
    return this.#head;
  }
  shift(): MergeEntry<T> | undefined {
    const x = this.peek();
    if (x === undefined) return undefined;
    // Let go of the record now: a consumed record kept alive (with its decoded objects and
    // column buffers) outlived scavenges, was promoted and left for the old-generation GC.
    this.#head = undefined;
    this.#length--;
    if (++this.#pos === (this.#chunks[this.#first] as MergeChunk<T>).length) {
      this.#chunks[this.#first] = undefined;
      this.#first++;
      this.#pos = 0;
      // Compact now and then so the array does not grow without bound.
      if (this.#first > 64 && this.#first * 2 > this.#chunks.length) {
        this.#chunks = this.#chunks.slice(this.#first);
        this.#first = 0;
      }
    }
    return x;
  }
  clear(): void {
    this.#chunks = [];
    this.#first = 0;
    this.#pos = 0;
    this.#head = undefined;
    this.#length = 0;
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
  readonly #buffers: [Fifo<T>, Fifo<T>] = [new Fifo(), new Fifo()];
  readonly #caughtUp: [boolean, boolean] = [false, false];

  /** Appends records of one side (in offset order). */
  push(side: MergeSide, entries: Iterable<MergeEntry<T>>): void {
    this.#buffers[side].push(new ArrayChunk([...entries]));
  }

  /** Appends a chunk of records of one side (in offset order, after those pushed before). */
  pushChunk(side: MergeSide, chunk: MergeChunk<T>): void {
    this.#buffers[side].push(chunk);
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
