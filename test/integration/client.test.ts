// The label client against a real broker (KAFKA_BROKERS): typed label records produced in
// transactions are read back decoded, exactly once, never an aborted transaction's; the position
// is committed only after processing; and a subscriber process killed with SIGKILL mid-stream
// resumes under the same group without losing a message (duplicates: only the one in flight).
//
// Run:  eval "$(bash scripts/kafka-local.sh start)"
//       node --import tsx --test test/integration/client.test.ts
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Admin, Kafka, logLevel, type Message, Partitioners } from 'kafkajs';
import {
  LabelDecodeError,
  type LabelKind,
  type LabelMessage,
  type LabelSubscription,
  subscribeLabels,
} from '../../src/client/index.ts';
import { encodeAvro } from '../../src/contracts/index.ts';
import type { PairwiseLabels, PointwiseLabels } from '../../src/contracts/types.gen.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

const TIMEOUT = 60_000;

function pointwise(i: number): PointwiseLabels {
  return {
    id: `req-${i}:pointwise`,
    request_id: `req-${i}`,
    user_id: `user-${i % 7}`,
    ts: 1_700_000_000_000 + i,
    model_version: 'teacher-v1',
    matched: i % 2 === 0,
    context: i % 3 === 0 ? { hour: i % 24 } : null,
    items: [0, 1, 2].map((r) => ({
      item_id: `item-${i}-${r}`,
      rank: r + 1,
      label: r < 2 ? 1 : 0,
      weight: r < 2 ? 1 + 1 / (r + 1) : 1,
      teacher_logit: 3 - r * 0.5,
      soft_target: null,
      clicked: r === 0 ? i % 2 === 0 : null,
      features: null,
    })),
  };
}

function pairwise(i: number): PairwiseLabels {
  return {
    id: `req-${i}:pairwise`,
    request_id: `req-${i}`,
    user_id: `user-${i % 7}`,
    ts: 1_700_000_000_000 + i,
    model_version: 'teacher-v1',
    matched: true,
    context: null,
    pairs: [{ pos_item: `item-${i}-0`, neg_item: `item-${i}-3`, pos_rank: 1, neg_rank: 4, weight: 1 }],
  };
}

/** Decoded Avro records are instances of avsc's record classes: compare as plain data. */
function plain(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x));
}

/** Keyed by user_id like the labeler; `partition` pins it so small tests cover every partition. */
const msg = (r: PointwiseLabels, partition?: number): Message => ({
  key: r.user_id,
  value: encodeAvro('PointwiseLabels', r),
  ...(partition === undefined ? {} : { partition }),
});
const spread = (rs: PointwiseLabels[]) => rs.map((r, i) => msg(r, i % 3));

/**
 * Pulls until `count` messages arrived, then keeps pulling for `graceMs` so duplicates or stray
 * (aborted) records would show up too; then closes the subscription.
 */
async function pull<K extends LabelKind>(
  sub: LabelSubscription<K>,
  count: number,
  graceMs = 1_500,
): Promise<LabelMessage<K>[]> {
  const got: LabelMessage<K>[] = [];
  const deadline = Date.now() + TIMEOUT - 15_000;
  let pending = sub.next();
  for (;;) {
    const wait = got.length >= count ? graceMs : deadline - Date.now();
    const ac = new AbortController();
    const r = await Promise.race([
      pending,
      sleep(Math.max(wait, 0), 'timeout' as const, { signal: ac.signal }),
    ]);
    ac.abort();
    if (r === 'timeout') break;
    if (r.done) break;
    got.push(r.value);
    pending = sub.next();
  }
  await sub.close();
  await pending.catch(() => {});
  assert.ok(got.length >= count, `only ${got.length} of ${count} label messages arrived`);
  return got;
}

describe('label client (subscribeLabels) against KAFKA_BROKERS', () => {
  let brokers: string[];
  let kafka: Kafka;
  let admin: Admin;
  const topics: string[] = [];

  before(async () => {
    brokers = brokersFromEnv();
    kafka = new Kafka({ clientId: 'rd-client-test', brokers, logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
  });

  after(async () => {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {});
    await admin.disconnect();
  });

  async function createTopic(prefix: string, partitions: number): Promise<string> {
    const topic = uniqueTopic(prefix);
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    topics.push(topic);
    return topic;
  }

  /** Sends each group of messages in its own transaction; `abort` marks the groups to abort. */
  async function produce(topic: string, groups: Message[][], abort: ReadonlySet<number> = new Set()) {
    const producer = kafka.producer({
      transactionalId: uniqueTopic('rd-client-test-tx'),
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      for (const [g, messages] of groups.entries()) {
        const txn = await producer.transaction();
        await txn.send({ topic, messages });
        if (abort.has(g)) await txn.abort();
        else await txn.commit();
      }
    } finally {
      await producer.disconnect();
    }
  }

  test('typed labels from committed transactions arrive decoded, exactly once; aborted ones never', {
    timeout: TIMEOUT,
  }, async () => {
    const topic = await createTopic('rd-client-eo', 3);
    const records = Array.from({ length: 60 }, (_, i) => pointwise(i));
    const aborted = Array.from({ length: 10 }, (_, i) => pointwise(1000 + i));
    // committed, ABORTED, committed, committed: the aborted records sit mid-stream on every partition.
    await produce(
      topic,
      [
        spread(records.slice(0, 20)),
        spread(aborted),
        spread(records.slice(20, 40)),
        spread(records.slice(40)),
      ],
      new Set([1]),
    );

    const sub = subscribeLabels({
      brokers,
      kind: 'pointwise',
      topic,
      groupId: uniqueTopic('rd-client-eo-g'),
    });
    const got = await pull(sub, records.length);

    assert.equal(got.length, records.length, 'no duplicates and no aborted records');
    const byId = new Map(got.map((m) => [m.value.id, m]));
    assert.equal(byId.size, records.length);
    for (const r of records) {
      const m = byId.get(r.id);
      assert.ok(m, `missing ${r.id}`);
      assert.deepEqual(plain(m.value), plain(r));
      assert.equal(m.kind, 'pointwise');
      assert.equal(m.key, r.user_id);
      assert.equal(m.topic, topic);
    }
    assert.equal(new Set(got.map((m) => m.partition)).size, 3, 'labels came from all 3 partitions');
    assert.equal(sub.stats.delivered, records.length);
  });

  test('an offset is committed only after processing: a dropped in-flight message is re-delivered', {
    timeout: TIMEOUT,
  }, async () => {
    const topic = await createTopic('rd-client-commit', 1);
    const records = Array.from({ length: 12 }, (_, i) => pairwise(i));
    await produce(topic, [records.map((r) => ({ key: r.user_id, value: encodeAvro('PairwiseLabels', r) }))]);
    const groupId = uniqueTopic('rd-client-commit-g');
    const open = () =>
      subscribeLabels({ brokers, kind: 'pairwise', topic, groupId, sessionTimeoutMs: 6_000 });

    // Run 1: pull 5, `break` (return()) without commit: 1–4 were processed (the loop pulled on),
    // the 5th was in flight, so it must come back.
    const ids1: string[] = [];
    for await (const m of open()) {
      ids1.push(m.value.id);
      if (ids1.length === 5) break;
    }
    // Run 2: resumes at the 5th; pull 3 (5th, 6th, 7th), commit() the last, close.
    const sub2 = open();
    const ids2: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await sub2.next();
      assert.ok(!r.done);
      ids2.push(r.value.value.id);
    }
    await sub2.commit();
    await sub2.close();
    // Run 3: resumes after the committed 7th.
    const sub3 = open();
    const first = await sub3.next();
    await sub3.return();

    const id = (i: number) => records[i]?.id;
    assert.deepEqual(ids1, [0, 1, 2, 3, 4].map(id));
    assert.deepEqual(ids2, [4, 5, 6].map(id), 'the in-flight 5th message is re-delivered, 1–4 are not');
    assert.ok(!first.done);
    assert.equal(first.value.value.id, id(7), 'commit() made the 7th message count as processed');
  });

  test('undecodable messages: throw names topic/partition/offset; skip-and-report moves on', {
    timeout: TIMEOUT,
  }, async () => {
    const topic = await createTopic('rd-client-bad', 1);
    await produce(topic, [
      [msg(pointwise(0)), { key: 'x', value: Buffer.from('not avro at all') }, msg(pointwise(2))],
    ]);

    const strict = subscribeLabels({
      brokers,
      kind: 'pointwise',
      topic,
      groupId: uniqueTopic('rd-client-bad-g'),
    });
    const ok = await strict.next();
    assert.ok(!ok.done);
    await assert.rejects(strict.next(), (e: unknown) => {
      assert.ok(e instanceof LabelDecodeError);
      assert.equal(e.code, 'DECODE_FAILED');
      assert.equal(e.source, topic);
      assert.equal(e.partition, 0);
      assert.equal(e.offset, '1');
      assert.match(e.message, new RegExp(`topic ${topic} partition 0 offset 1`));
      return true;
    });
    assert.deepEqual(await strict.next(), { done: true, value: undefined }, 'the subscription is closed');

    const reported: LabelDecodeError[] = [];
    const lenient = subscribeLabels({
      brokers,
      kind: 'pointwise',
      topic,
      groupId: uniqueTopic('rd-client-bad-g2'),
      onInvalid: 'skip-and-report',
      report: (e) => reported.push(e),
    });
    const got = await pull(lenient, 2);
    assert.deepEqual(
      got.map((m) => m.value.id),
      ['req-0:pointwise', 'req-2:pointwise'],
    );
    assert.equal(reported.length, 1);
    assert.equal(reported[0]?.offset, '1');
    assert.equal(lenient.stats.skipped, 1);
  });

  test('subscribing to a topic that does not exist fails at once with TOPIC_MISSING', async () => {
    const topic = uniqueTopic('rd-client-missing');
    const sub = subscribeLabels({
      brokers,
      kind: 'listwise',
      topic,
      groupId: uniqueTopic('rd-client-missing-g'),
    });
    await assert.rejects(sub.next(), (e: unknown) => {
      assert.ok(isRankdistillError(e, 'TOPIC_MISSING'));
      assert.match((e as Error).message, new RegExp(`label topic ${topic} does not exist`));
      return true;
    });
    assert.deepEqual(await sub.next(), { done: true, value: undefined });
  });

  test('a subscriber killed with SIGKILL mid-stream resumes under its group without losing a message', {
    timeout: TIMEOUT * 2,
  }, async (t) => {
    const topic = await createTopic('rd-client-kill', 3);
    const total = 120;
    const records = Array.from({ length: total }, (_, i) => pointwise(i));
    const groups: Message[][] = [];
    for (let i = 0; i < total; i += 20) groups.push(spread(records.slice(i, i + 20)));
    await produce(topic, groups);
    const groupId = uniqueTopic('rd-client-kill-g');
    const all = new Set(records.map((r) => r.id));

    const run1 = runSubscriber(brokers, topic, groupId);
    await run1.waitFor((ids) => ids.length >= 40);
    run1.child.kill('SIGKILL');
    await run1.exited;
    const seen1 = [...run1.ids];
    assert.ok(seen1.length < total, `the kill must land mid-stream (run 1 processed ${seen1.length})`);

    const run2 = runSubscriber(brokers, topic, groupId);
    await run2.waitFor((ids) => new Set([...seen1, ...ids]).size >= total);
    run2.child.kill('SIGTERM');
    const code = await run2.exited;
    assert.equal(code, 0, `run 2 should close cleanly on SIGTERM: ${run2.stderr()}`);

    const union = new Set([...seen1, ...run2.ids]);
    assert.deepEqual([...union].sort(), [...all].sort(), 'every label was processed by one run or the other');
    const duplicates = seen1.length + run2.ids.length - total;
    t.diagnostic(
      `run 1 processed ${seen1.length} before SIGKILL, run 2 ${run2.ids.length}; duplicates ${duplicates}`,
    );
    // Only the message in flight at the kill (processed, its commit not yet sent) may come back.
    assert.ok(duplicates <= 2, `at-least-once with few duplicates, found ${duplicates}`);
    assert.equal(new Set(run2.ids).size, run2.ids.length, 'no duplicates within one run');
  });
});

function runSubscriber(brokers: string[], topic: string, groupId: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/integration/fixtures/label-subscriber.ts',
      brokers.join(','),
      topic,
      groupId,
      '25',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const ids: string[] = [];
  let buf = '';
  let err = '';
  const watchers: (() => void)[] = [];
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (l !== '') ids.push(l);
    for (const w of watchers) w();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    ids,
    exited,
    stderr: () => err,
    /** Resolves once `pred(ids)` holds; fails if the child exits first or after 45 s. */
    waitFor(pred: (ids: string[]) => boolean): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`subscriber: condition not met after 45 s (${ids.length} ids); ${err}`)),
          45_000,
        );
        const check = () => {
          if (pred(ids)) {
            clearTimeout(timer);
            resolve();
          }
        };
        watchers.push(check);
        void exited.then((code) => {
          clearTimeout(timer);
          if (!pred(ids)) reject(new Error(`subscriber exited (${code}) early: ${err}`));
        });
        check();
      });
    },
  };
}
