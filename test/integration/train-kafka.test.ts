// `rankdistill train --kafka` against the real broker (KAFKA_BROKERS): labels produced in labeler-
// style transactions (one aborted) are trained on exactly once, snapshots are published and
// announced, and a restart resumes at the checkpoint's offsets — not at the consumer group's
// committed offsets, which this test moves behind (pointwise) and ahead (pairwise, listwise).
//
// Run:  KAFKA_BROKERS=127.0.0.1:9092 node --import tsx --test test/integration/train-kafka.test.ts
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Admin, Kafka, logLevel, Partitioners } from 'kafkajs';
import { encodeAvro } from '../../src/contracts/index.ts';
import { readAnnouncements } from '../../src/snapshots/announcer.ts';
import { loadSnapshotDir } from '../../src/snapshots/store.ts';
import type { LabelKind } from '../../src/train/examples.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rd-train-kafka-'));
const KINDS: LabelKind[] = ['pointwise', 'pairwise', 'listwise'];
const CONTRACT = {
  pointwise: 'PointwiseLabels',
  pairwise: 'PairwiseLabels',
  listwise: 'ListwiseLabels',
} as const;

type Ev = Record<string, unknown> & { event: string };

function runTrainer(config: string): Promise<{ code: number | null; events: Ev[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        'bin/rankdistill.mjs',
        '-c',
        config,
        'train',
        '--kafka',
        '--out',
        join(dir, 'ckpt'),
        '--idle-exit-ms',
        '5000',
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) =>
      resolve({
        code,
        stderr,
        events: out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Ev),
      }),
    );
  });
}

describe('rankdistill train --kafka', () => {
  let kafka: Kafka;
  let admin: Admin;
  const topics: Record<LabelKind | 'snapshots', string> = {
    pointwise: uniqueTopic('rd-it-tk.pointwise'),
    pairwise: uniqueTopic('rd-it-tk.pairwise'),
    listwise: uniqueTopic('rd-it-tk.listwise'),
    snapshots: uniqueTopic('rd-it-tk.snapshots'),
  };
  const groupId = uniqueTopic('rd-it-tk-trainer');
  const teacher = new SyntheticTeacher({ users: 30, items: 150, candidates: 12, k: 3, seed: 5 });

  /** Produces `n` requests' labels of every kind in one transaction; returns the records sent. */
  async function produce(n: number, commit: boolean): Promise<number> {
    const producer = kafka.producer({
      transactionalId: uniqueTopic('rd-it-tk-tx'),
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    const tx = await producer.transaction();
    const msgs: Record<LabelKind, { key: string; value: Buffer }[]> = {
      pointwise: [],
      pairwise: [],
      listwise: [],
    };
    for (let i = 0; i < n; i++)
      for (const r of teacher.next(KINDS))
        msgs[r.kind].push({ key: r.value.user_id, value: encodeAvro(CONTRACT[r.kind], r.value as never) });
    await tx.sendBatch({ topicMessages: KINDS.map((k) => ({ topic: topics[k], messages: msgs[k] })) });
    if (commit) await tx.commit();
    else await tx.abort();
    await producer.disconnect();
    return commit ? 3 * n : 0;
  }

  before(async () => {
    kafka = new Kafka({
      clientId: 'rd-it-train-kafka',
      brokers: brokersFromEnv(),
      logLevel: logLevel.NOTHING,
    });
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        ...KINDS.map((k) => ({ topic: topics[k], numPartitions: 2, replicationFactor: 1 })),
        { topic: topics.snapshots, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        kafka: { brokers: brokersFromEnv(), topics },
        train: {
          groupId,
          dim: 8,
          hidden: [16],
          batchSize: 64,
          shuffleBuffer: 64,
          checkpointEveryExamples: 1500,
          checkpointEveryMs: 2000,
          heldOutPercent: 10,
        },
        snapshots: {
          dir: join(dir, 'snapshots'),
          registry: join(dir, 'snapshots', 'registry.sqlite'),
          gateTolerance: 1,
          modelName: 'student-it',
        },
      }),
    );
  });

  after(async () => {
    await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => {});
    await admin.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  test('trains every committed label once, publishes and announces snapshots, resumes at the checkpoint offsets', async (t) => {
    let expected = await produce(60, true);
    expected += await produce(20, false); // aborted: read_committed never sees these
    expected += await produce(40, true);

    const first = await runTrainer(join(dir, 'config.json'));
    assert.equal(first.code, 0, first.stderr);
    const done1 = first.events.find((e) => e.event === 'done');
    assert.equal(done1?.records, expected, 'every committed label trained, no aborted one');
    const snaps1 = first.events.filter((e) => e.event === 'snapshot');
    assert.ok(snaps1.length >= 1, 'at least one snapshot');
    assert.ok(snaps1.every((s) => s.status === 'published' && s.announced === true));

    // more labels; the group's committed offsets move behind (pointwise) and ahead (the others)
    expected += await produce(30, true);
    // (explicit offsets: admin.resetOffsets commits -1/-2, which a consumer reads as "none")
    for (const k of KINDS) {
      const ends = await admin.fetchTopicOffsets(topics[k]);
      await admin.setOffsets({
        groupId,
        topic: topics[k],
        partitions: ends.map((p) => ({ partition: p.partition, offset: k === 'pointwise' ? '0' : p.high })),
      });
    }
    const committed = await admin.fetchOffsets({ groupId, topics: [topics.pairwise] });
    assert.ok(
      committed[0]?.partitions.every((p) => Number(p.offset) > 0),
      'the group is ahead',
    );

    const second = await runTrainer(join(dir, 'config.json'));
    assert.equal(second.code, 0, second.stderr);
    assert.ok(second.events.some((e) => e.event === 'resumed'));
    const done2 = second.events.find((e) => e.event === 'done');
    // Trainer totals count across restarts: neither re-read (behind) nor skipped (ahead)
    assert.equal(done2?.records, expected);
    const ranges = second.events
      .filter((e) => e.event === 'checkpoint')
      .flatMap((e) => e.ranges as { source: string; from: number; to: number }[]);
    const firstEnd = new Map<string, number>();
    for (const c of first.events.filter((e) => e.event === 'checkpoint'))
      for (const r of c.ranges as { source: string; to: number }[]) firstEnd.set(r.source, r.to);
    for (const r of ranges)
      if (firstEnd.has(r.source))
        assert.ok(r.from >= (firstEnd.get(r.source) as number), `${r.source} re-read`);
    const snaps2 = second.events.filter((e) => e.event === 'snapshot');
    assert.ok(snaps2.length >= 1);

    // the announcements on the topic name every published version; the last one loads and verifies
    const anns = await readAnnouncements(kafka, topics.snapshots, { timeoutMs: 20_000 });
    const versions = anns.map((a) => (a.ok ? a.value.version : -1));
    assert.deepEqual(
      versions,
      [...snaps1, ...snaps2].map((s) => s.version),
    );
    const last = anns.at(-1);
    assert.ok(last?.ok);
    const snap = loadSnapshotDir(last.value.path, last.value.files);
    assert.ok(snap.manifest.offsets.every((o) => Object.values(topics).includes(o.topic)));
    t.diagnostic(`trained ${expected} label records over 2 runs; snapshots ${versions.join(', ')}`);
  });
});
