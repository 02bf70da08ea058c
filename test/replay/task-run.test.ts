// TaskRun's checkpoint protocol without a broker: a sink that "commits" into an in-memory topic,
// and a crash between the sink's commit and the store's commit — the window the topic output's
// catch-up covers (the resumed task reprocesses up to the committed offsets without producing).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readRecords } from '../../src/io/files.ts';
import { outputRecord, type RawInput } from '../../src/join/task.ts';
import type { Side, TaskOutput } from '../../src/join/types.ts';
import { CheckpointFiles } from '../../src/replay/checkpoint.ts';
import { MAX_HELD_BYTES, type PersistedParts, type ReplaySink } from '../../src/replay/sinks.ts';
import { TaskRun } from '../../src/replay/task-run.ts';
import { simFiles, testConfig } from './helpers.ts';

/** An in-memory "topic": what committed transactions wrote, and the offsets they committed. */
interface Topic {
  records: string[];
  offsets: Record<Side, number> | null;
}

class MemorySink implements ReplaySink {
  #batch: string[] = [];
  commits = 0;
  /** Records of each commit. */
  sizes: number[] = [];
  constructor(
    readonly topic: Topic,
    readonly crashAfterCommit: number | null,
    /** What held() counts per record of the open batch. */
    readonly bytesPerRecord = 100,
  ) {}
  held(): number {
    return this.#batch.length * this.bytesPerRecord;
  }
  add(outputs: TaskOutput[]): void {
    for (const out of outputs) {
      const o = outputRecord(out);
      if (o.kind !== 'deadLetter') this.#batch.push(`${o.kind}:${o.value.id}`);
    }
  }
  persist(): PersistedParts | null {
    return null;
  }
  async commit(positions: Record<Side, number>): Promise<void> {
    this.topic.records.push(...this.#batch);
    this.topic.offsets = { ...positions };
    this.sizes.push(this.#batch.length);
    this.#batch = [];
    this.commits++;
    if (this.commits === this.crashAfterCommit) throw new Error('crash after the Kafka commit');
  }
  discard(): void {
    this.#batch = [];
  }
  async close(): Promise<void> {}
}

describe('TaskRun', () => {
  let dir: string;
  const inputs: Record<Side, RawInput[]> = { ranker: [], impression: [] };
  const config = testConfig();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-taskrun-test-'));
    await simFiles(join(dir, 'sim'), 800, 'avro', 13);
    for await (const r of readRecords(join(dir, 'sim', 'ranker-outputs.avro'), 'RankerOutput')) {
      inputs.ranker.push({ offset: r.offset, key: null, raw: Buffer.from(r.raw) });
    }
    for await (const r of readRecords(join(dir, 'sim', 'impressions.avro'), 'Impression')) {
      inputs.impression.push({ offset: r.offset, key: null, raw: Buffer.from(r.raw) });
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function open(name: string, sink: ReplaySink, checkpointEvery = 150): TaskRun {
    const ends = { ranker: inputs.ranker.length, impression: inputs.impression.length };
    return TaskRun.open({
      partition: 0,
      config,
      storePath: join(dir, name, 'task-0.sqlite'),
      checkpoints: new CheckpointFiles(join(dir, name, 'ckpt')),
      sources: { ranker: 'ro', impression: 'imp' },
      inputFormat: 'avro',
      start: { ranker: 0, impression: 0 },
      end: ends,
      sink: () => sink,
      checkpointEvery,
      drain: true,
    });
  }

  /** Feeds the run from its fetch positions in chunks of `chunk` until done or it throws. */
  async function drive(run: TaskRun, chunk: number): Promise<void> {
    while (!run.done) {
      await run.pump();
      if (run.done) break;
      for (const side of ['ranker', 'impression'] as const) {
        if (!run.wants(side)) continue;
        const from = run.fetch[side];
        run.push(side, inputs[side].slice(from, from + chunk));
        if (run.fetch[side] >= run.end[side]) run.setEnded(side);
      }
    }
  }

  test('a crash between the output commit and the store commit: the resume writes nothing twice', async () => {
    const ref: Topic = { records: [], offsets: null };
    const whole = open('whole', new MemorySink(ref, null));
    await drive(whole, 97);
    await whole.close();
    assert.ok(ref.records.length > 1_000);

    const topic: Topic = { records: [], offsets: null };
    const first = open('crashed', new MemorySink(topic, 3));
    await assert.rejects(drive(first, 61), /crash after the Kafka commit/);
    await first.close(); // rolls the store's open transaction back
    assert.ok(topic.offsets !== null);
    const committedBefore = topic.records.length;

    const sink = new MemorySink(topic, null);
    const second = open('crashed', sink);
    assert.equal(second.checkpoint.k, 2, 'the store stayed at the checkpoint before the crash');
    second.catchUpTo(topic.offsets);
    await drive(second, 61);
    await second.close();
    assert.ok(topic.records.length > committedBefore);
    assert.deepEqual(topic.records, ref.records, 'same outputs in the same order, none twice');
    assert.equal(new Set(topic.records).size, topic.records.length);
    assert.deepEqual(second.counters(), whole.counters());
  });

  test('a sink holding MAX_HELD_BYTES checkpoints before checkpointEvery, with the same outputs', async () => {
    const ref: Topic = { records: [], offsets: null };
    const whole = open('held-ref', new MemorySink(ref, null), 1_000_000);
    await drive(whole, 97);
    await whole.close();

    const topic: Topic = { records: [], offsets: null };
    const sink = new MemorySink(topic, null, Math.ceil(MAX_HELD_BYTES / 40));
    const run = open('held', sink, 1_000_000);
    await drive(run, 97);
    await run.close();
    // checkpointEvery was never reached: every commit but the last was cut by held() ≥ 40 records.
    assert.ok(sink.commits > 3, `only ${sink.commits} commits`);
    assert.ok(
      sink.sizes.slice(0, -1).every((n) => n >= 40),
      `commit sizes ${sink.sizes.join(',')}`,
    );
    assert.deepEqual(topic.records, ref.records, 'same outputs in the same order');
  });

  test('committed offsets behind the checkpoint are refused', async () => {
    const run = open('behind', new MemorySink({ records: [], offsets: null }, null));
    await drive(run, 200);
    assert.throws(
      () => run.catchUpTo({ ranker: 0, impression: 0 }),
      (e: Error & { code?: string }) => e.code === 'STATE_STORE_FAILED',
    );
    await run.close();
  });
});
