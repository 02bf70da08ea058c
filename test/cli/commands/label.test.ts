// `rankdistill label --in --out` and `rankdistill replay --in` in child processes: a finite input is
// drained by default (every request labelled or dead-lettered with a reason), and when a user opts
// out (--no-drain) the requests left open are counted on stderr and replay does not say "complete".
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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

describe('label --in on the parallel engine: partitions, threads, progress, signals', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-label-threads-'));
    await simFiles(join(dir, 'sim'), 3_000, 'ndjson', 29);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--partitions 3 gives the same bytes on 1 and 2 threads; progress goes to stderr, not with --no-progress', () => {
    const outs = ['1', '2'].map((threads) => {
      const out = join(dir, `p3-t${threads}`);
      const r = cli(
        'label',
        '--in',
        join(dir, 'sim'),
        '--out',
        out,
        '--partitions',
        '3',
        '--threads',
        threads,
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^label \[#+\] 100\.0% [\d,]+\/[\d,]+ records/m, 'a final progress line');
      return { out, res: JSON.parse(r.stdout) as { joined: number; open: number } };
    });
    const [a, b] = outs as [(typeof outs)[0], (typeof outs)[0]];
    assert.ok(a.res.joined > 0);
    assert.deepEqual(b.res.joined, a.res.joined);
    for (const kind of ['labels.pointwise', 'labels.pairwise', 'labels.listwise']) {
      const x = readFileSync(join(a.out, `${kind}.ndjson`));
      assert.ok(x.length > 0, kind);
      assert.ok(x.equals(readFileSync(join(b.out, `${kind}.ndjson`))), `${kind}: 1 and 2 threads differ`);
    }
    const quiet = cli('label', '--in', join(dir, 'sim'), '--out', join(dir, 'quiet'), '--no-progress');
    assert.equal(quiet.status, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /records .*ETA/);
  });

  test('--threads 0 is a usage error (exit 2) naming the value', () => {
    const r = cli('label', '--in', join(dir, 'sim'), '--out', join(dir, 'bad'), '--threads', '0');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /positive integer, found 0/);
  });

  test('SIGTERM mid-run: exit 130 with one line, no partial label files, temporary state removed', async () => {
    const big = join(dir, 'big');
    await simFiles(big, 40_000, 'ndjson', 31);
    const tmp = join(dir, 'tmp');
    mkdirSync(tmp);
    const out = join(dir, 'stopped');
    const child = spawn(process.execPath, [BIN, 'label', '--in', big, '--out', out, '--no-progress'], {
      env: {
        ...process.env,
        TMPDIR: tmp,
        RANKDISTILL_LOG_LEVEL: 'warn',
        RANKDISTILL_METRICS__ENABLED: 'false',
      },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // The run has begun once its temporary state directory holds something.
    let started = false;
    while (!started && child.exitCode === null) {
      started = readdirSync(tmp).some(
        (d) => d.startsWith('rankdistill-label-') && readdirSync(join(tmp, d)).length > 0,
      );
      if (!started) await sleep(10);
    }
    assert.ok(started, `the run ended before it could be stopped: ${stderr}`);
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(60_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') child.kill('SIGKILL');
    assert.equal(code, 130, stderr);
    assert.match(stderr, /label: stopped by a signal: .*outputs were removed/);
    const left = existsSync(out) ? readdirSync(out).filter((f) => f.startsWith('labels.')) : [];
    assert.deepEqual(left, [], 'no partial label file is left to pass for a result');
    const state = readdirSync(tmp).filter((d) => d.startsWith('rankdistill-label-'));
    assert.deepEqual(state, [], 'the temporary state directory is removed');
  });
});
