// kafkajs 2.2.4 grouped a sendBatch's messages per partition with `[...current, message]` for every
// message (quadratic time and garbage); patches/kafkajs+2.2.4.patch rewrites
// src/producer/groupMessagesPerPartition.js as one pass. These tests pin that the patched module is
// the one kafkajs loads and that it groups exactly as the original did (same partitions, same order).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import fc from 'fast-check';

const require = createRequire(import.meta.url);
const path = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');

interface Msg {
  key: string;
  n: number;
}
type Group = (opts: {
  topic: string;
  partitionMetadata: unknown[];
  messages: Msg[];
  partitioner: (o: { topic: string; partitionMetadata: unknown[]; message: Msg }) => number;
}) => Record<string, Msg[]>;
const group = require(path) as Group;

/** kafkajs 2.2.4's original grouping, as the reference. */
const original: Group = ({ topic, partitionMetadata, messages, partitioner }) => {
  if (partitionMetadata.length === 0) return {};
  return messages.reduce<Record<string, Msg[]>>((result, message) => {
    const partition = partitioner({ topic, partitionMetadata, message });
    const current = result[partition] ?? [];
    return Object.assign(result, { [partition]: [...current, message] });
  }, {});
};

describe('kafkajs groupMessagesPerPartition (patched)', () => {
  test('the patched one-pass module is what kafkajs loads', () => {
    const src = readFileSync(path, 'utf8');
    assert.match(src, /rankdistill patch/, `unpatched ${path}: did postinstall (patch-package) run?`);
    assert.doesNotMatch(src, /return Object\.assign\(result/);
  });

  test('groups like the original: same partitions, same order within each', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.string({ maxLength: 4 }), n: fc.nat() }), { maxLength: 300 }),
        fc.integer({ min: 1, max: 12 }),
        (messages, partitions) => {
          const opts = {
            topic: 't',
            partitionMetadata: Array.from({ length: partitions }, (_, i) => ({ partitionId: i })),
            messages,
            partitioner: ({ message }: { message: Msg }) => (message.n + message.key.length) % partitions,
          };
          const got = group(opts);
          assert.deepStrictEqual(Object.keys(got), Object.keys(original(opts)));
          assert.deepStrictEqual(got, original(opts));
        },
      ),
    );
    assert.deepStrictEqual(
      group({ topic: 't', partitionMetadata: [], messages: [{ key: 'a', n: 1 }], partitioner: () => 0 }),
      {},
    );
  });
});
