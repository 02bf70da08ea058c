/**
 * `rankdistill demo` end to end as a child process (a small world): the distilled student agrees
 * with the teacher better than the untrained one, snapshots were published and verify, and the
 * report files exist.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DemoReport } from '../../src/cli/commands/demo.ts';
import { loadSnapshotDir } from '../../src/snapshots/store.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rd-demo-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('demo: the distilled student beats the untrained one on agreement with the teacher; snapshots verify', (t) => {
  const out = join(dir, 'out');
  const run = spawnSync(
    process.execPath,
    ['bin/rankdistill.mjs', 'demo', '--requests', '800', '--users', '200', '--items', '600', '--out', out],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(run.status, 0, `demo failed:\n${run.stderr}\n${run.stdout}`);
  // progress went to stderr as plain lines (not a terminal), the report to stdout
  assert.match(run.stderr, /^simulate: 800 requests/m);
  assert.match(run.stdout, /agreement with the teacher/);

  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as DemoReport;
  assert.equal(report.format, 'rankdistill-demo-report/1');
  assert.equal(report.world.requests, 800);
  const { before, after: distilled } = report.agreement;
  t.diagnostic(`agreement before ${JSON.stringify(before)} after ${JSON.stringify(distilled)}`);
  assert.ok(distilled.eval_requests > 0, 'held-out requests were evaluated');
  // the report's figures are the serving (current) snapshot's, named
  assert.equal(report.agreement.afterVersion, report.snapshots.current);
  assert.match(run.stdout, new RegExp(`current v${report.snapshots.current}`));
  assert.ok(
    distilled.recall_at_100_of_top10 > before.recall_at_100_of_top10,
    `recall: distilled ${distilled.recall_at_100_of_top10} vs untrained ${before.recall_at_100_of_top10}`,
  );
  assert.ok(
    distilled.ndcg_at_10 > before.ndcg_at_10,
    `NDCG@10: distilled ${distilled.ndcg_at_10} vs untrained ${before.ndcg_at_10}`,
  );
  // outcomes add up: every input record has exactly one fate in the labeler's counts
  const c = report.label.outcomes;
  assert.ok(c.joined > 0 && c.pointwise === c.joined + c.unmatched);
  assert.ok(report.label.labelsPerSecond > 0);
  assert.ok(report.train.examples > 0 && report.train.checkpoints >= 1);
  assert.equal(report.curve.length, report.train.checkpoints + 1);

  // a snapshot exists and verifies (every file against the manifest's sha256) ...
  assert.ok(report.snapshots.published.length >= 1);
  assert.equal(report.snapshots.current, report.snapshots.published.at(-1));
  const snap = loadSnapshotDir(join(report.snapshots.dir, `v${report.snapshots.current}`));
  assert.equal(snap.version, report.snapshots.current);
  assert.ok((snap.table('items')?.ids.length ?? 0) > 0);
  // ... and through the registry, with the operator's command
  const show = spawnSync(
    process.execPath,
    ['bin/rankdistill.mjs', 'snapshots', 'show', String(report.snapshots.current)],
    {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, RANKDISTILL_SNAPSHOTS__REGISTRY: report.snapshots.registry },
    },
  );
  assert.equal(show.status, 0, `snapshots show failed:\n${show.stderr}\n${show.stdout}`);

  const svg = readFileSync(join(out, 'quality.svg'), 'utf8');
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
  assert.match(readFileSync(join(out, 'report.txt'), 'utf8'), /snapshots published/);
});
