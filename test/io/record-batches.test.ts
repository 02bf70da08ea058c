// readRecordBatches (the replay's file input) must give the records readRecords gives: the same
// offsets, bytes and, for what it decodes itself, the same results, on files with malformed
// records, in both formats.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readRecords } from '../../src/io/files.ts';
import { readRecordBatches } from '../../src/io/record-batches.ts';
import { FileSimSink } from '../../src/io/sim-sink.ts';
import { simulate } from '../../src/sim/simulate.ts';

const work = mkdtempSync(join(tmpdir(), 'rd-batches-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('readRecordBatches', () => {
  for (const format of ['avro', 'ndjson'] as const) {
    test(`${format}: same records as readRecords, Avro records left as bytes`, async () => {
      const dir = join(work, format);
      await simulate(
        { seed: 11, requests: 600, candidates: 12, shown: 6, items: 300, users: 40, malformedRate: 0.05 },
        new FileSimSink(dir, format),
      );
      for (const [file, name] of [
        [`ranker-outputs.${format}`, 'RankerOutput'],
        [`impressions.${format}`, 'Impression'],
      ] as const) {
        const want: Array<{ offset: number; raw: string; ok: boolean }> = [];
        for await (const r of readRecords(join(dir, file), name))
          want.push({ offset: r.offset, raw: r.raw.toString('hex'), ok: r.result.ok });
        const got: typeof want = [];
        let columns = 0;
        for await (const b of readRecordBatches(join(dir, file), name, 64)) {
          if ('records' in b) {
            for (const r of b.records)
              got.push({ offset: r.offset, raw: r.raw.toString('hex'), ok: r.decoded?.ok === true });
            continue;
          }
          const { buf, offsets, ranges } = b.columns;
          for (let i = 0; i < offsets.length; i++) {
            columns++;
            const raw = buf.subarray(ranges[4 * i], ranges[4 * i + 1]);
            const w = want[got.length];
            // Bytes the task decodes: what readRecords decoded them to decides ok.
            got.push({ offset: offsets[i] as number, raw: raw.toString('hex'), ok: w?.ok ?? false });
          }
        }
        assert.ok(
          want.some((w) => !w.ok),
          `${file}: the simulation holds malformed records`,
        );
        assert.deepEqual(got, want);
        if (format === 'avro') assert.ok(columns > want.length / 2, `${file}: ${columns} records as bytes`);
        else assert.equal(columns, 0);
      }
    });
  }
});
