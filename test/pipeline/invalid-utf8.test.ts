// Regression (issue #24): a user_id with the bytes `e9 ff` was decoded to "u\uFFFD\uFFFD" and joined,
// so two different ids could collide. Invalid UTF-8 in any id (request_id, user_id, item_id) now
// makes the record a dead letter with a reason, in both file formats and through the codec the
// Kafka path uses; the good records beside it are labelled exactly once.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import {
  decodeAvro,
  decodeConfluent,
  decodeJson,
  encodeAvro,
  encodeJson,
} from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { type FileFormat, RecordWriter, readRecords } from '../../src/io/files.ts';
import { labelFiles } from '../../src/pipeline/label-files.ts';
import { impression, patchBytes, ranker } from '../join/helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'rd-utf8-'));
after(() => rmSync(work, { recursive: true, force: true }));

const TS = 1_700_000_000_000;

function encode<N extends 'RankerOutput' | 'Impression'>(
  name: N,
  rec: N extends 'RankerOutput' ? RankerOutput : Impression,
  format: FileFormat,
): Buffer {
  return format === 'avro'
    ? encodeAvro(name, rec as never)
    : Buffer.from(encodeJson(name, rec as never), 'utf8');
}

/** Bad records: what is broken, the record, and the request_id its dead letter must carry. */
function badRecords(format: FileFormat) {
  const r = (id: string, user?: string) => encode('RankerOutput', ranker(id, TS, user), format);
  const ctx = { ...ranker('bad-ctx', TS), context: { QQ: 1 } };
  return {
    rankers: [
      ['user_id', patchBytes(r('bad-user-1', 'uQQ'), 'QQ', [0xe9, 0xff]), 'bad-user-1'],
      // would have collided with bad-user-1 ("u\uFFFD\uFFFD") had it been rewritten
      ['user_id', patchBytes(r('bad-user-2', 'uQQ'), 'QQ', [0xe9, 0xfe]), 'bad-user-2'],
      ['request_id', patchBytes(r('bad-QQ'), 'QQ', [0xc3, 0x28]), null],
      ['item_id', patchBytes(r('bad-item'), 'it3', [0x69, 0xff, 0x33]), 'bad-item'],
      ...(format === 'ndjson'
        ? [
            [
              'JSON text',
              patchBytes(Buffer.from(encodeJson('RankerOutput', ctx)), 'QQ', [0xe9, 0xff]),
              'bad-ctx',
            ],
            // parsed, but not a RankerOutput: its dead letter still names the request
            [
              'invalid record',
              Buffer.from('{"request_id":"bad-schema","user_id":"u1","items":[]}'),
              'bad-schema',
            ],
          ]
        : []),
    ] as [string, Buffer, string | null][],
    impressions: [
      [
        'item_id',
        patchBytes(encode('Impression', impression('good-3', TS + 5), format), 'it1', [0x69, 0xe9, 0x31]),
        'good-3',
      ],
    ] as [string, Buffer, string | null][],
  };
}

describe('invalid UTF-8 in ids is dead-lettered, never rewritten', () => {
  for (const format of ['ndjson', 'avro'] as const) {
    test(`${format} files: every bad record is a dead letter with a reason; good ones are labelled once`, async () => {
      const inDir = join(work, `in-${format}`);
      mkdirSync(inDir);
      const bad = badRecords(format);
      const rw = RecordWriter.open(join(inDir, `ranker-outputs.${format}`), 'RankerOutput', format);
      const iw = RecordWriter.open(join(inDir, `impressions.${format}`), 'Impression', format);
      for (const id of ['good-1', 'good-2', 'good-3']) rw.write(ranker(id, TS));
      for (const [, bytes] of bad.rankers) rw.writeRaw(bytes);
      iw.write(impression('good-1', TS + 10));
      for (const [, bytes] of bad.impressions) iw.writeRaw(bytes);
      rw.close();
      iw.close();

      const res = await labelFiles({
        inDir,
        outDir: join(work, `out-${format}`),
        format,
        config: configSchema.parse({}),
        drain: true,
      });
      const labelled: string[] = [];
      for await (const r of readRecords(res.files.pointwise, 'PointwiseLabels')) {
        assert.ok(r.result.ok);
        assert.ok(!r.result.value.user_id.includes('\uFFFD'));
        labelled.push(`${r.result.value.request_id}:${r.result.value.matched}`);
      }
      // good-1 joined; good-2 and good-3 (its impression was refused) unmatched; each once
      assert.deepEqual(labelled.sort(), ['good-1:true', 'good-2:false', 'good-3:false']);
      const dead: { request_id: string | null; reason_code: string; reason: string }[] = [];
      for await (const r of readRecords(res.files.deadLetter, 'DeadLetter')) {
        assert.ok(r.result.ok);
        dead.push(r.result.value);
      }
      const want = [...bad.rankers, ...bad.impressions];
      assert.equal(dead.length, want.length, JSON.stringify(dead, null, 1));
      for (const [what, , rid] of want) {
        const d = dead.find(
          (x) =>
            x.request_id === rid && x.reason.includes(what === 'invalid record' ? 'invalid record' : 'UTF-8'),
        );
        assert.ok(
          d,
          `a dead letter for ${rid} (${what}) in ${JSON.stringify(dead.map((x) => [x.request_id, x.reason]))}`,
        );
        assert.equal(d.reason_code, 'MALFORMED');
        if (what !== 'JSON text' && what !== 'invalid record')
          assert.match(d.reason, new RegExp(what.replace(/[[\]]/g, '.')));
      }
      assert.equal(res.counts.malformed, want.length);
    });
  }

  test('the codec the Kafka path uses refuses them too: plain Avro, Confluent frame, JSON', () => {
    const avroBad = patchBytes(encodeAvro('RankerOutput', ranker('r9', TS, 'uQQ')), 'QQ', [0xe9, 0xff]);
    const plain = decodeAvro('RankerOutput', avroBad);
    assert.ok(!plain.ok);
    assert.match(plain.error.message, /user_id is not valid UTF-8/);
    assert.equal(plain.error.details.requestId, 'r9');
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), avroBad]);
    assert.ok(!decodeConfluent('RankerOutput', framed).ok);
    const json = patchBytes(
      Buffer.from(encodeJson('Impression', impression('r9', TS))),
      'it0',
      [0x69, 0xc0, 0x30],
    );
    const j = decodeJson('Impression', json);
    assert.ok(!j.ok);
    assert.match(j.error.message, /items\[1\]\.item_id is not valid UTF-8/);
    // valid non-ASCII UTF-8 is fine
    assert.ok(decodeAvro('RankerOutput', encodeAvro('RankerOutput', ranker('r10', TS, 'usér-ü'))).ok);
    assert.ok(
      decodeJson('RankerOutput', Buffer.from(encodeJson('RankerOutput', ranker('r10', TS, 'usér')))).ok,
    );
  });
});
