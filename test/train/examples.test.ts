import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { gradeFromRank, HeldOut, hashFeatures, toUnits } from '../../src/train/examples.ts';
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
