/**
 * Done markers (`d:<request_id>`) kept in blocks: a {@link JoinStateStore} layer over the task's
 * store that holds the markers a step creates in memory and writes them to the store underneath
 * as one `b:<n>` entry ({@link seal}), instead of one entry per marker.
 *
 * Why: every joined request leaves a marker for the window, so a duplicate copy arriving later is
 * recognised. One entry per marker cost a SQLite insert, a changelog record, a read-back at
 * expiry, a SQLite delete and a changelog tombstone — about 30% of the labeler's CPU per request
 * at 20 candidates (service 125 → 87-96 µs/request with markers switched off, bench:label).
 * In blocks those costs are paid once per step's markers: one row, one changelog record and one
 * tombstone per block.
 *
 * - **Lookups** go through {@link KeyFilter} `#index`: the fingerprint of each blocked marker's
 *   request id → its block number (4 + 4 bytes per slot, the same as the store's own key filter
 *   held per marker row before). Almost every lookup is of an absent id and ends there; a hit
 *   reads its block and compares the id bytes (fingerprints collide).
 * - **Expiry is lazy**: a block entry expires (and is deleted by the operator's sweep, with one
 *   tombstone) once its last marker expired; a marker whose own `expiresAt` passed before that
 *   stays readable here, and {@link JoinOperator} treats a marker with `expiresAt` below the
 *   watermark as absent — exactly what an eagerly swept store shows.
 * - **Overwrites** (an `unmatched` marker becoming `joined`, a marker put again after its expiry):
 *   the id's old block is rewritten without it, so every id is in at most one block and a restore
 *   of the blocks rebuilds the same index.
 * - Markers in the store underneath as single `d:` entries (state written before blocks) are
 *   still read, replaced and expired as before.
 *
 * The index is rebuilt from the store's blocks ({@link reload}): at open (after a restore from
 * the changelog) and after the store was rolled back.
 * `scan` shows the store underneath: blocks, not the markers in them nor unsealed ones.
 *
 * Block layout (`BlockEntry.markers`), per marker: u8 kind (1 joined, 2 unmatched) | f64 ts |
 * f64 expiresAt | u32 idLength | id (UTF-8), big-endian.
 *
 * Pure: no I/O.
 */
import { RankdistillError } from '../errors.ts';
import { KeyFilter, keyFingerprint } from '../store/key-filter.ts';
import { ForwardingStore } from './forwarding-store.ts';
import type { BlockEntry, DoneEntry, ExpiryPosition, JoinStateStore, StateEntry } from './types.ts';

const DONE = 'd:';
const BLOCK = 'b:';
/** A block is sealed early once it holds this many markers or bytes (one changelog record each). */
const MAX_BLOCK_MARKERS = 4096;
const MAX_BLOCK_BYTES = 256 * 1024;
const MARKER_HEAD = 1 + 8 + 8 + 4;

/**
 * @example
 * const s = new MarkerBlockStore(new MemoryJoinStore());
 * s.put('d:r1', { kind: 'joined', ts: 1, expiresAt: 11 });
 * s.seal(); // the store underneath now holds b:0 with r1's marker
 * s.get('d:r1'); // { kind: 'joined', ts: 1, expiresAt: 11 }
 */
export class MarkerBlockStore extends ForwardingStore {
  /** Fingerprint of a blocked marker's id → its block number. */
  readonly #index = new KeyFilter(true);
  /** Markers not yet sealed into a block, by request id. */
  #current = new Map<string, DoneEntry>();
  #currentBytes = 0;
  /** Blocks in the store underneath, and the markers they hold. */
  #blocks = 0;
  #markers = 0;
  /** Markers in the store underneath as single `d:` entries (written before blocks). */
  #legacy = 0;
  #next = 0;
  #wrapped = false;
  /** Blocks the latest `expiring` returned: their deletion drops their markers without a re-read. */
  #expiringBlocks = new Map<string, BlockEntry>();

  constructor(inner: JoinStateStore) {
    super(inner);
    this.reload();
  }

  /**
   * Forgets unsealed markers and rebuilds the index from the blocks in the store underneath
   * (after it was restored or rolled back).
   *
   * @throws RankdistillError STATE_STORE_FAILED on a `b:` entry that is not a block.
   */
  reload(): void {
    this.#index.clear();
    this.#current = new Map();
    this.#currentBytes = 0;
    this.#expiringBlocks.clear();
    this.#blocks = 0;
    this.#markers = 0;
    this.#legacy = this.inner.scan(DONE).length;
    this.#next = 0;
    this.#wrapped = false;
    for (const [key, e] of this.inner.scan(BLOCK)) {
      const n = blockNumber(key);
      if (e.kind !== 'block' || n === null) {
        throw new RankdistillError('STATE_STORE_FAILED', `state entry ${key} is not a marker block`);
      }
      this.#blocks++;
      forEachMarker(e.markers, (id) => {
        this.#index.add(keyFingerprint(id), n);
        this.#markers++;
      });
      if (n >= this.#next) this.#next = n + 1;
    }
  }

  /** Writes the unsealed markers to the store underneath as one block (none: nothing). */
  seal(): void {
    if (this.#current.size === 0) return;
    const n = this.#allocate();
    const markers = Buffer.allocUnsafe(this.#currentBytes);
    let o = 0;
    let ts = Number.NEGATIVE_INFINITY;
    let expiresAt = Number.NEGATIVE_INFINITY;
    for (const [id, m] of this.#current) {
      o = markers.writeUInt8(m.kind === 'joined' ? 1 : 2, o);
      o = markers.writeDoubleBE(m.ts, o);
      o = markers.writeDoubleBE(m.expiresAt, o);
      const len = markers.write(id, o + 4, 'utf8');
      markers.writeUInt32BE(len, o);
      o += 4 + len;
      if (m.ts > ts) ts = m.ts;
      if (m.expiresAt > expiresAt) expiresAt = m.expiresAt;
      this.#index.add(keyFingerprint(id), n);
    }
    this.inner.put(blockKey(n), { kind: 'block', ts, expiresAt, markers: markers.subarray(0, o) }, true);
    this.#blocks++;
    this.#markers += this.#current.size;
    this.#current = new Map();
    this.#currentBytes = 0;
  }

  /**
   * The next block number: one past the largest in use, and after numbers wrapped at 2^32 (the
   * index holds u32; at hundreds of steps a second that takes months) the next one no live block
   * has — a block lives for about a window.
   */
  #allocate(): number {
    for (;;) {
      if (this.#next > 0xffffffff) {
        this.#next = 0;
        this.#wrapped = true;
      }
      const n = this.#next++;
      if (!this.#wrapped || this.inner.get(blockKey(n)) === undefined) return n;
    }
  }

  override get(key: string): StateEntry | undefined {
    if (!key.startsWith(DONE)) return this.inner.get(key);
    const id = key.slice(DONE.length);
    const m = this.#current.get(id) ?? this.#inBlock(id)?.marker;
    // Nothing below writes `d:` entries: once the single ones are gone, no need to ask.
    return m !== undefined || this.#legacy === 0 ? m : this.inner.get(key);
  }

  override put(key: string, entry: StateEntry, isNew?: boolean): void {
    if (!key.startsWith(DONE) || (entry.kind !== 'joined' && entry.kind !== 'unmatched')) {
      this.inner.put(key, entry, isNew);
      return;
    }
    const id = key.slice(DONE.length);
    const old = this.#current.get(id);
    // `isNew`: the caller just saw get(key) return undefined, so it is in no block nor row.
    if (
      old === undefined &&
      isNew !== true &&
      !this.#dropFromBlock(id) &&
      this.#legacy > 0 &&
      this.inner.get(key) !== undefined
    ) {
      this.inner.delete(key);
      this.#legacy--;
    }
    this.#current.set(id, entry);
    if (old === undefined) this.#currentBytes += MARKER_HEAD + 3 * id.length;
    if (this.#current.size >= MAX_BLOCK_MARKERS || this.#currentBytes >= MAX_BLOCK_BYTES) this.seal();
  }

  override delete(key: string): void {
    if (key.startsWith(DONE)) {
      const id = key.slice(DONE.length);
      if (this.#current.delete(id) || this.#dropFromBlock(id)) return;
      if (this.#legacy === 0) return;
      if (this.inner.get(key) !== undefined) this.#legacy--;
    } else if (key.startsWith(BLOCK)) {
      const e = this.#expiringBlocks.get(key) ?? this.inner.get(key);
      const n = blockNumber(key);
      if (e?.kind === 'block' && n !== null) {
        forEachMarker(e.markers, (id) => {
          if (this.#index.remove(keyFingerprint(id), n)) this.#markers--;
        });
        this.#blocks--;
      }
      this.#expiringBlocks.delete(key);
    }
    this.inner.delete(key);
  }

  override expiring(bound: number, limit: number, after?: ExpiryPosition): Array<[string, StateEntry]> {
    const rows = this.inner.expiring(bound, limit, after);
    this.#expiringBlocks.clear();
    for (const [key, e] of rows) if (e.kind === 'block') this.#expiringBlocks.set(key, e);
    return rows;
  }

  /**
   * Entries, counting each marker (blocked or not) as one and blocks as none. A marker whose
   * window closed counts until its block goes (lazy expiry), so this is the state held, not the
   * state an eager store would hold.
   */
  override size(): number {
    return this.inner.size() - this.#blocks + this.#markers + this.#current.size;
  }

  /** Pending records (requests open in their window): exact, whatever the blocks' boundaries. */
  pending(): number {
    return this.inner.size() - this.#blocks - this.#legacy;
  }

  /**
   * The id's marker in a block, or undefined: with its block, the id's fingerprint and where the
   * marker's bytes lie in the block.
   */
  #inBlock(
    id: string,
  ): { n: number; block: BlockEntry; marker: DoneEntry; fp: number; at: number; end: number } | undefined {
    const fp = keyFingerprint(id);
    if (!this.#index.has(fp)) return undefined;
    const want = Buffer.from(id, 'utf8');
    for (const n of this.#index.valuesOf(fp)) {
      const block = this.inner.get(blockKey(n));
      if (block?.kind !== 'block') continue;
      const at = findMarker(block.markers, want);
      if (at >= 0)
        return {
          n,
          block,
          marker: readMarker(block.markers, at),
          fp,
          at,
          end: at + MARKER_HEAD + want.length,
        };
    }
    return undefined;
  }

  /** Removes the id's marker from its block (rewriting or deleting the block); false when in none. */
  #dropFromBlock(id: string): boolean {
    const hit = this.#inBlock(id);
    if (hit === undefined) return false;
    const { n, block, fp, at, end } = hit;
    this.#index.remove(fp, n);
    this.#markers--;
    this.#expiringBlocks.delete(blockKey(n)); // its deletion re-reads the rewritten block
    const rest = Buffer.concat([block.markers.subarray(0, at), block.markers.subarray(end)]);
    if (rest.length === 0) {
      this.inner.delete(blockKey(n));
      this.#blocks--;
    } else this.inner.put(blockKey(n), { ...block, markers: rest });
    return true;
  }
}

function blockKey(n: number): string {
  return `${BLOCK}${n}`;
}

/** The block number of a `b:<n>` key, or null for another key. */
function blockNumber(key: string): number | null {
  const s = key.slice(BLOCK.length);
  const n = Number(s);
  return key.startsWith(BLOCK) && /^\d+$/.test(s) && n <= 0xffffffff ? n : null;
}

/** Calls `fn` with each marker's id. */
function forEachMarker(b: Buffer, fn: (id: string) => void): void {
  for (let o = 0; o < b.length; ) {
    const len = b.readUInt32BE(o + 17);
    const start = o + MARKER_HEAD;
    fn(b.toString('utf8', start, start + len));
    o = start + len;
  }
}

/** Offset of the marker whose id bytes are `id`, or -1. */
function findMarker(b: Buffer, id: Buffer): number {
  for (let o = 0; o < b.length; ) {
    const len = b.readUInt32BE(o + 17);
    const start = o + MARKER_HEAD;
    if (len === id.length && b.compare(id, 0, len, start, start + len) === 0) return o;
    o = start + len;
  }
  return -1;
}

function readMarker(b: Buffer, o: number): DoneEntry {
  return {
    kind: b.readUInt8(o) === 1 ? 'joined' : 'unmatched',
    ts: b.readDoubleBE(o + 1),
    expiresAt: b.readDoubleBE(o + 9),
  };
}
