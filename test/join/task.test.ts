import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeAvro } from '../../src/contracts/codec.ts';
import { LabelInputError } from '../../src/errors.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import {
  deadLetterRaw,
  type FetchedRecord,
  JoinTask,
  outputRecord,
  type RawInput,
  rawColumns,
} from '../../src/join/task.ts';
import { OUTPUT_CONTRACT, type TaskOutput } from '../../src/join/types.ts';
import { newTask, ranker, rawI, rawR } from './helpers.ts';

const join = { windowMs: 100, allowedLatenessMs: 10, emitUnmatched: true };

function summarize(outs: TaskOutput[]): string[] {
  return outs
    .map(outputRecord)
    .map((o) =>
      o.kind === 'deadLetter'
        ? `dead:${o.value.reason_code}:${o.value.source_topic}@${o.value.source_offset}:${o.value.key?.toString('hex') ?? 'null'}:${o.value.raw.toString('hex')}`
        : `${o.kind}:${o.value.id}:${o.key?.toString('hex') ?? 'null'}:${encodeAvro(OUTPUT_CONTRACT[o.kind], o.value as never).toString('base64')}`,
    );
}

/** Pushes both inputs whole, marks them caught up and processes everything. */
function runTask(t: JoinTask, rs: RawInput[], is: RawInput[]): TaskOutput[] {
  t.push('ranker', rs);
  t.push('impression', is);
  t.setCaughtUp('ranker', true);
  t.setCaughtUp('impression', true);
  return t.step(Number.MAX_SAFE_INTEGER).outputs;
}

function runAll(rs: RawInput[], is: RawInput[], columns = false): string[] {
  return summarize(runTask(newTask(join, undefined, columns), rs, is));
}

/** A small random workload: requests with jitter, some lone sides, duplicates and garbage. */
const workload = fc
  .array(
    fc.record({
      ts: fc.integer({ min: 0, max: 1000 }),
      jitter: fc.integer({ min: -150, max: 150 }),
      hasR: fc.boolean(),
      hasI: fc.boolean(),
      dup: fc.boolean(),
      garbage: fc.boolean(),
    }),
    { maxLength: 25 },
  )
  .map((reqs) => {
    const rs: RawInput[] = [];
    const is: RawInput[] = [];
    reqs.forEach((q, n) => {
      const id = `q${n}`;
      if (q.hasR) rs.push(rawR(rs.length, id, q.ts));
      if (q.hasI) is.push(rawI(is.length, id, Math.max(0, q.ts + q.jitter)));
      if (q.dup && q.hasR) rs.push(rawR(rs.length, id, q.ts));
      if (q.garbage) is.push({ offset: is.length, key: null, raw: Buffer.from([0xff, 0x01]) });
    });
    return { rs, is };
  });

describe('JoinTask', () => {
  test('malformed and invalid records become dead letters; good ones around them still join', () => {
    const t = newTask(join);
    const bad = ranker('bad', 5);
    bad.items = [];
    t.push('ranker', [
      { offset: 0, key: null, raw: Buffer.from('not avro') },
      rawR(1, 'a', 10),
      { offset: 2, key: null, raw: encodeAvro('RankerOutput', bad) },
    ]);
    t.push('impression', [rawI(0, 'a', 12)]);
    t.setCaughtUp('ranker', true);
    t.setCaughtUp('impression', true);
    const outs = t.step(100).outputs;
    const dead = outs.filter((o) => o.kind === 'deadLetter').map((o) => o.value);
    assert.deepEqual(
      dead.map((d) => [d.reason_code, d.source_offset, d.request_id]),
      [
        ['MALFORMED', 0, null],
        ['INVALID', 2, 'bad'],
      ],
    );
    assert.deepEqual(dead[0]?.raw, Buffer.from('not avro'));
    assert.deepEqual(
      outs.filter((o) => o.kind !== 'deadLetter').map((o) => o.kind),
      ['pointwise', 'pairwise', 'listwise'],
    );
    assert.deepEqual(t.nextOffsets(), { ranker: 3, impression: 1 });
    assert.equal(t.counters.joined, 1);
  });

  test('a label generator failure dead-letters the ranker output with LABEL_FAILED', () => {
    const t = new JoinTask({
      partition: 0,
      topics: { ranker: 'ro', impression: 'imp' },
      store: new MemoryJoinStore(),
      join,
      label: () => {
        throw new LabelInputError('missing logit ctr');
      },
      inputFormat: 'avro',
      now: () => 0,
    });
    t.push('impression', [rawI(0, 'a', 1)]);
    t.push('ranker', [rawR(7, 'a', 1)]);
    t.setCaughtUp('ranker', true);
    const outs = t.step(10).outputs;
    assert.equal(outs.length, 1);
    const d = outs[0];
    assert.ok(d?.kind === 'deadLetter');
    assert.equal(d.value.reason_code, 'LABEL_FAILED');
    assert.equal(d.value.source_topic, 'ro');
    assert.equal(d.value.source_offset, 7);
    assert.match(d.value.reason, /missing logit ctr/);
  });

  test('determinism: any arrival chunking gives the same outputs, byte for byte', () => {
    fc.assert(
      fc.property(
        workload,
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 })), {
          maxLength: 40,
        }),
        ({ rs, is }, schedule) => {
          const expected = runAll(rs, is);
          const t = newTask(join);
          const pos = { ranker: 0, impression: 0 };
          const got: TaskOutput[] = [];
          const deliver = (side: 'ranker' | 'impression', n: number, steps: number) => {
            const src = side === 'ranker' ? rs : is;
            const chunk = src.slice(pos[side], pos[side] + n);
            pos[side] += chunk.length;
            t.push(side, chunk);
            if (pos[side] === src.length) t.setCaughtUp(side, true);
            got.push(...t.step(steps).outputs);
          };
          for (const [r, n, steps] of schedule) deliver(r ? 'ranker' : 'impression', n, steps);
          deliver('ranker', rs.length, 0);
          deliver('impression', is.length, 0);
          got.push(...t.step(Number.MAX_SAFE_INTEGER).outputs);
          assert.deepEqual(summarize(got), expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('the column path gives the outputs of the generic path, byte for byte, and is taken', () => {
    fc.assert(
      fc.property(workload, ({ rs, is }) => {
        const outs = runTask(newTask(join, undefined, true), rs, is);
        const labels = outs.filter((o) => o.kind !== 'deadLetter');
        assert.ok(
          labels.every((o) => o.kind === 'encoded'),
          'every label came from the column path',
        );
        assert.deepEqual(summarize(outs), runAll(rs, is, false));
      }),
      { numRuns: 150 },
    );
  });

  test('a ranker output the column parser refuses takes the generic path, is counted, and still joins', () => {
    const r = { ...ranker('qé', 10), request_id: 'qé' }; // non-ASCII ids are not copied as bytes
    const imp = { request_id: 'qé', user_id: r.user_id, ts: 20, items: [] };
    const rs = [rawR(0, 'q1', 5), { offset: 1, key: null, raw: encodeAvro('RankerOutput', r) }];
    const is = [rawI(0, 'q1', 6), { offset: 1, key: null, raw: encodeAvro('Impression', imp) }];
    const t = newTask(join, undefined, true);
    const outs = runTask(t, rs, is);
    assert.deepEqual(t.rankerPaths, { columns: 1, generic: 1 });
    assert.equal(t.counters.joined, 2);
    assert.deepEqual(
      outs.map((o) => o.kind),
      ['encoded', 'encoded', 'encoded', 'pointwise', 'pairwise', 'listwise'],
    );
    assert.deepEqual(summarize(outs), runAll(rs, is, false));
  });

  test('records pushed as columns over fetch buffers give the outputs of RawInput pushes, any chunking', () => {
    fc.assert(
      fc.property(
        workload,
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 6 }), fc.boolean()), { maxLength: 30 }),
        ({ rs, is }, schedule) => {
          const expected = runAll(rs, is, true);
          const t = newTask(join, undefined, true);
          const pos = { ranker: 0, impression: 0 };
          const got: TaskOutput[] = [];
          const deliver = (side: 'ranker' | 'impression', n: number, split: boolean) => {
            const src = (side === 'ranker' ? rs : is).slice(pos[side], pos[side] + n);
            pos[side] += src.length;
            const fetched = asFetch(src, split);
            const cols = rawColumns(fetched.records);
            // One run per response buffer: the columns split exactly where the buffers change.
            assert.equal(cols.length, fetched.buffers);
            for (const c of cols) t.pushColumns(side, c);
            if (pos[side] === (side === 'ranker' ? rs : is).length) t.setCaughtUp(side, true);
            got.push(...t.step(3).outputs);
          };
          for (const [r, n, split] of schedule) deliver(r ? 'ranker' : 'impression', n, split);
          deliver('ranker', rs.length, false);
          deliver('impression', is.length, true);
          got.push(...t.step(Number.MAX_SAFE_INTEGER).outputs);
          assert.deepEqual(summarize(got), expected);
          assert.equal(t.counters.recordsIn.ranker, rs.length);
          assert.equal(t.counters.recordsIn.impression, is.length);
        },
      ),
      { numRuns: 150 },
    );
  });
});

/**
 * Records laid out as kafkajs gives a fetch: keys and values are views into one response buffer
 * (into two when `split`: the second half as if decompressed apart), offsets as strings.
 */
function asFetch(src: RawInput[], split: boolean): { records: FetchedRecord[]; buffers: number } {
  const half = split ? Math.ceil(src.length / 2) : src.length;
  const records: FetchedRecord[] = [];
  let buffers = 0;
  for (const part of [src.slice(0, half), src.slice(half)]) {
    if (part.length === 0) continue;
    buffers++;
    // Some filler first and between records, so that byte offsets into the buffer are not 0.
    const pieces: Buffer[] = [Buffer.from('hdr')];
    for (const r of part) pieces.push(r.key ?? Buffer.alloc(0), r.raw, Buffer.from('|'));
    // Own memory (not the shared pool Buffer.concat may use for small sizes), as a response has.
    const joined = Buffer.concat(pieces);
    const buf = Buffer.allocUnsafeSlow(joined.length);
    joined.copy(buf);
    let at = 3;
    for (const r of part) {
      const k = r.key === null ? null : buf.subarray(at, at + r.key.length);
      at += r.key?.length ?? 0;
      const v = buf.subarray(at, at + r.raw.length);
      at += r.raw.length + 1;
      records.push({ offset: String(r.offset), key: k, value: v });
    }
  }
  return { records, buffers };
}

describe('rawColumns', () => {
  test('keeps offsets, null and empty keys, and reads a tombstone as an empty value', () => {
    const buf = Buffer.from('..k1v1v2..');
    const records: FetchedRecord[] = [
      { offset: '7', key: buf.subarray(2, 4), value: buf.subarray(4, 6) },
      { offset: '8', key: null, value: buf.subarray(6, 8) },
      { offset: '9', key: buf.subarray(8, 8), value: null },
    ];
    const [cols, ...rest] = rawColumns(records);
    assert.equal(rest.length, 0);
    assert.ok(cols);
    assert.deepEqual([...cols.offsets], [7, 8, 9]);
    const view = (s: number, e: number) => (s < 0 ? null : cols.buf.subarray(s, e).toString());
    const r = cols.ranges;
    assert.deepEqual(
      [0, 1, 2].map((i) => [view(r[4 * i + 2]!, r[4 * i + 3]!), view(r[4 * i]!, r[4 * i + 1]!)]),
      [
        ['k1', 'v1'],
        [null, 'v2'],
        ['', ''],
      ],
    );
  });

  test('starts a new run where a record lies in another buffer', () => {
    const a = Buffer.allocUnsafeSlow(4).fill('a');
    const b = Buffer.allocUnsafeSlow(4).fill('b');
    const cols = rawColumns([
      { offset: '0', key: null, value: a.subarray(0, 2) },
      { offset: '1', key: null, value: b.subarray(0, 2) },
      { offset: '2', key: b.subarray(2, 3), value: b.subarray(3, 4) },
    ]);
    assert.deepEqual(
      cols.map((c) => [...c.offsets]),
      [[0], [1, 2]],
    );
  });
});

test('deadLetterRaw: a value too large for a dead letter keeps its first bytes, its size and its SHA-256', () => {
  const big = randomBytes(1_048_512);
  const key = Buffer.from('user-7');
  const cut = deadLetterRaw(big, key, 256 * 1024);
  assert.equal(cut.raw_truncated, true);
  assert.equal(cut.raw.length, 256 * 1024 - 2 * key.length, 'the key counts twice (message key and field)');
  assert.deepEqual(cut.raw, big.subarray(0, cut.raw.length), 'a prefix of the original');
  assert.equal(cut.raw_size, big.length);
  assert.equal(cut.raw_sha256, createHash('sha256').update(big).digest('hex'));
  const small = randomBytes(1_000);
  assert.equal(cut.key_truncated, false);
  assert.deepEqual(deadLetterRaw(small, key, 256 * 1024), {
    key,
    key_truncated: false,
    key_size: null,
    key_sha256: null,
    raw: small,
    raw_truncated: false,
    raw_size: null,
    raw_sha256: null,
  });
  assert.equal(deadLetterRaw(big, null, undefined).raw_truncated, false, 'unbounded without a limit (files)');
  // A key up to a quarter of the room stays whole; the value gets what is left.
  const quarter = randomBytes(60_000);
  const kq = deadLetterRaw(big, quarter, 256 * 1024);
  assert.deepEqual([kq.key, kq.key_truncated, kq.raw.length], [quarter, false, 256 * 1024 - 120_000]);
});

test('deadLetterRaw: a key too large for a dead letter keeps its first bytes, its size and its SHA-256', () => {
  const max = 256 * 1024;
  const hugeKey = randomBytes(1_048_576);
  const small = randomBytes(1_000);
  const k = deadLetterRaw(small, hugeKey, max);
  assert.equal(k.key_truncated, true);
  assert.equal(k.key?.length, max / 4, 'a quarter of the room (it counts twice)');
  assert.deepEqual(k.key, hugeKey.subarray(0, max / 4), 'a prefix of the original key');
  assert.equal(k.key_size, hugeKey.length);
  assert.equal(k.key_sha256, createHash('sha256').update(hugeKey).digest('hex'));
  assert.deepEqual([k.raw, k.raw_truncated], [small, false], 'a small value stays whole');
  // Both huge: both cut, and together within the room.
  const big = randomBytes(1_048_512);
  const both = deadLetterRaw(big, hugeKey, max);
  assert.deepEqual([both.key_truncated, both.raw_truncated], [true, true]);
  assert.equal(2 * (both.key?.length ?? 0) + both.raw.length, max, 'the whole room, no more');
  assert.equal(both.raw_sha256, createHash('sha256').update(big).digest('hex'));
  assert.equal(both.key_sha256, k.key_sha256);
  // Sizes near the bound: never over it.
  for (const [kl, vl] of [
    [max / 2, 1],
    [max / 4 + 1, max / 2],
    [max / 4, max / 2 + 1],
    [max, max],
  ] as const) {
    const r = deadLetterRaw(Buffer.alloc(vl), Buffer.alloc(kl), max);
    assert.ok(2 * (r.key?.length ?? 0) + r.raw.length <= max, `key ${kl}, value ${vl}`);
    assert.equal(r.key_truncated, (r.key?.length ?? 0) < kl);
    assert.equal(r.raw_truncated, r.raw.length < vl);
  }
});

test('a poison record past deadLetterMaxBytes becomes one truncated MALFORMED dead letter, counted', () => {
  const t = new JoinTask({
    partition: 3,
    topics: { ranker: 'ro', impression: 'imp' },
    store: new MemoryJoinStore(),
    join: { windowMs: 1_000, allowedLatenessMs: 0, emitUnmatched: true },
    label: () => ({ pointwise: null, pairwise: null, listwise: null }),
    inputFormat: 'avro',
    now: () => 0,
    deadLetterMaxBytes: 64 * 1024,
  });
  const poison = randomBytes(1_048_512);
  t.push('ranker', [{ offset: 41, key: null, raw: poison }]);
  t.setCaughtUp('ranker', true);
  t.setCaughtUp('impression', true);
  const dead = t
    .step(10)
    .outputs.filter((o) => o.kind === 'deadLetter')
    .map((o) => o.value);
  assert.equal(dead.length, 1);
  assert.equal(dead[0]?.reason_code, 'MALFORMED');
  assert.deepEqual([dead[0]?.source_topic, dead[0]?.source_partition, dead[0]?.source_offset], ['ro', 3, 41]);
  assert.equal(dead[0]?.raw.length, 64 * 1024);
  assert.equal(dead[0]?.raw_size, poison.length);
  assert.equal(t.counters.deadLettersTruncated, 1);
  assert.equal(t.counters.malformed, 1);
  assert.deepEqual(t.nextOffsets(), { ranker: 42, impression: null });
  // A huge key: the dead letter's message key and key field are its first bytes, counted too.
  const hugeKey = randomBytes(1_048_576);
  t.push('ranker', [{ offset: 42, key: hugeKey, raw: randomBytes(100) }]);
  const out = t.step(20).outputs.filter((o) => o.kind === 'deadLetter');
  assert.equal(out.length, 1);
  const o = out[0]!;
  assert.ok(o.kind === 'deadLetter');
  assert.equal(o.key?.length, 16 * 1024, 'the message key is cut');
  assert.deepEqual(o.value.key, o.key, 'the field is the message key');
  assert.deepEqual(
    [o.value.key_truncated, o.value.key_size, o.value.raw_truncated],
    [true, hugeKey.length, false],
  );
  assert.equal(t.counters.deadLettersTruncated, 2);
});
