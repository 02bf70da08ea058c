import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Progress } from '../../src/replay/progress.ts';
import { parseTime } from '../../src/replay/time.ts';

describe('Progress', () => {
  test('a terminal gets one redrawn line with percent, rate and ETA', () => {
    const written: string[] = [];
    let t = 0;
    const bar = new Progress(
      { write: (s: string) => written.push(s), isTTY: true, columns: 100 },
      { now: () => t },
    );
    bar.update({ done: 0, total: 1_000 });
    t = 1_000;
    bar.update({ done: 250, total: 1_000 });
    const last = written[written.length - 1] ?? '';
    assert.match(last, /^\r/);
    assert.match(last, /25\.0% 250\/1,000 records 250\/s ETA 00:03/);
    assert.ok(!last.includes('\n'));
    bar.finish({ done: 1_000, total: 1_000 });
    assert.match(written[written.length - 1] ?? '', /100\.0%.*\n$/);
  });

  test('a pipe gets plain lines, at most one per interval', () => {
    const written: string[] = [];
    let t = 0;
    const bar = new Progress({ write: (s: string) => written.push(s) }, { now: () => t, logEveryMs: 1_000 });
    for (let i = 1; i <= 30; i++) {
      t = i * 100;
      bar.update({ done: i * 10, total: null });
    }
    assert.equal(written.length, 3);
    for (const l of written) {
      assert.ok(!l.includes('\r') && !l.includes('\x1b'));
      assert.match(l, /records .*\/s ETA --:--\n$/);
    }
  });
});

describe('parseTime', () => {
  test('epoch milliseconds and ISO-8601', () => {
    assert.equal(parseTime('1700000000000', '--from'), 1_700_000_000_000);
    assert.equal(parseTime('2023-11-14T22:13:20Z', '--to'), 1_700_000_000_000);
    assert.equal(parseTime('2023-11-14T23:13:20+01:00', '--to'), 1_700_000_000_000);
  });
  test('anything else is a usage error naming the option', () => {
    assert.throws(
      () => parseTime('yesterday', '--from'),
      (e: Error & { code?: string }) =>
        e.code === 'USAGE' && e.message.includes('--from') && e.message.includes('yesterday'),
    );
  });
});
