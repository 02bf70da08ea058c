// The file transport against the simulator's ground truth: with --drain (every window closed at
// the end of input), each request gets exactly the labels and dead letters truth.json prescribes.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { readRecords } from '../../src/io/files.ts';
import { FileSimSink } from '../../src/io/sim-sink.ts';
import { labelFiles } from '../../src/pipeline/label-files.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { deadLetters } from '../replay/helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'rd-label-files-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('labelFiles', () => {
  for (const format of ['ndjson', 'avro'] as const) {
    test(`${format} input: labels and dead letters exactly as truth.json says`, async () => {
      const inDir = join(work, `sim-${format}`);
      const { truth } = await simulate(
        { seed: 5, requests: 400, candidates: 12, shown: 6, items: 500, users: 50, lateWarmup: 50 },
        new FileSimSink(inDir, format),
      );
      const cfg = configSchema.parse({});
      const res = await labelFiles({ inDir, outDir: join(work, `out-${format}`), config: cfg, drain: true });
      assert.equal(res.open, 0, 'drain closes every window');
      const got = new Map<string, boolean>();
      for await (const r of readRecords(res.files.pointwise, 'PointwiseLabels')) {
        assert.ok(r.result.ok);
        assert.equal(got.has(r.result.value.request_id), false, 'one label per request');
        got.set(r.result.value.request_id, r.result.value.matched);
      }
      const dead: string[] = [];
      for await (const r of readRecords(res.files.deadLetter, 'DeadLetter')) {
        assert.ok(r.result.ok);
        dead.push(r.result.value.reason_code);
        if (r.result.value.request_id !== null) {
          assert.ok(
            truth.requests[r.result.value.request_id]?.expect.deadLetters.includes(
              r.result.value.reason_code,
            ),
          );
        }
      }
      for (const [rid, t] of Object.entries(truth.requests)) {
        const g = got.get(rid);
        const label = g === undefined ? 'none' : g ? 'matched' : 'unmatched';
        assert.equal(label, t.expect.labels, `${rid} (${t.fate})`);
      }
      const expectedDead = Object.values(truth.requests).flatMap((t) => t.expect.deadLetters);
      assert.deepEqual(dead.sort(), expectedDead.sort());
      assert.ok(res.counts.joined > 300);
      assert.equal(res.counts.pointwise, got.size);
    });
  }

  for (const format of ['ndjson', 'avro'] as const) {
    test(`${format}: 1 thread and 2 threads over 3 partitions write the same bytes; progress reaches the total`, async () => {
      const inDir = join(work, `sim-${format}`);
      const cfg = configSchema.parse({});
      const outs: Record<string, Buffer>[] = [];
      for (const threads of [1, 2]) {
        const seen: number[] = [];
        const res = await labelFiles({
          inDir,
          outDir: join(work, `out-${format}-t${threads}`),
          format,
          config: cfg,
          drain: true,
          partitions: 3,
          threads,
          now: () => 1_700_000_000_000,
          onProgress: (p) => seen.push(p.done),
        });
        assert.ok(res.counts.joined > 300);
        assert.ok(seen.length > 0 && Math.max(...seen) > 0, 'progress reported');
        outs.push(
          Object.fromEntries(Object.entries(res.files).map(([k, f]) => [k, readFileSync(f)])) as Record<
            string,
            Buffer
          >,
        );
      }
      for (const k of ['pointwise', 'pairwise', 'listwise']) {
        assert.ok((outs[0]?.[k]?.length ?? 0) > 0, `${k} not empty`);
        assert.ok(outs[0]?.[k]?.equals(outs[1]?.[k] as Buffer), `${k}: 1 thread = 2 threads`);
      }
      // Dead letters carry the wall-clock time of each thread (a function cannot cross to a
      // thread): the same records without it.
      const dl = await Promise.all([1, 2].map((t) => deadLetters(join(work, `out-${format}-t${t}`), format)));
      assert.ok((dl[0]?.length ?? 0) > 0);
      assert.deepEqual(dl[1], dl[0]);
    });
  }

  test('without drain, open windows stay open (as in the Kafka service) and are reported', async () => {
    const inDir = join(work, 'sim-ndjson');
    const res = await labelFiles({ inDir, outDir: join(work, 'out-open'), config: configSchema.parse({}) });
    assert.ok(res.open > 0);
    assert.equal(res.counts.unmatched, 0);
    assert.equal(res.counts.orphans, 0);
  });
});
