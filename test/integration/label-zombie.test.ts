// Zombie fencing of the labeling service: two `rankdistill label` processes share a group over
// 2 partitions. B is frozen with SIGSTOP in the middle of its partition (small transactions, so
// it is inside one), its session expires and A takes its partition: A's InitProducerId for the
// task's transactional id aborts B's open transaction and bumps the epoch. Then B is woken with
// SIGCONT, still believing it owns the task, and carries on with what it had fetched: the broker
// must refuse its writes, B must rejoin the group as a healthy member, and a read_committed
// consumer must see every expected label and dead letter exactly once.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { Config } from '../../src/config/schema.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import {
  assertExactlyExpected,
  committedShare,
  exited,
  labelSuite,
  produceInputs,
  produceSentinels,
  testConfig,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 2;

/** A `rankdistill label` child whose structured log lines (stderr) are kept. */
interface Labeler {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
}

describe('rankdistill label zombie fencing', { timeout: 150_000 }, () => {
  const suite = labelSuite('rd-label-zombie', 1_500, 37);

  test('a frozen instance whose partition moved cannot write when it wakes up', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfgA = testConfig(join(work, 'state-a'), PARTITIONS, { maxBatchRecords: 25, commitIntervalMs: 50 });
    const cfgB: Config = { ...cfgA, store: { ...cfgA.store, dir: join(work, 'state-b') } };
    topics.push(...Object.values(cfgA.kafka.topics));
    await ensureTopics(admin, cfgA.kafka);
    const start = (name: string, cfg: Config): Labeler => {
      const path = join(work, `config-${name}.json`);
      writeFileSync(path, JSON.stringify(cfg));
      const child = spawn(process.execPath, ['bin/rankdistill.mjs', '-c', path, 'label'], {
        cwd: join(import.meta.dirname, '../..'),
        env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const l: Labeler = { child, lines: [] };
      let rest = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop()!;
        for (const p of parts) {
          try {
            l.lines.push(JSON.parse(p) as Record<string, unknown>);
          } catch {
            l.lines.push({ msg: p });
          }
        }
      });
      return l;
    };
    const a = start('a', cfgA);
    const b = start('b', cfgB);
    let frozen = false;
    try {
      await waitFor('both members in a stable group', 60_000, async () => (await members(admin, cfgA)) === 2);
      await produceInputs(kafka, cfgA, sim, PARTITIONS, { sentinels: false });
      // B's partition: the one its last assignment gave it once its task is open.
      let bPart = -1;
      await waitFor('B to open the task of its partition', 60_000, async () => {
        const assigned = lastAssigned(b);
        const ready = b.lines.filter((x) => x.msg === 'task ready').map((x) => x.partition);
        bPart = assigned?.length === 1 && ready.includes(assigned[0]) ? assigned[0]! : -1;
        return bPart >= 0;
      });
      // Freeze B while its partition is partly committed: with 25-record transactions committed
      // every few ms, it is inside one (sends on the wire or the commit in flight).
      await waitFor('B to commit part of its partition', 60_000, async () => {
        return (await committedShare(admin, cfgA, bPart)) > 0.2;
      });
      b.child.kill('SIGSTOP');
      frozen = true;
      const stoppedAt = b.lines.length;
      const shareAtStop = await committedShare(admin, cfgA, bPart);
      // B's session (6 s) expires; A is assigned both partitions, fences B's producer for the task,
      // restores the task's state from the changelog and finishes the partition.
      await waitFor('A to take over B’s partition', 60_000, async () => {
        const assigned = lastAssigned(a);
        return assigned?.length === PARTITIONS && readyAfter(a, bPart, PARTITIONS);
      });
      await waitConsumed(admin, cfgA, 60_000);
      assert.ok(shareAtStop < 1, `B was frozen before its partition was done (${shareAtStop})`);
      // Wake the zombie: it still holds the task, a fetched backlog and maybe an open transaction.
      b.child.kill('SIGCONT');
      frozen = false;
      // B rejoins: kafkajs' consumer may first rejoin by itself, then B's recovery from the refused
      // write leaves and joins again with fresh tasks. Wait until that has settled for 3 s.
      let settledSince = 0;
      let seen = -1;
      await waitFor('B to rejoin the group', 60_000, async () => {
        const assignments = b.lines.filter((x) => x.msg === 'partitions assigned').length;
        const ok =
          assignments === seen &&
          b.lines.findLastIndex((x) => x.msg === 'partitions assigned') >
            Math.max(
              stoppedAt,
              b.lines.findLastIndex((x) => /^recovering/.test(String(x.msg))),
            ) &&
          lastAssigned(b)?.length === 1 &&
          (await members(admin, cfgA)) === 2;
        if (!ok || settledSince === 0) settledSince = ok ? Date.now() : 0;
        seen = assignments;
        return ok && Date.now() - settledSince >= 3_000;
      });
      const woke = b.lines.slice(stoppedAt);
      // kafkajs' text for INVALID_PRODUCER_EPOCH, the broker's answer to a fenced producer.
      const refused = woke.filter((x) => /old epoch|fenced/i.test(JSON.stringify(x)));
      assert.ok(
        refused.length > 0,
        `the broker must have refused B's writes after it woke (B logged: ${woke
          .map((x) => x.msg)
          .slice(0, 20)
          .join(' | ')})`,
      );
      // Close every window (the sentinels), now with B owning a partition again: it opens the
      // task (restoring the state A left in the changelog) and labels what the sentinel closes.
      const rejoined = b.lines.length;
      await produceSentinels(kafka, cfgA, sim, PARTITIONS);
      await waitConsumed(admin, cfgA, 60_000, () => {
        assert.equal(a.child.exitCode, null, 'A must not exit');
        assert.equal(b.child.exitCode, null, 'B must not exit');
      });
      assert.ok(
        b.lines.slice(rejoined).some((x) => x.msg === 'task ready'),
        'B worked again after it woke',
      );
      for (const l of [a, b]) l.child.kill('SIGTERM');
      const codes = await Promise.all([a, b].map((l) => exited(l.child)));
      assert.deepEqual(codes, [0, 0], 'both stop gracefully on SIGTERM');
    } finally {
      if (frozen) b.child.kill('SIGCONT');
      for (const l of [a, b])
        if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill('SIGKILL');
    }
    const n = await assertExactlyExpected(kafka, admin, cfgA, sim, assert);
    assert.ok(n > 4_000, `labels checked: ${n}`);
  });
});

/** The partitions of the instance's newest assignment, if any. */
function lastAssigned(l: Labeler): number[] | undefined {
  const x = l.lines.findLast((y) => y.msg === 'partitions assigned');
  return x?.partitions as number[] | undefined;
}

/** Whether `l` logged "task ready" for partition p after its newest assignment of `size` partitions. */
function readyAfter(l: Labeler, p: number, size: number): boolean {
  const i = l.lines.findLastIndex(
    (y) => y.msg === 'partitions assigned' && (y.partitions as number[]).length === size,
  );
  return i >= 0 && l.lines.slice(i).some((y) => y.msg === 'task ready' && y.partition === p);
}

async function waitFor(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function members(admin: Admin, cfg: Config): Promise<number> {
  const { groups } = await admin.describeGroups([cfg.kafka.groupId]);
  const g = groups[0];
  return g?.state === 'Stable' ? g.members.length : -1;
}
