/** The status line's parsing of the labeler's Prometheus text (the broker run is test/integration/up.test.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricSum, parsePrometheus } from '../../src/cli/commands/up.ts';

const TEXT = `# HELP rankdistill_records_out_total Records produced (committed), by topic.
# TYPE rankdistill_records_out_total counter
rankdistill_records_out_total{topic="labels.pointwise"} 120
rankdistill_records_out_total{topic="labels.pairwise"} 118
rankdistill_records_out_total{topic="rankdistill.dead-letter"} 4
rankdistill_records_in_total{topic="ranker-outputs"} 300
rankdistill_records_in_total{topic="impressions"} 290
rankdistill_join_outcomes_total{outcome="joined"} 110
rankdistill_join_outcomes_total{outcome="unmatched"} 8
rankdistill_dead_letters_total 4
`;

test('parsePrometheus + metricSum: sums a metric over its series, or the series matching a label', () => {
  const m = parsePrometheus(TEXT);
  assert.equal(metricSum(m, 'rankdistill_records_in_total'), 590);
  assert.equal(metricSum(m, 'rankdistill_records_out_total', 'topic="labels.pointwise"'), 120);
  assert.equal(metricSum(m, 'rankdistill_records_out_total'), 242);
  assert.equal(metricSum(m, 'rankdistill_join_outcomes_total', 'outcome="joined"'), 110);
  assert.equal(metricSum(m, 'rankdistill_dead_letters_total'), 4);
  // a metric whose name only starts like another is not summed with it
  assert.equal(metricSum(m, 'rankdistill_records'), 0);
  assert.equal(metricSum(m, 'absent'), 0);
});
