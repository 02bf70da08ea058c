// Replay against a real broker (KAFKA_BROKERS): a simulated hour of traffic (1,500 requests at
// 0.42 requests/s of event time) goes to the input topics; the live labeling service runs until
// it has consumed everything; then the same time range is replayed from Kafka into new topics and
// into files. All three outputs must hold the same labels (per kind: same ids, keys, value bytes)
// and the same dead letters (up to their wall-clock time). A dry run's outcome counts must match
// the simulator's truth, and a replay into topics interrupted halfway and resumed must give the
// same topics, with no duplicates.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka } from 'kafkajs';
import { outcomeTable } from '../../src/cli/commands/replay.ts';
import { type Config, configSchema } from '../../src/config/schema.ts';
import { decodeAvro } from '../../src/contracts/codec.ts';
import type { Impression, RankerOutput } from '../../src/contracts/index.ts';
import { readRecords } from '../../src/io/files.ts';
import { FileSimSink } from '../../src/io/sim-sink.ts';
import { LabelService } from '../../src/pipeline/label-service.ts';
import { replay } from '../../src/replay/replay.ts';
import type { OutputTopics } from '../../src/replay/sinks.ts';
import type { SimTruth } from '../../src/sim/generate.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { truthOutcomes } from '../replay/helpers.ts';
import {
  labelId,
  produceInputs,
  type Received,
  readAll,
  type SimFiles,
  testConfig,
  testKafka,
  waitConsumed,
} from './label-helpers.ts';

const PARTITIONS = 2;
const KINDS = ['pointwise', 'pairwise', 'listwise'] as const;

async function simulateHour(dir: string): Promise<SimFiles> {
  await simulate(
    { seed: 17, requests: 1_500, candidates: 20, items: 2_000, users: 300, rate: 1_500 / 3_600 },
    new FileSimSink(dir, 'avro'),
  );
  const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as SimTruth;
  const rankers: SimFiles['rankers'] = [];
  for await (const r of readRecords(join(dir, 'ranker-outputs.avro'), 'RankerOutput')) {
    rankers.push({ raw: r.raw, value: r.result.ok ? (r.result.value as RankerOutput) : null });
  }
  const impressions: SimFiles['impressions'] = [];
  for await (const r of readRecords(join(dir, 'impressions.avro'), 'Impression')) {
    impressions.push({ raw: r.raw, value: r.result.ok ? (r.result.value as Impression) : null });
  }
  return { dir, truth, rankers, impressions };
}

type ById = Map<string, { key: string; value: string }[]>;

function byId(recs: Received[], topic: string): ById {
  const m: ById = new Map();
  for (const r of recs) {
    if (r.topic !== topic) continue;
    const id = labelId(r.value);
    const list = m.get(id) ?? [];
    list.push({ key: r.key?.toString('utf8') ?? '', value: r.value.toString('base64') });
    m.set(id, list);
  }
  return m;
}

function deadLettersOf(recs: Received[], topic: string): string[] {
  return recs
    .filter((r) => r.topic === topic)
    .map((r) => {
      const d = decodeAvro('DeadLetter', r.value);
      if (!d.ok) throw d.error;
      const { time: _t, raw, key, ...rest } = d.value;
      return JSON.stringify({ ...rest, raw: raw.toString('base64'), key: key?.toString('base64') ?? null });
    })
    .sort();
}

function replayTopics(prefix: string): OutputTopics {
  return {
    pointwise: `${prefix}.pointwise`,
    pairwise: `${prefix}.pairwise`,
    listwise: `${prefix}.listwise`,
    deadLetter: `${prefix}.dead-letter`,
  };
}

describe('rankdistill replay (Kafka)', { timeout: 240_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  let work: string;
  let sim: SimFiles;
  let cfg: Config;
  let from: number;
  let to: number;
  let live: Received[];
  const topicsToDelete: string[] = [];

  before(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    work = mkdtempSync(join(tmpdir(), 'rd-replay-it-'));
    sim = await simulateHour(join(work, 'sim'));
    cfg = testConfig(join(work, 'state'), PARTITIONS);
    topicsToDelete.push(...Object.values(cfg.kafka.topics));
    const t = cfg.kafka.topics;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [t.rankerOutputs, t.impressions].map((topic) => ({ topic, numPartitions: PARTITIONS })),
    });
    from = Date.now() - 1;
    await produceInputs(kafka, cfg, sim, PARTITIONS); // with one far-future sentinel per partition
    to = Date.now() + 1;
    const svc = new LabelService(cfg);
    await svc.start();
    try {
      await waitConsumed(admin, cfg, 120_000);
    } finally {
      await svc.stop();
    }
    live = await readAll(kafka, admin, [t.pointwise, t.pairwise, t.listwise, t.deadLetter]);
  });

  after(async () => {
    if (topicsToDelete.length > 0)
      await admin.deleteTopics({ topics: topicsToDelete }).catch(() => undefined);
    await admin.disconnect();
    rmSync(work, { recursive: true, force: true });
  });

  test('live service, replay into topics and replay into files give the same labels', async () => {
    const t = cfg.kafka.topics;
    const out = replayTopics(`rd-replay-it-${Date.now().toString(36)}`);
    topicsToDelete.push(...Object.values(out));
    const r1 = await replay({
      config: cfg,
      input: { kind: 'kafka', from, to },
      output: { kind: 'topics', topics: out },
      stateDir: join(work, 'replay-topics'),
    });
    assert.equal(r1.status, 'complete');
    assert.equal(r1.partitions, PARTITIONS);
    const r2 = await replay({
      config: cfg,
      input: { kind: 'kafka', from, to },
      output: { kind: 'files', dir: join(work, 'replay-files'), format: 'avro' },
      stateDir: join(work, 'replay-files-state'),
    });
    assert.equal(r2.status, 'complete');
    assert.deepEqual(r2.counts, r1.counts);
    assert.ok(r1.groupId.startsWith('rankdistill-replay-') && r1.groupId !== cfg.kafka.groupId);

    const replayed = await readAll(kafka, admin, Object.values(out));
    for (const kind of KINDS) {
      const a = byId(live, t[kind]);
      const b = byId(replayed, out[kind]);
      assert.ok(a.size > 1_000, `live ${kind}: ${a.size} labels`);
      assert.equal(b.size, a.size, `${kind}: same number of ids`);
      for (const [id, recs] of a) {
        assert.equal(recs.length, 1, `live ${kind} ${id} once`);
        assert.deepEqual(b.get(id), recs, `replayed ${kind} ${id}: same key and bytes`);
      }
      // Files: same ids and value bytes (files have no keys).
      const files = new Map<string, string>();
      const contract = {
        pointwise: 'PointwiseLabels',
        pairwise: 'PairwiseLabels',
        listwise: 'ListwiseLabels',
      } as const;
      for await (const r of readRecords(join(work, 'replay-files', `labels.${kind}.avro`), contract[kind])) {
        assert.ok(r.result.ok);
        assert.equal(files.has(r.result.value.id), false, `file ${kind} ${r.result.value.id} once`);
        files.set(r.result.value.id, Buffer.from(r.raw).toString('base64'));
      }
      assert.equal(files.size, a.size, `file ${kind}: same number of ids`);
      for (const [id, recs] of a)
        assert.equal(files.get(id), recs[0]?.value, `file ${kind} ${id}: same bytes`);
    }
    assert.deepEqual(deadLettersOf(replayed, out.deadLetter), deadLettersOf(live, t.deadLetter));
    // The live service's offsets are untouched by the replay's group.
    const groups = await admin.fetchOffsets({ groupId: r1.groupId, topics: [t.rankerOutputs] });
    assert.ok((groups[0]?.partitions.length ?? 0) > 0);
  });

  test('--dry-run over the range counts what the simulator says', async () => {
    const r = await replay({ config: cfg, input: { kind: 'kafka', from, to }, output: { kind: 'dry' } });
    assert.equal(r.status, 'complete');
    const table = outcomeTable(r.counts);
    for (const [k, v] of Object.entries(truthOutcomes(sim.truth))) assert.equal(table[k], v, `outcome ${k}`);
    assert.equal(r.open, PARTITIONS, 'only the far-future sentinels stay open');
  });

  test('a replay into topics interrupted halfway and resumed writes every label once', async () => {
    const t = cfg.kafka.topics;
    const out = replayTopics(`rd-replay-it-resume-${Date.now().toString(36)}`);
    topicsToDelete.push(...Object.values(out));
    const opts = {
      config: cfg,
      input: { kind: 'kafka', from, to } as const,
      output: { kind: 'topics', topics: out } as const,
      stateDir: join(work, 'replay-resume'),
      checkpointEvery: 300,
    };
    const ac = new AbortController();
    const total = sim.rankers.length + sim.impressions.length;
    const first = await replay({
      ...opts,
      signal: ac.signal,
      onProgress: (p) => p.done > total / 2 && ac.abort(),
    });
    assert.equal(first.status, 'interrupted');
    assert.ok(first.processed > 0 && first.processed < total);
    const second = await replay(opts);
    assert.equal(second.status, 'complete');
    const replayed = await readAll(kafka, admin, Object.values(out));
    for (const kind of KINDS) {
      const a = byId(live, t[kind]);
      const b = byId(replayed, out[kind]);
      const dupes = [...b].filter(([, v]) => v.length > 1).length;
      assert.equal(dupes, 0, `${kind}: no duplicates after the resume`);
      assert.equal(b.size, a.size);
      for (const [id, recs] of a) assert.deepEqual(b.get(id), recs, `${kind} ${id}`);
    }
    assert.deepEqual(deadLettersOf(replayed, out.deadLetter), deadLettersOf(live, t.deadLetter));
  });

  test('CLI: SIGINT halfway through a replay into topics, then the same command: every label once', async () => {
    const t = cfg.kafka.topics;
    const prefix = `rd-replay-cli-${Date.now().toString(36)}.`;
    const out = replayTopics('unused');
    // The CLI's config names only the inputs, so --to-topics prefixes the default output names.
    const defaults = configSchema.parse({}).kafka.topics;
    for (const k of ['pointwise', 'pairwise', 'listwise', 'deadLetter'] as const)
      out[k] = `${prefix}${defaults[k]}`;
    topicsToDelete.push(...Object.values(out));
    const cfgFile = join(work, 'replay-cli.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        kafka: {
          brokers: cfg.kafka.brokers,
          topics: { rankerOutputs: t.rankerOutputs, impressions: t.impressions },
        },
        store: { dir: join(work, 'cli-store') },
        metrics: { enabled: false },
      }),
    );
    const state = join(work, 'replay-cli-state');
    const args = [
      new URL('../../bin/rankdistill.mjs', import.meta.url).pathname,
      '-c',
      cfgFile,
      'replay',
      '--from',
      new Date(from).toISOString(),
      '--to',
      String(to),
      '--to-topics',
      prefix,
      '--state-dir',
      state,
      '--checkpoint-every',
      '100',
    ];
    const run = () => {
      const child = spawn(process.execPath, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'warn' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
        child.on('close', (code) => r({ code, stdout, stderr })),
      );
      return { child, done };
    };
    const first = run();
    const ckpt = join(state, 'ckpt');
    for (let i = 0; i < 6_000; i++) {
      const ks = existsSync(ckpt)
        ? readdirSync(ckpt).map((n) => Number(/-(\d+)\.json$/.exec(n)?.[1] ?? 0))
        : [];
      if (Math.max(0, ...ks) >= 3) break;
      await sleep(10);
    }
    first.child.kill('SIGINT');
    const r1 = await first.done;
    assert.equal(r1.code, 130, r1.stderr);
    assert.equal((JSON.parse(r1.stdout) as { status: string }).status, 'interrupted');
    const r2 = await run().done;
    assert.equal(r2.code, 0, r2.stderr);
    // the far-future sentinels stay open (no drain by default on a Kafka range): not "complete"
    const s2 = JSON.parse(r2.stdout) as { status: string; open: number };
    assert.equal(s2.status, 'ended-with-open-requests');
    assert.equal(s2.open, PARTITIONS);
    assert.match(r2.stderr, new RegExp(`replay: ${PARTITIONS} requests were still open`));
    const replayed = await readAll(kafka, admin, Object.values(out));
    for (const kind of KINDS) {
      const a = byId(live, t[kind]);
      const b = byId(replayed, out[kind]);
      assert.equal([...b].filter(([, v]) => v.length > 1).length, 0, `${kind}: no duplicates`);
      assert.equal(b.size, a.size);
      for (const [id, recs] of a) assert.deepEqual(b.get(id), recs, `${kind} ${id}`);
    }
    assert.deepEqual(deadLettersOf(replayed, out.deadLetter), deadLettersOf(live, t.deadLetter));
  });
});
