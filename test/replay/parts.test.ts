import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeAvro } from '../../src/contracts/codec.ts';
import { RecordWriter, readRecords } from '../../src/io/files.ts';
import { emptyParts } from '../../src/replay/checkpoint.ts';
import { assembleFinal, PartFile, type PartFormat, tailPath } from '../../src/replay/parts.ts';
import { PartsSink } from '../../src/replay/sinks.ts';

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
    // Up to ~2 KB per record: a 64 KiB block holds a few dozen.
    items: Array.from({ length: 1 + ((i * 37) % 60) }, (_, k) => ({
      item_id: `i${k}`,
      rank: k + 1,
      grade: 5 - Math.min(5, k),
      gain: 1,
      teacher_logit: k % 3 === 0 ? null : k / 3,
    })),
  };
}

type Format = 'avro' | 'ndjson';
const fmt = (format: Format, header: boolean): PartFormat => ({ format, name: 'ListwiseLabels', header });
const bytesOf = (format: Format, i: number) =>
  format === 'avro' ? encodeAvro('ListwiseLabels', listwise(i)) : Buffer.from(JSON.stringify(listwise(i)));

async function reference(path: string, format: Format, ids: number[]): Promise<Buffer> {
  const w = RecordWriter.open(path, 'ListwiseLabels', format);
  for (const i of ids) w.write(listwise(i));
  await w.close();
  return readFileSync(path);
}

async function ids(path: string): Promise<number[]> {
  const out: number[] = [];
  for await (const r of readRecords(path, 'ListwiseLabels')) {
    assert.ok(r.result.ok, 'every record decodes');
    out.push(Number(r.result.value.request_id.slice(1)));
  }
  return out;
}

let run = 0;

describe('PartFile', () => {
  test('one part, checkpointed and resumed anywhere, ends as the bytes RecordWriter writes', async () => {
    // The records, and the checkpoints after which the writer is "killed" and reopened at the
    // checkpoint before (records since then are written again, as a resumed replay does).
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        async (recs, ckAt, killAt) => {
          run++;
          for (const format of ['avro', 'ndjson'] as const) {
            const path = join(dir, `one-${run}-${format}.part`);
            const cks = new Set(ckAt.map((c) => c % (recs.length + 1)));
            const kills = new Set(killAt.map((c) => c % (recs.length + 1)));
            let part = PartFile.open(path, fmt(format, true), 0, { length: 0, tail: 0 });
            let k = 0;
            let st = { length: 0, tail: 0 };
            let resumeFrom = 0;
            for (let n = 0; n <= recs.length; ) {
              if (kills.has(n)) {
                kills.delete(n);
                part.append(bytesOf(format, 99_999)); // written after the checkpoint: dropped
                part.close();
                part = PartFile.open(path, fmt(format, true), k, st);
                n = resumeFrom;
                continue;
              }
              if (cks.has(n) && n > resumeFrom) {
                k++;
                st = part.persist(k, false);
                resumeFrom = n;
              }
              if (n === recs.length) break;
              part.append(bytesOf(format, recs[n] as number));
              n++;
            }
            const last = part.persist(k + 1, true);
            part.close();
            assert.equal(last.tail, 0, 'the last persist leaves no tail');
            const out = join(dir, `one-${run}.${format}`);
            assert.equal(await assembleFinal(out, [{ path, length: last.length }]), last.length);
            const ref = await reference(join(dir, `ref-${run}.${format}`), format, recs);
            assert.ok(readFileSync(out).equals(ref), `${format}: the bytes of RecordWriter`);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  test('a part shorter than its checkpoint, or a missing tail, is refused', () => {
    const path = join(dir, 'short.part');
    PartFile.open(path, fmt('avro', false), 0, { length: 0, tail: 0 }).close();
    const refused = (e: Error & { code?: string }) => e.code === 'STATE_STORE_FAILED';
    assert.throws(() => PartFile.open(path, fmt('avro', false), 1, { length: 10, tail: 0 }), refused);
    assert.throws(() => PartFile.open(path, fmt('avro', false), 1, { length: 0, tail: 40 }), refused);
  });

  test('tail files of checkpoints a resume can no longer pick are deleted', () => {
    const path = join(dir, 'tails', 'p0.listwise.part');
    const p = PartFile.open(path, fmt('avro', false), 0, { length: 0, tail: 0 });
    for (let k = 1; k <= 4; k++) {
      p.append(bytesOf('avro', k));
      assert.ok(p.persist(k, false).tail > 0);
    }
    p.close();
    const tails = () => readdirSync(join(dir, 'tails')).filter((n) => n.includes('.tail-'));
    assert.deepEqual(tails().sort(), ['p0.listwise.part.tail-3', 'p0.listwise.part.tail-4']);
    // A resume from 3 (checkpoint 4 never committed) keeps 3's tail only.
    PartFile.open(path, fmt('avro', false), 3, {
      length: 0,
      tail: readFileSync(tailPath(path, 3)).length,
    }).close();
    assert.deepEqual(tails(), ['p0.listwise.part.tail-3']);
    assert.ok(!existsSync(tailPath(path, 4)));
  });
});

describe('assembleFinal', () => {
  test('several parts: every record once, in part order, each part starting a new block', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 200 }), {
          minLength: 1,
          maxLength: 4,
        }),
        async (split) => {
          run++;
          for (const format of ['avro', 'ndjson'] as const) {
            const parts = split.map((recs, p) => {
              const path = join(dir, `multi-${run}-${format}-${p}.part`);
              const part = PartFile.open(path, fmt(format, p === 0), 0, { length: 0, tail: 0 });
              for (const i of recs) part.append(bytesOf(format, i));
              const { length } = part.persist(1, true);
              part.close();
              return { path, length };
            });
            const out = join(dir, `multi-${run}.${format}`);
            // Copy steps of a few bytes: a part's copy is split over many positioned writes.
            const size = await assembleFinal(out, parts, 1 + (run % 97));
            assert.equal(size, readFileSync(out).length);
            assert.deepEqual(await ids(out), split.flat());
            // The first part is the file's beginning; the rest follow byte for byte.
            const bytes = readFileSync(out);
            const cat = Buffer.concat(parts.map((p) => readFileSync(p.path).subarray(0, p.length)));
            assert.ok(bytes.equals(cat), `${format}: the parts' bytes, in order`);
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  test('a crashed assembly that appended to the first part is cut back on the next one', async () => {
    const mk = (name: string, recs: number[], header: boolean) => {
      const path = join(dir, name);
      const p = PartFile.open(path, fmt('avro', header), 0, { length: 0, tail: 0 });
      for (const i of recs) p.append(bytesOf('avro', i));
      const { length } = p.persist(1, true);
      p.close();
      return { path, length };
    };
    const a = mk('crash-a.part', [1, 2, 3], true);
    const b = mk('crash-b.part', [4, 5], false);
    const out = join(dir, 'crash.avro');
    await assembleFinal(out, [a, b]);
    // The final file shares the first part's bytes (hard link): the part grew with it.
    assert.ok(readFileSync(a.path).length >= a.length);
    await assembleFinal(out, [a, b]);
    assert.deepEqual(await ids(out), [1, 2, 3, 4, 5]);
  });
});

describe('assembleFinal leftovers', () => {
  test("a dead assembly's tmp file is removed, a live process's is kept", async () => {
    const path = join(dir, 'left', 'labels.pointwise.ndjson');
    mkdirSync(dirname(path), { recursive: true });
    // A pid above the kernel's pid_max (2^22) cannot be alive.
    const dead = `${path}.tmp-${2 ** 22 + 7}`;
    const live = `${path}.tmp-${process.ppid}`;
    const other = `${path}.tmp-notapid`;
    for (const f of [dead, live, other]) writeFileSync(f, 'partial');
    const part = join(dir, 'left', 'p0.part');
    writeFileSync(part, '{"a":1}\n');
    await assembleFinal(path, [{ path: part, length: 8 }]);
    assert.equal(readFileSync(path, 'utf8'), '{"a":1}\n');
    assert.equal(existsSync(dead), false, 'the dead process left it: removed');
    assert.equal(existsSync(live), true, 'a live process may still be writing it');
    assert.equal(existsSync(other), true, 'not ours');
  });
});

describe('PartsSink', () => {
  test('state from an older part format is refused with what to do', () => {
    const state = join(dir, 'old-state');
    assert.throws(
      () => PartsSink.open(state, 0, 'avro', { k: 3, parts: emptyParts() }),
      (e: Error & { code?: string }) =>
        e.code === 'STATE_STORE_FAILED' &&
        /older rankdistill \(part format 1/.test(e.message) &&
        /delete the state directory/.test(e.message),
    );
    // A fresh partition (k = 0) opens.
    PartsSink.open(state, 0, 'avro', { k: 0, parts: emptyParts() }).close();
  });
});
