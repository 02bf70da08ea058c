import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decodeAvro, encodeAvro, type SnapshotAnnouncement } from '../../src/contracts/index.ts';
import { isRankdistillError } from '../../src/errors.ts';
import type { Announcer } from '../../src/snapshots/announcer.ts';
import { openPublisher, type SnapshotEvent } from '../../src/snapshots/publisher.ts';
import { recallForUser } from '../../src/snapshots/recall.ts';
import { loadSnapshotDir, sha256Hex } from '../../src/snapshots/store.ts';
import { publishInput, tempRoot } from './helpers.ts';

/** Records announcements as the topic would hold them (Avro bytes), optionally failing. */
class MemoryAnnouncer implements Announcer {
  sent: { key: string; value: Buffer }[] = [];
  failing = false;
  async announce(key: string, a: SnapshotAnnouncement): Promise<void> {
    if (this.failing) throw new Error('broker down');
    this.sent.push({ key, value: encodeAvro('SnapshotAnnouncement', a) });
  }
  async close(): Promise<void> {}
  decoded(): SnapshotAnnouncement[] {
    return this.sent.map((m) => {
      const d = decodeAvro('SnapshotAnnouncement', m.value);
      assert.ok(d.ok);
      return d.value;
    });
  }
}

function open(root: string, announcer?: Announcer, events?: SnapshotEvent[]) {
  return openPublisher({
    dir: root,
    registry: join(root, 'registry.sqlite'),
    gateTolerance: 0.02,
    modelName: 'student',
    ...(announcer ? { announcer } : {}),
    ...(events ? { onEvent: (e: SnapshotEvent) => events.push(e) } : {}),
  });
}

describe('snapshot publisher', () => {
  test('publishes v1, v2 with announcements whose checksums match the files on disk', async () => {
    const root = tempRoot();
    const ann = new MemoryAnnouncer();
    const pub = open(root, ann);
    const r1 = await pub.maybePublish(publishInput({}, 1));
    const r2 = await pub.maybePublish(publishInput({ parentVersion: 1 }, 2));
    assert.deepEqual([r1.version, r1.status, r2.version, r2.status], [1, 'published', 2, 'published']);
    const anns = ann.decoded();
    assert.deepEqual(
      anns.map((a) => [a.version, a.status, a.parent_version]),
      [
        [1, 'published', null],
        [2, 'published', 1],
      ],
    );
    assert.deepEqual(
      ann.sent.map((m) => m.key),
      ['student', 'student'],
    );
    for (const a of anns) {
      assert.ok(a.files.some((f) => f.name === 'manifest.json'));
      for (const f of a.files) assert.equal(sha256Hex(readFileSync(join(a.path, f.name))), f.sha256, f.name);
      assert.equal(a.model.num_items, 50);
      assert.equal(a.model.num_users, 10);
    }
    await pub.close();
  });

  test('the gate rejects a degraded model, records why, and keeps the current version', async () => {
    const root = tempRoot();
    const ann = new MemoryAnnouncer();
    const events: SnapshotEvent[] = [];
    const pub = open(root, ann, events);
    await pub.maybePublish(publishInput());
    const degraded = await pub.maybePublish(
      publishInput(
        { metrics: { recall_at_100_of_top10: 0.2, ndcg_at_10: 0.59, auc: 0.7 }, parentVersion: 1 },
        2,
      ),
    );
    assert.equal(degraded.status, 'rejected');
    assert.equal(degraded.reasons.length, 1);
    assert.match(degraded.reasons[0]!, /^recall_at_100_of_top10 0\.2 < 0\.48 \(current v1 0\.5/);
    const rec = pub.registry.get(2);
    assert.equal(rec?.status, 'rejected');
    assert.match(rec?.reason ?? '', /recall_at_100_of_top10/);
    assert.equal(pub.latestPublished()?.version, 1);
    assert.deepEqual(
      ann.decoded().map((a) => a.version),
      [1],
    );
    assert.ok(events.some((e) => e.type === 'rejected' && e.version === 2));
    // the rejected snapshot is complete on disk for inspection, but never announced
    assert.doesNotThrow(() => loadSnapshotDir(rec!.path, rec!.files));
    // a following good snapshot is gated against v1, not the rejected v2
    const r3 = await pub.maybePublish(publishInput({ parentVersion: 1 }, 3));
    assert.equal(r3.status, 'published');
    await pub.close();
  });

  test('eval sets differ: gated against the re-evaluated current snapshot, or re-based with the note recorded', async () => {
    const root = tempRoot();
    const events: SnapshotEvent[] = [];
    const pub = open(root, undefined, events);
    const set = (n: number, hash: number) => ({ eval_requests: n, eval_set_hash: hash });
    await pub.maybePublish(
      publishInput({ metrics: { recall_at_100_of_top10: 0.5, ndcg_at_10: 0.6, ...set(400, 1) } }),
    );
    // a harder, larger set: lower numbers, but the current one does no better on it
    const asked: number[] = [];
    const r2 = await pub.maybePublish(
      publishInput(
        {
          metrics: { recall_at_100_of_top10: 0.4, ndcg_at_10: 0.5, ...set(700, 2) },
          parentVersion: 1,
          reevaluate: async (cur) => {
            asked.push(cur.version);
            return { recall_at_100_of_top10: 0.39, ndcg_at_10: 0.5 };
          },
        },
        2,
      ),
    );
    assert.deepEqual(asked, [1]);
    assert.equal(r2.status, 'published');
    assert.match(r2.note ?? '', /^eval set grew from 400 to 700 requests: current v1 re-evaluated/);
    assert.equal(pub.registry.get(2)?.reason, r2.note);
    assert.ok(events.some((e) => e.type === 'published' && e.version === 2 && e.note === r2.note));
    // the same set again: compared with the recorded metrics, re-evaluation not asked for
    const r3 = await pub.maybePublish(
      publishInput(
        {
          metrics: { recall_at_100_of_top10: 0.3, ndcg_at_10: 0.5, ...set(700, 2) },
          parentVersion: 2,
          reevaluate: async (cur) => {
            asked.push(cur.version);
            return null;
          },
        },
        3,
      ),
    );
    assert.equal(r3.status, 'rejected');
    assert.equal(r3.note, undefined);
    assert.deepEqual(asked, [1]);
    // a grown set and a current snapshot that cannot be re-evaluated (here: it throws)
    const r4 = await pub.maybePublish(
      publishInput(
        {
          metrics: { recall_at_100_of_top10: 0.2, ndcg_at_10: 0.4, ...set(1000, 3) },
          parentVersion: 2,
          reevaluate: async () => {
            throw new Error('no checkpoint');
          },
        },
        4,
      ),
    );
    assert.equal(r4.status, 'published');
    assert.equal(
      pub.registry.get(4)?.reason,
      'baseline re-based: eval set grew from 700 to 1000 requests (current v2 not re-evaluated); re-evaluating v2 failed: no checkpoint',
    );
    await pub.close();
  });

  test('rollback makes an older version current with a new "rollback" announcement', async () => {
    const root = tempRoot();
    const ann = new MemoryAnnouncer();
    const pub = open(root, ann);
    await pub.maybePublish(publishInput({}, 1));
    await pub.maybePublish(publishInput({}, 2));
    assert.equal(pub.latestPublished()?.version, 2);
    const r = await pub.rollback(1);
    assert.equal(r.announced, true);
    assert.equal(pub.latestPublished()?.version, 1);
    const last = ann.decoded().at(-1)!;
    assert.deepEqual([last.version, last.status], [1, 'rollback']);
    assert.equal(pub.loadSnapshot('latest').version, 1);
    // the next snapshot is gated against the rolled-back-to version and gets a fresh number
    const r3 = await pub.maybePublish(publishInput({ parentVersion: 1 }, 3));
    assert.deepEqual([r3.version, r3.status], [3, 'published']);
    await assert.rejects(pub.rollback(42), (e) => isRankdistillError(e, 'SNAPSHOT_NOT_FOUND'));
    await pub.close();
  });

  test('rollback refuses a rejected version and a damaged one', async () => {
    const root = tempRoot();
    const pub = open(root);
    await pub.maybePublish(publishInput());
    await pub.maybePublish(publishInput({ metrics: { ndcg_at_10: 0 } }, 2));
    await pub.maybePublish(publishInput({}, 3));
    await assert.rejects(pub.rollback(2), (e) => isRankdistillError(e, 'SNAPSHOT_REJECTED'));
    writeFileSync(join(root, 'v1', 'items.f32'), 'garbage');
    await assert.rejects(
      pub.rollback(1),
      (e) => isRankdistillError(e, 'SNAPSHOT_CORRUPT') && /items\.f32/.test(e.message),
    );
    assert.equal(pub.latestPublished()?.version, 3);
    await pub.close();
  });

  test('an announcement that fails is kept and sent by the next flush (outbox)', async () => {
    const root = tempRoot();
    const ann = new MemoryAnnouncer();
    ann.failing = true;
    const pub = open(root, ann);
    const r = await pub.maybePublish(publishInput());
    assert.deepEqual([r.status, r.announced], ['published', false]);
    assert.equal(pub.registry.unsent().length, 1);
    await pub.close();
    ann.failing = false;
    const again = open(root, ann);
    assert.equal(await again.flush(), true);
    assert.deepEqual(
      ann.decoded().map((a) => a.version),
      [1],
    );
    assert.equal(again.registry.unsent().length, 0);
    await again.close();
  });

  test('resume: a fresh publisher on the same directory finds the newest snapshot, its offsets and verified files', async () => {
    const root = tempRoot();
    const first = open(root);
    await first.maybePublish(publishInput({}, 1));
    await first.maybePublish(publishInput({ parentVersion: 1 }, 2));
    await first.close();
    const fresh = open(root);
    const latest = fresh.latestPublished();
    assert.equal(latest?.version, 2);
    assert.deepEqual(latest?.offsets, publishInput({}, 2).offsets);
    const snap = fresh.loadSnapshot(latest!.version);
    assert.deepEqual(snap.manifest.offsets, latest?.offsets);
    assert.deepEqual(Array.from(snap.table('items')!.vectors), Array.from(publishInput({}, 2).items.vectors));
    assert.deepEqual(snap.file('checkpoint/optimizer.bin'), Buffer.from(new Uint8Array(128).fill(7)));
    // and the snapshot answers a recall query for a known user
    const top = recallForUser(snap, 'user-3', 5);
    assert.equal(top.ids.length, 5);
    assert.ok(top.scores[0]! >= top.scores[4]!);
    await fresh.close();
  });

  test('refuses a model path that is not among the files, before writing anything', async () => {
    const root = tempRoot();
    const pub = open(root);
    await assert.rejects(
      pub.maybePublish(publishInput({ models: { user_tower: 'nope/model.json' } })),
      (e) => isRankdistillError(e, 'TRAIN_INPUT_INVALID') && /nope\/model\.json/.test(e.message),
    );
    assert.equal(existsSync(join(root, 'v1')), false);
    await pub.close();
  });
});
