/**
 * Long-run memory check of the labeler (issue #25): `rankdistill label` as its own process under
 * steady traffic for RD_SOAK_SECONDS (default 1800 = 30 min), its RSS sampled from /proc every
 * RD_SOAK_SAMPLE_S (10 s). Reported: RSS after the warm-up (the baseline), at the end, their ratio,
 * and the least-squares slope over the measured window in MB per hour with its R² (goal: flat
 * within noise, i.e. a slope that would not reach the next GB in days). Not a test: never asserted.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 npm run bench:soak
 *   RD_SOAK_SECONDS=300 RD_SOAK_RATE=300 npm run bench:soak   # a short run
 *
 * The join window is short (2 s, lateness 1 s) so state expires as in production's steady state,
 * not only grows; requests are produced at RD_SOAK_RATE per second (default 500), 20 candidates,
 * one impression each.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { type Config, configSchema } from '../src/config/schema.ts';
import { encodeAvro } from '../src/contracts/codec.ts';
import type { RankerOutput } from '../src/contracts/index.ts';
import { ensureTopics } from '../src/kafka/topics.ts';
import { impression } from './label-input.ts';
import { writeResult } from './lib.ts';

const SECONDS = Number(process.env.RD_SOAK_SECONDS ?? 1_800);
const RATE = Number(process.env.RD_SOAK_RATE ?? 500);
const SAMPLE_S = Number(process.env.RD_SOAK_SAMPLE_S ?? 10);
/** Samples before this share of the run are warm-up (JIT, first restores, heap growth). */
const WARMUP_SHARE = 0.2;
const PARTITIONS = 2;

function brokers(): string[] {
  const list = (process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new Error('KAFKA_BROKERS is not set: start scripts/kafka-local.sh and export it');
  return list;
}

function ranker(seq: number, ts: number): RankerOutput {
  return {
    request_id: `soak-${seq}`,
    user_id: `user-${seq % 997}`,
    ts,
    model_version: 'teacher-v1',
    context: { hour: seq % 24 },
    items: Array.from({ length: 20 }, (_, i) => ({
      item_id: `item-${String((seq * 7919 + i * 104729) % 10_000_000).padStart(7, '0')}`,
      score: 4 - (8 * i) / 20,
      objectives: null,
      features: null,
    })),
  };
}

/** Resident set size of a process in MB (VmRSS of /proc/<pid>/status). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

/** Least-squares slope (per x unit) and R² of y over x. */
function fit(xs: number[], ys: number[]): { slope: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { slope, r2: sxx === 0 || syy === 0 ? 0 : (sxy * sxy) / (sxx * syy) };
}

async function main(): Promise<void> {
  const id = `soak-${Date.now().toString(36)}`;
  const dir = mkdtempSync(join(tmpdir(), 'rd-bench-soak-'));
  const cfg: Config = configSchema.parse({
    join: { windowMs: 2_000, allowedLatenessMs: 1_000 },
    kafka: {
      brokers: brokers(),
      groupId: `rd-bench-${id}`,
      partitions: PARTITIONS,
      topics: {
        rankerOutputs: `rd-b-ro-${id}`,
        impressions: `rd-b-imp-${id}`,
        pointwise: `rd-b-pw-${id}`,
        pairwise: `rd-b-pa-${id}`,
        listwise: `rd-b-lw-${id}`,
        deadLetter: `rd-b-dl-${id}`,
        changelog: `rd-b-cl-${id}`,
      },
    },
    store: { dir: join(dir, 'state') },
    metrics: { enabled: false },
  });
  const kafka = new Kafka({
    clientId: 'rd-bench-soak',
    brokers: cfg.kafka.brokers,
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, cfg.kafka);
  const cfgPath = join(dir, 'config.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const child = spawn(process.execPath, ['bin/rankdistill.mjs', '-c', cfgPath, 'label'], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, RANKDISTILL_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  await producer.connect();
  const samples: Array<{ s: number; rss: number; produced: number }> = [];
  let seq = 0;
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  try {
    const started = Date.now();
    let nextSample = started;
    const tick = 100;
    while (Date.now() - started < SECONDS * 1000 && !dead) {
      const now = Date.now();
      const due = Math.floor(((now - started) / 1000) * RATE);
      const rs = [];
      const is = [];
      for (; seq < due; seq++) {
        const r = ranker(seq, now);
        rs.push({ key: r.user_id, value: encodeAvro('RankerOutput', r) });
        is.push({ key: r.user_id, value: encodeAvro('Impression', impression(r, now + 1)) });
      }
      if (rs.length > 0) {
        await producer.sendBatch({
          topicMessages: [
            { topic: cfg.kafka.topics.rankerOutputs, messages: rs },
            { topic: cfg.kafka.topics.impressions, messages: is },
          ],
          acks: -1,
        });
      }
      if (now >= nextSample && child.pid !== undefined) {
        samples.push({ s: (now - started) / 1000, rss: rssMb(child.pid), produced: seq });
        nextSample += SAMPLE_S * 1000;
      }
      await sleep(Math.max(0, tick - (Date.now() - now)));
    }
    if (dead) throw new Error('rankdistill label exited during the soak');
    const committed = await admin.fetchOffsets({
      groupId: cfg.kafka.groupId,
      topics: [cfg.kafka.topics.rankerOutputs],
    });
    const consumed = committed[0]?.partitions.reduce((a, p) => a + Math.max(0, Number(p.offset)), 0) ?? 0;
    const measured = samples.filter((x) => x.s >= SECONDS * WARMUP_SHARE);
    const { slope, r2 } = fit(
      measured.map((x) => x.s / 3600),
      measured.map((x) => x.rss),
    );
    const base = measured[0]?.rss ?? Number.NaN;
    const end = measured[measured.length - 1]?.rss ?? Number.NaN;
    const peak = Math.max(...samples.map((x) => x.rss));
    writeResult('soak', {
      duration: { value: SECONDS, unit: 's', note: `steady ${RATE} requests/s, RSS every ${SAMPLE_S} s` },
      requests: {
        value: seq,
        unit: 'requests',
        note: `ranker outputs committed by the labeler: ${consumed}`,
      },
      rssAfterWarmup: { value: Math.round(base), unit: 'MB', note: `at ${WARMUP_SHARE * 100} % of the run` },
      rssEnd: {
        value: Math.round(end),
        unit: 'MB',
        baseline: Math.round(base),
        ratio: end / base,
        goal: 'ratio ~1 (flat within noise)',
      },
      rssPeak: { value: Math.round(peak), unit: 'MB' },
      rssSlope: {
        value: Math.round(slope * 10) / 10,
        unit: 'MB/hour',
        note: `least squares over the ${measured.length} samples after the warm-up, R² ${r2.toFixed(3)}`,
        goal: 'flat within noise',
      },
    });
    writeFileSync(
      new URL('./results/soak-samples.json', import.meta.url),
      `${JSON.stringify({ rate: RATE, sampleS: SAMPLE_S, samples }, null, 1)}\n`,
    );
  } finally {
    child.kill('SIGTERM');
    await exited;
    await producer.disconnect();
    await admin.deleteTopics({ topics: Object.values(cfg.kafka.topics) }).catch(() => undefined);
    await admin.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
