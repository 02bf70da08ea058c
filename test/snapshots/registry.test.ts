import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { openRegistry, toAnnouncement } from '../../src/snapshots/registry.ts';
import { tempRoot } from './helpers.ts';

test('registry migration: a registry.sqlite of the release before the paired gate opens in place and takes gate results', () => {
  const path = join(tempRoot('rd-reg-'), 'registry.sqlite');
  // the schema as it was before the gate and live columns
  const old = new Database(path);
  old.exec(`CREATE TABLE snapshots (version INTEGER PRIMARY KEY, status TEXT NOT NULL, created_at INTEGER NOT NULL,
    path TEXT NOT NULL, parent_version INTEGER, model TEXT NOT NULL, offsets TEXT NOT NULL, metrics TEXT NOT NULL,
    files TEXT NOT NULL, reason TEXT, recorded_at INTEGER NOT NULL);
    CREATE TABLE announcements (seq INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL REFERENCES snapshots(version),
    status TEXT NOT NULL, at INTEGER NOT NULL, sent_at INTEGER);`);
  old
    .prepare('INSERT INTO snapshots VALUES (1, ?, 1, ?, NULL, ?, ?, ?, ?, NULL, 2)')
    .run(
      'published',
      '/s/v1',
      JSON.stringify({ kind: 'two-tower', dim: 4, params: 1, numItems: 1, numUsers: 1 }),
      '[]',
      '{"ndcg_at_10":0.5}',
      '[]',
    );
  old.prepare('INSERT INTO announcements (version, status, at) VALUES (1, ?, 3)').run('published');
  old.close();

  const reg = openRegistry(path);
  try {
    const v1 = reg.get(1);
    assert.equal(v1?.gate, null);
    assert.equal(v1?.live, null);
    assert.equal(reg.current()?.snapshot.version, 1);
    const gate = {
      decision: 'published' as const,
      method: 'paired-bootstrap' as const,
      against: 1,
      confidence: 0.95,
      primary: {
        metric: 'recall_at_100_of_top10',
        candidate: 0.52,
        current: 0.5,
        effect: 0.02,
        lo: 0.01,
        hi: 0.03,
        requests: 800,
        tolerance: 0,
        verdict: 'better' as const,
      },
      secondary: [],
      warnings: [],
    };
    reg.record({
      version: 2,
      status: 'published',
      createdAt: 5,
      path: '/s/v2',
      parentVersion: 1,
      model: { kind: 'two-tower', dim: 4, params: 1, numItems: 1, numUsers: 1 },
      offsets: [],
      metrics: { ndcg_at_10: 0.5 },
      files: [],
      reason: null,
      gate,
      live: { version: 1, requests: 40, recall_at_100_of_top10: 0.4 },
    });
    const v2 = reg.get(2);
    assert.deepEqual(v2?.gate, gate);
    assert.deepEqual(v2?.live, { version: 1, requests: 40, recall_at_100_of_top10: 0.4 });
    const a = toAnnouncement(v2 as NonNullable<typeof v2>, 'published');
    assert.equal(a.gate?.primary?.effect, 0.02);
    assert.equal(a.live_metrics.requests, 40);
  } finally {
    reg.close();
  }
  // opened a second time: the migration is not applied twice
  openRegistry(path).close();
});
