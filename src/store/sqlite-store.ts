/**
 * The join state of one task in SQLite (better-sqlite3, WAL), so millions of open requests live on
 * disk and in SQLite's page cache, not in the JS heap.
 *
 * - `entries(key, expires_at, value)`: pending records (their raw wire bytes, not JSON) and done
 *   markers, encoded by src/join/entry-codec.ts; indexed by (expires_at, key) for watermark sweeps.
 * - `meta`: the stream time and the **checkpoint** — the changelog offset this database reflects
 *   (next offset to read). No checkpoint = never trust the rows.
 *
 * One SQLite transaction per processed batch ({@link begin} … {@link commit}). The service keeps
 * it open until the batch's Kafka transaction has committed and only then commits SQLite with the
 * new checkpoint: if the process dies in between, SQLite rolls back and the restore replays the
 * changelog from the older checkpoint (puts and deletes are idempotent in order).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { RankdistillError } from '../errors.ts';
import { decodeEntry, decodeStreamTime, encodeEntry, STREAM_TIME_KEY } from '../join/entry-codec.ts';
import type { JoinStateStore, StateEntry } from '../join/types.ts';

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
    min: Stmt;
    count: Stmt;
    metaGet: Stmt;
    metaPut: Stmt;
  };
  #streamTime: number | null;
  #count: number;
  /** Cached minimum expires_at: undefined = unknown (re-read from the index on demand). */
  #min: number | null | undefined = undefined;

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
      min: db.prepare('SELECT MIN(expires_at) FROM entries').pluck(),
      count: db.prepare('SELECT COUNT(*) FROM entries').pluck(),
      metaGet: db.prepare('SELECT v FROM meta WHERE k = ?').pluck(),
      metaPut: db.prepare(
        'INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v',
      ),
    };
    this.#streamTime = this.#loadStreamTime();
    this.#count = this.#s.count.get() as number;
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
    const v = this.#s.get.get(key) as Buffer | undefined;
    return v === undefined ? undefined : decodeEntry(v);
  }

  put(key: string, entry: StateEntry, _isNew?: boolean): void {
    this.#upsert(key, entry.expiresAt, encodeEntry(entry));
  }

  #upsert(key: string, expiresAt: number, value: Buffer): void {
    if (this.#s.insert.run(key, expiresAt, value).changes === 1) this.#count++;
    else {
      const old = this.#s.expiryOf.get(key) as number | undefined;
      if (old === this.#min) this.#min = undefined;
      this.#s.update.run(expiresAt, value, key);
    }
    if (this.#min !== undefined && (this.#min === null || expiresAt < this.#min)) this.#min = expiresAt;
  }

  delete(key: string): void {
    const gone = this.#s.del.get(key) as number | undefined;
    if (gone === undefined) return;
    this.#count--;
    if (gone === this.#min) this.#min = undefined;
  }

  expiring(bound: number, limit: number): Array<[string, StateEntry]> {
    const rows = this.#s.expiring.all(bound, limit) as Array<{ key: string; value: Buffer }>;
    return rows.map((r) => [r.key, decodeEntry(r.value)]);
  }

  minExpiresAt(): number | null {
    if (this.#min === undefined) this.#min = (this.#s.min.get() as number | null) ?? null;
    return this.#min;
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
    if (this.#streamTime !== null) this.#s.metaPut.run('stream_time', f64(this.#streamTime));
    if (checkpoint !== undefined) this.#s.metaPut.run('checkpoint', f64(checkpoint));
    this.#db.exec('COMMIT');
  }

  /** Discards the open batch transaction and reloads the cached stream time and size. */
  rollback(): void {
    if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
    this.#streamTime = this.#loadStreamTime();
    this.#count = this.#s.count.get() as number;
    this.#min = undefined;
  }

  /**
   * Applies changelog records (in log order) inside the open transaction: an entry or a tombstone
   * per key, or the stream-time record.
   */
  applyChangelog(key: string, value: Buffer | null): void {
    if (key === STREAM_TIME_KEY) {
      if (value !== null) this.#streamTime = decodeStreamTime(value);
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
    this.begin();
    this.#db.exec('DELETE FROM entries; DELETE FROM meta;');
    this.#db.exec('COMMIT');
    this.#streamTime = null;
    this.#count = 0;
    this.#min = null;
  }

  /** Closes the database; an open transaction is rolled back. */
  close(): void {
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
