// `rankdistill label --in --out` and `rankdistill replay --in` in child processes: a finite input is
// drained by default (every request labelled or dead-lettered with a reason), and when a user opts
// out (--no-drain) the requests left open are counted on stderr and replay does not say "complete".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SimTruth } from '../../../src/sim/generate.ts';
import { labelFile, simFiles, truthOutcomes } from '../../replay/helpers.ts';

const BIN = new URL('../../../bin/rankdistill.mjs', import.meta.url).pathname;
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'warn', RANKDISTILL_METRICS__ENABLED: 'false' },
  });

describe('a finite input is drained by default; open requests are never dropped without a word', () => {
  let dir: string;
  let truth: SimTruth;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-label-cli-'));
    truth = await simFiles(join(dir, 'sim'), 1_500, 'ndjson', 13);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('label --in --out: every request the simulator says should be labelled is, nothing left open', async () => {
    const out = join(dir, 'drained');
    const r = cli('label', '--in', join(dir, 'sim'), '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { open: number; joined: number; unmatched: number };
    assert.equal(res.open, 0);
    assert.doesNotMatch(r.stderr, /still open/);
    const want = truthOutcomes(truth);
    assert.equal(res.joined, want.joined);
    assert.equal(res.unmatched, want.unmatched);
    const ids = (await labelFile(out, 'labels.pointwise', 'ndjson')).map(([id]) => id);
    assert.equal(new Set(ids).size, ids.length, 'each request labelled once');
    assert.equal(ids.length, res.joined + res.unmatched);
  });

  test('label --no-drain: the open count is reported on stderr and matches the JSON', () => {
    const r = cli('label', '--in', join(dir, 'sim'), '--out', join(dir, 'open'), '--no-drain');
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { open: number };
    assert.ok(res.open > 0, 'the last window of the input is still open');
    assert.match(r.stderr, new RegExp(`label: ${res.open} requests were still open .*not labelled`));
  });

  test('replay --in: drained and "complete" by default; with --no-drain it does not say complete', () => {
    const full = cli('replay', '--in', join(dir, 'sim'), '--dry-run', '--no-progress');
    assert.equal(full.status, 0, full.stderr);
    const a = JSON.parse(full.stdout) as { status: string; open: number };
    assert.deepEqual([a.status, a.open], ['complete', 0]);
    const open = cli('replay', '--in', join(dir, 'sim'), '--dry-run', '--no-progress', '--no-drain');
    assert.equal(open.status, 0, open.stderr);
    const b = JSON.parse(open.stdout) as { status: string; open: number };
    assert.ok(b.open > 0);
    assert.equal(b.status, 'ended-with-open-requests');
    assert.match(open.stderr, new RegExp(`replay: ${b.open} requests were still open`));
  });
});
