import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrequencyEstimator } from '../../src/train/frequency.ts';
import { mulberry32 } from '../../src/train/hash.ts';

test('an item seen every k steps converges to p = 1/k (Yi et al. estimator)', () => {
  const f = new FrequencyEstimator(1 << 12, 0.05);
  for (let t = 1; t <= 2000; t++) {
    const items = ['every-step'];
    if (t % 4 === 0) items.push('every-4th');
    if (t % 20 === 0) items.push('every-20th');
    f.observe(items);
  }
  assert.ok(Math.abs(f.probability('every-step') - 1) < 1e-9);
  assert.ok(Math.abs(f.probability('every-4th') - 0.25) < 0.01, `${f.probability('every-4th')}`);
  assert.ok(Math.abs(f.probability('every-20th') - 0.05) < 0.005, `${f.probability('every-20th')}`);
  // never seen: as rare as once in all steps
  assert.ok(f.probability('never') <= 1 / 2000);
  assert.equal(f.logQ('every-4th'), Math.log(f.probability('every-4th')));
});

test('an item counted once per step however often it occurs in the batch', () => {
  const f = new FrequencyEstimator(1 << 10, 0.1);
  for (let t = 1; t <= 200; t++) f.observe(t % 2 === 0 ? ['a', 'a', 'a'] : ['b']);
  assert.ok(Math.abs(f.probability('a') - 0.5) < 0.02);
});

test('samples follow recent positives and restore keeps the estimate', () => {
  const f = new FrequencyEstimator(1 << 10, 0.1, 100);
  for (let t = 0; t < 50; t++) f.observe(['x', 'x2', 'x3', 'y']);
  const s = f.sample(1000, mulberry32(1));
  const ys = s.filter((i) => i === 'y').length;
  assert.ok(ys > 180 && ys < 320, `y drawn ${ys} times of 1000, expected about 250`);
  const g = new FrequencyEstimator(1 << 10, 0.1, 100);
  g.restore(f.state());
  assert.equal(g.probability('y'), f.probability('y'));
  assert.equal(g.step, 50);
});
