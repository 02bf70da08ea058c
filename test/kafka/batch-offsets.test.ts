// kafkajs 2.2.4's consumer Batch kept the messages at or after the fetched offset by parsing each
// message's offset string into a Long; patches/kafkajs+2.2.4.patch compares canonical decimal
// strings by length and then lexicographically, and leaves anything else to the Long comparison.
// These tests pin that the patched module is the one kafkajs loads and that it keeps exactly the
// messages the original filter kept, in the same order.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import fc from 'fast-check';

const require = createRequire(import.meta.url);
const path = require.resolve('kafkajs/src/consumer/batch.js');

interface Msg {
  offset: unknown;
  n: number;
  isControlRecord?: boolean;
}
type BatchCtor = new (
  topic: string,
  fetchedOffset: unknown,
  partitionData: {
    partition: number;
    highWatermark: string;
    abortedTransactions: unknown[];
    messages: Msg[];
  },
) => { messagesWithinOffset: Msg[]; messages: Msg[] };
const Batch = require(path) as BatchCtor;
const Long = require('kafkajs/src/utils/long.js') as {
  fromValue(v: unknown): { gte(o: unknown): boolean };
};

/** kafkajs 2.2.4's original filter, as the reference. */
const original = (messages: Msg[], fetchedOffset: unknown): Msg[] => {
  const f = Long.fromValue(fetchedOffset);
  return messages.filter((m) => Long.fromValue(m.offset).gte(f));
};

/** Offsets as the record decoder prints them, and odd forms that must take the Long path. */
const offset = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String),
  fc.nat({ max: 1_000 }).map(String),
  fc.nat({ max: 1_000 }),
  fc.nat({ max: 999 }).map((n) => `0${n}`),
  fc.bigInt({ min: -(2n ** 63n), max: -1n }).map(String),
);

describe('kafkajs consumer Batch offset filter (patched)', () => {
  test('the patched module is what kafkajs loads', () => {
    const src = readFileSync(path, 'utf8');
    assert.match(src, /rankdistill patch/, `unpatched ${path}: did postinstall (patch-package) run?`);
  });

  test('keeps the same messages as the original, in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ offset, n: fc.nat() }), { maxLength: 50 }),
        fc.oneof(offset, fc.constantFrom('0', '5', '10', '100', '9007199254740993')),
        (messages, fetched) => {
          const b = new Batch('t', fetched, {
            partition: 0,
            highWatermark: '0',
            abortedTransactions: [],
            messages,
          });
          assert.deepStrictEqual(b.messagesWithinOffset, original(messages, fetched));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  test('a fetch at offset 98 of sorted offsets around it keeps 98 and after, not the 9s', () => {
    const messages = ['9', '97', '98', '99', '100', '1000'].map((o, n) => ({ offset: o, n }));
    const b = new Batch('t', '98', {
      partition: 0,
      highWatermark: '1001',
      abortedTransactions: [],
      messages,
    });
    assert.deepStrictEqual(
      b.messages.map((m) => m.offset),
      ['98', '99', '100', '1000'],
    );
  });
});
