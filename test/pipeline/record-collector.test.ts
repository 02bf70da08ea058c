// Unit tests of the pure helpers of the labeler's record collector (the service is tested against a
// real broker in test/integration/label-*.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { chunkMessages } from '../../src/pipeline/record-collector.ts';

describe('chunkMessages', () => {
  test('bounds the value bytes of each chunk and keeps every message in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 3000 })), {
          maxLength: 60,
        }),
        (spec) => {
          const all = ['a', 'b', 'c'].map((topic) => ({
            topic,
            messages: spec
              .map(([t, n], i) => ({ t, n, i }))
              .filter((x) => x.t === topic)
              .map((x) => ({ key: String(x.i), value: Buffer.alloc(x.n) })),
          }));
          const chunks = chunkMessages(all, 4096);
          for (const c of chunks) {
            const bytes = c
              .flatMap((tm) => tm.messages)
              .reduce((s, m) => s + (m.value as Buffer).length + 64, 0);
            assert.ok(
              bytes <= 4096 || c.flatMap((tm) => tm.messages).length === 1,
              `chunk of ${bytes} bytes`,
            );
          }
          for (const topic of ['a', 'b', 'c']) {
            const flat = chunks.flatMap((c) =>
              c.filter((tm) => tm.topic === topic).flatMap((tm) => tm.messages),
            );
            assert.deepEqual(
              flat.map((m) => m.key),
              all.find((x) => x.topic === topic)!.messages.map((m) => m.key),
            );
          }
        },
      ),
    );
  });
});
