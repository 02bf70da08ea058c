// `rankdistill up` against the test broker (KAFKA_BROKERS given, so no broker is started): a
// bounded run (--duration) of simulator → labeler → trainer as child processes; labels and at
// least one snapshot appear, and every child has exited once `up` returns.
//
// Run:  KAFKA_BROKERS=127.0.0.1:9092 node --import tsx --test test/integration/up.test.ts
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { openRegistry } from '../../src/snapshots/registry.ts';
import { loadSnapshotDir } from '../../src/snapshots/store.ts';
import { brokersFromEnv, uniqueTopic } from './kafka-env.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rd-up-'));
const ns = uniqueTopic('rd-it-up');
const topics = {
  RANKER_OUTPUTS: `${ns}.ranker-outputs`,
  IMPRESSIONS: `${ns}.impressions`,
  POINTWISE: `${ns}.labels.pointwise`,
  PAIRWISE: `${ns}.labels.pairwise`,
  LISTWISE: `${ns}.labels.listwise`,
  DEAD_LETTER: `${ns}.dead-letter`,
  CHANGELOG: `${ns}.changelog`,
  SNAPSHOTS: `${ns}.snapshots`,
};

after(async () => {
  const kafka = new Kafka({ clientId: 'rd-it-up', brokers: brokersFromEnv(), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => {});
  await admin.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('up: labels and a snapshot appear in a bounded run; every child exits after the stop', async (t) => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KAFKA_BROKERS: brokersFromEnv().join(','),
    RANKDISTILL_KAFKA__PARTITIONS: '2',
    RANKDISTILL_KAFKA__GROUP_ID: `${ns}-labeler`,
    RANKDISTILL_TRAIN__GROUP_ID: `${ns}-trainer`,
    RANKDISTILL_TRAIN__CHECKPOINT_EVERY_MS: '4000',
    RANKDISTILL_TRAIN__DIM: '8',
    RANKDISTILL_TRAIN__HIDDEN: '[16]',
    RANKDISTILL_SNAPSHOTS__GATE_TOLERANCE: '1',
    ...Object.fromEntries(Object.entries(topics).map(([k, v]) => [`RANKDISTILL_KAFKA__TOPICS__${k}`, v])),
  };
  const out = join(dir, 'up');
  const child = spawn(
    process.execPath,
    [
      'bin/rankdistill.mjs',
      'up',
      '--duration',
      '35',
      '--requests',
      '600',
      '--status-every',
      '3',
      '--dir',
      out,
    ],
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  t.diagnostic(
    stdout
      .split('\n')
      .filter((l) => l.startsWith('[up]'))
      .slice(-6)
      .join('\n'),
  );
  assert.equal(code, 0, `up failed:\n${stdout}\n${stderr.slice(-3000)}`);
  assert.doesNotMatch(stdout, /starting a local Kafka broker/, 'KAFKA_BROKERS given: no broker of its own');
  assert.match(stdout, /labeler: in \d+, labels \d+/, 'live status lines from the labeler metrics');

  const summary = JSON.parse(readFileSync(join(out, 'up.json'), 'utf8')) as {
    labels: number;
    trainer: { published: number[]; examples: number };
    children: { name: string; pid: number; code: number | null; signal: string | null }[];
  };
  assert.ok(summary.labels > 0, 'labels were produced');
  assert.ok(summary.trainer.examples > 0, 'the trainer trained on them');
  assert.ok(summary.trainer.published.length >= 1, 'at least one snapshot published');
  assert.deepEqual(summary.children.map((c) => c.name).sort(), ['labeler', 'simulator', 'trainer']);
  for (const c of summary.children) {
    assert.equal(c.code, 0, `${c.name} exited cleanly`);
    assert.equal(alive(c.pid), false, `${c.name} (pid ${c.pid}) is gone`);
  }
  // the snapshot is registered and verifies
  const reg = openRegistry(join(out, 'snapshots', 'registry.sqlite'), { mustExist: true });
  try {
    const current = reg.current();
    assert.ok(current, 'a current snapshot');
    const snap = loadSnapshotDir(current.snapshot.path, current.snapshot.files);
    assert.equal(snap.version, current.snapshot.version);
  } finally {
    reg.close();
  }
});
