import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { outcomeTable } from '../../src/cli/commands/replay.ts';
import { replay, replayId } from '../../src/replay/replay.ts';
import type { SimTruth } from '../../src/sim/generate.ts';
import { deadLetters, LABEL_FILES, labelFile, simFiles, testConfig, truthOutcomes } from './helpers.ts';
import { labelFilesSequential as labelFiles } from './reference-labeler.ts';

const OUT_FILES = [...LABEL_FILES.map((k) => k as string), 'dead-letter'];

describe('replay from files', () => {
  let dir: string;
  let truth: SimTruth;
  const config = testConfig();
  const now = () => 1_234;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-replay-test-'));
    truth = await simFiles(join(dir, 'sim'), 1_500, 'avro');
    await simFiles(join(dir, 'sim-ndjson'), 600, 'ndjson', 9);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['avro', 'ndjson'] as const) {
    test(`writes the same ${format} files, byte for byte, as the labeler's file transport`, async () => {
      const input = join(dir, format === 'avro' ? 'sim' : 'sim-ndjson');
      const live = join(dir, `live-${format}`);
      const out = join(dir, `replay-${format}`);
      await labelFiles({ inDir: input, outDir: live, format, config, drain: true, now });
      const res = await replay({
        config,
        input: { kind: 'files', dir: input },
        output: { kind: 'files', dir: out, format },
        drain: true,
        stateDir: join(dir, `state-${format}`),
        checkpointEvery: 300,
        now,
      });
      assert.equal(res.status, 'complete');
      assert.ok(res.counts.pointwise > 0);
      for (const f of OUT_FILES) {
        const a = readFileSync(join(live, `${f}.${format}`));
        const b = readFileSync(join(out, `${f}.${format}`));
        assert.ok(a.equals(b), `${f}.${format} differs (${a.length} vs ${b.length} bytes)`);
      }
      // The same command again does nothing and says so.
      const again = await replay({
        config,
        input: { kind: 'files', dir: input },
        output: { kind: 'files', dir: out, format },
        drain: true,
        stateDir: join(dir, `state-${format}`),
        now,
      });
      assert.equal(again.status, 'already-complete');
      assert.deepEqual(again.counts, res.counts);
    });
  }

  test('--dry-run counts match the simulator truth and write nothing', async () => {
    const stateDir = join(dir, 'state-dry');
    const res = await replay({
      config,
      input: { kind: 'files', dir: join(dir, 'sim') },
      output: { kind: 'dry' },
      drain: true,
      stateDir,
    });
    assert.equal(res.status, 'complete');
    const table = outcomeTable(res.counts);
    const want = truthOutcomes(truth);
    for (const [k, v] of Object.entries(want)) assert.equal(table[k], v, `outcome ${k}`);
    assert.equal(res.counts.rankerOutputsIn, truth.counts.records.rankerOutputs);
    assert.equal(res.counts.impressionsIn, truth.counts.records.impressions);
    assert.equal(existsSync(stateDir), false, 'a dry run keeps no state');
  });

  test('without --drain, requests still in their window stay open, as in the live service', async () => {
    const res = await replay({
      config,
      input: { kind: 'files', dir: join(dir, 'sim') },
      output: { kind: 'dry' },
    });
    const live = await labelFiles({
      inDir: join(dir, 'sim'),
      outDir: join(dir, 'live-open'),
      config,
      now,
    });
    assert.ok(res.open > 0);
    assert.equal(res.open, live.open);
    assert.deepEqual(res.counts, live.counts);
  });

  test('interrupted and resumed, the output equals an uninterrupted run with no duplicates', async () => {
    const input = join(dir, 'sim');
    const full = join(dir, 'full');
    const fullRes = await replay({
      config,
      input: { kind: 'files', dir: input },
      output: { kind: 'files', dir: full, format: 'avro' },
      stateDir: join(dir, 'state-full'),
      checkpointEvery: 250,
      now,
    });
    const out = join(dir, 'resumed');
    const stateDir = join(dir, 'state-resumed');
    const opts = {
      config,
      input: { kind: 'files', dir: input } as const,
      output: { kind: 'files', dir: out, format: 'avro' } as const,
      stateDir,
      checkpointEvery: 250,
      now,
    };
    // Stop twice, at different points, then let it finish.
    let statuses: string[] = [];
    let processed: number[] = [];
    let last: Awaited<ReturnType<typeof replay>> | undefined;
    for (const stopAt of [700, 1_900, Number.POSITIVE_INFINITY]) {
      const ac = new AbortController();
      const res = await replay({
        ...opts,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.done >= stopAt) ac.abort();
        },
      });
      statuses = [...statuses, res.status];
      processed = [...processed, res.processed];
      last = res;
      if (res.status === 'interrupted') assert.equal(existsSync(join(out, 'labels.pointwise.avro')), false);
    }
    assert.deepEqual(statuses, ['interrupted', 'interrupted', 'complete']);
    assert.deepEqual(last?.counts, fullRes.counts, 'counts survive the resumes');
    assert.ok((processed[0] ?? 0) < (processed[1] ?? 0) && (processed[1] ?? 0) < (processed[2] ?? 0));
    for (const f of OUT_FILES) {
      const a = readFileSync(join(full, `${f}.avro`));
      const b = readFileSync(join(out, `${f}.avro`));
      assert.ok(a.equals(b), `${f}.avro differs after resume`);
    }
    const ids = (await labelFile(out, 'labels.pointwise', 'avro')).map(([id]) => id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicated label');
    assert.deepEqual(readdirSync(join(stateDir, 'ckpt')).length, 1);
  });

  test('a crash after writing parts but before the store commit is cut back on resume', async () => {
    // Simulate the crash window: replay with a signal, then append garbage to a part file as if a
    // later batch had been written but never checkpointed.
    const input = join(dir, 'sim');
    const out = join(dir, 'crashy');
    const stateDir = join(dir, 'state-crashy');
    const opts = {
      config,
      input: { kind: 'files', dir: input } as const,
      output: { kind: 'files', dir: out, format: 'ndjson' } as const,
      stateDir,
      checkpointEvery: 400,
      now,
    };
    const ac = new AbortController();
    const first = await replay({ ...opts, signal: ac.signal, onProgress: (p) => p.done > 900 && ac.abort() });
    assert.equal(first.status, 'interrupted');
    const { appendFileSync } = await import('node:fs');
    appendFileSync(join(stateDir, 'parts', 'p0.pointwise.part'), Buffer.from([0, 0, 0, 3, 1, 2, 3]));
    const res = await replay(opts);
    assert.equal(res.status, 'complete');
    const ref = join(dir, 'crashy-ref');
    await labelFiles({ inDir: input, outDir: ref, format: 'ndjson', config, now });
    for (const f of OUT_FILES) {
      assert.ok(
        readFileSync(join(ref, `${f}.ndjson`)).equals(readFileSync(join(out, `${f}.ndjson`))),
        `${f}.ndjson differs`,
      );
    }
    assert.deepEqual(await deadLetters(out, 'ndjson'), await deadLetters(ref, 'ndjson'));
  });

  test('the replay id depends on input, output and label config, and not on option order', () => {
    const a = replayId({ config, input: { kind: 'files', dir: 'x' }, output: { kind: 'dry' } });
    const b = replayId({ config, input: { kind: 'files', dir: './x' }, output: { kind: 'dry' } });
    const c = replayId({ config, input: { kind: 'files', dir: 'y' }, output: { kind: 'dry' } });
    const d = replayId({
      config: testConfig({ labels: { pointwise: { k: 3 } } }),
      input: { kind: 'files', dir: 'x' },
      output: { kind: 'dry' },
    });
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.notEqual(a, d);
    assert.match(a, /^[0-9a-f]{12}$/);
    // A regenerated input (other size / mtime) is a different replay.
    const e = replayId({ config, input: { kind: 'files', dir: join(dir, 'sim') }, output: { kind: 'dry' } });
    utimesSync(join(dir, 'sim', 'impressions.avro'), new Date(), new Date(Date.now() + 5_000));
    const f = replayId({ config, input: { kind: 'files', dir: join(dir, 'sim') }, output: { kind: 'dry' } });
    assert.notEqual(e, f);
  });

  test('refuses to write into the live service topics', async () => {
    await assert.rejects(
      replay({
        config,
        input: { kind: 'files', dir: join(dir, 'sim') },
        output: {
          kind: 'topics',
          topics: {
            pointwise: config.kafka.topics.pointwise,
            pairwise: 'x.pairwise',
            listwise: 'x.listwise',
            deadLetter: 'x.dl',
          },
        },
      }),
      (e: Error & { code?: string }) => e.code === 'USAGE' && /labels\.pointwise/.test(e.message),
    );
  });
});

describe('replay from files on threads', () => {
  let dir: string;
  const config = testConfig();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-replay-threads-'));
    await simFiles(join(dir, 'sim'), 1_200, 'avro', 13);
    await simFiles(join(dir, 'sim-ndjson'), 500, 'ndjson', 14);
    // Several read rounds (2,048 records each) per thread, so a stop can land between two of them.
    await simFiles(join(dir, 'sim-large'), 12_000, 'avro', 15);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['avro', 'ndjson'] as const) {
    test(`${format}: 1, 2 and 3 threads over 4 partitions write the same files`, async () => {
      const input = join(dir, format === 'avro' ? 'sim' : 'sim-ndjson');
      const run = (threads: number) =>
        replay({
          config,
          input: { kind: 'files', dir: input },
          output: { kind: 'files', dir: join(dir, `out-${format}-${threads}`), format },
          partitions: 4,
          threads,
          drain: true,
          stateDir: join(dir, `state-${format}-${threads}`),
          checkpointEvery: 200,
        });
      const one = await run(1);
      assert.equal(one.status, 'complete');
      assert.equal(one.partitions, 4);
      assert.ok(one.counts.pointwise > 100);
      // Dead letters carry the wall-clock time of each thread: equal without it.
      const dl1 = await deadLetters(join(dir, `out-${format}-1`), format);
      assert.ok(dl1.length > 0);
      // Every partition got records: the split is by user id, not all in partition 0.
      const parts = new Set(dl1.map((d) => (JSON.parse(d) as { source_partition: number }).source_partition));
      assert.ok(parts.size > 1, `dead letters from partitions ${[...parts].join(', ')}`);
      // 2 and 3 threads: the same bytes whatever the thread count.
      for (const threads of [2, 3]) {
        const many = await run(threads);
        assert.equal(many.status, 'complete');
        assert.deepEqual(many.counts, one.counts);
        for (const f of LABEL_FILES) {
          const a = readFileSync(join(dir, `out-${format}-1`, `${f}.${format}`));
          const b = readFileSync(join(dir, `out-${format}-${threads}`, `${f}.${format}`));
          assert.ok(
            a.equals(b),
            `${f}.${format} differs on ${threads} threads (${a.length} vs ${b.length} bytes)`,
          );
        }
        assert.deepEqual(await deadLetters(join(dir, `out-${format}-${threads}`), format), dl1);
      }
    });
  }

  test('interrupted on 2 threads and resumed, the output equals an uninterrupted run', async () => {
    const input = join(dir, 'sim-large');
    const opts = {
      config,
      input: { kind: 'files', dir: input } as const,
      partitions: 4,
      threads: 2,
      checkpointEvery: 150,
    };
    const full = await replay({
      ...opts,
      output: { kind: 'files', dir: join(dir, 'full'), format: 'avro' },
      stateDir: join(dir, 'state-full'),
    });
    const out = { kind: 'files', dir: join(dir, 'resumed'), format: 'avro' } as const;
    const ac = new AbortController();
    const first = await replay({
      ...opts,
      output: out,
      stateDir: join(dir, 'state-resumed'),
      signal: ac.signal,
      // At the first progress report (a thread posts one at its first step, then every 200 ms): a
      // later threshold can come after a fast run has already finished.
      onProgress: (p) => p.done > 0 && ac.abort(),
    });
    assert.equal(first.status, 'interrupted');
    assert.ok(first.processed < full.processed);
    const res = await replay({ ...opts, output: out, stateDir: join(dir, 'state-resumed') });
    assert.equal(res.status, 'complete');
    assert.deepEqual(res.counts, full.counts);
    for (const f of LABEL_FILES) {
      const a = readFileSync(join(dir, 'full', `${f}.avro`));
      const b = readFileSync(join(dir, 'resumed', `${f}.avro`));
      assert.ok(a.equals(b), `${f}.avro differs after resume`);
    }
  });
});
