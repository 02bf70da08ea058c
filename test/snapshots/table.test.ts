import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isRankdistillError } from '../../src/errors.ts';
import { decodeTable, encodeTable, parseTableHeader, validateTable } from '../../src/snapshots/table.ts';

const idArb = fc
  .string({ minLength: 1, maxLength: 12 })
  .filter((s) => !s.includes('\n') && !s.includes('\r'));

describe('snapshot embedding table format', () => {
  test('encode → decode round-trips ids and float32 values exactly', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(idArb, { maxLength: 30 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer(),
        (ids, dim, seed) => {
          const vectors = Float32Array.from({ length: ids.length * dim }, (_, i) =>
            Math.fround(Math.sin(seed + i) * 3),
          );
          const files = encodeTable('items', { ids, dim, vectors });
          const byName = new Map(files.map((f) => [f.name, f.data]));
          const header = parseTableHeader('items.json', byName.get('items.json')!);
          assert.equal(header.rows, ids.length);
          assert.equal(header.dim, dim);
          const t = decodeTable(header, byName.get('items.f32')!, byName.get('items.ids')!);
          assert.deepEqual(t.ids, ids);
          assert.deepEqual(Array.from(t.vectors), Array.from(vectors));
        },
      ),
    );
  });

  test('vectors are little-endian float32, row-major (what numpy reads as <f4)', () => {
    const files = encodeTable('items', { ids: ['a', 'b'], dim: 2, vectors: Float32Array.of(1, 2, 3, -0.5) });
    const f32 = Buffer.from(files.find((f) => f.name === 'items.f32')!.data);
    assert.deepEqual(
      [0, 4, 8, 12].map((o) => f32.readFloatLE(o)),
      [1, 2, 3, -0.5],
    );
    assert.equal(Buffer.from(files.find((f) => f.name === 'items.ids')!.data).toString(), 'a\nb\n');
  });

  test('a truncated vector file or a cut id list is SNAPSHOT_CORRUPT naming the file', () => {
    const files = encodeTable('items', { ids: ['a', 'b'], dim: 2, vectors: Float32Array.of(1, 2, 3, 4) });
    const get = (n: string) => files.find((f) => f.name === n)!.data;
    const header = parseTableHeader('items.json', get('items.json'));
    assert.throws(
      () => decodeTable(header, get('items.f32').subarray(0, 12), get('items.ids')),
      (e) =>
        isRankdistillError(e, 'SNAPSHOT_CORRUPT') &&
        /items\.f32/.test(e.message) &&
        /16 bytes, found 12/.test(e.message),
    );
    assert.throws(
      () => decodeTable(header, get('items.f32'), Buffer.from('a\nb')),
      (e) => isRankdistillError(e, 'SNAPSHOT_CORRUPT') && /items\.ids/.test(e.message),
    );
    assert.throws(
      () => parseTableHeader('items.json', Buffer.from('{"rows":2')),
      (e) => isRankdistillError(e, 'SNAPSHOT_CORRUPT') && /items\.json/.test(e.message),
    );
  });

  test('refuses tables an ANN index could not use: NaN, duplicate ids, ids with newlines, wrong length', () => {
    const bad = [
      { ids: ['a'], dim: 2, vectors: Float32Array.of(1, Number.NaN) },
      { ids: ['a', 'a'], dim: 1, vectors: Float32Array.of(1, 2) },
      { ids: ['a\nb'], dim: 1, vectors: Float32Array.of(1) },
      { ids: ['a'], dim: 2, vectors: Float32Array.of(1) },
    ];
    for (const t of bad)
      assert.throws(
        () => validateTable('items', t),
        (e) => isRankdistillError(e, 'TRAIN_INPUT_INVALID'),
      );
  });
});
