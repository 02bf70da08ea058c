// Issue #25: the labeler's start, stop and stalls with real processes and a real broker.
// - a start against a closed port exits non-zero with one clear line, metrics endpoint on;
// - SIGTERM at random moments of the start-up exits 0 within the stop bound and leaves no member;
// - a >= 1 MB random record (value, key or both) on an input becomes ONE dead letter the broker
//   accepts (truncated, with size and SHA-256), counted, and the records behind it are labelled
//   exactly once;
// - /health reports a partition that cannot make progress as unhealthy steadily, and healthy
//   again once it can, every label then written exactly once.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { Config } from '../../src/config/schema.ts';
import { decodeAvro } from '../../src/contracts/codec.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { MIN_MAX_MESSAGE_BYTES } from '../../src/kafka/txn-markers.ts';
import {
  exited,
  expectedDeadReasons,
  expectedLabels,
  labelSuite,
  labelsById,
  produceInputs,
  type Received,
  readAll,
  type SimFiles,
  testConfig,
  waitConsumed,
} from './label-helpers.ts';

const ROOT = join(import.meta.dirname, '../..');
const PARTITIONS = 2;

/** A running `rankdistill label` child with its stderr collected. */
interface Child {
  proc: ChildProcess;
  stderr: () => string;
  /** Resolves with the first log line whose msg is `msg` (parsed). */
  logged: (msg: string) => Promise<Record<string, unknown>>;
}

function startLabel(cfgPath: string, env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, ['bin/rankdistill.mjs', '-c', cfgPath, 'label'], {
    cwd: ROOT,
    env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const waiters: Array<{ msg: string; resolve: (l: Record<string, unknown>) => void }> = [];
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    err += d;
    if (process.env.RD_DEBUG_CHILD_LOG) appendFileSync(process.env.RD_DEBUG_CHILD_LOG, d);
    for (const line of d.split('\n')) {
      if (!line.startsWith('{')) continue;
      let l: Record<string, unknown>;
      try {
        l = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      for (const w of waiters.filter((x) => x.msg === l.msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  return {
    proc,
    stderr: () => err,
    logged: (msg) => {
      for (const line of err.split('\n')) {
        if (line.includes(`"msg":"${msg}"`))
          return Promise.resolve(JSON.parse(line) as Record<string, unknown>);
      }
      return new Promise((resolve) => waiters.push({ msg, resolve }));
    },
  };
}

/** Exit code, or a failure when the child is still alive after `ms`. */
async function exitWithin(
  c: ChildProcess,
  ms: number,
  what: string,
  stderr: () => string = () => '',
): Promise<number | null> {
  const timer = sleep(ms).then(() => 'timeout' as const);
  const res = await Promise.race([exited(c), timer]);
  if (res === 'timeout') {
    c.kill('SIGKILL');
    const ours = stderr()
      .split('\n')
      .filter((l) => !l.includes('"component":"kafkajs"'));
    assert.fail(
      `${what}: still running ${ms} ms later; its log (kafkajs lines left out):\n${ours.slice(-30).join('\n')}`,
    );
  }
  return res;
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function groupMembers(admin: Admin, cfg: Config): Promise<{ state: string; members: number }> {
  const { groups } = await admin.describeGroups([cfg.kafka.groupId]);
  return { state: groups[0]?.state ?? 'none', members: groups[0]?.members.length ?? 0 };
}

function writeConfig(dir: string, name: string, cfg: Config): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(cfg));
  return path;
}

/** Every label the simulation prescribes, byte for byte, once; no other label. */
function assertLabelsOnce(cfg: Config, sim: SimFiles, recs: Received[]): void {
  const expected = expectedLabels(cfg, sim);
  const got = labelsById(cfg, recs);
  assert.deepEqual(
    [...got].filter(([, v]) => v.length > 1).map(([id]) => id),
    [],
    'no label twice',
  );
  assert.deepEqual(
    [...expected.keys()].filter((id) => !got.get(id)?.[0]?.equals(expected.get(id)!)),
    [],
    'every expected label, byte for byte',
  );
  assert.equal(got.size, expected.size, 'no other label');
}

describe('rankdistill label: start, stop and stalls (issue #25)', { timeout: 600_000 }, () => {
  const suite = labelSuite('rd-label-lifecycle', 300, 31);

  test('a start against a closed port exits non-zero with one clear line, metrics on', async () => {
    const port = await closedPort();
    const cfg = testConfig(join(suite.work, 'closed'), PARTITIONS, { brokers: [`127.0.0.1:${port}`] });
    const path = writeConfig(suite.work, 'closed', {
      ...cfg,
      metrics: { ...cfg.metrics, enabled: true, port: 0 },
    });
    const c = startLabel(path, { RANKDISTILL_LOG_LEVEL: 'warn' });
    // kafkajs' connection retries take ~15 s; the bound is generous for a loaded machine.
    const code = await exitWithin(c.proc, 120_000, 'a start against a closed port');
    assert.notEqual(code, 0, 'a failed start exits non-zero');
    const plain = c
      .stderr()
      .split('\n')
      .filter((l) => l.length > 0 && !l.startsWith('{'));
    assert.equal(plain.length, 1, `one line besides the JSON logs, got:\n${plain.join('\n')}`);
    assert.match(plain[0]!, /^rankdistill: .*KAFKA_UNAVAILABLE.*127\.0\.0\.1:\d+/);
  });

  test('SIGTERM at random moments of the start-up: exit 0 within the stop bound, no member left', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfg0 = testConfig(join(work, 'sigterm'), PARTITIONS, { stopTimeoutMs: 5_000 });
    const cfg: Config = { ...cfg0, metrics: { ...cfg0.metrics, enabled: true, port: 0 } };
    topics.push(...Object.values(cfg.kafka.topics));
    await ensureTopics(admin, cfg.kafka);
    // Input, so that a start-up also opens tasks (fence, restore, seek) that a stop can interrupt.
    await produceInputs(kafka, cfg, sim, PARTITIONS);
    const path = writeConfig(work, 'sigterm', cfg);
    // One full start-up, to know how long one takes here (the random moments spread over it).
    const first = startLabel(path);
    const t0 = Date.now();
    await first.logged('task ready');
    const startup = Date.now() - t0;
    first.proc.kill('SIGTERM');
    assert.equal(await exitWithin(first.proc, 60_000, 'the first stop'), 0);
    let seed = 2_025;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    // Generous: the stop bound (5 s) plus the CLI's 1 s exit grace, plus slack for a shared machine.
    const bound = cfg.kafka.stopTimeoutMs + 1_000 + 10_000;
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const delay = Math.round(rand() * startup * 1.1);
      delays.push(delay);
      const c = startLabel(path);
      await sleep(delay);
      const signalled = Date.now();
      c.proc.kill('SIGTERM');
      const code = await exitWithin(c.proc, bound, `stop ${i} (SIGTERM ${delay} ms after spawn)`, c.stderr);
      assert.equal(
        code,
        0,
        `stop ${i} (SIGTERM ${delay} ms after spawn) exits 0:\n${c.stderr().slice(-2_000)}`,
      );
      assert.ok(Date.now() - signalled <= bound);
      const g = await groupMembers(admin, cfg);
      assert.equal(
        g.members,
        0,
        `stop ${i} (SIGTERM ${delay} ms after spawn) left a member: ${JSON.stringify(g)}`,
      );
      // The symptom of #25: "label service stopped", then "partitions assigned", "label service started".
      const err = c.stderr();
      // (A SIGTERM while the sources still load ends the process before the service exists.)
      const stoppedAt = err.indexOf('"msg":"label service stopped"');
      if (stoppedAt < 0)
        assert.ok(!err.includes('"msg":"label service started"'), `stop ${i}: started, never stopped`);
      else
        assert.ok(
          !err.slice(stoppedAt).includes('"msg":"partitions assigned"') &&
            !err.slice(stoppedAt).includes('"msg":"label service started"'),
          `stop ${i}: the service went on after it stopped:\n${err.slice(stoppedAt, stoppedAt + 2_000)}`,
        );
    }
    assert.ok(delays.length === 5, `delays: ${delays.join(', ')} ms over a ${startup} ms start-up`);
  });

  test('>= 1 MB random records (value, key, both) become one truncated dead letter each; the records behind them are labelled once', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfg0 = testConfig(join(work, 'poison'), PARTITIONS);
    const cfg: Config = { ...cfg0, metrics: { ...cfg0.metrics, enabled: true, port: 0 } };
    const t = cfg.kafka.topics;
    topics.push(...Object.values(t));
    await ensureTopics(admin, cfg.kafka);
    // First on partition 0 of the ranker outputs: every record behind them waits on them. Each is
    // as large as the broker's default message.max.bytes (1,048,588 per batch) lets through: a
    // huge value; a huge key (keys are bounded by the same limit only); a key and value of half
    // a megabyte each, both past the dead-letter bound.
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const poisons = [
      { key: null, value: randomBytes(1_048_448) },
      { key: randomBytes(1_048_448), value: Buffer.from('poison: not a ranker output') },
      { key: randomBytes(524_200), value: randomBytes(524_200) },
    ];
    const producer = kafka.producer();
    await producer.connect();
    for (const m of poisons)
      await producer.send({ topic: t.rankerOutputs, messages: [{ ...m, partition: 0 }], acks: -1 });
    await producer.disconnect();
    await produceInputs(kafka, cfg, sim, PARTITIONS);
    const c = startLabel(writeConfig(work, 'poison', cfg));
    let truncatedMetric: string | undefined;
    try {
      const port = Number((await c.logged('metrics listening')).port);
      await waitConsumed(admin, cfg, 240_000, () =>
        assert.equal(c.proc.exitCode, null, c.stderr().slice(-3_000)),
      );
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      truncatedMetric = /^rankdistill_dead_letters_truncated_total (\S+)$/m.exec(text)?.[1];
    } finally {
      c.proc.kill('SIGTERM');
      assert.equal(await exitWithin(c.proc, 60_000, 'the stop', c.stderr), 0);
    }
    const recs = await readAll(kafka, admin, [t.pointwise, t.pairwise, t.listwise, t.deadLetter]);
    assertLabelsOnce(cfg, sim, recs);
    const deadRecs = recs.filter((r) => r.topic === t.deadLetter);
    const dead = deadRecs.map((r) => {
      const d = decodeAvro('DeadLetter', r.value);
      assert.ok(d.ok);
      return { ...d.value, messageKey: r.key };
    });
    assert.deepEqual(
      dead.map((d) => d.reason_code).sort(),
      [...expectedDeadReasons(sim), 'MALFORMED', 'MALFORMED', 'MALFORMED'].sort(),
      'the simulator’s dead letters and one for each poison record',
    );
    const p = dead
      .filter((d) => d.raw_truncated || d.key_truncated)
      .sort((a, b) => a.source_offset - b.source_offset);
    assert.deepEqual(
      p.map((d) => [d.source_topic, d.source_partition, d.source_offset, d.reason_code]),
      [0, 1, 2].map((o) => [t.rankerOutputs, 0, o, 'MALFORMED']),
      'exactly one truncated dead letter per poison record',
    );
    for (const [i, d] of p.entries()) {
      const { key, value } = poisons[i]!;
      const what = `poison ${i}`;
      assert.ok(
        (d.key?.length ?? 0) * 2 + d.raw.length <= cfg.kafka.deadLetterMaxBytes,
        `${what}: key ${d.key?.length} + raw ${d.raw.length} bytes within the bound`,
      );
      assert.ok(d.raw.equals(value.subarray(0, d.raw.length)), `${what}: raw is the value's first bytes`);
      assert.equal(d.raw_truncated, d.raw.length < value.length, what);
      if (d.raw_truncated) assert.deepEqual([d.raw_size, d.raw_sha256], [value.length, sha(value)], what);
      else assert.deepEqual([d.raw_size, d.raw_sha256], [null, null], what);
      if (key === null) {
        assert.deepEqual([d.key, d.messageKey, d.key_truncated], [null, null, false], what);
        continue;
      }
      assert.equal(d.key_truncated, true, `${what}: the key is cut`);
      assert.ok(d.key !== null && d.key.length > 0 && d.key.equals(key.subarray(0, d.key.length)), what);
      assert.ok(d.messageKey?.equals(d.key), `${what}: the message key is the key field`);
      assert.deepEqual([d.key_size, d.key_sha256], [key.length, sha(key)], what);
    }
    assert.deepEqual(
      p.map((d) => [d.raw_truncated, d.key_truncated]),
      [
        [true, false],
        [false, true],
        [true, true],
      ],
    );
    assert.equal(truncatedMetric, '3', 'counted once each');
  });

  test('/health: a partition that cannot make progress is unhealthy steadily; once it can, healthy again and every label exactly once', async () => {
    const { kafka, admin, work, sim, topics } = suite;
    const cfg0 = testConfig(join(work, 'stuck'), PARTITIONS);
    const cfg: Config = {
      ...cfg0,
      metrics: { ...cfg0.metrics, enabled: true, port: 0, stuckPartitionMs: 5_000 },
    };
    const t = cfg.kafka.topics;
    topics.push(...Object.values(t));
    await ensureTopics(admin, cfg.kafka);
    // A pointwise topic that refuses every label (MESSAGE_TOO_LARGE): each batch's transaction
    // fails, the service recovers and fails again on the same records, for ever. Not below
    // MIN_MAX_MESSAGE_BYTES: the abort's marker must still fit the topic, or the broker wedges
    // the transaction (src/kafka/txn-markers.ts) and nothing but a coordinator reload frees it.
    const refusing = 256;
    const setMax = (v: string) =>
      admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: 2, name: t.pointwise, configEntries: [{ name: 'max.message.bytes', value: v }] }],
      });
    await setMax(String(refusing));
    await produceInputs(kafka, cfg, sim, PARTITIONS);
    const c = startLabel(writeConfig(work, 'stuck', cfg));
    try {
      const port = Number((await c.logged('metrics listening')).port);
      const health = async () =>
        (await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5_000) })).status;
      const stuckLine = await Promise.race([
        c.logged('partition stuck: input to process and no committed progress; /health reports unhealthy'),
        sleep(180_000).then(() => null),
      ]);
      assert.ok(stuckLine !== null, `no "partition stuck" line in 180 s:\n${c.stderr().slice(-3_000)}`);
      assert.equal(typeof stuckLine.partition, 'number', 'the line names the partition');
      const stuck: number[] = [];
      for (let i = 0; i < 30; i++) {
        stuck.push(await health());
        await sleep(300);
      }
      assert.deepEqual(
        stuck.filter((s) => s !== 503),
        [],
        `/health while stuck, every 300 ms: ${stuck.join(' ')}`,
      );
      // The topic accepts labels again: the partitions move, /health turns 200 and stays, and
      // every label is there exactly once (read_committed).
      await setMax('1048588');
      await waitConsumed(admin, cfg, 180_000, () => assert.equal(c.proc.exitCode, null));
      let ok = 0;
      for (let i = 0; i < 600 && ok < 10; i++) {
        ok = (await health()) === 200 ? ok + 1 : 0;
        await sleep(300);
      }
      assert.equal(ok, 10, '/health is 200 ten times in a row once the partitions move');
    } finally {
      c.proc.kill('SIGTERM');
      assert.equal(await exitWithin(c.proc, 60_000, 'the stop', c.stderr), 0);
    }
    const recs = await readAll(kafka, admin, [t.pointwise, t.pairwise, t.listwise, t.deadLetter]);
    const pointwise = recs.filter((r) => r.topic === t.pointwise);
    assert.ok(pointwise.length > 0);
    assert.deepEqual(
      pointwise.filter((r) => r.value.length <= refusing).map((r) => r.value.length),
      [],
      `every pointwise label is larger than ${refusing} bytes (so the topic refused every batch)`,
    );
    assertLabelsOnce(cfg, sim, recs);
    assert.deepEqual(
      recs
        .filter((r) => r.topic === t.deadLetter)
        .map((r) => {
          const d = decodeAvro('DeadLetter', r.value);
          assert.ok(d.ok);
          return d.value.reason_code;
        })
        .sort(),
      expectedDeadReasons(sim),
      'each of the simulator’s dead letters once',
    );
  });
  test('an output topic too small for a transaction marker: named at run time, refused at start-up', async () => {
    const { admin, work, kafka, sim, topics } = suite;
    const cfg0 = testConfig(join(work, 'markers'), PARTITIONS);
    const cfg: Config = { ...cfg0, metrics: { ...cfg0.metrics, enabled: true, port: 0 } };
    const t = cfg.kafka.topics;
    topics.push(...Object.values(t));
    await ensureTopics(admin, cfg.kafka);
    const setMax = (v: string) =>
      admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: 2, name: t.pointwise, configEntries: [{ name: 'max.message.bytes', value: v }] }],
      });
    const path = writeConfig(work, 'markers', cfg);
    // Lowered while the service runs: the refused batch's abort wedges the transaction in the
    // broker, which the service cannot undo; it says so, naming the topic.
    const c = startLabel(path);
    try {
      await c.logged('label service started');
      await setMax('64');
      await produceInputs(kafka, cfg, sim, PARTITIONS);
      const line = await Promise.race([
        c.logged(
          `output topic max.message.bytes below ${MIN_MAX_MESSAGE_BYTES}: ${t.pointwise} (max.message.bytes=64). A transaction marker does not fit there, so the broker cannot end a transaction that wrote to it and blocks its transactional id (CONCURRENT_TRANSACTIONS) until the transaction coordinator reloads, even after the limit is raised: raise it to at least ${MIN_MAX_MESSAGE_BYTES} (the default is 1048588), then restart the broker if a transaction is already blocked`,
        ),
        sleep(180_000).then(() => null),
      ]);
      assert.ok(line !== null, `no line naming the topic in 180 s:\n${c.stderr().slice(-3_000)}`);
      assert.equal(line.level, 'error');
    } finally {
      c.proc.kill('SIGTERM');
      assert.equal(await exitWithin(c.proc, 60_000, 'the stop', c.stderr), 0);
    }
    // At start-up: one clear line, exit non-zero, before joining the group.
    const again = startLabel(path, { RANKDISTILL_LOG_LEVEL: 'warn' });
    const code = await exitWithin(again.proc, 120_000, 'a start with a too small output topic', again.stderr);
    assert.notEqual(code, 0);
    const plain = again
      .stderr()
      .split('\n')
      .filter((l) => l.length > 0 && !l.startsWith('{'));
    assert.equal(plain.length, 1, plain.join('\n'));
    assert.match(plain[0]!, new RegExp(`CONFIG_INVALID.*${t.pointwise} \\(max\\.message\\.bytes=64\\)`));
  });
});
