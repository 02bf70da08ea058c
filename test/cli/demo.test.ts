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
  // the references the student is judged against: most-popular and the world's ceiling, both
  // measured on the same held-out requests, both in the report and as lines in the plot
  const refs = report.references;
  t.diagnostic(`references ${JSON.stringify(refs)}`);
  assert.ok(refs.mostPopular > 0 && refs.mostPopular < 1, `most-popular recall ${refs.mostPopular}`);
  assert.ok(refs.ceiling > 0 && refs.ceiling <= 1, `ceiling ${refs.ceiling}`);
  assert.match(run.stdout, /most-popular .* student [\d.]+× of it/);
  assert.match(run.stdout, /ceiling .* student at \d+% of it/);
  // outcomes add up: every input record has exactly one fate in the labeler's counts
  const c = report.label.outcomes;
  assert.ok(c.joined > 0 && c.pointwise === c.joined + c.unmatched);
  // ... and are the ones the simulator's truth prescribes (the fates differ: a duplicate request
  // also joins once, a malformed record leaves its partner unmatched or an orphan)
  for (const [k, v] of Object.entries(report.simulate.expected))
    assert.equal(c[k as keyof typeof report.simulate.expected], v, `outcome ${k}`);
  assert.equal(
    report.simulate.expected.joined,
    report.simulate.fates.joined! + report.simulate.fates.duplicate!,
  );
  assert.match(run.stdout, /outcomes: as the truth prescribes/);
  assert.ok(report.label.labelsPerSecond > 0);
  assert.ok(report.train.examples > 0 && report.train.checkpoints >= 1);
  assert.equal(report.curve.length, report.train.checkpoints + 1);

  // a snapshot exists and verifies (every file against the manifest's sha256) ...
  assert.ok(report.snapshots.published.length >= 1);
  assert.equal(report.snapshots.current, report.snapshots.published.at(-1));
  const snap = loadSnapshotDir(join(report.snapshots.dir, `v${report.snapshots.current}`));
  assert.equal(snap.version, report.snapshots.current);
  assert.ok((snap.table('items')?.ids.length ?? 0) > 0);
  // ... and the commands the demo printed last work verbatim, from where it ran, with no config
  assert.match(run.stdout, /^next /m);
  assert.equal(report.next.length, 3);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RANKDISTILL_')));
  for (const line of report.next) {
    assert.ok(run.stdout.includes(`  ${line}\n`), `printed: ${line}`);
    const [node, ...args] = line.split(' ');
    assert.equal(node, 'node');
    const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env });
    assert.equal(r.status, 0, `${line} failed:\n${r.stderr}\n${r.stdout}`);
    assert.ok(r.stdout.length > 0, `${line} printed nothing`);
  }
  assert.match(report.next.join('\n'), /recall --snapshots \S+ --user u\d+ --k 10/);

  const svg = readFileSync(join(out, 'quality.svg'), 'utf8');
  assert.match(svg, /^<svg /);
  // the student's recall and NDCG curves, most-popular and the ceiling as flat lines
  assert.equal((svg.match(/<polyline /g) ?? []).length, 4);
  assert.match(svg, /most-popular/);
  assert.match(svg, /ceiling/);
  assert.match(readFileSync(join(out, 'report.txt'), 'utf8'), /snapshots published/);
});
