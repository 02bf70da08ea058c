/**
 * Replay throughput, DESIGN.md figure of record "replay": requests/s (ranker outputs per second of
 * wall time) of `replay()` from files and from a Kafka range, each against a same-run baseline
 * that only reads and decodes the same input (no join, no labels, no output):
 *
 * - files, per workload (50 and 200 candidates; Avro and NDJSON): replay files → files of the
 *   same format on one thread (the whole command: counting, reading, join, labels, part files,
 *   final assembly) vs `readRecords` of both files (read + decode), trials alternated so a load
 *   change hits both; then `rankdistill replay --partitions 2` with `--threads 2` vs `--threads 1`,
 *   each a fresh process of the compiled build (needs `npm run build`), as a user runs it: in
 *   this process the 1-thread run would reuse the JIT-compiled code of the trials before it while
 *   the threads start cold, which made 2 threads look slower than they are.
 * - kafka: replay of the topics' range into Avro files vs a plain kafkajs consumer (own group)
 *   reading both topics to the end and `decodeAvro`-ing every value. Also into topics (one Kafka
 *   transaction per checkpoint), against the same baseline.
 *
 * Workload: the simulator (seed 3), BENCH_REPLAY_REQUESTS requests [10,000] at 50 candidates and
 * half as many at 200, default fates. The 2-vs-1-thread rows run on inputs
 * BENCH_REPLAY_THREAD_REQUESTS [4 × BENCH_REPLAY_REQUESTS] long: a thread's fixed cost (its
 * isolate: module loading, TurboFan compiling the hot code again, its own heap) is paid once per
 * run, so a run of a few seconds overstates it against a backfill of hours. Kafka figures need a broker: KAFKA_BROKERS, or the shared
 * dev broker's /tmp/rd-dev-kafka/brokers; without one they are skipped (noted in the results).
 * BENCH_REPLAY_TRIALS [3] trials, best kept; BENCH_REPLAY_ONLY=files|kafka runs one half;
 * BENCH_REPLAY_FORMATS=avro|ndjson [both] runs the file rows of one format; BENCH_REPLAY_THREADS=0
 * skips the 2-thread figures (single-thread ratios only).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { type Config, configSchema } from '../src/config/schema.ts';
import { decodeAvro } from '../src/contracts/codec.ts';
import { readRecords } from '../src/io/files.ts';
import { FileSimSink } from '../src/io/sim-sink.ts';
import { replay } from '../src/replay/replay.ts';
import type { SimTruth } from '../src/sim/generate.ts';
import { simulate } from '../src/sim/simulate.ts';
import { compiledBuildPresent } from './kstreams.ts';
import { type Figure, writeResult } from './lib.ts';

const REQUESTS = Number(process.env.BENCH_REPLAY_REQUESTS ?? 10_000);
const TRIALS = Number(process.env.BENCH_REPLAY_TRIALS ?? 3);
const THREAD_REQUESTS = Number(process.env.BENCH_REPLAY_THREAD_REQUESTS ?? 4 * REQUESTS);
const PARTITIONS = 2;
const FORMATS = (process.env.BENCH_REPLAY_FORMATS ?? 'avro,ndjson').split(',').map((f) => f.trim());
const THREAD_FIGURES = process.env.BENCH_REPLAY_THREADS !== '0';

const work = mkdtempSync(join(tmpdir(), 'rd-bench-replay-'));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const simDir = join(work, 'sim');
const round = (x: number) => Math.round(x);

/** Best wall-clock rate of TRIALS runs, and the rate per second of this process's CPU time. */
async function best(
  fn: (trial: number) => Promise<number | { n: number; cleanup: () => void }>,
  trials = TRIALS,
): Promise<{ best: number; all: number[]; cpu: number }> {
  const all: number[] = [];
  let cpu = 0;
  for (let t = 0; t < trials; t++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = await fn(t);
    const n = typeof r === 'number' ? r : r.n;
    all.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
    const c = process.cpuUsage(c0);
    cpu = Math.max(cpu, n / ((c.user + c.system) / 1e6));
    // Deleting a run's output is not part of the run (it was timed before: ~5% at 200 candidates).
    if (typeof r !== 'number') r.cleanup();
  }
  return { best: Math.max(...all), all, cpu };
}

function brokers(): string[] | null {
  const env = process.env.KAFKA_BROKERS;
  if (env !== undefined && env.trim() !== '') return env.split(',').map((b) => b.trim());
  const f = '/tmp/rd-dev-kafka/brokers';
  return existsSync(f) ? [readFileSync(f, 'utf8').trim()] : null;
}

/** CPU seconds of this process's finished children (cutime + cstime of /proc/self/stat). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / CLOCK_TICKS;
}

/**
 * `rankdistill replay` of a simulated run's files into files of the same format, over
 * PARTITIONS partitions on `threads` threads, in a fresh process (bin/, the compiled build):
 * its wall and CPU seconds. The thread rows run the command a user runs, so the 1-thread run
 * pays the same start-up and JIT warm-up as the threads (in this process it would run warm).
 */
async function cliReplay(
  dir: string,
  format: 'avro' | 'ndjson',
  threads: number,
): Promise<{ wall: number; cpu: number }> {
  const out = join(work, `cli-out-${threads}`);
  const state = join(work, `cli-state-${threads}`);
  const args = ['replay', '--in', dir, '--out', out, '--format', format, '--state-dir', state];
  args.push('--partitions', String(PARTITIONS), '--threads', String(threads), '--no-progress');
  const c0 = childrenCpu();
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'rankdistill.mjs'), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = childrenCpu() - c0;
  rmSync(out, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
  if (code !== 0) throw new Error(`rankdistill ${args.join(' ')} exited ${code}: ${err}`);
  return { wall, cpu };
}

/** Read + decode of both files of a simulated run, the way the file transport reads them. */
async function readDecode(dir: string, ext: string): Promise<number> {
  let n = 0;
  for await (const r of readRecords(join(dir, `ranker-outputs.${ext}`), 'RankerOutput')) if (r.result.ok) n++;
  for await (const r of readRecords(join(dir, `impressions.${ext}`), 'Impression')) if (r.result.ok) n++;
  if (n === 0) throw new Error('nothing decoded');
  return n;
}

/**
 * Files → files of one workload against its own read+decode baseline (one thread), and with
 * 2 threads against 1 thread (both over 2 partitions), figures `files_<fmt>_<c>c_*`.
 */
async function filesCase(
  figures: Record<string, Figure>,
  config: Config,
  candidates: number,
  format: 'avro' | 'ndjson',
  requests: number,
  threadRequests: number,
): Promise<string> {
  const sim = async (dir: string, n: number) => {
    await simulate({ seed: 3, requests: n, candidates }, new FileSimSink(dir, format));
    return (JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as SimTruth).counts.records
      .rankerOutputs;
  };
  let dir = join(work, `sim-${candidates}-${format}`);
  let reqs = await sim(dir, requests);
  const tag = `files_${format}_${candidates}c`;
  let k = 0;
  const run = (partitions: number, threads: number) => async () => {
    const t = k++;
    const res = await replay({
      config,
      input: { kind: 'files', dir },
      output: { kind: 'files', dir: join(work, `out-${tag}-${t}`), format },
      stateDir: join(work, `state-${tag}-${t}`),
      partitions,
      threads,
    });
    if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
    return {
      n: reqs,
      cleanup: () => {
        rmSync(join(work, `out-${tag}-${t}`), { recursive: true, force: true });
        rmSync(join(work, `state-${tag}-${t}`), { recursive: true, force: true });
      },
    };
  };
  // Alternated, so a load change on the shared machine hits both sides alike.
  const base: number[] = [];
  const one: number[] = [];
  let baseCpu = 0;
  let oneCpu = 0;
  for (let t = 0; t < TRIALS; t++) {
    const b = await best(async () => {
      await readDecode(dir, format);
      return reqs;
    }, 1);
    base.push(b.best);
    baseCpu = Math.max(baseCpu, b.cpu);
    const r = await best(run(1, 1), 1);
    one.push(r.best);
    oneCpu = Math.max(oneCpu, r.cpu);
  }
  const bBest = Math.max(...base);
  const oBest = Math.max(...one);
  figures[`${tag}_requests_per_s`] = {
    value: round(oBest),
    unit: 'requests/s',
    baseline: round(bBest),
    ratio: oBest / bBest,
    goal: 0.8,
    note: `${format} files → ${format} files, one thread, ${reqs} requests of ${candidates} candidates; trials ${one.map(round).join(', ')} vs baseline ${base.map(round).join(', ')}; per CPU-second ${round(oneCpu)} vs ${round(baseCpu)} (ratio ${(oneCpu / baseCpu).toFixed(2)}); baseline: readRecords (read + decode) of both files, same run, alternated`,
  };
  const summary = `${tag}: ${round(oBest)} vs ${round(bBest)} (${(oBest / bBest).toFixed(2)}; per CPU-second ${(oneCpu / baseCpu).toFixed(2)})`;
  if (!THREAD_FIGURES) {
    rmSync(dir, { recursive: true, force: true });
    return summary;
  }
  if (threadRequests !== requests) {
    rmSync(dir, { recursive: true, force: true });
    dir = join(work, `sim-${candidates}-${format}-threads`);
    reqs = await sim(dir, threadRequests);
  }
  const t1: number[] = [];
  const t2: number[] = [];
  // Requests per CPU-second of the whole `rankdistill replay` process (every thread): how much more
  // CPU 2 threads spend.
  let cpu1 = 0;
  let cpu2 = 0;
  for (let t = 0; t < TRIALS; t++) {
    const r1 = await cliReplay(dir, format, 1);
    t1.push(reqs / r1.wall);
    cpu1 = Math.max(cpu1, reqs / r1.cpu);
    const r2 = await cliReplay(dir, format, 2);
    t2.push(reqs / r2.wall);
    cpu2 = Math.max(cpu2, reqs / r2.cpu);
  }
  const b1 = Math.max(...t1);
  const b2 = Math.max(...t2);
  figures[`${tag}_2_threads_requests_per_s`] = {
    value: round(b2),
    unit: 'requests/s',
    baseline: round(b1),
    ratio: b2 / b1,
    goal: 1.6,
    note: `${reqs} requests, \`rankdistill replay --partitions 2 --threads 2\` vs \`--threads 1\` (the command a user runs, a fresh process each: start-up, warm-up and the final files' assembly included); trials ${t2.map(round).join(', ')} vs ${t1.map(round).join(', ')}, alternated; CPU-seconds 2 threads / 1 thread ${(cpu1 / cpu2).toFixed(2)}; ${cpus().length} cores shared with other processes (load average ${loadavg()[0]?.toFixed(1)} at the end)`,
  };
  rmSync(dir, { recursive: true, force: true });
  return `${summary}, 2 threads ${(b2 / b1).toFixed(2)}x`;
}

async function main(): Promise<void> {
  const figures: Record<string, Figure> = {};
  const config = configSchema.parse({ metrics: { enabled: false }, store: { dir: join(work, 'state') } });
  const only = process.env.BENCH_REPLAY_ONLY ?? 'files,kafka';
  if (only.includes('files') && THREAD_FIGURES && !compiledBuildPresent()) {
    throw new Error(
      'dist/ is missing or older than src/: run `npm run build` (the thread rows run bin/rankdistill.mjs)',
    );
  }

  // --- files -------------------------------------------------------------------------------
  if (only.includes('files')) {
    for (const [c, n, nt] of [
      [50, REQUESTS, THREAD_REQUESTS],
      [200, Math.round(REQUESTS / 2), Math.round(THREAD_REQUESTS / 2)],
    ] as const) {
      for (const format of ['avro', 'ndjson'] as const) {
        if (!FORMATS.includes(format)) continue;
        console.log(await filesCase(figures, config, c, format, n, nt));
      }
    }
  }
  if (!only.includes('kafka')) {
    writeResult('replay', figures);
    return;
  }
  await simulate({ seed: 3, requests: REQUESTS, candidates: 50 }, new FileSimSink(simDir, 'avro'));
  const truth = JSON.parse(readFileSync(join(simDir, 'truth.json'), 'utf8')) as SimTruth;
  const requests = truth.counts.records.rankerOutputs;

  // --- Kafka -------------------------------------------------------------------------------
  const b = brokers();
  if (b === null) {
    figures.kafka_requests_per_s = {
      value: 0,
      unit: 'requests/s',
      note: 'skipped: no broker (KAFKA_BROKERS)',
    };
  } else {
    const id = `${Date.now().toString(36)}`;
    const topics = { rankerOutputs: `rd-bench-replay-ro-${id}`, impressions: `rd-bench-replay-imp-${id}` };
    const kcfg = configSchema.parse({
      metrics: { enabled: false },
      store: { dir: join(work, 'state') },
      kafka: { brokers: b, topics: { ...topics } },
    });
    const kafka = new Kafka({ clientId: 'rd-bench-replay', brokers: b, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const created = [topics.rankerOutputs, topics.impressions];
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: created.map((topic) => ({ topic, numPartitions: PARTITIONS })),
      });
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      for (const [file, topic, name] of [
        ['ranker-outputs.avro', topics.rankerOutputs, 'RankerOutput'],
        ['impressions.avro', topics.impressions, 'Impression'],
      ] as const) {
        let batch: Array<{ key: string | null; value: Buffer; partition?: number }> = [];
        const flush = async () => {
          if (batch.length > 0) await producer.send({ topic, messages: batch, acks: -1 });
          batch = [];
        };
        for await (const r of readRecords(join(simDir, file), name)) {
          batch.push(
            r.result.ok
              ? { key: r.result.value.user_id, value: Buffer.from(r.raw) }
              : { key: null, value: Buffer.from(r.raw), partition: 0 },
          );
          if (batch.length >= 100) await flush();
        }
        await flush();
      }
      await producer.disconnect();
      const ends = new Map<string, number>();
      for (const t of created)
        for (const o of await admin.fetchTopicOffsets(t)) ends.set(`${t}/${o.partition}`, Number(o.high));

      const kbase = await best(async (t) => {
        const consumer = kafka.consumer({ groupId: `rd-bench-replay-base-${id}-${t}`, maxWaitTimeInMs: 100 });
        const pos = new Map<string, number>();
        let decoded = 0;
        await consumer.connect();
        await consumer.subscribe({ topics: created, fromBeginning: true });
        await consumer.run({
          eachBatch: async ({ batch }) => {
            const name = batch.topic === topics.rankerOutputs ? 'RankerOutput' : 'Impression';
            for (const m of batch.messages) if (m.value && decodeAvro(name, m.value).ok) decoded++;
            pos.set(`${batch.topic}/${batch.partition}`, Number(batch.lastOffset()) + 1);
          },
        });
        while (![...ends].every(([k, e]) => (pos.get(k) ?? 0) >= e)) await sleep(5);
        await consumer.disconnect();
        if (decoded === 0) throw new Error('nothing decoded');
        return requests;
      });
      const kfiles = await best(async (t) => {
        const res = await replay({
          config: kcfg,
          input: { kind: 'kafka' },
          output: { kind: 'files', dir: join(work, `out-kafka-${t}`), format: 'avro' },
          stateDir: join(work, `state-kafka-${t}`),
        });
        if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
        return requests;
      });
      figures.kafka_requests_per_s = {
        value: round(kfiles.best),
        unit: 'requests/s',
        baseline: round(kbase.best),
        ratio: kfiles.best / kbase.best,
        note: `Kafka range (${PARTITIONS} partitions, whole topics) → Avro files; trials ${kfiles.all.map(round).join(', ')}; per CPU-second of this process ${round(kfiles.cpu)} vs ${round(kbase.cpu)}; baseline: kafkajs consumer + decodeAvro of every value of both topics`,
      };
      const ktopics = await best(async (t) => {
        const out = {
          pointwise: `rd-bench-replay-pw-${id}-${t}`,
          pairwise: `rd-bench-replay-pa-${id}-${t}`,
          listwise: `rd-bench-replay-lw-${id}-${t}`,
          deadLetter: `rd-bench-replay-dl-${id}-${t}`,
        };
        created.push(...Object.values(out));
        const res = await replay({
          config: kcfg,
          input: { kind: 'kafka' },
          output: { kind: 'topics', topics: out },
          stateDir: join(work, `state-kafka-topics-${t}`),
        });
        if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
        return requests;
      });
      figures.kafka_to_topics_requests_per_s = {
        value: round(ktopics.best),
        unit: 'requests/s',
        baseline: round(kbase.best),
        ratio: ktopics.best / kbase.best,
        note: `Kafka range → new topics, one transaction per checkpoint (50,000 input records or 64 MiB of labels); trials ${ktopics.all.map(round).join(', ')}; per CPU-second ${round(ktopics.cpu)}; same baseline`,
      };
    } finally {
      await admin.deleteTopics({ topics: created }).catch(() => undefined);
      await admin.disconnect();
    }
  }
  writeResult('replay', figures);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
