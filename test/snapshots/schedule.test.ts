import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SnapshotSchedule } from '../../src/snapshots/schedule.ts';

describe('snapshot schedule', () => {
  test('fires after N examples or T ms, whichever first, and restarts after done()', () => {
    const s = new SnapshotSchedule(100, 1000, 0);
    assert.equal(s.add(60, 10), false);
    assert.equal(s.add(40, 20), true);
    s.done(20);
    assert.equal(s.add(1, 500), false);
    assert.equal(s.add(1, 1020), true);
    s.done(1020);
    assert.equal(s.add(0, 5000), false, 'no snapshot without new examples');
  });
});
