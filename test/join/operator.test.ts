import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RankerOutput } from '../../src/contracts/index.ts';
import { MemoryJoinStore } from '../../src/join/memory-store.ts';
import { JoinOperator } from '../../src/join/operator.ts';
import type { JoinEffect } from '../../src/join/types.ts';
import { iIn, rIn } from './helpers.ts';

const W = 10;
function op(lateness = 0, emitUnmatched = true) {
  const store = new MemoryJoinStore();
  return { store, op: new JoinOperator(store, { windowMs: W, allowedLatenessMs: lateness, emitUnmatched }) };
}
const kinds = (effs: JoinEffect[]) => effs.map((e) => (e.type === 'dead' ? `dead:${e.reason}` : e.type));

describe('JoinOperator', () => {
  test('ranker then impression joins, and the ranker comes from state', () => {
    const { op: o, store } = op();
    assert.deepEqual(o.process(rIn('a', 0)), []);
    const effs = o.process(iIn('a', 5));
    assert.deepEqual(kinds(effs), ['joined']);
    const j = effs[0] as Extract<JoinEffect, { type: 'joined' }>;
    assert.equal(j.ranker.request_id, 'a');
    assert.equal(j.impression.ts, 5);
    assert.equal(store.get('r:a'), undefined, 'pending ranker deleted');
    assert.equal(store.get('d:a')?.kind, 'joined');
  });

  test('a pending record is joined from its cached decoding, unless 16,384 records came after it', () => {
    const joinedRanker = (gap: number) => {
      const store = new MemoryJoinStore();
      const o = new JoinOperator(store, { windowMs: 1e9, allowedLatenessMs: 1e9, emitUnmatched: true });
      const first = rIn('a', 0);
      o.process(first);
      // Other lone records in between, each remembered (and aging the first).
      for (let k = 0; k < gap; k++) o.process(rIn(`x${k}`, 1));
      const j = o.process(iIn('a', 2))[0] as Extract<JoinEffect, { type: 'joined' }>;
      assert.equal(j.ranker.request_id, 'a');
      // Decoded again, it may be a column view (src/contracts/ranker-columns.ts): compare fields.
      const fields = (r: RankerOutput) => ({
        request_id: r.request_id,
        user_id: r.user_id,
        ts: r.ts,
        model_version: r.model_version,
        context: r.context,
        items: JSON.parse(JSON.stringify(r.items)),
      });
      assert.deepEqual(fields(j.ranker), fields(first.value as RankerOutput), 'the same record either way');
      return j.ranker === first.value;
    };
    assert.equal(joinedRanker(100), true, 'recent: the cached object');
    assert.equal(joinedRanker(16_384), false, 'old: decoded again from its stored bytes');
  });

  test('impression then ranker joins', () => {
    const { op: o } = op();
    assert.deepEqual(o.process(iIn('a', 3)), []);
    assert.deepEqual(kinds(o.process(rIn('a', 1))), ['joined']);
  });

  test('window edge: exactly windowMs apart joins, windowMs + 1 does not', () => {
    const a = op(5);
    a.op.process(rIn('x', 100));
    assert.deepEqual(kinds(a.op.process(iIn('x', 100 + W))), ['joined']);
    const b = op(5);
    b.op.process(rIn('x', 100));
    assert.deepEqual(kinds(b.op.process(iIn('x', 100 + W + 1))), []);
    assert.equal(b.store.get('r:x')?.kind, 'pending');
    assert.equal(b.store.get('i:x')?.kind, 'pending');
  });

  test('a second copy of either side is a duplicate, dropped, not dead-lettered', () => {
    const { op: o } = op();
    o.process(rIn('a', 0));
    assert.deepEqual(kinds(o.process(rIn('a', 0))), ['duplicate'], 'copy while pending');
    o.process(iIn('a', 2));
    assert.deepEqual(kinds(o.process(iIn('a', 2))), ['duplicate'], 'impression copy after join');
    assert.deepEqual(kinds(o.process(rIn('a', 0))), ['duplicate'], 'ranker copy after join');
  });

  test('a record whose window closed before it arrived is LATE', () => {
    const { op: o } = op(2);
    o.process(rIn('z', 100)); // stream time 100, watermark 98
    const effs = o.process(iIn('q', 87)); // 87 + 10 < 98
    assert.deepEqual(kinds(effs), ['dead:LATE']);
    const e = o.process(iIn('q2', 88)); // 88 + 10 = 98: not late (window end inclusive)
    assert.deepEqual(kinds(e), []);
  });

  test('watermark passing a lone ranker output emits it unmatched; lone impression is an orphan', () => {
    const { op: o, store } = op();
    o.process(rIn('r', 0));
    o.process(iIn('i', 1));
    assert.deepEqual(kinds(o.process(rIn('t', 10))), [], 'watermark 10 = 0 + W: not yet');
    const effs = o.process(rIn('t2', 12));
    assert.deepEqual(kinds(effs), ['unmatched', 'dead:ORPHAN'], 'expired in expiresAt order');
    assert.equal(store.get('d:r')?.kind, 'unmatched');
    const orphan = effs[1] as Extract<JoinEffect, { type: 'dead' }>;
    assert.equal(orphan.requestId, 'i');
    assert.equal(orphan.ref.source.topic, 'imp');
  });

  test('emitUnmatched off: a lone ranker output is counted as dropped', () => {
    const { op: o } = op(0, false);
    o.process(rIn('r', 0));
    assert.deepEqual(kinds(o.process(rIn('t', 20))), ['expired-unmatched-dropped']);
  });

  test('an impression meeting a ranker output already emitted unmatched is LATE, not a second label', () => {
    const { op: o } = op(5);
    o.process(rIn('a', 0));
    o.process(rIn('b', 16)); // watermark 11 > 0 + 10: a emitted unmatched
    const effs = o.process(iIn('a', 9)); // 9 + 10 >= 11: not late by itself
    assert.deepEqual(kinds(effs), ['dead:LATE']);
  });

  test('done markers expire so state stays bounded', () => {
    const { op: o, store } = op();
    o.process(rIn('a', 0));
    o.process(iIn('a', 1));
    o.process(rIn('b', 100));
    o.process(iIn('b', 100));
    o.process(rIn('c', 1000));
    assert.equal(store.get('d:a'), undefined);
    assert.equal(store.get('d:b'), undefined);
    assert.equal(store.size(), 1);
  });

  test('the worked timeline in operator.ts', () => {
    const { op: o } = op(2);
    const seq: Array<[string, JoinEffect[]]> = [];
    const run = (label: string, e: JoinEffect[]) => seq.push([label, e]);
    run('R(a)0', o.process(rIn('a', 0)));
    run('I(b)3', o.process(iIn('b', 3)));
    run('I(a)9', o.process(iIn('a', 9)));
    run('R(a)0', o.process(rIn('a', 0)));
    run('R(c)5', o.process(rIn('c', 5)));
    run('R(d)17', o.process(rIn('d', 17)));
    run('R(e)18', o.process(rIn('e', 18)));
    run('I(c)12', o.process(iIn('c', 12)));
    run('I(f)3', o.process(iIn('f', 3)));
    run('R(g)40', o.process(rIn('g', 40)));
    assert.deepEqual(
      seq.map(([l, e]) => `${l}=${kinds(e).join('+')}`),
      [
        'R(a)0=',
        'I(b)3=',
        'I(a)9=joined',
        'R(a)0=duplicate',
        'R(c)5=',
        'R(d)17=dead:ORPHAN',
        'R(e)18=unmatched',
        'I(c)12=dead:LATE',
        'I(f)3=dead:LATE',
        'R(g)40=unmatched+unmatched',
      ],
    );
  });
});
