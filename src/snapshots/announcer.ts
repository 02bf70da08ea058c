/**
 * Where announcements go: the `student-snapshots` topic (Avro SnapshotAnnouncement, key = model
 * name, so every announcement of one model lands on one partition, in order), and how a recall
 * service reads them back.
 */
import { type Consumer, type Kafka, Partitioners, type Producer } from 'kafkajs';
import { decodeAvro, encodeAvro, type SnapshotAnnouncement } from '../contracts/index.ts';
import { errorMessage, RankdistillError } from '../errors.ts';

/** Sends an announcement somewhere; the publisher retries unsent ones (registry outbox). */
export interface Announcer {
  announce(key: string, a: SnapshotAnnouncement): Promise<void>;
  close(): Promise<void>;
}

/**
 * An {@link Announcer} producing to a Kafka topic with an idempotent producer (acks all), so a
 * retried send does not duplicate. Re-sending after a crash can still repeat an announcement; a
 * reader treats announcements as "make this version current", which is idempotent.
 *
 * @example
 * const a = kafkaAnnouncer(new Kafka({ brokers }), 'student-snapshots');
 * await a.announce('student', announcement);
 */
export function kafkaAnnouncer(kafka: Kafka, topic: string): Announcer {
  let producer: Producer | undefined;
  return {
    async announce(key, a) {
      try {
        if (!producer) {
          const p = kafka.producer({
            idempotent: true,
            maxInFlightRequests: 1,
            createPartitioner: Partitioners.DefaultPartitioner,
          });
          await p.connect();
          producer = p;
        }
        await producer.send({
          topic,
          acks: -1,
          messages: [{ key, value: encodeAvro('SnapshotAnnouncement', a) }],
        });
      } catch (e) {
        if (e instanceof RankdistillError) throw e;
        throw new RankdistillError(
          'KAFKA_UNAVAILABLE',
          `announce v${a.version} to ${topic}: ${errorMessage(e)}`,
          {
            cause: e,
            details: { topic, version: a.version },
          },
        );
      }
    },
    async close() {
      await producer?.disconnect();
      producer = undefined;
    },
  };
}

/** An announcement read back from the topic, or why a record could not be decoded. */
export type ReadAnnouncement =
  | { ok: true; key: string | null; offset: string; partition: number; value: SnapshotAnnouncement }
  | { ok: false; key: string | null; offset: string; partition: number; error: string };

/**
 * Reads every announcement on `topic` up to its current end (read_committed) and returns them in
 * partition-then-offset order; undecodable records are returned as errors, not thrown. The last one
 * with the model's key is the current snapshot.
 *
 * @example
 * const all = await readAnnouncements(kafka, 'student-snapshots');
 * const current = all.filter((a) => a.ok && a.key === 'student').at(-1);
 */
export async function readAnnouncements(
  kafka: Kafka,
  topic: string,
  opts: { timeoutMs?: number; groupId?: string } = {},
): Promise<ReadAnnouncement[]> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: { partition: number; high: number }[];
  try {
    ends = (await admin.fetchTopicOffsets(topic)).map((p) => ({
      partition: p.partition,
      high: Number(p.high),
    }));
  } finally {
    await admin.disconnect();
  }
  const want = new Map(ends.filter((e) => e.high > 0).map((e) => [e.partition, e.high]));
  const out: ReadAnnouncement[] = [];
  if (want.size === 0) return out;
  const consumer: Consumer = kafka.consumer({
    groupId: opts.groupId ?? `rankdistill-announcements-${process.pid}-${Date.now()}`,
    readUncommitted: false,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RankdistillError('KAFKA_UNAVAILABLE', `read ${topic}: end not reached in time`)),
        opts.timeoutMs ?? 30_000,
      );
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const key = message.key === null ? null : message.key.toString();
            const d = message.value
              ? decodeAvro('SnapshotAnnouncement', message.value)
              : ({ ok: false, error: new Error('empty value') } as const);
            out.push(
              d.ok
                ? { ok: true, key, offset: message.offset, partition, value: d.value }
                : { ok: false, key, offset: message.offset, partition, error: d.error.message },
            );
            // transaction markers take offsets too: stop once the fetch position passes the end
            if (Number(message.offset) + 1 >= (want.get(partition) ?? 0)) want.delete(partition);
            if (want.size === 0) done();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
}
