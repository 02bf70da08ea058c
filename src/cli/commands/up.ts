/**
 * `rankdistill up`: the production shape on one machine, over Kafka —
 *
 *   broker        scripts/kafka-local.sh start (unless --brokers / KAFKA_BROKERS name one)
 *   topics        inputs, labels, dead letters, compacted changelog (src/kafka/topics.ts), snapshots
 *   simulator ─►  ranker-outputs + impressions        `rankdistill simulate --kafka`
 *   labeler   ─►  labels.* + dead letters (EOS)       `rankdistill label`
 *   trainer   ─►  checkpoints, snapshots, announced   `rankdistill train --kafka`
 *
 * Each is a child process (`node bin/rankdistill.mjs …`, in its own process group so a terminal's
 * Ctrl-C reaches only `up`), logging to <dir>/logs/<name>.log. Every few seconds one status line:
 * the labeler's /metrics (records in, labels out, outcomes) and the trainer's JSON events
 * (examples, snapshots). SIGINT / SIGTERM / --duration stop the children in data-flow order
 * (simulator, labeler, trainer: each SIGTERM, then SIGKILL after a grace period) and then the
 * broker `up` started. <dir>/up.json records the children's pids and exit codes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadConfig } from '../../config/index.ts';
import type { Config } from '../../config/schema.ts';
import { errorMessage, RankdistillError } from '../../errors.ts';
import { createKafka } from '../../kafka/client.ts';
import { createTopicsAndWait, ensureTopics } from '../../kafka/topics.ts';
import { formatLive } from '../../metrics/index.ts';
import { positiveInt } from '../options.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'rankdistill.mjs');
const KAFKA_LOCAL = join(ROOT, 'scripts', 'kafka-local.sh');

interface UpOpts {
  brokers?: string;
  duration?: number;
  requests: number;
  candidates: number;
  seed: number;
  dir: string;
  statusEvery: number;
  grace: number;
  /** The -c config file, passed on to the children. */
  configFile?: string;
}

/** One child process of `up`. */
interface Child {
  name: 'simulator' | 'labeler' | 'trainer';
  proc: ChildProcess;
  log: WriteStream;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited?: { code: number | null; signal: NodeJS.Signals | null };
}

/** What `up` knows about the trainer from its JSON events. */
interface TrainerState {
  examples: number;
  checkpoints: number;
  published: number[];
  rejected: number[];
  metrics: Record<string, number>;
  /** Live quality of the serving snapshot (progressive validation), from its `live` events. */
  live: Record<string, number> | undefined;
}

/** Parses the Prometheus text format into `name{labels}` → value (summing nothing). */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m) out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

/** Sum of every series of metric `name` whose labels contain `match` (e.g. `outcome="joined"`). */
export function metricSum(m: ReadonlyMap<string, number>, name: string, match = ''): number {
  let s = 0;
  for (const [k, v] of m)
    if ((k === name || k.startsWith(`${name}{`)) && k.includes(match) && Number.isFinite(v)) s += v;
  return s;
}

function startBroker(dir: string): { brokers: string; stop: () => void } {
  const r = spawnSync('bash', [KAFKA_LOCAL, 'start', '--dir', dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const brokers = /^KAFKA_BROKERS=(\S+)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status !== 0 || brokers === undefined)
    throw new RankdistillError(
      'IO_FAILED',
      `scripts/kafka-local.sh start: expected KAFKA_BROKERS=..., found exit ${r.status} and ${JSON.stringify((r.stdout ?? '').slice(0, 200))}`,
    );
  return {
    brokers,
    stop: () => {
      spawnSync('bash', [KAFKA_LOCAL, 'stop', '--dir', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
    },
  };
}

async function createTopics(cfg: Config): Promise<number> {
  const kafka = createKafka(cfg.kafka, 'up');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const layout = await ensureTopics(admin, { ...cfg.kafka, createTopics: true });
    const topic = cfg.kafka.topics.snapshots;
    if (!(await admin.listTopics()).includes(topic))
      await createTopicsAndWait(admin, [
        {
          topic,
          numPartitions: 1,
          replicationFactor: cfg.kafka.replicationFactor,
          configEntries: [{ name: 'retention.ms', value: '-1' }],
        },
      ]);
    return layout.partitions;
  } finally {
    await admin.disconnect();
  }
}

function startChild(name: Child['name'], args: string[], env: NodeJS.ProcessEnv, logs: string): Child {
  const log = createWriteStream(join(logs, `${name}.log`), { flags: 'a' });
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: process.cwd(),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: a terminal's Ctrl-C reaches `up` only
  });
  proc.stdout?.pipe(log, { end: false });
  proc.stderr?.pipe(log, { end: false });
  const child: Child = {
    name,
    proc,
    log,
    exit: new Promise((res) => {
      proc.on('exit', (code, signal) => {
        child.exited = { code, signal };
        res({ code, signal });
      });
      proc.on('error', () => {
        child.exited = { code: null, signal: null };
        res(child.exited);
      });
    }),
  };
  return child;
}

/** Lines of a child's stdout (or stderr), parsed as JSON where they are JSON. */
function onJsonLines(
  stream: NodeJS.ReadableStream | null | undefined,
  f: (v: Record<string, unknown>) => void,
) {
  let buf = '';
  stream?.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('{'))
        try {
          f(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not JSON after all
        }
      i = buf.indexOf('\n');
    }
  });
}

async function stopChild(c: Child, graceMs: number): Promise<void> {
  if (c.exited) return;
  try {
    c.proc.kill('SIGTERM');
  } catch {
    // already gone
  }
  const t = setTimeout(() => {
    if (!c.exited)
      try {
        c.proc.kill('SIGKILL');
      } catch {
        // already gone
      }
  }, graceMs);
  await c.exit;
  clearTimeout(t);
}

/**
 * Runs `up` until a signal or `duration`; returns the exit code (0 when every child ended cleanly).
 *
 * @example
 * process.exitCode = await runUp({ requests: 20000, seed: 7, dir: 'up-out', statusEvery: 5, grace: 30 }, loadConfig());
 */
export async function runUp(o: UpOpts, base: Config): Promise<number> {
  const dir = resolve(o.dir);
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const say = (s: string) => console.log(`[up] ${s}`);
  const brokersGiven = o.brokers ?? process.env.KAFKA_BROKERS;
  let broker: { brokers: string; stop: () => void } | undefined;
  let brokers: string;
  if (brokersGiven !== undefined && brokersGiven.trim() !== '') brokers = brokersGiven.trim();
  else {
    say(`starting a local Kafka broker (scripts/kafka-local.sh, ${join(dir, 'kafka')})`);
    broker = startBroker(join(dir, 'kafka'));
    brokers = broker.brokers;
  }
  const children: Child[] = [];
  // children are in their own process groups: never leave them behind, even on a crash of `up`
  const killAll = () => {
    for (const c of children)
      if (!c.exited)
        try {
          c.proc.kill('SIGKILL');
        } catch {
          // gone
        }
  };
  process.on('exit', killAll);
  let stopping: Promise<void> | undefined;
  let code = 0;
  try {
    const cfg: Config = {
      ...base,
      kafka: { ...base.kafka, brokers: brokers.split(',').map((b) => b.trim()) },
    };
    const partitions = await createTopics(cfg);
    const t = cfg.kafka.topics;
    say(
      `kafka ${brokers}: ${partitions} partitions of ${t.rankerOutputs}, ${t.impressions}, ${t.pointwise}, ${t.pairwise}, ${t.listwise}, ${t.deadLetter}; compacted ${t.changelog}; ${t.snapshots}`,
    );
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RANKDISTILL_KAFKA__BROKERS: brokers,
      RANKDISTILL_METRICS__PORT: '0', // ephemeral: read back from the labeler's log
      RANKDISTILL_TRAIN__METRICS_PORT: '0', // the trainer's (the live gauge), logged likewise
      // Those ports are read from the children's info lines ("metrics listening"): a quieter level
      // inherited from the caller (scripts/test.sh sets warn) would hide them. The children's logs
      // go to files under --dir, not to the terminal.
      RANKDISTILL_LOG_LEVEL: 'info',
      ...(process.env.RANKDISTILL_STORE__DIR ? {} : { RANKDISTILL_STORE__DIR: join(dir, 'state') }),
      ...(process.env.RANKDISTILL_SNAPSHOTS__DIR
        ? {}
        : {
            RANKDISTILL_SNAPSHOTS__DIR: join(dir, 'snapshots'),
            RANKDISTILL_SNAPSHOTS__REGISTRY: join(dir, 'snapshots', 'registry.sqlite'),
          }),
    };
    const cfgFlag = o.configFile ? ['-c', resolve(o.configFile)] : [];
    const labeler = startChild('labeler', [...cfgFlag, 'label'], env, logs);
    const trainer = startChild(
      'trainer',
      [...cfgFlag, 'train', '--kafka', '--out', join(dir, 'checkpoints')],
      env,
      logs,
    );
    const simulator = startChild(
      'simulator',
      [
        ...cfgFlag,
        'simulate',
        '--kafka',
        '--seed',
        String(o.seed),
        '--requests',
        String(o.requests),
        '--candidates',
        String(o.candidates),
      ],
      env,
      logs,
    );
    children.push(simulator, labeler, trainer);
    let metricsPort: number | undefined;
    onJsonLines(labeler.proc.stderr, (v) => {
      if (v.msg === 'metrics listening' && typeof v.port === 'number') metricsPort = v.port;
    });
    const ts: TrainerState = {
      examples: 0,
      checkpoints: 0,
      published: [],
      rejected: [],
      metrics: {},
      live: undefined,
    };
    onJsonLines(trainer.proc.stdout, (v) => {
      if ((v.event === 'step' || v.event === 'checkpoint') && typeof v.examples === 'number')
        ts.examples = v.examples;
      if (v.event === 'checkpoint') {
        ts.checkpoints++;
        ts.metrics = (v.metrics ?? {}) as Record<string, number>;
      }
      if (v.event === 'live' && typeof v.version === 'number') ts.live = v as Record<string, number>;
      if (v.event === 'snapshot' && typeof v.version === 'number')
        (v.status === 'published' ? ts.published : ts.rejected).push(v.version);
    });
    for (const c of children)
      void c.exit.then((e) => {
        if (!stopping) say(`${c.name} exited (${e.signal ?? `code ${e.code}`})`);
      });
    say(
      `started simulator (pid ${simulator.proc.pid}), labeler (pid ${labeler.proc.pid}), trainer (pid ${trainer.proc.pid}); logs in ${logs}`,
    );

    const started = Date.now();
    let last = { at: started, labels: 0 };
    let labeled = 0;
    const status = async () => {
      let lab = 'labeler: starting';
      if (metricsPort !== undefined) {
        try {
          const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {
            signal: AbortSignal.timeout(2000),
          });
          const m = parsePrometheus(await res.text());
          const labels =
            metricSum(m, 'rankdistill_records_out_total', `topic="${t.pointwise}"`) +
            metricSum(m, 'rankdistill_records_out_total', `topic="${t.pairwise}"`) +
            metricSum(m, 'rankdistill_records_out_total', `topic="${t.listwise}"`);
          const now = Date.now();
          const rate = ((labels - last.labels) * 1000) / Math.max(1, now - last.at);
          last = { at: now, labels };
          labeled = labels;
          lab = `labeler: in ${metricSum(m, 'rankdistill_records_in_total')}, labels ${labels} (${rate.toFixed(0)}/s), joined ${metricSum(m, 'rankdistill_join_outcomes_total', 'outcome="joined"')}, dead letters ${metricSum(m, 'rankdistill_dead_letters_total')}`;
        } catch (e) {
          lab = `labeler: metrics unavailable (${errorMessage(e)})`;
        }
      }
      const r = ts.metrics.recall_at_100_of_top10;
      const tr = `trainer: ${ts.examples} examples, ${ts.checkpoints} checkpoints, snapshots ${ts.published.length} published${ts.rejected.length ? ` ${ts.rejected.length} rejected` : ''}${r !== undefined ? `, recall@100 ${r.toFixed(3)} NDCG@10 ${(ts.metrics.ndcg_at_10 ?? 0).toFixed(3)}` : ''}${ts.live ? `, live ${formatLive(ts.live)}` : ''}`;
      const sim = simulator.exited ? 'simulator: done' : 'simulator: producing';
      say(`${Math.round((Date.now() - started) / 1000)}s  ${sim} | ${lab} | ${tr}`);
    };

    // run until a signal, the duration, or the labeler / trainer dying
    await new Promise<void>((res) => {
      const tick = setInterval(() => void status(), o.statusEvery * 1000);
      let finished = false;
      const done = (why: string) => {
        if (finished) return;
        finished = true;
        clearInterval(tick);
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
        if (timer) clearTimeout(timer);
        say(`stopping (${why})`);
        res();
      };
      const onSig = (sig: NodeJS.Signals) => done(sig);
      process.on('SIGINT', onSig);
      process.on('SIGTERM', onSig);
      const timer =
        o.duration === undefined
          ? undefined
          : setTimeout(() => done(`--duration ${o.duration}s`), o.duration * 1000);
      void Promise.race([labeler.exit, trainer.exit]).then(() => done('a service exited'));
    });
    await status();
    // data-flow order: no new input, then the labeler commits its last transaction, then the
    // trainer's final checkpoint and snapshot
    stopping = (async () => {
      for (const c of children) await stopChild(c, o.grace * 1000);
    })();
    await stopping;
    for (const c of children) {
      const e = c.exited;
      const clean = e !== undefined && (e.code === 0 || (c.name === 'simulator' && e.signal === 'SIGTERM'));
      if (!clean) code = 1;
      say(`${c.name} (pid ${c.proc.pid}) exited ${e?.signal ?? `with code ${e?.code}`}`);
      c.log.end();
    }
    say(
      `labels ${labeled}; trainer ${ts.examples} examples, snapshots published ${ts.published.map((v) => `v${v}`).join(', ') || 'none'}${ts.rejected.length ? `, rejected ${ts.rejected.map((v) => `v${v}`).join(', ')}` : ''}`,
    );
    writeFileSync(
      join(dir, 'up.json'),
      `${JSON.stringify(
        {
          brokers,
          startedBroker: broker !== undefined,
          labels: labeled,
          trainer: ts,
          children: children.map((c) => ({ name: c.name, pid: c.proc.pid, ...c.exited })),
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    killAll();
    process.off('exit', killAll);
    if (broker) {
      say('stopping the local Kafka broker');
      broker.stop();
    }
  }
  return code;
}

/** Registers `rankdistill up`. */
export function register(program: Command): void {
  program
    .command('up')
    .description(
      'run the pipeline over Kafka: local broker (unless --brokers), topics, simulator → labeler → trainer as child processes, live status; Ctrl-C stops all',
    )
    .option('--brokers <list>', 'use these brokers (env KAFKA_BROKERS) instead of starting a local one')
    .option('--duration <s>', 'stop after this many seconds (default: until Ctrl-C)', positiveInt)
    .option('--requests <n>', 'requests the simulator produces', positiveInt, 20_000)
    .option(
      '--candidates <n>',
      'candidates the teacher scores per request (as in the demo; 200 makes ~10 kB records)',
      positiveInt,
      50,
    )
    .option('--seed <n>', 'seed of the simulator', positiveInt, 7)
    .option('--dir <dir>', 'state, checkpoints, snapshots, logs (and the local broker)', './up-out')
    .option('--status-every <s>', 'seconds between status lines', positiveInt, 5)
    .option('--grace <s>', 'seconds a child gets to stop after SIGTERM before SIGKILL', positiveInt, 30)
    .action(async (opts: UpOpts, cmd: Command) => {
      const file = cmd.optsWithGlobals<{ config?: string }>().config;
      const config = loadConfig({ file });
      process.exitCode = await runUp({ ...opts, ...(file ? { configFile: file } : {}) }, config);
    });
}
