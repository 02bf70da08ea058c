/**
 * Rebuilds a task's SQLite store from its changelog partition: reads records from the store's
 * checkpoint to the partition's end (read_committed) and applies them in log order, then commits
 * SQLite with the new checkpoint. Called after the task's transactional producer fenced any
 * zombie, so no transaction is open on the partition and its end offset is stable.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { RankdistillError } from '../errors.ts';
import { logger } from '../log.ts';
import type { SqliteJoinStore } from '../store/sqlite-store.ts';

const log = logger('restore');

/** Facts about one restore, for logs and tests. */
export interface RestoreResult {
  from: number;
  to: number;
  records: number;
  wiped: boolean;
}

/**
 * Restores `store` from `topic`/`partition`.
 *
 * @example
 * await restoreFromChangelog({ kafka, admin, topic: 'rankdistill.join-state.changelog', partition: 2, store, heartbeat });
 */
export async function restoreFromChangelog(o: {
  kafka: Kafka;
  admin: Admin;
  topic: string;
  partition: number;
  store: SqliteJoinStore;
  /** Called while waiting, to keep the caller's group membership alive. */
  heartbeat?: () => Promise<void>;
  timeoutMs?: number;
}): Promise<RestoreResult> {
  const offsets = await o.admin.fetchTopicOffsets(o.topic);
  const po = offsets.find((x) => x.partition === o.partition);
  if (po === undefined) {
    throw new RankdistillError('STATE_STORE_FAILED', `changelog ${o.topic} has no partition ${o.partition}`);
  }
  const low = Number(po.low);
  const end = Number(po.high);
  let from = o.store.checkpoint();
  let wiped = false;
  // No checkpoint, or compaction/retention removed records after it: the rows cannot be trusted.
  if (from === null || from < low || from > end) {
    if (from !== null || o.store.size() > 0) {
      o.store.wipe();
      wiped = true;
    }
    from = low;
  }
  if (from >= end) {
    o.store.begin();
    o.store.commit(end);
    return { from, to: end, records: 0, wiped };
  }
  const started = Date.now();
  const consumer = o.kafka.consumer({
    groupId: `rankdistill-restore-${randomBytes(6).toString('hex')}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 4 << 20,
    sessionTimeout: 10_000,
  });
  let records = 0;
  let next = from;
  let done!: () => void;
  let failed!: (e: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  const check = (lastOffset: number) => {
    next = Math.max(next, lastOffset + 1);
    if (next >= end) done();
  };
  o.store.begin();
  try {
    await consumer.connect();
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.partition === o.partition && e.payload.topic === o.topic)
        check(Number(e.payload.lastOffset));
    });
    consumer.on(consumer.events.CRASH, (e) => failed(e.payload.error));
    await consumer.subscribe({ topic: o.topic, fromBeginning: true });
    const others = offsets.map((x) => x.partition).filter((p) => p !== o.partition);
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (batch.partition !== o.partition) return;
        for (const m of batch.messages) {
          const off = Number(m.offset);
          if (off < from || off >= end || m.key === null) continue;
          o.store.applyChangelog(m.key.toString('utf8'), m.value);
          records++;
        }
      },
    });
    if (others.length > 0) consumer.pause([{ topic: o.topic, partitions: others }]);
    consumer.seek({ topic: o.topic, partition: o.partition, offset: String(from) });
    const timeoutMs = o.timeoutMs ?? 120_000;
    const beat = setInterval(() => void o.heartbeat?.().catch(() => undefined), 1_000);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        finished,
        new Promise<never>((_r, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new RankdistillError(
                  'KAFKA_UNAVAILABLE',
                  `restoring ${o.topic}[${o.partition}] from ${from} to ${end} did not finish in ${timeoutMs} ms (at ${next})`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearInterval(beat);
      if (timer) clearTimeout(timer);
    }
    o.store.commit(end);
  } catch (e) {
    o.store.rollback();
    throw e;
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  log.info('restored join state from changelog', {
    topic: o.topic,
    partition: o.partition,
    from,
    to: end,
    records,
    entries: o.store.size(),
    ms: Date.now() - started,
  });
  return { from, to: end, records, wiped };
}
