/**
 * The impression column parser against the generic path (decodeAvro → validateImpression):
 * columns only for records the generic path decodes and accepts, holding the same values.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeAvro, encodeAvro } from '../../src/contracts/codec.ts';
import { ImpressionColumns, parseImpressionColumns } from '../../src/contracts/impression-columns.ts';
import type { Impression } from '../../src/contracts/index.ts';
import { validateImpression } from '../../src/labels/index.ts';
import { applyByteEdits, arbByteEdits } from './helpers.ts';

function decodeImpression(b: Buffer): Impression {
  const d = decodeAvro('Impression', b);
  if (!d.ok) throw d.error;
  return d.value;
}

const id = fc.oneof(
  { weight: 8, arbitrary: fc.stringMatching(/^[a-z0-9_-]{1,12}$/) },
  { weight: 1, arbitrary: fc.constantFrom('', 'é', 'ü-1') },
);

/** Impressions, valid or not: ids may be empty or non-ASCII, positions repeat, dwell may be negative. */
const arbImpression = fc
  .record({
    rid: id,
    user: id,
    ts: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.constant(-1)),
    items: fc.array(
      fc.record({
        item_id: id,
        position: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 40 }) }, fc.constantFrom(0, -3)),
        clicked: fc.boolean(),
        dwell_ms: fc.option(fc.integer({ min: -5, max: 2 ** 40 }), { nil: null }),
        actions: fc.option(fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }), { nil: null }),
      }),
      { maxLength: 14 },
    ),
  })
  .map(
    (o): Impression => ({
      request_id: o.rid,
      user_id: o.user,
      ts: o.ts,
      items: o.items,
    }),
  );

/** What a column parse must hold, as read from a decoded impression. */
function columnsOf(c: ImpressionColumns) {
  return {
    request_id: c.request_id,
    user_id: c.user_id,
    ts: c.ts,
    items: Array.from({ length: c.m }, (_, j) => ({
      item_id: c.buf.toString('latin1', c.ids[2 * j]!, c.ids[2 * j + 1]!),
      position: c.positions[j],
      clicked: c.clicked[j] === 1,
    })),
  };
}

function valuesOf(imp: Impression) {
  return {
    request_id: imp.request_id,
    user_id: imp.user_id,
    ts: imp.ts,
    items: imp.items.map((it) => ({ item_id: it.item_id, position: it.position, clicked: it.clicked })),
  };
}

const ascii = (s: string) => [...s].every((ch) => ch.charCodeAt(0) <= 0x7f);

describe('parseImpressionColumns', () => {
  test('columns exactly for valid ASCII records, with the values the generic path decodes', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(arbImpression, (imp) => {
        const raw = encodeAvro('Impression', imp);
        const decoded = decodeImpression(raw);
        const cols = parseImpressionColumns(raw, decodeImpression);
        const allAscii =
          ascii(imp.request_id) && ascii(imp.user_id) && imp.items.every((it) => ascii(it.item_id));
        const valid = validateImpression(decoded) === null && Number.isSafeInteger(decoded.ts);
        assert.equal(cols !== null, valid && allAscii, `columns iff valid and ASCII: ${JSON.stringify(imp)}`);
        if (cols === null) {
          refused++;
          return;
        }
        accepted++;
        assert.deepEqual(columnsOf(cols), valuesOf(decoded));
        assert.deepEqual(cols.decoded(), decoded);
        assert.deepEqual(cols.items, decoded.items);
      }),
      { numRuns: 600 },
    );
    assert.ok(accepted > 50 && refused > 50, `both outcomes seen (accepted ${accepted}, refused ${refused})`);
  });

  test('accepted corrupted bytes are bytes the generic path decodes and accepts, to the same values', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(arbImpression, arbByteEdits, (imp, edits) => {
        const raw = applyByteEdits(encodeAvro('Impression', imp), edits);
        const cols = parseImpressionColumns(raw, decodeImpression);
        if (cols === null) {
          refused++;
          return;
        }
        accepted++;
        const d = decodeAvro('Impression', raw);
        assert.ok(d.ok, 'the generic path decodes what the column path accepted');
        assert.equal(validateImpression(d.value), null);
        assert.deepEqual(columnsOf(cols), valuesOf(d.value));
      }),
      { numRuns: 1500 },
    );
    assert.ok(accepted > 0 && refused > 0, `both outcomes seen (accepted ${accepted}, refused ${refused})`);
  });

  test('refuses invalid records and forms it does not read, and reads array blocks with sizes', () => {
    const base: Impression = {
      request_id: 'r1',
      user_id: 'u1',
      ts: 5,
      items: [
        { item_id: 'a', position: 1, clicked: true, dwell_ms: 30, actions: ['like'] },
        { item_id: 'b', position: 2, clicked: false, dwell_ms: null, actions: null },
      ],
    };
    const parse = (imp: Impression) =>
      parseImpressionColumns(encodeAvro('Impression', imp), decodeImpression);
    assert.ok(parse(base) instanceof ImpressionColumns);
    assert.equal(parse({ ...base, items: [] })?.m, 0, 'nothing shown is valid');
    const [a, b] = base.items as [Impression['items'][0], Impression['items'][0]];
    const cases: Array<[string, Impression]> = [
      ['duplicate item', { ...base, items: [a, { ...b, item_id: 'a' }] }],
      ['duplicate position', { ...base, items: [{ ...a, position: 2 }, b] }],
      ['position 0', { ...base, items: [{ ...a, position: 0 }] }],
      ['negative dwell', { ...base, items: [{ ...a, dwell_ms: -1 }] }],
      ['empty item id', { ...base, items: [{ ...a, item_id: '' }] }],
      ['non-ASCII item id', { ...base, items: [{ ...a, item_id: 'é' }] }],
      ['empty request id', { ...base, request_id: '' }],
      ['negative ts', { ...base, ts: -1 }],
    ];
    for (const [name, imp] of cases) assert.equal(parse(imp), null, name);
    const raw = encodeAvro('Impression', base);
    assert.equal(
      parseImpressionColumns(Buffer.concat([raw, Buffer.from([0])]), decodeImpression),
      null,
      'trailing byte',
    );
    assert.equal(
      parseImpressionColumns(raw.subarray(0, raw.length - 1), decodeImpression),
      null,
      'truncated',
    );
    // The items array as one block with a negative count and its byte size (legal Avro).
    const head = 1 + 2 + 1 + 2 + 1; // request_id, user_id, ts
    assert.equal(raw[head], 4, 'two items, one block');
    const body = raw.subarray(head + 1, raw.length - 1);
    const sized = Buffer.concat([
      raw.subarray(0, head),
      Buffer.from([3, body.length * 2]),
      body,
      Buffer.from([0]),
    ]);
    const d = decodeAvro('Impression', sized);
    assert.ok(d.ok);
    const cols = parseImpressionColumns(sized, decodeImpression);
    assert.ok(cols !== null);
    assert.deepEqual(columnsOf(cols), valuesOf(d.value));
  });
});
