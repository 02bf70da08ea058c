import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LabelDecodeError, labelFileOf, readLabelFiles } from '../../src/client/index.ts';
import type { ListwiseLabels } from '../../src/contracts/types.gen.ts';
import { isRankdistillError } from '../../src/errors.ts';
import { RecordWriter } from '../../src/io/files.ts';

const dir = mkdtempSync(join(tmpdir(), 'rd-client-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function listwise(i: number): ListwiseLabels {
  return {
    id: `req-${i}:listwise`,
    request_id: `req-${i}`,
    user_id: `u${i}`,
    ts: 1_700_000_000_000 + i,
    model_version: 'teacher-v1',
    matched: false,
    context: null,
    items: [
      { item_id: `a${i}`, rank: 1, grade: 5, gain: 31, teacher_logit: 2.5 },
      { item_id: `b${i}`, rank: 2, grade: 0, gain: 0, teacher_logit: null },
    ],
  };
}

const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('readLabelFiles', () => {
  for (const ext of ['ndjson', 'avro'] as const) {
    test(`reads typed labels from a ${ext} file and from a labeler output directory`, async () => {
      const out = join(dir, `out-${ext}`);
      const w = RecordWriter.open(join(out, `labels.listwise.${ext}`), 'ListwiseLabels');
      const records = [0, 1, 2].map(listwise);
      for (const r of records) w.write(r);
      await w.close();

      const fromFile = await collect(readLabelFiles(join(out, `labels.listwise.${ext}`), 'listwise'));
      const fromDir = await collect(readLabelFiles(out, 'listwise'));
      assert.deepEqual(plain(fromFile), plain(records));
      assert.deepEqual(plain(fromDir), plain(records));
      assert.equal(fromDir[0]?.items[0]?.gain, 31);
    });
  }

  test('a bad record throws a LabelDecodeError naming file and offset; skip-and-report goes on', async () => {
    const file = join(dir, 'bad', 'labels.listwise.ndjson');
    const w = RecordWriter.open(file, 'ListwiseLabels');
    w.write(listwise(0));
    w.writeRaw(Buffer.from('{"id": "truncated'));
    w.write(listwise(2));
    await w.close();

    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const l of readLabelFiles(file, 'listwise')) seen.push(l.id);
      })(),
      (e: unknown) => {
        assert.ok(e instanceof LabelDecodeError);
        assert.equal(e.source, file);
        assert.equal(e.offset, '1');
        assert.equal(e.partition, -1);
        assert.match(e.message, /ListwiseLabels at file .*labels\.listwise\.ndjson at 1/);
        return true;
      },
    );
    assert.deepEqual(seen, ['req-0:listwise']);

    const reported: LabelDecodeError[] = [];
    const all = await collect(
      readLabelFiles(file, 'listwise', { onInvalid: 'skip-and-report', report: (e) => reported.push(e) }),
    );
    assert.deepEqual(
      all.map((l) => l.id),
      ['req-0:listwise', 'req-2:listwise'],
    );
    assert.deepEqual(
      reported.map((e) => e.offset),
      ['1'],
    );
  });

  test('a directory must hold exactly one label file of the kind; a missing path is IO_FAILED', () => {
    const d = join(dir, 'two');
    const w1 = join(d, 'labels.pairwise.ndjson');
    const w2 = join(d, 'labels.pairwise.avro');
    RecordWriter.open(w1, 'PairwiseLabels');
    writeFileSync(w2, '');
    writeFileSync(w1, '');
    assert.throws(
      () => labelFileOf(d, 'pairwise'),
      (e: unknown) => isRankdistillError(e, 'USAGE'),
    );
    assert.throws(() => labelFileOf(d, 'pointwise'), /found none/);
    assert.throws(
      () => labelFileOf(join(dir, 'nope'), 'pointwise'),
      (e: unknown) => isRankdistillError(e, 'IO_FAILED'),
    );
  });

  test('an unknown kind is a USAGE error, before any file is opened', async () => {
    await assert.rejects(
      collect(readLabelFiles(dir, 'bogus' as never)),
      (e: unknown) => isRankdistillError(e, 'USAGE') && /found "bogus"/.test((e as Error).message),
    );
  });
});
