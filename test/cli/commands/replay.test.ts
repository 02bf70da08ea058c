// The replay CLI in a child process: Ctrl-C (SIGINT) halfway, then the same command finishes the
// job with output equal to an uninterrupted run; --dry-run prints the outcome counts.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { labelFiles } from '../../../src/pipeline/label-files.ts';
import type { SimTruth } from '../../../src/sim/generate.ts';
import { deadLetters, LABEL_FILES, simFiles, testConfig, truthOutcomes } from '../../replay/helpers.ts';

/** Waits (up to a minute) until a replay state directory holds checkpoint k of some partition. */
async function checkpointed(state: string, k: number): Promise<void> {
  const ckpt = join(state, 'ckpt');
  for (let i = 0; i < 6_000; i++) {
    const ks = existsSync(ckpt)
      ? readdirSync(ckpt).map((n) => Number(/-(\d+)\.json$/.exec(n)?.[1] ?? 0))
      : [];
    if (Math.max(0, ...ks) >= k) return;
    await sleep(10);
  }
}

const BIN = new URL('../../../bin/rankdistill.mjs', import.meta.url).pathname;

function cli(args: string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, [BIN, 'replay', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

describe('rankdistill replay (CLI)', () => {
  let dir: string;
  let truth: SimTruth;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rd-replay-cli-'));
    truth = await simFiles(join(dir, 'sim'), 3_000, 'avro', 21);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('SIGINT halfway, then the same command: output equals an uninterrupted run, no duplicates', async () => {
    const out = join(dir, 'out');
    const state = join(dir, 'state');
    const args = [
      '--in',
      join(dir, 'sim'),
      '--out',
      out,
      '--format',
      'avro',
      '--drain',
      '--state-dir',
      state,
      '--checkpoint-every',
      '200',
    ];
    const first = cli(args);
    // Interrupt once a few checkpoints are committed.
    await checkpointed(state, 3);
    first.child.kill('SIGINT');
    const r1 = await first.done;
    assert.equal(r1.code, 130, r1.stderr);
    const s1 = JSON.parse(r1.stdout) as { status: string; processed: number };
    assert.equal(s1.status, 'interrupted');
    const ref = join(dir, 'ref');
    const live = await labelFiles({
      inDir: join(dir, 'sim'),
      outDir: ref,
      format: 'avro',
      config: testConfig(),
      drain: true,
    });
    const total = live.counts.rankerOutputsIn + live.counts.impressionsIn;
    assert.ok(s1.processed > 0 && s1.processed < total, `interrupted after ${s1.processed} of ${total}`);
    assert.equal(existsSync(join(out, 'labels.pointwise.avro')), false, 'nothing final before the end');

    const r2 = await cli(args).done;
    assert.equal(r2.code, 0, r2.stderr);
    const s2 = JSON.parse(r2.stdout) as {
      status: string;
      processed: number;
      outcomes: Record<string, number>;
    };
    assert.equal(s2.status, 'complete');
    assert.equal(s2.processed, total);
    for (const [k, v] of Object.entries(truthOutcomes(truth)))
      assert.equal(s2.outcomes[k], v, `outcome ${k}`);

    for (const f of LABEL_FILES) {
      assert.ok(
        readFileSync(join(ref, `${f}.avro`)).equals(readFileSync(join(out, `${f}.avro`))),
        `${f}.avro differs`,
      );
    }
    assert.deepEqual(await deadLetters(out, 'avro'), await deadLetters(ref, 'avro'));
  });

  test('SIGTERM on 2 threads, then the same command: output equals an uninterrupted run', async () => {
    const base = ['--in', join(dir, 'sim'), '--format', 'avro', '--drain', '--partitions', '4'];
    const out = join(dir, 'out-t');
    const state = join(dir, 'state-t');
    const args = [...base, '--threads', '2', '--out', out, '--state-dir', state, '--checkpoint-every', '200'];
    const first = cli(args);
    await checkpointed(state, 2);
    first.child.kill('SIGTERM');
    const r1 = await first.done;
    assert.notEqual(r1.code, 0, r1.stderr);
    assert.equal((JSON.parse(r1.stdout) as { status: string }).status, 'interrupted');
    const r2 = await cli(args).done;
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal((JSON.parse(r2.stdout) as { status: string }).status, 'complete');
    const ref = join(dir, 'ref-t');
    const r3 = await cli([...base, '--threads', '1', '--out', ref, '--state-dir', join(dir, 'state-ref-t')])
      .done;
    assert.equal(r3.code, 0, r3.stderr);
    for (const f of LABEL_FILES) {
      assert.ok(
        readFileSync(join(ref, `${f}.avro`)).equals(readFileSync(join(out, `${f}.avro`))),
        `${f}.avro differs`,
      );
    }
  });

  test('--dry-run prints the outcome counts of the truth and writes nothing', async () => {
    const r = await cli(['--in', join(dir, 'sim'), '--dry-run', '--drain', '--no-progress']).done;
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { status: string; outcomes: Record<string, number>; stateDir?: string };
    assert.equal(s.status, 'complete');
    assert.equal(s.stateDir, undefined);
    for (const [k, v] of Object.entries(truthOutcomes(truth))) assert.equal(s.outcomes[k], v, `outcome ${k}`);
  });

  test('usage errors name what is wrong', async () => {
    const r = await cli(['--in', join(dir, 'sim'), '--dry-run', '--out', join(dir, 'x')]).done;
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exactly one of --out/);
  });
});
