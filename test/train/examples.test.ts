import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  evalSetIdentity,
  gradeFromRank,
  HeldOut,
  hashFeatures,
  type LabelRecord,
  toUnits,
} from '../../src/train/examples.ts';
import { isHeldOut } from '../../src/train/hash.ts';
import { SyntheticTeacher } from '../../src/train/synthetic.ts';

const uo = { contextBuckets: 8, itemFeatureBuckets: 8, maxListLength: 5 };

test('hashed features: fixed width, stable, value preserved up to sign', () => {
  const a = hashFeatures({ hour: 13, mobile: 1 }, 8);
  assert.equal(a.length, 8);
  assert.deepEqual(Array.from(hashFeatures({ mobile: 1, hour: 13 }, 8)), Array.from(a));
  const total = Array.from(a).reduce((s, x) => s + Math.abs(x), 0);
  assert.ok(total === 14 || total === 12, `|13| + |1| (or a collision 13 − 1), found ${total}`);
  assert.equal(hashFeatures(null, 8).length, 8);
  assert.equal(
    hashFeatures({ x: Number.NaN }, 4).every((v) => v === 0),
    true,
  );
});

test('units: one per pointwise item, per pair, per list (truncated to maxListLength)', () => {
  const t = new SyntheticTeacher({ users: 5, items: 40, candidates: 12, k: 3, seed: 1, clicks: true });
  const [pw, pr, lw] = t.next(['pointwise', 'pairwise', 'listwise']);
  assert.ok(pw && pr && lw);
  const pu = toUnits(pw, uo);
  assert.equal(pu.length, 12);
  const first = pu[0];
  assert.ok(first?.kind === 'point' && first.positive && first.target === 1 && first.known === 1);
  assert.equal(toUnits(pr, uo).length, pr.kind === 'pairwise' ? pr.value.pairs.length : -1);
  const lu = toUnits(lw, uo);
  assert.equal(lu.length, 1);
  assert.ok(lu[0]?.kind === 'list' && lu[0].items.length === 5 && lu[0].gains[0] === 31);
});

test('held-out split is a fixed function of request_id, close to the percentage', () => {
  // a larger slice contains the smaller one: the split is a threshold on a fixed hash
  fc.assert(fc.property(fc.string(), (id) => !isHeldOut(id, 5) || isHeldOut(id, 10)));
  let n = 0;
  for (let i = 0; i < 20_000; i++) if (isHeldOut(`req-${i}`, 5)) n++;
  assert.ok(n > 800 && n < 1200, `${n} of 20000 held out at 5%`);
  assert.equal(isHeldOut('anything', 0), false);
});

test('HeldOut merges a request’s pointwise and listwise records and stays bounded', () => {
  const h = new HeldOut(100, 3, 0);
  const t = new SyntheticTeacher({ users: 5, items: 40, candidates: 12, seed: 2, clicks: true });
  for (const r of t.next(['pointwise', 'listwise', 'pairwise'])) assert.equal(h.offer(r), true);
  const [e] = h.requests();
  assert.ok(e);
  assert.equal(e.teacher.length, 12);
  assert.equal(e.grades.get(e.teacher[0] as string), 5);
  assert.ok(e.clicks.size > 0);
  for (let i = 0; i < 50; i++) for (const r of t.next(['listwise'])) h.offer(r);
  assert.equal(h.size, 3);
  assert.equal(gradeFromRank(1), 5);
  assert.equal(gradeFromRank(6), 4);
  assert.equal(gradeFromRank(40), 0);
});

/** A stream of label records (pointwise + listwise + pairwise per request), deterministic per seed. */
function stream(seed: number, requests: number): LabelRecord[] {
  const t = new SyntheticTeacher({ users: 20, items: 100, candidates: 10, seed, clicks: true });
  const out: LabelRecord[] = [];
  for (let i = 0; i < requests; i++) out.push(...t.next(['pointwise', 'listwise', 'pairwise']));
  return out;
}

test('the eval set is identical across two runs over the same input (no Math.random)', () => {
  const records = stream(4, 300);
  const sets = [0, 1].map(() => {
    const h = new HeldOut(20, 25, 8);
    for (const r of records) h.offer(r);
    return h;
  });
  const [a, b] = sets as [HeldOut, HeldOut];
  assert.equal(a.size, 25);
  assert.deepEqual(
    a.requests().map((r) => r.requestId),
    b.requests().map((r) => r.requestId),
  );
  assert.deepEqual(a.identity(), b.identity());
  // the first 25 held-out requests in stream order
  const firstIds = [
    ...new Set(records.map((r) => r.value.request_id).filter((id) => isHeldOut(id, 20))),
  ].slice(0, 25);
  assert.deepEqual(
    a.requests().map((r) => r.requestId),
    firstIds,
  );
});

test('a full eval set is frozen: later held-out requests are held out (never trained on) but not evaluated', () => {
  const records = stream(5, 400);
  const h = new HeldOut(20, 10, 8);
  let heldOut = 0;
  let before: ReturnType<HeldOut['identity']> | undefined;
  for (const r of records) {
    if (h.full && before === undefined) before = h.identity();
    if (h.offer(r)) heldOut++;
    else assert.equal(isHeldOut(r.value.request_id, 20), false);
  }
  assert.ok(before);
  assert.equal(h.size, 10);
  assert.ok(heldOut > 30 * 2, `${heldOut} held-out records`);
  assert.deepEqual(h.identity(), before);
});

test('eval set identity: order-free, changes with any request or grade; stored form round-trips it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 30 }), (seed, max) => {
      const h = new HeldOut(30, max, 8);
      for (const r of stream(seed, 60)) h.offer(r);
      const id = h.identity();
      assert.deepEqual(evalSetIdentity([...h.requests()].reverse()), id);
      const back = new HeldOut(30, max, 8);
      back.restore(JSON.parse(JSON.stringify(h.toJSON())));
      assert.deepEqual(back.identity(), id);
      assert.deepEqual(back.requests(), h.requests());
      const first = h.requests()[0];
      if (first === undefined) return;
      const changed = h.requests().slice();
      changed[0] = { ...first, grades: new Map([...first.grades].map(([k, g]) => [k, g + 1])) };
      assert.notEqual(evalSetIdentity(changed).hash, id.hash);
      assert.notEqual(evalSetIdentity(h.requests().slice(1)).hash, id.hash);
    }),
    { numRuns: 25 },
  );
});
