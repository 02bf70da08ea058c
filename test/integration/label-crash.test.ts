// Crash safety of the labeling service: `rankdistill label` runs as a child process and is killed
// with SIGKILL several times at random moments mid-stream, then restarted (same state directory).
// At the end a read_committed consumer must see every expected label exactly once — no loss, no
// duplicate — and every dead letter exactly once.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureTopics } from '../../src/kafka/topics.ts';
import {
  assertExactlyExpected,
  committedShare,
  exited,
  labelSuite,
  produceInputs,
  testConfig,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 2;
const KILLS = 3;

describe('rankdistill label under SIGKILL', { timeout: 150_000 }, () => {
  const suite = labelSuite('rd-label-crash', 1_500, 23);

  test('killed -9 three times mid-stream, every label exactly once', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    // Small transactions so that kills land between and inside many of them.
    const cfg = testConfig(join(work, 'state'), PARTITIONS, { maxBatchRecords: 25, commitIntervalMs: 50 });
    topics.push(...Object.values(cfg.kafka.topics));
    await ensureTopics(admin, cfg.kafka);
    await produceInputs(kafka, cfg, sim, PARTITIONS);
    const cfgPath = join(work, 'config.json');
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const start = (): ChildProcess => {
      const child = spawn(process.execPath, ['bin/rankdistill.mjs', '-c', cfgPath, 'label'], {
        cwd: join(import.meta.dirname, '../..'),
        env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      return child;
    };
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const progress: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const child = start();
      // Startup (tsx, group join after the dead member's session expired, restore) takes a few
      // seconds; kill once this run has committed a random part of what is left, plus a random
      // few milliseconds, so the kill lands inside the processing (often inside a transaction).
      const before = await committedShare(admin, cfg);
      const target = before + (1 - before) * (0.15 + 0.5 * rand());
      const deadline = Date.now() + 30_000;
      while ((await committedShare(admin, cfg)) < target && Date.now() < deadline) await sleep(20);
      await sleep(rand() * 100);
      child.kill('SIGKILL');
      await exited(child);
      progress.push(await committedShare(admin, cfg));
    }
    // At least one kill must have hit a run that had committed part, not all, of the input.
    assert.ok(
      progress.some((x) => x > 0 && x < 1),
      `no kill landed mid-stream (committed share after each kill: ${progress.map((x) => x.toFixed(3)).join(', ')})`,
    );
    const last = start();
    try {
      await waitConsumed(admin, cfg, 90_000, () => {
        assert.equal(last.exitCode, null, 'the final run must not exit');
      });
    } finally {
      last.kill('SIGTERM');
      assert.equal(await exited(last), 0, 'graceful stop on SIGTERM exits 0');
    }
    const n = await assertExactlyExpected(kafka, admin, cfg, sim, assert);
    assert.ok(n > 4_000, `labels checked: ${n}`);
  });
});
