/**
 * Opening a task for input partition p (Kafka Streams' task creation with
 * `ProcessorStateManager` + `StoreChangelogReader`): fence the previous owner through the task's
 * transactional id, restore the SQLite store from the changelog, build the join task, and settle
 * the offsets it resumes from (the group's committed offsets, repaired from the changelog's
 * input-offsets record when they lag it).
 *
 * Exactly once, the way Kafka Streams did it before EOS v2: one transactional producer per task
 * (`${groupId}-task-${p}`), so when a partition moves, the new owner's InitProducerId fences the
 * old owner (its pending transaction is completed or aborted before the new owner restores state
 * and reads offsets).
 */
import { join } from 'node:path';
import type { Admin, Kafka } from 'kafkajs';
import type { Config } from '../config/schema.ts';
import type { Impression } from '../contracts/index.ts';
import type { RankerColumns } from '../contracts/ranker-columns.ts';
import { BufferingStore } from '../join/buffering-store.ts';
import { ChangeRecordingStore } from '../join/changelog.ts';
import { JoinTask } from '../join/task.ts';
import { createTransactionalProducer, sendOffsetsRetrying } from '../kafka/client.ts';
import { restoreFromChangelog } from '../kafka/restore.ts';
import { columnsSupported, labelColumnsEncoded } from '../labels/encoded.ts';
import { labelRequest } from '../labels/index.ts';
import type { Logger } from '../log.ts';
import type { RegistrySerde } from '../registry/serde.ts';
import { SqliteJoinStore } from '../store/sqlite-store.ts';
import { inputTopic, KafkaTask, SIDES, type TopicOffsets } from './kafka-task.ts';

/** What opening a task needs from its service. */
export interface TaskOpenContext {
  config: Config;
  kafka: Kafka;
  admin: Admin;
  serde: RegistrySerde | undefined;
  /** Wall clock for dead-letter times. */
  now: () => number;
  deadLetterMaxBytes: number;
  log: Logger;
  /** Told how many changelog records the restore replayed. */
  onRestored(records: number): void;
  /**
   * Called last, with the task ready: registers it and seeks the inputs, or throws when the
   * partition was revoked meanwhile (the task's store and producer are then closed again).
   */
  adopt(t: KafkaTask): void;
}

/**
 * Opens the task of partition `p` at the committed offsets and hands it to `ctx.adopt`. On any
 * failure the store and producer it opened are closed again.
 *
 * @throws when fencing, restoring or reading offsets fails, or the partition was revoked meanwhile
 */
export async function openKafkaTask(
  ctx: TaskOpenContext,
  p: number,
  heartbeat: () => Promise<void>,
): Promise<KafkaTask> {
  const k = ctx.config.kafka;
  const admin = ctx.admin;
  const producer = createTransactionalProducer(ctx.kafka, {
    transactionalId: `${k.groupId}-task-${p}`,
    transactionTimeout: k.transactionTimeoutMs,
  });
  await producer.connect();
  let store: SqliteJoinStore | undefined;
  try {
    // InitProducerId: fences a previous owner of this task and completes its open transaction.
    const fence = await producer.transaction();
    await fence.abort();
    store = SqliteJoinStore.open(join(ctx.config.store.dir, `${k.groupId}`, `task-${p}.sqlite`));
    const restored = await restoreFromChangelog({
      kafka: ctx.kafka,
      admin,
      topic: k.topics.changelog,
      partition: p,
      store,
      heartbeat,
    });
    ctx.onRestored(restored.records);
    const overlay = new BufferingStore(store);
    const logged = new ChangeRecordingStore(overlay);
    const labels = ctx.config.labels;
    const serde = ctx.serde;
    const joinTask = new JoinTask({
      partition: p,
      topics: { ranker: k.topics.rankerOutputs, impression: k.topics.impressions },
      store: logged,
      join: ctx.config.join,
      label: (req) => labelRequest(req, labels),
      inputFormat: k.inputFormat,
      ...(k.inputFormat === 'confluent' && serde ? { writerFor: serde.writerFor } : {}),
      // Plain Avro input: ranker outputs go the column path (no decoded objects; labels written
      // as bytes). Confluent frames may carry another writer schema, so they stay generic.
      ...(k.inputFormat === 'avro' && columnsSupported(labels)
        ? { columns: (r: RankerColumns, imp: Impression | null) => labelColumnsEncoded(r, imp, labels) }
        : {}),
      now: ctx.now,
      deadLetterMaxBytes: ctx.deadLetterMaxBytes,
    });
    const t = new KafkaTask(p, store, overlay, joinTask, logged, producer);
    // Committed offsets are read only now, after fencing: the previous owner's last transaction
    // has been completed or aborted, so they match the restored changelog.
    const committed = await admin.fetchOffsets({
      groupId: k.groupId,
      topics: [k.topics.rankerOutputs, k.topics.impressions],
    });
    // The positions the restored state belongs to, from the changelog's input-offsets record:
    // the group's answer can lag them (KAFKA-17507, brokers before 3.9.1), never lead them,
    // unless an operator moved the group's offsets forward (then those win).
    const positions = store.inputOffsets();
    const repair: TopicOffsets = [];
    for (const side of SIDES) {
      const topic = inputTopic(k, side);
      const ends = await admin.fetchTopicOffsets(topic);
      const end = ends.find((x) => x.partition === p);
      const c = committed.find((x) => x.topic === topic)?.partitions.find((x) => x.partition === p);
      const low = Number(end?.low ?? 0);
      const group = c === undefined ? -1 : Number(c.offset);
      const fromLog = positions?.[side] ?? -1;
      if (fromLog > group) {
        ctx.log.warn('the group’s committed offset lags the changelog’s; resuming from the changelog’s', {
          topic,
          partition: p,
          group,
          changelog: fromLog,
        });
        repair.push({ topic, partitions: [{ partition: p, offset: String(fromLog) }] });
      }
      const off = Math.max(low, group, fromLog);
      t.committed[side] = off;
      t.pos[side] = { next: off, hw: Number(end?.high ?? 0) };
    }
    if (repair.length > 0) {
      // Bring the group's offsets up to the changelog's (lag monitoring reads them, and an
      // input with nothing new would otherwise keep the stale ones), in a transaction of our own.
      const txn = await producer.transaction();
      try {
        await sendOffsetsRetrying(txn, { consumerGroupId: k.groupId, topics: repair });
        await txn.commit();
      } catch (e) {
        await txn.abort().catch(() => undefined);
        throw e;
      }
    }
    ctx.adopt(t);
    return t;
  } catch (e) {
    store?.close();
    await producer.disconnect().catch(() => undefined);
    throw e;
  }
}
