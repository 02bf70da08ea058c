import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RecordWriter } from '../../src/io/files.ts';
import { countRecords } from '../../src/replay/count.ts';

const dir = mkdtempSync(join(tmpdir(), 'rd-count-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const imp = (i: number) => ({
  request_id: `r${i}`,
  user_id: `u${i % 5}`,
  ts: 1_700_000_000_000 + i,
  // ~1 KB a record: 3,000 of them span many 64 KiB blocks.
  items: Array.from({ length: 40 }, (_, k) => ({
    item_id: `i${k}`,
    position: k + 1,
    clicked: k === 0,
    dwell_ms: null,
    actions: null,
  })),
});

describe('countRecords', () => {
  test('records of an Avro container over many blocks, lines of NDJSON with or without a last newline', async () => {
    for (const [format, n] of [
      ['avro', 3_000],
      ['ndjson', 2_500],
      ['avro', 0],
    ] as const) {
      const path = join(dir, `imp-${n}.${format}`);
      const w = RecordWriter.open(path, 'Impression', format);
      for (let i = 0; i < n; i++) w.write(imp(i));
      await w.close();
      assert.equal(await countRecords(path), n, `${format}, ${n} records`);
    }
    const noLastNewline = join(dir, 'cut.ndjson');
    writeFileSync(noLastNewline, '{"a":1}\n{"a":2}\n{"a":3}');
    assert.equal(await countRecords(noLastNewline), 3);
  });

  test('a missing file or a file that is no container counts as unknown (null)', async () => {
    assert.equal(await countRecords(join(dir, 'absent.avro')), null);
    const bad = join(dir, 'bad.avro');
    writeFileSync(bad, 'not avro at all');
    assert.equal(await countRecords(bad), null);
  });
});
