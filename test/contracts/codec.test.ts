import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import avro from 'avsc';
import fc from 'fast-check';
import {
  avroType,
  CONTRACT_NAMES,
  type Contracts,
  confluentSchemaId,
  type DeadLetter,
  decodeAvro,
  decodeConfluent,
  decodeJson,
  encodeAvro,
  encodeConfluent,
  encodeJson,
  schemaJson,
} from '../../src/contracts/index.ts';
import { DecodeError, RankdistillError } from '../../src/errors.ts';

const ranker: Contracts['RankerOutput'] = {
  request_id: 'r-1',
  user_id: 'u-9',
  ts: 1_700_000_000_123,
  model_version: 'teacher-v3',
  context: { hour_sin: 0.5, device: 1 },
  items: [
    {
      item_id: 'i-1',
      score: 2.5,
      objectives: { ctr: 1.2, like: -0.3, dwell: 0.7 },
      features: { price: 9.99 },
    },
    { item_id: 'i-2', score: -1.25, objectives: null, features: null },
  ],
};
const impression: Contracts['Impression'] = {
  request_id: 'r-1',
  user_id: 'u-9',
  ts: 1_700_000_000_999,
  items: [
    { item_id: 'i-2', position: 1, clicked: true, dwell_ms: 12_000, actions: ['like'] },
    { item_id: 'i-1', position: 2, clicked: false, dwell_ms: null, actions: null },
  ],
};
const samples: { [N in keyof Contracts]: Contracts[N] } = {
  RankerOutput: ranker,
  Impression: impression,
  PointwiseLabels: {
    id: 'r-1:pointwise',
    request_id: 'r-1',
    user_id: 'u-9',
    ts: 1_700_000_000_999,
    model_version: 'teacher-v3',
    matched: true,
    context: null,
    items: [
      {
        item_id: 'i-1',
        rank: 1,
        label: 1,
        weight: 2,
        teacher_logit: 2.5,
        soft_target: 0.92,
        clicked: false,
        features: null,
      },
    ],
  },
  PairwiseLabels: {
    id: 'r-1:pairwise',
    request_id: 'r-1',
    user_id: 'u-9',
    ts: 1,
    model_version: 'm',
    matched: false,
    context: { a: 1 },
    pairs: [{ pos_item: 'i-1', neg_item: 'i-2', pos_rank: 1, neg_rank: 2, weight: 0.5 }],
  },
  ListwiseLabels: {
    id: 'r-1:listwise',
    request_id: 'r-1',
    user_id: 'u-9',
    ts: 1,
    model_version: 'm',
    matched: true,
    context: null,
    items: [{ item_id: 'i-1', rank: 1, grade: 5, gain: 31, teacher_logit: null }],
  },
  SnapshotAnnouncement: {
    version: 3,
    created_at: 1_700_000_000_000,
    path: 'snapshots/v3',
    files: [{ name: 'model.json', sha256: 'ab'.repeat(32), bytes: 1234 }],
    model: { kind: 'two-tower', dim: 32, params: 123_456, num_items: 20_000, num_users: 5_000 },
    offsets: [{ topic: 'labels.pointwise', partition: 0, offset: 42 }],
    metrics: { recall_at_100_of_top10: 0.61, ndcg_at_10: 0.44 },
    parent_version: 2,
    status: 'published',
    gate: {
      decision: 'published',
      method: 'paired-bootstrap',
      against: 2,
      confidence: 0.95,
      primary: {
        metric: 'recall_at_100_of_top10',
        candidate: 0.61,
        current: 0.6,
        effect: 0.01,
        lo: -0.005,
        hi: 0.025,
        requests: 1000,
        tolerance: 0,
        verdict: 'same',
      },
      secondary: [],
      warnings: ['ndcg_at_10 lower than v2 by more than 0.02, not significant'],
    },
    live_metrics: { version: 2, requests: 5000, recall_at_100_of_top10: 0.58 },
  },
  DeadLetter: {
    source_topic: 'impressions',
    source_partition: 3,
    source_offset: 99,
    key: Buffer.from('u-9'),
    raw: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
    reason_code: 'MALFORMED',
    reason: 'corrupt Avro data',
    request_id: null,
    time: 1_700_000_000_000,
    raw_truncated: true,
    raw_size: 1_048_512,
    raw_sha256: 'ab'.repeat(32),
    key_truncated: true,
    key_size: 2_000_000,
    key_sha256: 'cd'.repeat(32),
  },
};

/** Decoded Avro records are instances of avsc's generated record classes: compare as plain data. */
function plain(x: unknown): unknown {
  if (Buffer.isBuffer(x)) return Buffer.from(x);
  if (Array.isArray(x)) return x.map(plain);
  if (x !== null && typeof x === 'object')
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

describe('contracts', () => {
  test('every schema loads and names itself', () => {
    for (const name of CONTRACT_NAMES) {
      const t = avroType(name);
      assert.equal(t.name, `rankdistill.v1.${name}`);
      assert.ok((schemaJson(name) as { doc?: string }).doc, `${name} has a doc`);
    }
  });

  test('every field of every schema has a doc, and optional (union with null) fields default to null', () => {
    const walk = (s: unknown, where: string): void => {
      if (s === null || typeof s !== 'object') return;
      if (Array.isArray(s)) {
        s.forEach((b, i) => {
          walk(b, `${where}[${i}]`);
        });
        return;
      }
      const o = s as Record<string, unknown>;
      if (o.type === 'record') {
        for (const f of o.fields as { name: string; type: unknown; doc?: string; default?: unknown }[]) {
          assert.ok(f.doc, `${where}.${f.name} has a doc`);
          if (Array.isArray(f.type) && f.type[0] === 'null') {
            assert.ok('default' in f && f.default === null, `${where}.${f.name} defaults to null`);
          }
          walk(f.type, `${where}.${f.name}`);
        }
      } else {
        walk(o.type, where);
        walk(o.items, where);
        walk(o.values, where);
      }
    };
    for (const name of CONTRACT_NAMES) walk(schemaJson(name), name);
  });

  for (const name of CONTRACT_NAMES) {
    test(`${name}: Avro, Confluent and JSON round trips give an equal record`, () => {
      const rec = samples[name];
      const avro = decodeAvro(name, encodeAvro(name, rec as never));
      assert.ok(avro.ok, avro.ok ? '' : avro.error.message);
      assert.deepEqual(plain(avro.value), plain(rec));
      const framed = encodeConfluent(name, rec as never, 77);
      assert.deepEqual(confluentSchemaId(framed), { ok: true, value: 77 });
      const conf = decodeConfluent(name, framed);
      assert.ok(conf.ok);
      assert.deepEqual(plain(conf.value), plain(rec));
      const json = decodeJson(name, encodeJson(name, rec as never));
      assert.ok(json.ok, json.ok ? '' : json.error.message);
      assert.deepEqual(plain(json.value), plain(rec));
    });
  }

  test('DeadLetter: records of the schema before key_truncated and records of today read both ways', () => {
    const now = schemaJson('DeadLetter') as { fields: Array<{ name: string }> };
    const before = avro.Type.forSchema({
      ...now,
      fields: now.fields.filter((f) => !f.name.startsWith('key_')),
    } as never);
    const old = {
      ...samples.DeadLetter,
      key_truncated: undefined,
      key_size: undefined,
      key_sha256: undefined,
    };
    const r = decodeAvro('DeadLetter', before.toBuffer(old), before);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.deepEqual(
      [r.value.key_truncated, r.value.key_size, r.value.key_sha256, r.value.raw_size],
      [false, null, null, 1_048_512],
      'an old dead letter reads with the defaults',
    );
    const back = before.createResolver(avroType('DeadLetter'));
    const o = before.fromBuffer(encodeAvro('DeadLetter', samples.DeadLetter), back as never) as {
      raw_sha256: string;
    };
    assert.equal(o.raw_sha256, 'ab'.repeat(32), 'an old reader reads a new dead letter');
  });

  test('encoding an invalid record names the field', () => {
    const bad = { ...ranker, items: [{ item_id: 'x', score: 'high', objectives: null, features: null }] };
    assert.throws(
      () => encodeAvro('RankerOutput', bad as never),
      (e: unknown) =>
        e instanceof RankdistillError && e.code === 'ENCODE_FAILED' && /items\.0\.score/.test(e.message),
    );
  });

  test('truncated bytes yield a typed DecodeError at every cut point', () => {
    const buf = encodeAvro('RankerOutput', ranker);
    for (let cut = 0; cut < buf.length; cut++) {
      const r = decodeAvro('RankerOutput', buf.subarray(0, cut));
      assert.equal(r.ok, false, `cut at ${cut} must fail`);
      if (!r.ok) {
        assert.ok(r.error instanceof DecodeError);
        assert.equal(r.error.code, 'DECODE_FAILED');
      }
    }
  });

  test('wrong-schema bytes are refused (an Impression is not a RankerOutput)', () => {
    const r = decodeAvro('RankerOutput', encodeAvro('Impression', impression));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /RankerOutput/);
  });

  test('trailing bytes are refused', () => {
    const buf = Buffer.concat([encodeAvro('Impression', impression), Buffer.from([1, 2, 3])]);
    const r = decodeAvro('Impression', buf);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /3 trailing bytes/);
  });

  test('a huge corrupt array count fails fast instead of looping (bounded readers)', () => {
    // request_id "a", user_id "b", ts 0, model_version "c", context null, then items block count 2^40.
    const head = Buffer.from([2, 0x61, 2, 0x62, 0, 2, 0x63, 0]);
    const count = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    const r = decodeAvro('RankerOutput', Buffer.concat([head, count]));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /exceeds|truncated/);
  });

  test('Confluent frames: missing magic byte, short frame and unknown schema ids are typed errors', () => {
    const body = encodeAvro('Impression', impression);
    const noMagic = decodeConfluent('Impression', Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), body]));
    assert.equal(noMagic.ok, false);
    assert.equal(decodeConfluent('Impression', Buffer.from([0, 0])).ok, false);
    const unknown = decodeConfluent(
      'Impression',
      encodeConfluent('Impression', impression, 5),
      () => undefined,
    );
    assert.equal(unknown.ok, false);
    if (!unknown.ok) assert.equal(unknown.error.code, 'SCHEMA_ID_UNKNOWN');
  });

  test('JSON input: omitted optional fields take their default; wrong types name the path', () => {
    const ok = decodeJson(
      'RankerOutput',
      JSON.stringify({
        request_id: 'r',
        user_id: 'u',
        ts: 5,
        model_version: 'm',
        items: [{ item_id: 'a', score: 1 }],
      }),
    );
    assert.ok(ok.ok);
    assert.equal(ok.value.context, null);
    assert.equal(ok.value.items[0]?.objectives, null);
    const bad = decodeJson(
      'RankerOutput',
      JSON.stringify({ request_id: 'r', user_id: 'u', ts: 'x', model_version: 'm', items: [] }),
    );
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.match(bad.error.message, /ts/);
    const notJson = decodeJson('Impression', '{"request_id": ');
    assert.equal(notJson.ok, false);
    if (!notJson.ok) assert.match(notJson.error.message, /invalid JSON/);
  });

  test('fast-check: arbitrary garbage never throws and never decodes to an invalid record', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...CONTRACT_NAMES), (bytes, name) => {
        const buf = Buffer.from(bytes);
        for (const r of [decodeAvro(name, buf), decodeConfluent(name, buf), decodeJson(name, buf)]) {
          if (r.ok) assert.ok(avroType(name).isValid(r.value));
          else assert.ok(r.error instanceof DecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('fast-check: mutated valid records never throw', () => {
    const valid = encodeAvro('RankerOutput', ranker);
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const buf = Buffer.from(valid);
        buf[at] = byte;
        const r = decodeAvro('RankerOutput', buf);
        if (r.ok) assert.ok(avroType('RankerOutput').isValid(r.value));
      }),
      { numRuns: 2000 },
    );
  });
});

test('maps decode to plain objects whatever their key sequence (shape-compiled fast path)', () => {
  const mk = (objectives: Record<string, number> | null) => ({
    ...ranker,
    items: [{ item_id: 'a', score: 1, objectives, features: null }],
  });
  const seqs = [
    { ctr: 1, like: 2 },
    { ctr: 1, like: 2 },
    { like: 2, ctr: 1 },
    { __proto__x: 1, 'a"b': 2, '\u2028': 3 },
    {},
  ];
  for (const o of seqs) {
    const r = decodeAvro('RankerOutput', encodeAvro('RankerOutput', mk(o)));
    assert.ok(r.ok);
    assert.deepEqual(Object.entries(r.value.items[0]?.objectives ?? {}), Object.entries(o));
  }
  const proto = JSON.parse('{"__proto__": 5, "x": 1}') as Record<string, number>;
  const r = decodeAvro('RankerOutput', encodeAvro('RankerOutput', mk(proto)));
  assert.ok(r.ok);
  assert.equal(Object.getPrototypeOf(r.value.items[0]?.objectives), Object.prototype);
});

describe('encodeJson of bytes fields', () => {
  test('dead letters: the same text as JSON.stringify with the base64 replacer over Buffer#toJSON', () => {
    // The reference: what encodeJson wrote before it turned top-level Buffers into base64 itself.
    const reference = (v: unknown) =>
      JSON.stringify(v, (_k, x: unknown) =>
        x !== null && typeof x === 'object' && (x as { type?: unknown }).type === 'Buffer'
          ? Buffer.from((x as { data: number[] }).data).toString('base64')
          : x,
      );
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null }),
        fc.option(fc.string({ maxLength: 12 }), { nil: null }),
        fc.string({ maxLength: 30 }),
        (raw, key, rid, reason) => {
          const dl: DeadLetter = {
            source_topic: 't',
            source_partition: 0,
            source_offset: 7,
            reason_code: 'MALFORMED',
            reason,
            request_id: rid,
            time: 1,
            key: key === null ? null : Buffer.from(key),
            key_truncated: false,
            key_size: null,
            key_sha256: null,
            raw: Buffer.from(raw),
            raw_truncated: false,
            raw_size: null,
            raw_sha256: null,
          };
          const text = encodeJson('DeadLetter', dl);
          assert.equal(text, reference(dl));
          assert.ok(Buffer.isBuffer(dl.raw), 'the record itself is left as it was');
        },
      ),
      { numRuns: 200 },
    );
  });
});
