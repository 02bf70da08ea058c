import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { ChangeRecordingStore } from '../../src/join/changelog.ts';
import { encodeInputOffsets, INPUT_OFFSETS_KEY } from '../../src/join/entry-codec.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import type { StateEntry } from '../../src/join/types.ts';
import { SqliteJoinStore } from '../../src/store/sqlite-store.ts';
import { newTask, rawI, rawR } from '../join/helpers.ts';
import { applyStoreOp, assertScan, storeOpArbs } from '../join/store-model.ts';

const dir = mkdtempSync(join(tmpdir(), 'rd-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const pending = (ts: number): StateEntry => ({
  kind: 'pending',
  side: 'ranker',
  ts,
  expiresAt: ts + 10,
  source: { topic: 'ro', partition: 3, offset: 17 },
  key: Buffer.from('u1'),
  format: 'avro',
  raw: Buffer.from([1, 2, 3]),
});

describe('SqliteJoinStore', () => {
  test('put/get/delete round-trip entries with raw bytes, and counts them', () => {
    const s = SqliteJoinStore.open(join(dir, 'a.sqlite'));
    s.begin();
    s.put('r:x', pending(5));
    s.put('d:y', { kind: 'joined', ts: 1, expiresAt: 11 });
    s.put('d:y', { kind: 'joined', ts: 2, expiresAt: 12 });
    assert.deepEqual(s.get('r:x'), pending(5));
    assert.deepEqual(s.get('d:y'), { kind: 'joined', ts: 2, expiresAt: 12 });
    assert.equal(s.size(), 2);
    // A key range needs a prefix whose UTF-8 order is its UTF-16 order.
    assert.throws(() => s.scan('é:'), RangeError);
    s.delete('r:x');
    s.delete('r:x');
    assert.equal(s.get('r:x'), undefined);
    assert.equal(s.size(), 1);
    s.commit(5);
    s.close();
  });

  test('expiring() returns entries below the bound in (expiresAt, key) order', () => {
    const s = SqliteJoinStore.open(':memory:');
    s.put('r:b', pending(5));
    s.put('r:a', pending(5));
    s.put('d:c', { kind: 'joined', ts: 0, expiresAt: 3 });
    s.put('r:z', pending(50));
    assert.equal(s.minExpiresAt(), 3);
    assert.deepEqual(
      s.expiring(16, 10).map(([k]) => k),
      ['d:c', 'r:a', 'r:b'],
    );
    assert.deepEqual(
      s.expiring(15, 10).map(([k]) => k),
      ['d:c'],
      'bound is exclusive',
    );
    // From a position: strictly after it, ties on expiresAt ordered by key.
    assert.deepEqual(
      s.expiring(16, 10, { at: 15, key: 'r:a' }).map(([k]) => k),
      ['r:b'],
      'the entry at the position itself is excluded',
    );
    assert.deepEqual(
      s.expiring(16, 10, { at: 3, key: 'd:c' }).map(([k]) => k),
      ['r:a', 'r:b'],
    );
    s.close();
  });

  test('an uncommitted batch is rolled back on close (crash), the checkpoint and stream time stay', () => {
    const path = join(dir, 'crash.sqlite');
    const s = SqliteJoinStore.open(path);
    s.begin();
    s.put('r:1', pending(1));
    s.setStreamTime(100);
    s.commit(7);
    s.begin();
    s.put('r:2', pending(2));
    s.setStreamTime(200);
    s.close(); // dies before committing
    const t = SqliteJoinStore.open(path);
    assert.equal(t.checkpoint(), 7);
    assert.equal(t.streamTime(), 100);
    assert.ok(t.get('r:1'));
    assert.equal(t.get('r:2'), undefined);
    assert.equal(t.size(), 1);
    t.close();
  });

  test('input offsets: from the changelog record or set in a batch, committed with it, rolled back and wiped with it', () => {
    const path = join(dir, 'offsets.sqlite');
    const s = SqliteJoinStore.open(path);
    assert.equal(s.inputOffsets(), null, 'none before any transaction');
    s.begin();
    s.applyChangelog(INPUT_OFFSETS_KEY, encodeInputOffsets({ ranker: 120, impression: -1 }));
    s.applyChangelog(INPUT_OFFSETS_KEY, encodeInputOffsets({ ranker: 130, impression: 7 })); // last wins
    s.commit(3);
    s.begin();
    s.setInputOffsets({ ranker: 140, impression: 9 });
    s.rollback();
    assert.deepEqual(s.inputOffsets(), { ranker: 130, impression: 7 }, 'a rolled-back batch leaves them');
    s.setInputOffsets({ ranker: 150, impression: 11 });
    s.close(); // dies before committing
    const t = SqliteJoinStore.open(path);
    assert.deepEqual(t.inputOffsets(), { ranker: 130, impression: 7 }, 'a crash keeps the committed ones');
    assert.equal(t.size(), 0, 'the record is not an entry');
    assert.throws(() => t.applyChangelog(INPUT_OFFSETS_KEY, Buffer.alloc(8)), /16 bytes/);
    t.wipe();
    assert.equal(t.inputOffsets(), null, 'wiped with the rest of the untrusted state');
    t.close();
  });

  test('rollback() reloads stream time and size', () => {
    const s = SqliteJoinStore.open(':memory:');
    s.begin();
    s.setStreamTime(5);
    s.commit(1);
    s.begin();
    s.put('r:1', pending(1));
    s.setStreamTime(9);
    s.rollback();
    assert.equal(s.streamTime(), 5);
    assert.equal(s.size(), 0);
    s.close();
  });

  test('replaying the changelog (from any older checkpoint) rebuilds the same state', () => {
    // Run a task over a recording store, collecting each batch's changelog.
    const live = new ChangeRecordingStore(new MemoryJoinStore());
    const task = newTask({ windowMs: 100, allowedLatenessMs: 0, emitUnmatched: true }, live);
    const batches: Array<ReturnType<ChangeRecordingStore['drainChanges']>> = [];
    const rs = [rawR(0, 'a', 0), rawR(1, 'b', 50), rawR(2, 'c', 120), rawR(3, 'd', 300)];
    const is = [rawI(0, 'a', 30), rawI(1, 'x', 60), rawI(2, 'c', 130)];
    task.push('ranker', rs);
    task.push('impression', is);
    task.setCaughtUp('ranker', true);
    task.setCaughtUp('impression', true);
    while (task.step(2).processed > 0) batches.push(live.drainChanges());
    const log = batches.flat();
    for (const from of [0, 3, 5]) {
      const s = SqliteJoinStore.open(':memory:');
      // state as of `from`, then replay from an older point (idempotent)
      for (const r of log.slice(0, from)) s.applyChangelog(r.key, r.value);
      for (const r of log.slice(Math.max(0, from - 2))) s.applyChangelog(r.key, r.value);
      assert.equal(s.streamTime(), live.streamTime());
      assert.equal(s.size(), live.size());
      for (const [k] of live.inner.expiring(Number.POSITIVE_INFINITY, 1000)) {
        assert.deepEqual(s.get(k), live.get(k), k);
      }
      s.close();
    }
  });
});

describe('SqliteJoinStore: entries created in a batch are written at commit', () => {
  test('a fresh entry is readable, counted and swept before commit; deleted in its batch it never reaches SQLite', () => {
    const path = join(dir, 'fresh.sqlite');
    const s = SqliteJoinStore.open(path);
    s.begin();
    s.put('r:gone', pending(1), true);
    s.put('r:kept', pending(2), true);
    s.put('d:old', { kind: 'joined', ts: 0, expiresAt: 4 });
    assert.deepEqual(s.get('r:gone'), pending(1));
    assert.equal(s.size(), 3);
    assert.equal(s.minExpiresAt(), 4);
    s.delete('r:gone');
    assert.equal(s.get('r:gone'), undefined);
    assert.equal(s.size(), 2);
    assert.equal(s.minExpiresAt(), 4);
    assert.deepEqual(
      s.expiring(13, 10).map(([k]) => k),
      ['d:old', 'r:kept'],
      'fresh and stored entries in (expiresAt, key) order',
    );
    s.put('r:late', pending(0), true);
    assert.equal(s.minExpiresAt(), 4);
    s.delete('d:old');
    assert.equal(s.minExpiresAt(), 10);
    s.commit(3);
    s.close();
    const t = SqliteJoinStore.open(path);
    assert.deepEqual(
      t.expiring(Number.POSITIVE_INFINITY, 10).map(([k]) => k),
      ['r:late', 'r:kept'],
    );
    assert.equal(t.size(), 2);
    assert.equal(t.checkpoint(), 3);
    t.close();
  });

  test('fast-check: any sequence of puts, deletes, sweeps, commits and rollbacks matches a map model', () => {
    const keys = ['r:a', 'r:b', 'i:a', 'd:a', 'd:b', 'd:c'];
    // limit 3: a sweep's chunk smaller than what may expire
    const model = storeOpArbs(keys, fc.constant(3), true);
    const op = fc.oneof(
      model.put,
      model.del,
      model.sweep,
      fc.record({ t: fc.constantFrom('commit' as const, 'rollback' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const s = SqliteJoinStore.open(':memory:');
        let committed = new Map<string, StateEntry>();
        let live = new Map<string, StateEntry>();
        s.begin();
        for (const o of ops) {
          if (o.t === 'put' || o.t === 'del' || o.t === 'sweep') {
            applyStoreOp(s, live, o);
          } else if (o.t === 'commit') {
            s.commit();
            s.begin();
            committed = new Map(live);
          } else {
            s.rollback();
            s.begin();
            live = new Map(committed);
          }
          assert.equal(s.size(), live.size);
          const min = live.size === 0 ? null : Math.min(...[...live.values()].map((e) => e.expiresAt));
          assert.equal(s.minExpiresAt(), min);
          for (const k of keys) assert.deepEqual(s.get(k), live.get(k));
          assertScan(s, live);
        }
        s.close();
      }),
      { numRuns: 300 },
    );
  });
});
