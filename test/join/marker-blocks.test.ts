import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ChangeRecordingStore } from '../../src/join/changelog.ts';
import { decodeEntry, decodeStreamTime, encodeEntry, STREAM_TIME_KEY } from '../../src/join/entry-codec.ts';
import { MarkerBlockStore } from '../../src/join/marker-blocks.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import { JoinOperator } from '../../src/join/operator.ts';
import type { BlockEntry, JoinEffect } from '../../src/join/types.ts';
import { iIn, rIn } from './helpers.ts';

/** What an effect decided, without the decoded records (compared across stores). */
function summary(e: JoinEffect): string {
  switch (e.type) {
    case 'joined':
    case 'unmatched':
      return `${e.type}:${e.ranker.request_id}`;
    case 'dead':
      return `dead:${e.reason}:${e.requestId}`;
    case 'expired-unmatched-dropped':
      return `dropped:${e.requestId}`;
    case 'duplicate':
      return `duplicate:${e.side}:${e.requestId}`;
  }
}

/** A store chain as the service builds it: blocks over a changelog-recording store over memory. */
function chain(base: MemoryJoinStore) {
  const logged = new ChangeRecordingStore(base);
  const blocks = new MarkerBlockStore(logged);
  return { logged, blocks };
}

describe('MarkerBlockStore', () => {
  test('fast-check: the operator over blocks (sealed at any point, restored from the changelog) decides exactly as over a plain store', () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const op = fc.oneof(
      {
        weight: 8,
        arbitrary: fc.record({
          t: fc.constant('rec' as const),
          side: fc.constantFrom('ranker' as const, 'impression' as const),
          id: fc.constantFrom(...ids),
          ts: fc.integer({ min: 0, max: 120 }),
        }),
      },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('seal' as const) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('restart' as const) }) },
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 150 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 0, max: 10 }),
        fc.boolean(),
        (ops, windowMs, allowedLatenessMs, emitUnmatched) => {
          const cfg = { windowMs, allowedLatenessMs, emitUnmatched };
          const refStore = new MemoryJoinStore();
          const ref = new JoinOperator(refStore, cfg);
          // The changelog's compacted content so far (what a restore reads), and the live chain.
          const replica = new Map<string, Buffer>();
          let replicaTime: number | null = null;
          let live = chain(new MemoryJoinStore());
          let sut = new JoinOperator(live.blocks, cfg);
          const commit = () => {
            live.blocks.seal();
            for (const c of live.logged.drainChanges()) {
              if (c.key === STREAM_TIME_KEY) replicaTime = decodeStreamTime(c.value as Buffer);
              else if (c.value === null) replica.delete(c.key);
              else replica.set(c.key, c.value);
            }
          };
          for (const [i, o] of ops.entries()) {
            if (o.t === 'seal') {
              commit();
              continue;
            }
            if (o.t === 'restart') {
              commit();
              const base = new MemoryJoinStore();
              for (const [k, v] of replica) base.put(k, decodeEntry(v));
              if (replicaTime !== null) base.setStreamTime(replicaTime);
              live = chain(base);
              sut = new JoinOperator(live.blocks, cfg);
              continue;
            }
            const input = o.side === 'ranker' ? rIn(o.id, o.ts) : iIn(o.id, o.ts);
            assert.deepEqual(sut.process(input).map(summary), ref.process(input).map(summary), `op ${i}`);
            assert.equal(
              live.blocks.pending(),
              refStore.scan('r:').length + refStore.scan('i:').length,
              `pending after op ${i}`,
            );
          }
          // Closing every window decides the same, and leaves the same (empty) state behind.
          const end = Number.POSITIVE_INFINITY;
          assert.deepEqual(sut.sweep(end).map(summary), ref.sweep(end).map(summary));
          live.blocks.seal();
          sut.sweep(end);
          assert.equal(live.blocks.size(), 0);
          assert.equal(live.blocks.inner.size(), 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a step of markers is one block: one changelog record, and one tombstone once all expired', () => {
    const { logged, blocks } = chain(new MemoryJoinStore());
    logged.drainChanges();
    for (const [id, at] of [
      ['r1', 10],
      ['r2', 30],
      ['r3', 20],
    ] as const)
      blocks.put(`d:${id}`, { kind: 'joined', ts: at - 10, expiresAt: at }, true);
    blocks.seal();
    const put = logged.drainChanges();
    assert.deepEqual(
      put.map((c) => c.key),
      ['b:0'],
    );
    const block = decodeEntry(put[0]!.value as Buffer) as BlockEntry;
    assert.equal(block.kind, 'block');
    assert.equal(block.expiresAt, 30, 'the block lives as long as its last marker');
    assert.equal(blocks.size(), 3);
    assert.deepEqual(blocks.get('d:r2'), { kind: 'joined', ts: 20, expiresAt: 30 });
    // Before its last marker expired the block stays (r1 is expired only by the operator's view).
    assert.deepEqual(blocks.expiring(30, 10), []);
    const due = blocks.expiring(31, 10);
    assert.deepEqual(
      due.map(([k]) => k),
      ['b:0'],
    );
    blocks.delete('b:0');
    assert.deepEqual(logged.drainChanges(), [{ key: 'b:0', value: null }]);
    assert.equal(blocks.get('d:r2'), undefined);
    assert.equal(blocks.size(), 0);
  });

  test('a marker put again leaves its old block (rewritten, or deleted when it was the last)', () => {
    const base = new MemoryJoinStore();
    const { logged, blocks } = chain(base);
    blocks.put('d:x', { kind: 'unmatched', ts: 1, expiresAt: 21 }, true);
    blocks.put('d:y', { kind: 'joined', ts: 2, expiresAt: 12 }, true);
    blocks.seal(); // b:0 = {x, y}
    blocks.put('d:z', { kind: 'joined', ts: 3, expiresAt: 13 }, true);
    blocks.seal(); // b:1 = {z}
    logged.drainChanges();
    blocks.put('d:x', { kind: 'joined', ts: 5, expiresAt: 15 }); // unmatched → joined
    blocks.put('d:z', { kind: 'joined', ts: 6, expiresAt: 16 });
    blocks.seal(); // b:2 = {x, z}
    const changes = new Map(logged.drainChanges().map((c) => [c.key, c.value]));
    assert.equal(changes.get('b:1'), null, 'z was b:1 alone: tombstone');
    const b0 = decodeEntry(changes.get('b:0') as Buffer) as BlockEntry;
    const only = new MemoryJoinStore();
    only.put('b:0', b0);
    const reread = new MarkerBlockStore(only);
    assert.deepEqual(reread.get('d:y'), { kind: 'joined', ts: 2, expiresAt: 12 });
    assert.equal(reread.get('d:x'), undefined, 'x left b:0');
    // A fresh layer over the same store (a restart) finds each id in its one block.
    const again = new MarkerBlockStore(base);
    assert.deepEqual(again.get('d:x'), { kind: 'joined', ts: 5, expiresAt: 15 });
    assert.deepEqual(again.get('d:z'), { kind: 'joined', ts: 6, expiresAt: 16 });
    assert.equal(again.size(), 3);
  });

  test('markers stored one per entry (state written before blocks) are read, replaced and expired', () => {
    const base = new MemoryJoinStore();
    base.put('d:old', { kind: 'unmatched', ts: 1, expiresAt: 21 });
    base.put('d:gone', { kind: 'joined', ts: 1, expiresAt: 11 });
    const blocks = new MarkerBlockStore(base);
    assert.deepEqual(blocks.get('d:old'), { kind: 'unmatched', ts: 1, expiresAt: 21 });
    blocks.put('d:old', { kind: 'joined', ts: 4, expiresAt: 14 });
    assert.equal(base.get('d:old'), undefined, 'the single entry is replaced by the blocked marker');
    blocks.seal();
    assert.deepEqual(blocks.get('d:old'), { kind: 'joined', ts: 4, expiresAt: 14 });
    assert.deepEqual(
      blocks.expiring(12, 10).map(([k]) => k),
      ['d:gone'],
    );
    assert.equal(blocks.pending(), 0, 'single markers are not pending records');
    blocks.delete('d:gone');
    assert.equal(base.get('d:gone'), undefined);
    assert.equal(blocks.size(), 1);
  });

  test('a b: entry that is not a block is a clear state error, not a silent skip', () => {
    const base = new MemoryJoinStore();
    base.put('b:7', { kind: 'joined', ts: 1, expiresAt: 2 });
    assert.throws(
      () => new MarkerBlockStore(base),
      (e: Error & { code?: string }) => e.code === 'STATE_STORE_FAILED' && /b:7/.test(e.message),
    );
  });

  test('block entries survive the entry codec byte for byte', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.double({ noNaN: true }),
        fc.double({ noNaN: true }),
        (bytes, ts, expiresAt) => {
          const e: BlockEntry = { kind: 'block', ts, expiresAt, markers: Buffer.from(bytes) };
          assert.deepEqual(decodeEntry(encodeEntry(e)), e);
        },
      ),
    );
  });
});
