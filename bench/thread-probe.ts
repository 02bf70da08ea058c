/**
 * Where a `rankdistill label` run's time goes, thread by thread (issue #29: "the second stream
 * thread sometimes adds nothing"). Produces one input (PROBE_REQUESTS requests at
 * PROBE_CANDIDATES candidates over PROBE_PARTITIONS partitions, 4 as bench:label), then runs the
 * labeler over it with each of PROBE_THREADS stream-thread counts, alternated for PROBE_ROUNDS
 * rounds, nothing else running beside it (no ceiling, no Kafka Streams job). Per run: joined
 * requests/s from the first to the last committed input offset, CPU per request of the process
 * and the broker, and CPU per thread over the window (from /proc/<pid>/task): whether the stream
 * threads were busy or waited.
 * PROBE_ALL_KINDS=1 keeps pairwise and listwise labels on (default: pointwise only, as the
 * comparison with Kafka Streams). RD_BENCH_TRACE_DIR keeps the labeler's info log per run.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 node --import tsx bench/thread-probe.ts
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { configSchema } from '../src/config/schema.ts';
import { encodeAvro } from '../src/contracts/index.ts';
import { createTopicsAndWait, ensureTopics } from '../src/kafka/topics.ts';
import { chunkMessages } from '../src/pipeline/record-collector.ts';
import { brokerPid, cpuSeconds, spawnLabeler, threadCpuSeconds } from './kstreams.ts';
import { impression, ranker } from './label-input.ts';

const N = Number(process.env.PROBE_REQUESTS ?? 300_000);
const CANDIDATES = Number(process.env.PROBE_CANDIDATES ?? 20);
const THREADS = (process.env.PROBE_THREADS ?? '1,2').split(',').map(Number);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const ALL_KINDS = process.env.PROBE_ALL_KINDS === '1';
const PARTITIONS = Number(process.env.PROBE_PARTITIONS ?? 4);
const T0 = 1_700_000_000_000;

/** Machine-wide idle and steal jiffies (/proc/stat): whether the host had a core to spare. */
function machine(): { idle: number; steal: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3]! + f[4]!, steal: f[7]!, total: f.reduce((a, b) => a + b, 0) };
}

const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
if (brokers.length === 0) throw new Error('KAFKA_BROKERS is not set');
const kafka = new Kafka({ clientId: 'rd-probe', brokers, logLevel: logLevel.NOTHING });
const id = `probe-${Date.now().toString(36)}`;
const ro = `rd-p-ro-${id}`;
const imp = `rd-p-imp-${id}`;
const dir = mkdtempSync(join(tmpdir(), 'rd-probe-'));
const traceDir = process.env.RD_BENCH_TRACE_DIR;

async function produce(): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await createTopicsAndWait(
    admin,
    [ro, imp].map((topic) => ({ topic, numPartitions: PARTITIONS })),
  );
  await admin.disconnect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let s = 0; s < N; s += 500) {
    const rs: Array<{ key: string; value: Buffer }> = [];
    const is: Array<{ key: string; value: Buffer }> = [];
    for (let i = s; i < Math.min(N, s + 500); i++) {
      const r = ranker(i, CANDIDATES, T0 + i * 5);
      rs.push({ key: r.user_id, value: encodeAvro('RankerOutput', r) });
      is.push({ key: r.user_id, value: encodeAvro('Impression', impression(r, T0 + i * 5 + 200)) });
    }
    const all = [
      { topic: ro, messages: rs },
      { topic: imp, messages: is },
    ];
    for (const chunk of chunkMessages(all)) await producer.sendBatch({ topicMessages: chunk, acks: -1 });
  }
  await producer.disconnect();
}

async function run(threads: number, tag: string): Promise<string> {
  const cfg = configSchema.parse({
    join: { windowMs: 60_000 },
    labels: ALL_KINDS ? {} : { pairwise: { enabled: false }, listwise: { enabled: false } },
    kafka: {
      brokers,
      groupId: `rd-probe-${tag}`,
      partitions: PARTITIONS,
      sessionTimeoutMs: 10_000,
      streamThreads: threads,
      ...(process.env.RD_BENCH_COMMIT_MS ? { commitIntervalMs: Number(process.env.RD_BENCH_COMMIT_MS) } : {}),
      topics: {
        rankerOutputs: ro,
        impressions: imp,
        pointwise: `rd-p-pw-${tag}`,
        pairwise: `rd-p-pa-${tag}`,
        listwise: `rd-p-lw-${tag}`,
        deadLetter: `rd-p-dl-${tag}`,
        changelog: `rd-p-cl-${tag}`,
      },
    },
    store: { dir: join(dir, tag) },
    metrics: { enabled: false },
  });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, cfg.kafka);
  const cfgPath = join(dir, `${tag}.json`);
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const highs = new Map<string, number>();
  for (const topic of [ro, imp])
    for (const e of await admin.fetchTopicOffsets(topic))
      highs.set(`${topic}/${e.partition}`, Number(e.high));
  const total = [...highs.values()].reduce((a, b) => a + b, 0);
  const broker = brokerPid(brokers);
  const child = spawnLabeler(cfgPath);
  const pid = child.pid!;
  type Snap = {
    at: number;
    done: number;
    parts: number[];
    cpu: number;
    broker: number;
    th: Record<string, number>;
    m: { idle: number; steal: number; total: number };
  };
  let start: Snap | undefined;
  const trace: Snap[] = [];
  let end: Snap;
  for (;;) {
    const committed = await admin.fetchOffsets({ groupId: cfg.kafka.groupId, topics: [ro, imp] });
    let done = 0;
    const parts = Array.from({ length: PARTITIONS }, () => 0);
    for (const t of committed)
      for (const p of t.partitions) {
        const n = Math.min(Math.max(Number(p.offset), 0), highs.get(`${t.topic}/${p.partition}`)!);
        done += n;
        if (t.topic === ro) parts[p.partition] = n;
      }
    const s: Snap = {
      at: performance.now(),
      done,
      parts,
      cpu: cpuSeconds(pid),
      broker: broker === undefined ? 0 : cpuSeconds(broker),
      th: threadCpuSeconds(pid),
      m: machine(),
    };
    trace.push(s);
    if (start === undefined && done > 0) start = s;
    if (done >= total) {
      end = s;
      break;
    }
    await sleep(100);
  }
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  await admin
    .deleteTopics({ topics: Object.values(cfg.kafka.topics).filter((x) => x.endsWith(tag)) })
    .catch(() => undefined);
  await admin.disconnect();
  if (traceDir !== undefined)
    writeFileSync(join(traceDir, `${tag}.trace.json`), JSON.stringify(trace.map((s) => ({ ...s }))));
  const s0 = start!;
  const secs = (end.at - s0.at) / 1000;
  const requests = (total - s0.done) / 2;
  const perThread = Object.entries(end.th)
    .map(([k, v]) => [k, (v - (s0.th[k] ?? 0)) / secs] as const)
    .filter(([, v]) => v >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k.split(':')[0]} ${(v * 100).toFixed(0)}%`)
    .join(', ');
  const jiffies = end.m.total - s0.m.total;
  const idle = (((end.m.idle - s0.m.idle) / jiffies) * 100).toFixed(0);
  const steal = (((end.m.steal - s0.m.steal) / jiffies) * 100).toFixed(0);
  return `threads=${threads}: ${(requests / secs).toFixed(0)} req/s over ${secs.toFixed(1)} s, ${(((end.cpu - s0.cpu) / requests) * 1e6).toFixed(1)} µs CPU/req (process ${(((end.cpu - s0.cpu) / secs) * 100).toFixed(0)}% of a core, broker ${(((end.broker - s0.broker) / secs) * 100).toFixed(0)}%); threads busy: ${perThread}; machine idle ${idle}%, steal ${steal}%`;
}

await produce();
console.log(`produced ${N} requests at ${CANDIDATES} candidates (${id})`);
// PROBE_AB="NAME=VALUE": every run twice, without then with that environment variable (A/B).
const ab = process.env.PROBE_AB?.split('=');
for (let round = 0; round < ROUNDS; round++) {
  for (const threads of round % 2 === 0 ? THREADS : [...THREADS].reverse()) {
    for (const variant of ab === undefined ? [''] : round % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
      if (ab !== undefined) {
        if (variant === 'B') process.env[ab[0]!] = ab[1];
        else delete process.env[ab[0]!];
      }
      console.log(
        `round ${round + 1} ${variant} ${await run(threads, `${id}-t${threads}-r${round}${variant}`)}`,
      );
    }
  }
}
const admin = kafka.admin();
await admin.connect();
await admin.deleteTopics({ topics: [ro, imp] }).catch(() => undefined);
await admin.disconnect();
