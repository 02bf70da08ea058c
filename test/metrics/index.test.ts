import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LabelMetrics, serveMetrics } from '../../src/metrics/index.ts';

describe('metrics endpoint', () => {
  test('/metrics exposes the labeler counters; /health follows the health callback', async () => {
    const m = new LabelMetrics();
    m.outcomes.inc({ outcome: 'joined' }, 3);
    let healthy = false;
    const srv = await serveMetrics(m.registry, 0, () => healthy);
    try {
      assert.ok(srv.port > 0);
      const base = `http://127.0.0.1:${srv.port}`;
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.match(text, /rankdistill_join_outcomes_total\{outcome="joined"\} 3/);
      assert.match(text, /rankdistill_transaction_commit_seconds_bucket/);
      assert.equal((await fetch(`${base}/health`)).status, 503);
      healthy = true;
      assert.equal((await fetch(`${base}/health`)).status, 200);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
    } finally {
      await srv.close();
    }
  });
});
