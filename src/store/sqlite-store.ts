/**
 * The join state of one task in SQLite (better-sqlite3, WAL), so millions of open requests live on
 * disk and in SQLite's page cache, not in the JS heap.
 *
 * - `entries(key, expires_at, value)`: pending records (their raw wire bytes, not JSON) and blocks
 *   of done markers (src/join/marker-blocks.ts), encoded by src/join/entry-codec.ts; indexed by
 *   (expires_at, key) for watermark sweeps.
 * - `meta`: the stream time, the **checkpoint** — the changelog offset this database reflects
 *   (next offset to read; no checkpoint = never trust the rows) — and the input offsets that the
 *   last reflected transaction committed.
 *
 * Entries created inside a batch transaction (`put` with `isNew`) are held in memory and written
 * to SQLite only when the batch commits (or when a sweep needs them): a request joined within its
 * batch — the common case — never writes its pending record's bytes to SQLite, nor reads and
 * decodes them back. The rows a commit writes are exactly those it would have written eagerly.
 *
 * One SQLite transaction per processed batch ({@link begin} … {@link commit}). The service keeps
 * it open until the batch's Kafka transaction has committed and only then commits SQLite with the
 * new checkpoint: if the process dies in between, SQLite rolls back and the restore replays the
 * changelog from the older checkpoint (puts and deletes are idempotent in order).
 *
 * A {@link KeyFilter} holds the fingerprints of the keys in SQLite: a lookup of a key whose
 * fingerprint is absent (most of the operator's lookups: an id's own side, its other side) is
 * answered without a query. Every write and delete of a row updates it; a rollback rebuilds it.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { RankdistillError } from '../errors.ts';
import {
  decodeEntry,
  decodeInputOffsets,
  decodeStreamTime,
  encodeEntry,
  encodeInputOffsets,
  INPUT_OFFSETS_KEY,
  type InputOffsets,
  STREAM_TIME_KEY,
} from '../join/entry-codec.ts';
import { type ExpiryItem, heapMin, heapPush } from '../join/expiry-heap.ts';
import type { ExpiryPosition, JoinStateStore, StateEntry } from '../join/types.ts';
import { KeyFilter, keyFingerprint } from './key-filter.ts';

type Db = Database.Database;
type Stmt = Database.Statement;

/**
 * @example
 * const s = SqliteJoinStore.open('.rankdistill/state/task-0.sqlite');
 * s.begin(); s.put('d:r1', { kind: 'joined', ts: 1, expiresAt: 11 }); s.commit(42);
 * s.checkpoint(); // 42
 */
export class SqliteJoinStore implements JoinStateStore {
  readonly path: string;
  readonly #db: Db;
  readonly #s: {
    get: Stmt;
    insert: Stmt;
    update: Stmt;
    del: Stmt;
    expiryOf: Stmt;
    expiring: Stmt;
    expiringAfter: Stmt;
    min: Stmt;
    metaGet: Stmt;
    metaPut: Stmt;
    keys: Stmt;
    range: Stmt;
  };
  /** Fingerprints of the keys in SQLite (not of #fresh ones): absent = certainly not stored. */
  readonly #filter = new KeyFilter();
  #streamTime: number | null;
  #count: number;
  /** Cached minimum expires_at of the rows in SQLite: undefined = unknown (re-read on demand). */
  #min: number | null | undefined = undefined;
  /** Entries created in the open transaction and not yet written (keys absent from SQLite). */
  readonly #fresh = new Map<string, StateEntry>();
  /**
   * Min-heap of (expiresAt, key) over #fresh; items of deleted or re-put keys are dropped lazily.
   * Items hold no entry: a pending entry deleted at its join must not stay reachable (with its raw
   * bytes, which pin the whole fetch response) until the batch commits.
   */
  #heap: ExpiryItem[] = [];

  private constructor(path: string, db: Db) {
    this.path = path;
    this.#db = db;
    db.exec(`
      CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, expires_at REAL NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at, key);
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
    `);
    this.#s = {
      get: db.prepare('SELECT value FROM entries WHERE key = ?').pluck(),
      insert: db.prepare('INSERT OR IGNORE INTO entries (key, expires_at, value) VALUES (?, ?, ?)'),
      update: db.prepare('UPDATE entries SET expires_at = ?, value = ? WHERE key = ?'),
      del: db.prepare('DELETE FROM entries WHERE key = ? RETURNING expires_at').pluck(),
      expiryOf: db.prepare('SELECT expires_at FROM entries WHERE key = ?').pluck(),
      expiring: db.prepare(
        'SELECT key, value FROM entries WHERE expires_at < ? ORDER BY expires_at, key LIMIT ?',
      ),
      expiringAfter: db.prepare(
        'SELECT key, value FROM entries WHERE expires_at < ? AND (expires_at, key) > (?, ?) ORDER BY expires_at, key LIMIT ?',
      ),
      min: db.prepare('SELECT MIN(expires_at) FROM entries').pluck(),
      metaGet: db.prepare('SELECT v FROM meta WHERE k = ?').pluck(),
      metaPut: db.prepare(
        'INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v',
      ),
      keys: db.prepare('SELECT key FROM entries').pluck(),
      range: db.prepare('SELECT key, value FROM entries WHERE key >= ? AND key < ?'),
    };
    this.#streamTime = this.#loadStreamTime();
    this.#count = this.#loadFilter();
  }

  /**
   * Fills the key filter from the rows in SQLite (at open, and after a rollback) and returns
   * their number: the one scan of the keys also counts them.
   */
  #loadFilter(): number {
    this.#filter.clear();
    for (const key of this.#s.keys.iterate() as IterableIterator<string>)
      this.#filter.add(keyFingerprint(key));
    return this.#filter.size;
  }

  /**
   * Opens (creating) the store at `path`; `:memory:` for a throwaway store.
   *
   * @throws RankdistillError STATE_STORE_FAILED when the file cannot be opened.
   * @example
   * const s = SqliteJoinStore.open(join(cfg.store.dir, 'task-3.sqlite'));
   */
  static open(path: string): SqliteJoinStore {
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('cache_size = -32000'); // 32 MB page cache: bounded RSS with millions of rows
      return new SqliteJoinStore(path, db);
    } catch (cause) {
      throw new RankdistillError(
        'STATE_STORE_FAILED',
        `cannot open the join state store ${path}: ${String(cause)}`,
        {
          cause,
          details: { path },
        },
      );
    }
  }

  /** Deletes a store's files (database, WAL, shared memory). */
  static destroy(path: string): void {
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  }

  get(key: string): StateEntry | undefined {
    const f = this.#fresh.get(key);
    if (f !== undefined) return f;
    if (!this.#filter.has(keyFingerprint(key))) return undefined;
    const v = this.#s.get.get(key) as Buffer | undefined;
    return v === undefined ? undefined : decodeEntry(v);
  }

  put(key: string, entry: StateEntry, isNew?: boolean): void {
    const old = this.#fresh.get(key);
    if (old !== undefined || (isNew === true && this.#db.inTransaction)) {
      // `isNew`: the caller just saw get(key) return undefined, so no row exists to update.
      if (old === undefined) this.#count++;
      this.#fresh.set(key, entry);
      heapPush(this.#heap, { at: entry.expiresAt, key });
      return;
    }
    this.#upsert(key, entry.expiresAt, encodeEntry(entry));
  }

  #upsert(key: string, expiresAt: number, value: Buffer): void {
    if (this.#s.insert.run(key, expiresAt, value).changes === 1) {
      this.#count++;
      this.#filter.add(keyFingerprint(key));
    } else {
      const old = this.#s.expiryOf.get(key) as number | undefined;
      if (old === this.#min) this.#min = undefined;
      this.#s.update.run(expiresAt, value, key);
    }
    if (this.#min !== undefined && (this.#min === null || expiresAt < this.#min)) this.#min = expiresAt;
  }

  delete(key: string): void {
    if (this.#fresh.delete(key)) {
      this.#count--;
      return;
    }
    const fp = keyFingerprint(key);
    if (!this.#filter.has(fp)) return;
    const gone = this.#s.del.get(key) as number | undefined;
    if (gone === undefined) return;
    this.#filter.remove(fp);
    this.#count--;
    if (gone === this.#min) this.#min = undefined;
  }

  expiring(bound: number, limit: number, after?: ExpiryPosition): Array<[string, StateEntry]> {
    // Fresh entries are recent, so they rarely expire in their own batch; when one does, write
    // them all and let SQLite order everything.
    const fm = this.#freshMin();
    if (fm !== null && fm < bound) this.#flush();
    const rows = (
      after === undefined
        ? this.#s.expiring.all(bound, limit)
        : this.#s.expiringAfter.all(bound, after.at, after.key, limit)
    ) as Array<{ key: string; value: Buffer }>;
    return rows.map((r) => [r.key, decodeEntry(r.value)]);
  }

  scan(prefix: string): Array<[string, StateEntry]> {
    // Keys under the prefix sort in [prefix, prefix with its last code unit + 1) — also in
    // SQLite's BINARY order of UTF-8, for an ASCII prefix.
    if (!/^[\x20-\x7e]+$/.test(prefix))
      throw new RangeError(`scan needs a printable ASCII prefix, got ${JSON.stringify(prefix)}`);
    const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
    const rows = this.#s.range.all(prefix, end) as Array<{ key: string; value: Buffer }>;
    const out: Array<[string, StateEntry]> = rows.map((r) => [r.key, decodeEntry(r.value)]);
    for (const kv of this.#fresh) if (kv[0].startsWith(prefix)) out.push(kv);
    return out;
  }

  minExpiresAt(): number | null {
    if (this.#min === undefined) this.#min = (this.#s.min.get() as number | null) ?? null;
    const fm = this.#freshMin();
    if (fm === null) return this.#min;
    return this.#min === null || fm < this.#min ? fm : this.#min;
  }

  /** Smallest expiresAt of the fresh entries (dropping heap items of deleted or replaced ones). */
  #freshMin(): number | null {
    return heapMin(this.#heap, this.#fresh);
  }

  /** Writes the fresh entries to SQLite (inside the open transaction). */
  #flush(): void {
    if (this.#fresh.size === 0) {
      this.#heap = [];
      return;
    }
    for (const [key, entry] of this.#fresh) {
      if (this.#s.insert.run(key, entry.expiresAt, encodeEntry(entry)).changes !== 1) {
        // Not fresh after all (a caller passed isNew for a stored key): update, counted once.
        this.#s.update.run(entry.expiresAt, encodeEntry(entry), key);
        this.#count--;
        this.#min = undefined;
      } else this.#filter.add(keyFingerprint(key));
      if (this.#min !== undefined && (this.#min === null || entry.expiresAt < this.#min))
        this.#min = entry.expiresAt;
    }
    this.#fresh.clear();
    this.#heap = [];
  }

  streamTime(): number | null {
    return this.#streamTime;
  }

  setStreamTime(ts: number): void {
    this.#streamTime = ts;
  }

  size(): number {
    return this.#count;
  }

  /** The changelog offset (next to read) this store reflects, or null when never checkpointed. */
  checkpoint(): number | null {
    const v = this.#s.metaGet.get('checkpoint') as Buffer | undefined;
    return v === undefined ? null : v.readDoubleBE(0);
  }

  /**
   * The input positions of the last transaction this store reflects (its changelog's
   * input-offsets record), or null when the changelog had none.
   */
  inputOffsets(): InputOffsets | null {
    const v = this.#s.metaGet.get('input_offsets') as Buffer | undefined;
    return v === undefined ? null : decodeInputOffsets(v);
  }

  /** Records the input positions in the open batch transaction (committed with it). */
  setInputOffsets(o: InputOffsets): void {
    this.begin();
    this.#s.metaPut.run('input_offsets', encodeInputOffsets(o));
  }

  /** True while a batch transaction is open. */
  get inTransaction(): boolean {
    return this.#db.inTransaction;
  }

  /** Opens the batch transaction (no-op when one is open). */
  begin(): void {
    if (!this.#db.inTransaction) this.#db.exec('BEGIN');
  }

  /** Writes the stream time (and the checkpoint, when given) and commits the batch transaction. */
  commit(checkpoint?: number): void {
    this.begin();
    this.#flush();
    if (this.#streamTime !== null) this.#s.metaPut.run('stream_time', f64(this.#streamTime));
    if (checkpoint !== undefined) this.#s.metaPut.run('checkpoint', f64(checkpoint));
    this.#db.exec('COMMIT');
  }

  /** Discards the open batch transaction and reloads the cached stream time and size. */
  rollback(): void {
    this.#fresh.clear();
    this.#heap = [];
    if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
    this.#streamTime = this.#loadStreamTime();
    this.#min = undefined;
    this.#count = this.#loadFilter();
  }

  /**
   * Applies changelog records (in log order) inside the open transaction: an entry or a tombstone
   * per key, or the stream-time record.
   */
  applyChangelog(key: string, value: Buffer | null): void {
    this.#flush();
    if (key === STREAM_TIME_KEY) {
      if (value !== null) this.#streamTime = decodeStreamTime(value);
      return;
    }
    if (key === INPUT_OFFSETS_KEY) {
      if (value !== null) this.setInputOffsets(decodeInputOffsets(value));
      return;
    }
    if (value === null) {
      this.delete(key);
      return;
    }
    this.#upsert(key, decodeEntry(value).expiresAt, value);
  }

  /** Deletes every entry and the checkpoint (the store cannot be trusted). */
  wipe(): void {
    this.#fresh.clear();
    this.#heap = [];
    this.begin();
    this.#db.exec('DELETE FROM entries; DELETE FROM meta;');
    this.#db.exec('COMMIT');
    this.#filter.clear();
    this.#streamTime = null;
    this.#count = 0;
    this.#min = null;
  }

  /** Closes the database; an open transaction is rolled back. */
  close(): void {
    this.#fresh.clear();
    this.#heap = [];
    this.#filter.clear();
    if (!this.#db.open) return;
    if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
    this.#db.close();
  }

  #loadStreamTime(): number | null {
    const v = this.#s.metaGet.get('stream_time') as Buffer | undefined;
    return v === undefined ? null : decodeStreamTime(v);
  }
}

function f64(x: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x, 0);
  return b;
}
