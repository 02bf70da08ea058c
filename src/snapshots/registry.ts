/**
 * The SQLite registry of snapshots (`snapshots.registry`, better-sqlite3): every snapshot that
 * reached its final directory, published or rejected (with the reason), and the history of
 * announcements — which version was made current, when, and whether the announcement reached
 * Kafka yet.
 *
 * "Current" is the version of the latest announcement: the newest published snapshot, or the one an
 * operator rolled back to since. The announcement rows double as an outbox (the transactional
 * outbox pattern): the registry row and its announcement commit in one SQLite transaction, and
 * unsent announcements are sent (and retried after a crash) by the publisher, so the topic never
 * misses a version the registry made current.
 *
 * Paths are stored relative to the registry's directory (by default the snapshot directory itself,
 * `<snapshots.dir>/registry.sqlite`), so a snapshot directory carries everything needed to read it
 * and can be moved or copied: a copy's registry names the copy's files, never the original's.
 * Registries written before (absolute paths) still load: a path whose `v<N>` sits beside the
 * registry resolves there, otherwise the absolute path is used as written.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { SnapshotAnnouncement } from '../contracts/index.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import type { GateSummary } from './gate.ts';
import type { FileEntry, Manifest, PartitionOffset } from './manifest.ts';

export type SnapshotStatus = 'published' | 'rejected';
export type AnnouncementStatus = 'published' | 'rollback';

/** One snapshot in the registry. */
export interface SnapshotRecord {
  version: number;
  status: SnapshotStatus;
  createdAt: number;
  /** Absolute path of the snapshot directory (stored relative to the registry's directory). */
  path: string;
  parentVersion: number | null;
  model: Manifest['model'];
  offsets: PartitionOffset[];
  metrics: Record<string, number>;
  /** Every file including manifest.json, with sha256 and size. */
  files: FileEntry[];
  /** Why the gate rejected it; for a published one, null or the gate's note (eval set changed, see gate.ts). */
  reason: string | null;
  /** The gate's decision, effect size and interval (null: recorded before the paired gate). */
  gate: GateSummary | null;
  /** Live quality of the snapshot serving when this one was cut (see Manifest.live); null: none. */
  live: Record<string, number> | null;
  recordedAt: number;
}

/** One announcement: a version made current. */
export interface AnnouncementRecord {
  seq: number;
  version: number;
  status: AnnouncementStatus;
  at: number;
  /** When it was produced to Kafka (null: not yet). */
  sentAt: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  version INTEGER PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('published', 'rejected')),
  created_at INTEGER NOT NULL,
  path TEXT NOT NULL,
  parent_version INTEGER,
  model TEXT NOT NULL,
  offsets TEXT NOT NULL,
  metrics TEXT NOT NULL,
  files TEXT NOT NULL,
  reason TEXT,
  recorded_at INTEGER NOT NULL,
  gate TEXT,
  live TEXT
);
CREATE TABLE IF NOT EXISTS announcements (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  version INTEGER NOT NULL REFERENCES snapshots(version),
  status TEXT NOT NULL CHECK (status IN ('published', 'rollback')),
  at INTEGER NOT NULL,
  sent_at INTEGER
);
`;

interface SnapshotRow {
  version: number;
  status: SnapshotStatus;
  created_at: number;
  path: string;
  parent_version: number | null;
  model: string;
  offsets: string;
  metrics: string;
  files: string;
  reason: string | null;
  recorded_at: number;
  gate: string | null;
  live: string | null;
}

/**
 * Columns added after the first release, as `ALTER TABLE` statements: a registry.sqlite written by
 * an older version gets them at open (NULL for its existing rows), so it keeps working in place.
 */
const MIGRATIONS: { column: string; sql: string }[] = [
  { column: 'gate', sql: 'ALTER TABLE snapshots ADD COLUMN gate TEXT' },
  { column: 'live', sql: 'ALTER TABLE snapshots ADD COLUMN live TEXT' },
];

function migrate(db: Database.Database): void {
  const have = new Set(
    (db.prepare('PRAGMA table_info(snapshots)').all() as { name: string }[]).map((c) => c.name),
  );
  const todo = MIGRATIONS.filter((m) => !have.has(m.column));
  if (todo.length === 0) return;
  db.transaction(() => {
    for (const m of todo) db.exec(m.sql);
  })();
}

interface AnnouncementRow {
  seq: number;
  version: number;
  status: AnnouncementStatus;
  at: number;
  sent_at: number | null;
}

// NaN / Infinity survive the JSON round trip as strings (a rejected snapshot may carry NaN).
const encodeMetrics = (m: Record<string, number>): string =>
  JSON.stringify(m, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
const decodeMetrics = (s: string): Record<string, number> =>
  Object.fromEntries(
    Object.entries(JSON.parse(s) as Record<string, number | string>).map(([k, v]) => [k, Number(v)]),
  );

/**
 * The snapshot directory a stored path names, for a registry in `base` (null: `:memory:`, paths
 * kept as given). Relative paths resolve against `base`; an absolute one (a registry written
 * before paths were relative) resolves to the `v<N>` beside the registry when that exists, so a
 * moved or copied directory reads its own files.
 */
export function resolveSnapshotPath(stored: string, base: string | null): string {
  if (base === null) return stored;
  if (!isAbsolute(stored)) return resolve(base, stored);
  const beside = join(base, basename(stored));
  return existsSync(beside) ? beside : stored;
}

/** The path to store for snapshot directory `dir`: relative to `base` (the registry's directory). */
export function storedSnapshotPath(dir: string, base: string | null): string {
  return base === null ? dir : relative(base, resolve(dir)) || '.';
}

/**
 * The registry file of a snapshots config: `registry` when set, else `<dir>/registry.sqlite`, so
 * that pointing at a snapshot directory (snapshots.dir, `--snapshots DIR`) is enough.
 *
 * @example
 * registryPathOf({ dir: '/data/snapshots' }); // '/data/snapshots/registry.sqlite'
 */
export function registryPathOf(s: { dir: string; registry?: string | undefined }): string {
  return s.registry ?? join(s.dir, 'registry.sqlite');
}

// a gate summary's interval may be infinite (no paired request): kept as strings like the metrics
const encodeGate = (g: GateSummary): string =>
  JSON.stringify(g, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));

function toRecord(r: SnapshotRow, base: string | null): SnapshotRecord {
  return {
    version: r.version,
    status: r.status,
    createdAt: r.created_at,
    path: resolveSnapshotPath(r.path, base),
    parentVersion: r.parent_version,
    model: JSON.parse(r.model) as Manifest['model'],
    offsets: JSON.parse(r.offsets) as PartitionOffset[],
    metrics: decodeMetrics(r.metrics),
    files: JSON.parse(r.files) as FileEntry[],
    reason: r.reason,
    gate: r.gate === null ? null : (JSON.parse(r.gate) as GateSummary),
    live: r.live === null ? null : decodeMetrics(r.live),
    recordedAt: r.recorded_at,
  };
}

const toAnnouncementRecord = (r: AnnouncementRow): AnnouncementRecord => ({
  seq: r.seq,
  version: r.version,
  status: r.status,
  at: r.at,
  sentAt: r.sent_at,
});

/**
 * The SnapshotAnnouncement contract record of a registry entry.
 *
 * @example
 * encodeAvro('SnapshotAnnouncement', toAnnouncement(registry.get(3)!, 'rollback'));
 */
export function toAnnouncement(s: SnapshotRecord, status: AnnouncementStatus): SnapshotAnnouncement {
  return {
    version: s.version,
    created_at: s.createdAt,
    path: s.path,
    files: s.files.map((f) => ({ name: f.name, sha256: f.sha256, bytes: f.bytes })),
    model: {
      kind: s.model.kind,
      dim: s.model.dim,
      params: s.model.params,
      num_items: s.model.numItems,
      num_users: s.model.numUsers,
    },
    offsets: s.offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })),
    metrics: { ...s.metrics },
    parent_version: s.parentVersion,
    status,
    gate:
      s.gate === null
        ? null
        : { ...s.gate, secondary: [...s.gate.secondary], warnings: [...s.gate.warnings] },
    live_metrics: { ...(s.live ?? {}) },
  };
}

/**
 * Opens (creating when needed, unless `mustExist`) the registry at `path` (`:memory:` for tests).
 *
 * @throws RankdistillError STATE_STORE_FAILED when the file cannot be opened.
 * @example
 * const reg = openRegistry('snapshots/registry.sqlite');
 * reg.current(); // { snapshot, announcement } | null
 */
export function openRegistry(path: string, opts: { mustExist?: boolean } = {}): SnapshotRegistry {
  if (opts.mustExist && path !== ':memory:' && !existsSync(path))
    throw new RankdistillError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot registry ${path}: expected an existing registry, found no file (point at the snapshot directory with --snapshots DIR or RANKDISTILL_SNAPSHOTS__DIR; the demo prints its directory)`,
      { details: { path } },
    );
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    migrate(db);
    return new SnapshotRegistry(db, path === ':memory:' ? null : dirname(resolve(path)));
  } catch (e) {
    throw new RankdistillError(
      'STATE_STORE_FAILED',
      `snapshot registry ${path}: cannot open: ${errorMessage(e)}`,
      {
        cause: e,
        details: { path },
      },
    );
  }
}

/** Registry handle; see {@link openRegistry}. */
export class SnapshotRegistry {
  private readonly db: Database.Database;
  /** Directory stored paths are relative to (null: kept as given, for `:memory:`). */
  readonly base: string | null;

  constructor(db: Database.Database, base: string | null = null) {
    this.db = db;
    this.base = base;
  }

  /**
   * Records a snapshot that is complete on disk and, when it is published, its announcement, in
   * one transaction. Returns the announcement (to send) or null.
   */
  record(s: Omit<SnapshotRecord, 'recordedAt'>, now = Date.now()): AnnouncementRecord | null {
    const tx = this.db.transaction((): AnnouncementRecord | null => {
      this.db
        .prepare(
          `INSERT INTO snapshots (version, status, created_at, path, parent_version, model, offsets, metrics, files, reason, recorded_at, gate, live)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          s.version,
          s.status,
          s.createdAt,
          storedSnapshotPath(s.path, this.base),
          s.parentVersion,
          JSON.stringify(s.model),
          JSON.stringify(s.offsets),
          encodeMetrics(s.metrics),
          JSON.stringify(s.files),
          s.reason,
          now,
          s.gate ? encodeGate(s.gate) : null,
          s.live ? encodeMetrics(s.live) : null,
        );
      return s.status === 'published' ? this.insertAnnouncement(s.version, 'published', now) : null;
    });
    return tx();
  }

  private insertAnnouncement(version: number, status: AnnouncementStatus, at: number): AnnouncementRecord {
    const info = this.db
      .prepare('INSERT INTO announcements (version, status, at) VALUES (?, ?, ?)')
      .run(version, status, at);
    return { seq: Number(info.lastInsertRowid), version, status, at, sentAt: null };
  }

  /**
   * Makes an older published version current again: records a `rollback` announcement.
   *
   * @throws RankdistillError SNAPSHOT_NOT_FOUND for an unknown version; SNAPSHOT_REJECTED for a
   *   version the gate rejected.
   */
  rollback(version: number, now = Date.now()): AnnouncementRecord {
    const s = this.get(version);
    if (!s)
      throw new RankdistillError(
        'SNAPSHOT_NOT_FOUND',
        `rollback: expected a registered version, found no v${version}`,
        {
          details: { version },
        },
      );
    if (s.status !== 'published')
      throw new RankdistillError(
        'SNAPSHOT_REJECTED',
        `rollback: expected a published version, found v${version} ${s.status} (${s.reason ?? ''})`,
        { details: { version } },
      );
    return this.insertAnnouncement(version, 'rollback', now);
  }

  get(version: number): SnapshotRecord | null {
    const r = this.db.prepare('SELECT * FROM snapshots WHERE version = ?').get(version) as
      | SnapshotRow
      | undefined;
    return r ? toRecord(r, this.base) : null;
  }

  /** Every snapshot, ascending by version. */
  list(): SnapshotRecord[] {
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY version').all() as SnapshotRow[]).map((r) =>
      toRecord(r, this.base),
    );
  }

  /** Every announcement, oldest first. */
  announcements(): AnnouncementRecord[] {
    return (this.db.prepare('SELECT * FROM announcements ORDER BY seq').all() as AnnouncementRow[]).map(
      toAnnouncementRecord,
    );
  }

  /** The current snapshot: that of the latest announcement (published or rollback), or null. */
  current(): { snapshot: SnapshotRecord; announcement: AnnouncementRecord } | null {
    const a = this.db.prepare('SELECT * FROM announcements ORDER BY seq DESC LIMIT 1').get() as
      | AnnouncementRow
      | undefined;
    if (!a) return null;
    const s = this.get(a.version);
    return s ? { snapshot: s, announcement: toAnnouncementRecord(a) } : null;
  }

  /** Highest version recorded, any status (0 when empty). */
  maxVersion(): number {
    const r = this.db.prepare('SELECT MAX(version) AS v FROM snapshots').get() as { v: number | null };
    return r.v ?? 0;
  }

  /** Announcements not yet produced to Kafka, oldest first. */
  unsent(): AnnouncementRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM announcements WHERE sent_at IS NULL ORDER BY seq')
        .all() as AnnouncementRow[]
    ).map(toAnnouncementRecord);
  }

  markSent(seq: number, now = Date.now()): void {
    this.db.prepare('UPDATE announcements SET sent_at = ? WHERE seq = ?').run(now, seq);
  }

  close(): void {
    this.db.close();
  }
}
