// The label client reading what the LIVE labeling service produced: `rankdistill label` runs as a
// child process (the CLI, as deployed), simulated traffic goes into its input topics, and
// subscribeLabels must deliver exactly the pairwise labels labelRequest computes for the
// simulator's truth — decoded, typed, once each, byte-identical when re-encoded.
//
// Run:  eval "$(bash scripts/kafka-local.sh start)"
//       node --import tsx --test test/integration/client-live.test.ts
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka } from 'kafkajs';
import { type LabelMessage, subscribeLabels } from '../../src/client/index.ts';
import { encodeAvro } from '../../src/contracts/index.ts';
import { uniqueTopic } from './kafka-env.ts';
import {
  expectedLabels,
  produceInputs,
  SENTINEL_PREFIX,
  type SimFiles,
  simulateFiles,
  testConfig,
  testKafka,
} from './label-helpers.ts';

const PARTITIONS = 2;

describe('label client against the live `rankdistill label` service', { timeout: 120_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  let work: string;
  let sim: SimFiles;
  let service: ChildProcess | undefined;
  const topics: string[] = [];

  before(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    work = mkdtempSync(join(tmpdir(), 'rd-client-live-'));
    sim = await simulateFiles(join(work, 'sim'), 200, 23);
  });

  after(async () => {
    if (service && service.exitCode === null) service.kill('SIGKILL');
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
    rmSync(work, { recursive: true, force: true });
  });

  test('subscribeLabels delivers exactly the labels the service produced, decoded and typed', async () => {
    const cfg = testConfig(join(work, 'state'), PARTITIONS);
    const t = cfg.kafka.topics;
    topics.push(...Object.values(t));
    // Co-partitioned inputs exist before anything is produced; the service creates the rest.
    await admin.createTopics({
      topics: [t.rankerOutputs, t.impressions].map((topic) => ({ topic, numPartitions: PARTITIONS })),
      waitForLeaders: true,
    });
    await produceInputs(kafka, cfg, sim, PARTITIONS);

    const cfgFile = join(work, 'rankdistill.json');
    writeFileSync(cfgFile, JSON.stringify(cfg));
    let stderr = '';
    service = spawn(process.execPath, ['bin/rankdistill.mjs', '-c', cfgFile, 'label'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    service.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-4000);
    });

    const expected = new Map([...expectedLabels(cfg, sim)].filter(([id]) => id.endsWith(':pairwise')));
    assert.ok(expected.size > 100, `the simulation yields pairwise labels (${expected.size})`);

    // The service creates the label topics at start; subscribing earlier is TOPIC_MISSING.
    while (!(await admin.listTopics()).includes(t.pairwise)) {
      assert.equal(service.exitCode, null, `the label service exited: ${stderr}`);
      await sleep(200);
    }
    const labels = subscribeLabels({
      brokers: cfg.kafka.brokers,
      kind: 'pairwise',
      topic: t.pairwise,
      groupId: uniqueTopic('rd-client-live-g'),
    });
    const got = new Map<string, LabelMessage<'pairwise'>[]>();
    const deadline = Date.now() + 90_000;
    let pending = labels.next();
    // Until every expected label arrived, then 1.5 s more to catch duplicates.
    let graceUntil = Number.POSITIVE_INFINITY;
    while (Date.now() < Math.min(deadline, graceUntil)) {
      const ac = new AbortController();
      const r = await Promise.race([pending, sleep(500, 'tick' as const, { signal: ac.signal })]);
      ac.abort();
      assert.equal(service.exitCode, null, `the label service exited: ${stderr}`);
      if (r === 'tick') continue;
      if (r.done) break;
      const id = r.value.value.id;
      if (!id.startsWith(SENTINEL_PREFIX)) got.set(id, [...(got.get(id) ?? []), r.value]);
      if (got.size >= expected.size && graceUntil === Number.POSITIVE_INFINITY)
        graceUntil = Date.now() + 1_500;
      pending = labels.next();
    }
    await labels.close();
    await pending.catch(() => undefined);
    service.kill('SIGTERM');
    await new Promise((resolve) => service?.once('exit', resolve));

    const missing = [...expected.keys()].filter((id) => !got.has(id));
    const extra = [...got.keys()].filter((id) => !expected.has(id));
    assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5) }, { missing: [], extra: [] });
    for (const [id, msgs] of got) {
      assert.equal(msgs.length, 1, `label ${id} delivered ${msgs.length} times`);
      const m = msgs[0]!;
      assert.equal(m.kind, 'pairwise');
      assert.equal(m.key, m.value.user_id, 'labels are keyed by user_id');
      assert.ok(
        m.value.pairs.every((p) => p.pos_rank < p.neg_rank),
        'typed access: pos outranks neg',
      );
      assert.ok(encodeAvro('PairwiseLabels', m.value).equals(expected.get(id)!), `label ${id} differs`);
    }
  });
});
