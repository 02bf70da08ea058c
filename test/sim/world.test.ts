import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Rng } from '../../src/sim/rng.ts';
import {
  createWorld,
  itemId,
  itemIndex,
  serializeWorld,
  trueAffinity,
  userId,
  userIndex,
  type WorldOptions,
} from '../../src/sim/world.ts';

const small: WorldOptions = { seed: 3, users: 200, items: 1000, dim: 8, categories: 10, zipf: 1 };

test('the same seed gives the same world; another seed another one', () => {
  const a = createWorld(small);
  const b = createWorld(small);
  const c = createWorld({ ...small, seed: 4 });
  assert.deepEqual(a.userVec, b.userVec);
  assert.deepEqual(a.itemVec, b.itemVec);
  assert.deepEqual(a.itemBias, b.itemBias);
  assert.deepEqual(a.userTopCategories, b.userTopCategories);
  assert.notDeepEqual(a.itemVec, c.itemVec);
});

test('Rng streams are deterministic and independent by label', () => {
  const x = Array.from(
    { length: 5 },
    (
      (r) => () =>
        r.u32()
    )(new Rng(1, 'a')),
  );
  const y = Array.from(
    { length: 5 },
    (
      (r) => () =>
        r.u32()
    )(new Rng(1, 'a')),
  );
  const z = Array.from(
    { length: 5 },
    (
      (r) => () =>
        r.u32()
    )(new Rng(1, 'b')),
  );
  assert.deepEqual(x, y);
  assert.notDeepEqual(x, z);
  const r = new Rng(9);
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < 20_000; i++) {
    const v = r.normal();
    sum += v;
    sq += v * v;
  }
  assert.ok(Math.abs(sum / 20_000) < 0.05, 'normal mean ≈ 0');
  assert.ok(Math.abs(sq / 20_000 - 1) < 0.05, 'normal variance ≈ 1');
});

test('popularity is Zipf-like: the top 1% of items hold a large share', () => {
  const w = createWorld(small);
  const p = [...w.itemPopularity].sort((a, b) => b - a);
  const top = p.slice(0, 10).reduce((s, v) => s + v, 0);
  assert.ok(top > 0.3, `top 1% share ${top}`);
  assert.ok(Math.abs(p.reduce((s, v) => s + v, 0) - 1) < 1e-4);
  assert.ok(Math.abs(w.popCdf[w.items - 1]! - 1) < 1e-9);
});

test('items of a category are closer to each other than to other categories', () => {
  const w = createWorld(small);
  let same = 0;
  let ns = 0;
  let diff = 0;
  let nd = 0;
  for (let a = 0; a < 200; a++) {
    for (let b = a + 1; b < 200; b++) {
      let dot = 0;
      for (let d = 0; d < w.dim; d++) dot += w.itemVec[a * w.dim + d]! * w.itemVec[b * w.dim + d]!;
      if (w.itemCategory[a] === w.itemCategory[b]) {
        same += dot;
        ns++;
      } else {
        diff += dot;
        nd++;
      }
    }
  }
  assert.ok(same / ns > diff / nd + 0.3, `same ${same / ns} vs other ${diff / nd}`);
});

test('world.bin + world.json give back the arrays and the same affinities', () => {
  const w = createWorld(small);
  const { header, binary } = serializeWorld(w, 'world.bin');
  assert.equal(header.binary, 'world.bin');
  const arr = (name: string) => {
    const m = header.arrays.find((a) => a.name === name)!;
    const slice = binary.subarray(m.byteOffset, m.byteOffset + m.byteLength);
    const copy = new Uint8Array(slice).buffer;
    return m.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy);
  };
  assert.deepEqual(arr('userVec'), w.userVec);
  assert.deepEqual(arr('itemVec'), w.itemVec);
  assert.deepEqual(arr('itemCategory'), w.itemCategory);
  const uv = arr('userVec');
  const iv = arr('itemVec');
  const ib = arr('itemBias');
  for (const [u, j] of [
    [0, 0],
    [17, 333],
    [199, 999],
  ] as const) {
    let dot = 0;
    for (let d = 0; d < w.dim; d++) dot += uv[u * w.dim + d]! * iv[j * w.dim + d]!;
    assert.equal(header.constants.AFFINITY_SCALE * dot + ib[j]!, trueAffinity(w, u, j));
  }
});

test('id helpers round-trip and reject foreign ids', () => {
  fc.assert(fc.property(fc.nat(1e9), (n) => userIndex(userId(n)) === n && itemIndex(itemId(n)) === n));
  assert.equal(userId(123), 'u123');
  assert.equal(itemId(456), 'i456');
  for (const bad of ['x1', 'u', 'u01', 'u-1', 'u1.5', 'i1e3']) {
    assert.equal(userIndex(bad), -1, bad);
    assert.equal(itemIndex(bad.replace(/^u/, 'i')), -1, bad);
  }
});
