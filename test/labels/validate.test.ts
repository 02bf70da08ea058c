import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { validateImpression, validateRankerOutput } from '../../src/labels/validate.ts';
import { impression, ranker } from './helpers.ts';

function withItem(r: RankerOutput, i: number, patch: Record<string, unknown>): RankerOutput {
  return { ...r, items: r.items.map((it, k) => (k === i ? ({ ...it, ...patch } as typeof it) : it)) };
}

describe('validateRankerOutput', () => {
  const ok = ranker(['a', 'b', 'c']);

  test('accepts a valid record', () => {
    assert.equal(validateRankerOutput(ok), null);
    assert.equal(validateRankerOutput(ranker(['only'])), null);
  });

  test('rejects NaN and ±Infinity scores with the item named', () => {
    assert.match(
      validateRankerOutput(withItem(ok, 1, { score: Number.NaN }))!,
      /items\[1\]\.score must be finite, found NaN/,
    );
    assert.match(
      validateRankerOutput(withItem(ok, 0, { score: Number.POSITIVE_INFINITY }))!,
      /items\[0\]\.score .*Infinity/,
    );
    assert.match(validateRankerOutput(withItem(ok, 2, { score: Number.NEGATIVE_INFINITY }))!, /-Infinity/);
  });

  test('rejects non-finite objectives, features and context', () => {
    assert.match(
      validateRankerOutput(withItem(ok, 2, { objectives: { ctr: 1, like: Number.NaN } }))!,
      /items\[2\]\.objectives\.like must be finite/,
    );
    assert.match(
      validateRankerOutput(withItem(ok, 0, { features: { f: Number.POSITIVE_INFINITY } }))!,
      /items\[0\]\.features\.f must be finite/,
    );
    assert.match(
      validateRankerOutput({ ...ok, context: { hour: Number.NaN } })!,
      /context\.hour must be finite/,
    );
  });

  test('rejects empty ids, bad ts and empty item lists', () => {
    assert.match(validateRankerOutput({ ...ok, request_id: '' })!, /request_id must be a non-empty string/);
    assert.match(validateRankerOutput({ ...ok, user_id: '' })!, /user_id must be a non-empty string/);
    assert.match(validateRankerOutput({ ...ok, ts: -1 })!, /ts must be a non-negative integer/);
    assert.match(validateRankerOutput({ ...ok, ts: 1.5 })!, /ts must be/);
    assert.match(validateRankerOutput({ ...ok, items: [] })!, /at least one candidate/);
    assert.match(
      validateRankerOutput(withItem(ok, 1, { item_id: '' }))!,
      /items\[1\]\.item_id must be a non-empty string/,
    );
  });

  test('rejects duplicate item ids, naming both places', () => {
    assert.equal(
      validateRankerOutput(ranker(['a', 'b', 'c', 'b'])),
      'item_id "b" appears twice (items[1] and items[3]); each candidate must appear once',
    );
  });

  test('finds duplicates among many long ids sharing a prefix and suffix', () => {
    const ids = Array.from({ length: 600 }, (_, i) => `catalog/section-${i}/items/0000000000000001`);
    assert.equal(validateRankerOutput(ranker(ids)), null);
    ids.push(ids[417]!);
    assert.match(validateRankerOutput(ranker(ids))!, /items\[417\] and items\[600\]/);
  });
});

describe('validateImpression', () => {
  test('accepts a valid impression, and an empty one (matched, nothing shown)', () => {
    assert.equal(
      validateImpression(
        impression([
          ['a', 1, true],
          ['b', 2, false],
        ]),
      ),
      null,
    );
    assert.equal(validateImpression(impression([])), null);
  });

  test('rejects positions below 1 or not integers', () => {
    assert.match(
      validateImpression(impression([['a', 0, false]]))!,
      /items\[0\]\.position must be an integer >= 1, found 0/,
    );
    assert.match(
      validateImpression(impression([['a', 1.5, false]]))!,
      /position must be an integer >= 1, found 1.5/,
    );
  });

  test('rejects duplicate item ids and duplicate positions', () => {
    assert.match(
      validateImpression(
        impression([
          ['a', 1, false],
          ['a', 2, true],
        ]),
      )!,
      /item_id "a" shown twice \(items\[0\] and items\[1\]\)/,
    );
    assert.match(
      validateImpression(
        impression([
          ['a', 2, false],
          ['b', 1, true],
          ['c', 2, false],
        ]),
      )!,
      /position 2 used twice \(items\[0\] and items\[2\]\)/,
    );
  });

  test('rejects empty ids, bad ts and bad dwell', () => {
    const ok = impression([['a', 1, true]]);
    assert.match(validateImpression({ ...ok, request_id: '' })!, /request_id/);
    assert.match(validateImpression({ ...ok, ts: Number.NaN })!, /ts must be/);
    const badDwell: Impression = { ...ok, items: [{ ...ok.items[0]!, dwell_ms: -5 }] };
    assert.match(validateImpression(badDwell)!, /dwell_ms must be null or a finite number >= 0, found -5/);
    assert.match(validateImpression(impression([['', 1, true]]))!, /item_id must be a non-empty string/);
  });
});
