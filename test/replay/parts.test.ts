import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { RecordWriter, readRecords } from '../../src/io/files.ts';
import { assembleFinal, PartFile, partRecords } from '../../src/replay/parts.ts';

const dir = mkdtempSync(join(tmpdir(), 'rd-parts-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function listwise(i: number) {
  return {
    id: `r${i}:listwise`,
    request_id: `r${i}`,
    user_id: `u${i % 7}`,
    ts: 1_700_000_000_000 + i,
    model_version: 'm',
    matched: i % 2 === 0,
    context: null,
    items: Array.from({ length: 1 + (i % 9) }, (_, k) => ({
      item_id: `i${k}`,
      rank: k + 1,
      grade: 5 - Math.min(5, k),
      gain: 1,
      teacher_logit: k % 3 === 0 ? null : k / 3,
    })),
  };
}

describe('PartFile', () => {
  test('open cuts the file back to the checkpointed length; records after it are gone', () => {
    const path = join(dir, 'a.part');
    const p = PartFile.open(path, 0);
    p.append(Buffer.from('one'));
    p.append(Buffer.from('two'));
    const len = p.persist();
    p.append(Buffer.from('three'));
    p.persist();
    p.close();
    assert.deepEqual([...partRecords(path, readFileSync(path).length)].map(String), ['one', 'two', 'three']);
    const q = PartFile.open(path, len);
    q.append(Buffer.from('four'));
    const len2 = q.persist();
    q.close();
    assert.deepEqual([...partRecords(path, len2)].map(String), ['one', 'two', 'four']);
  });

  test('a part shorter than its checkpoint is refused', () => {
    const path = join(dir, 'short.part');
    PartFile.open(path, 0).close();
    assert.throws(
      () => PartFile.open(path, 10),
      (e: Error & { code?: string }) => e.code === 'STATE_STORE_FAILED',
    );
  });
});

describe('assembleFinal', () => {
  test('equals RecordWriter for any records split over any parts (avro and ndjson)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        async (ids, cuts) => {
          run++;
          for (const format of ['avro', 'ndjson'] as const) {
            const recs = ids.map(listwise);
            const ref = join(dir, `ref-${run}.${format}`);
            const w = RecordWriter.open(ref, 'ListwiseLabels', format);
            for (const r of recs) w.write(r);
            await w.close();
            // Split into parts at the cut points.
            const bounds = [...new Set(cuts.map((c) => c % (recs.length + 1)))].sort((a, b) => a - b);
            const parts: Array<{ path: string; length: number }> = [];
            let from = 0;
            for (const [n, to] of [...bounds, recs.length].entries()) {
              const path = join(dir, `p-${run}-${format}-${n}.part`);
              const p = PartFile.open(path, 0);
              const { encodeAvro } = await import('../../src/contracts/codec.ts');
              for (const r of recs.slice(from, to)) {
                p.append(
                  format === 'avro' ? encodeAvro('ListwiseLabels', r) : Buffer.from(JSON.stringify(r)),
                );
              }
              parts.push({ path, length: p.persist() });
              p.close();
              from = to;
            }
            const out = join(dir, `out-${run}.${format}`);
            assert.equal(assembleFinal(out, 'ListwiseLabels', format, parts), recs.length);
            assert.ok(readFileSync(out).equals(readFileSync(ref)), `${format} bytes differ`);
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  test('the assembled Avro file reads back record for record', async () => {
    const path = join(dir, 'big.part');
    const p = PartFile.open(path, 0);
    const { encodeAvro } = await import('../../src/contracts/codec.ts');
    for (let i = 0; i < 3_000; i++) p.append(encodeAvro('ListwiseLabels', listwise(i)));
    const length = p.persist();
    p.close();
    const out = join(dir, 'big.avro');
    assembleFinal(out, 'ListwiseLabels', 'avro', [{ path, length }]);
    let n = 0;
    for await (const r of readRecords(out, 'ListwiseLabels')) {
      assert.ok(r.result.ok);
      assert.equal(r.result.value.id, `r${n}:listwise`);
      n++;
    }
    assert.equal(n, 3_000);
  });
});
