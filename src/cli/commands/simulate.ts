import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { RankdistillError } from '../../errors.ts';
import type { FileFormat } from '../../io/files.ts';
import { FileSimSink } from '../../io/sim-sink.ts';
import { createKafka } from '../../kafka/client.ts';
import { ensureSimTopics, KafkaSimSink } from '../../kafka/sim-sink.ts';
import { DEFAULT_SIM, FATES, type SimOptions } from '../../sim/generate.ts';
import { type SimSink, type SimSummary, simulate } from '../../sim/simulate.ts';

const int = (v: string): number => {
  if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`expected an integer, found ${v}`);
  return Number(v);
};
const num = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, found ${v}`);
  return n;
};

interface Opts {
  seed: number;
  requests: number;
  scenario?: SimOptions['scenario'];
  users?: number;
  items?: number;
  candidates?: number;
  shown?: number;
  dim?: number;
  categories?: number;
  rate?: number;
  jitterMs?: number;
  disorderMs?: number;
  teacherNoise?: number;
  dupRate?: number;
  lateRate?: number;
  orphanRate?: number;
  unmatchedRate?: number;
  malformedRate?: number;
  out?: string;
  format: FileFormat;
  kafka?: boolean;
  brokers?: string;
  createTopics?: boolean;
  partitions?: number;
}

/**
 * `rankdistill simulate`: synthetic teacher traffic (ranker outputs + impressions with clicks, and
 * duplicates / late / orphan / unmatched / malformed records at given rates) into files or Kafka,
 * with the ground truth (truth.json) and the world (world.json + world.bin).
 */
export function register(program: Command): void {
  program
    .command('simulate')
    .description(
      'generate synthetic ranker outputs and impressions (seeded) into files (--out) or Kafka (--kafka), with ground truth',
    )
    .option('--seed <n>', 'random seed', int, DEFAULT_SIM.seed)
    .option('--requests <n>', 'requests to simulate', int, DEFAULT_SIM.requests)
    .option(
      '--scenario <name>',
      'default, or realistic: heavy-tailed user activity, candidates mostly from a noisy personalised retriever, Zipf 0.7',
    )
    .option('--users <n>', `users (default ${DEFAULT_SIM.users})`, int)
    .option('--items <n>', `catalog items (default ${DEFAULT_SIM.items})`, int)
    .option('--candidates <n>', `candidates scored per request (default ${DEFAULT_SIM.candidates})`, int)
    .option('--shown <n>', `items shown per request (default ${DEFAULT_SIM.shown})`, int)
    .option('--dim <n>', `latent dimension of the world (default ${DEFAULT_SIM.dim})`, int)
    .option('--categories <n>', `item categories (default ${DEFAULT_SIM.categories})`, int)
    .option('--rate <n>', `requests per second of event time (default ${DEFAULT_SIM.rate})`, num)
    .option('--jitter-ms <n>', `impression ts - ranker ts, up to (default ${DEFAULT_SIM.jitterMs})`, int)
    .option(
      '--disorder-ms <n>',
      `out-of-orderness of arrivals, up to (default ${DEFAULT_SIM.disorderMs})`,
      int,
    )
    .option('--teacher-noise <x>', `std of the teacher's error (default ${DEFAULT_SIM.teacherNoise})`, num)
    .option(
      '--dup-rate <p>',
      `share of requests with a duplicated record (default ${DEFAULT_SIM.dupRate})`,
      num,
    )
    .option('--late-rate <p>', `share of requests with a late record (default ${DEFAULT_SIM.lateRate})`, num)
    .option(
      '--orphan-rate <p>',
      `share of impressions without ranker output (default ${DEFAULT_SIM.orphanRate})`,
      num,
    )
    .option(
      '--unmatched-rate <p>',
      `share of ranker outputs without impression (default ${DEFAULT_SIM.unmatchedRate})`,
      num,
    )
    .option(
      '--malformed-rate <p>',
      `share of requests with a malformed record (default ${DEFAULT_SIM.malformedRate})`,
      num,
    )
    .option('--out <dir>', 'write <dir>/ranker-outputs.<ext>, impressions.<ext>, truth.json, world.json/.bin')
    .addOption(new Option('--format <format>', 'file format').choices(['ndjson', 'avro']).default('ndjson'))
    .option(
      '--kafka',
      'produce to the Kafka input topics of the config instead of files (truth to --out if given)',
    )
    .option('--brokers <list>', 'comma-separated brokers (default: kafka.brokers of the config)')
    .option('--create-topics', 'create the input topics if missing')
    .option('--partitions <n>', 'partitions of created topics (default: kafka.partitions of the config)', int)
    .action(async (opts: Opts, cmd: Command) => {
      const config = loadConfig({ file: cmd.optsWithGlobals<{ config?: string }>().config });
      if (!opts.kafka && opts.out === undefined) {
        throw new RankdistillError('USAGE', 'simulate: give --out <dir> (files) or --kafka');
      }
      const simOpts: Partial<SimOptions> = {
        seed: opts.seed,
        scenario: opts.scenario,
        requests: opts.requests,
        users: opts.users,
        items: opts.items,
        candidates: opts.candidates,
        shown: opts.shown,
        dim: opts.dim,
        categories: opts.categories,
        rate: opts.rate,
        jitterMs: opts.jitterMs,
        disorderMs: opts.disorderMs,
        teacherNoise: opts.teacherNoise,
        dupRate: opts.dupRate,
        lateRate: opts.lateRate,
        orphanRate: opts.orphanRate,
        unmatchedRate: opts.unmatchedRate,
        malformedRate: opts.malformedRate,
        windowMs: config.join.windowMs,
        allowedLatenessMs: config.join.allowedLatenessMs,
      } as Partial<SimOptions>;

      let sink: SimSink;
      let where: string;
      if (opts.kafka) {
        const brokers = opts.brokers?.split(',').map((b) => b.trim()) ?? config.kafka.brokers;
        const kafka = createKafka({ ...config.kafka, brokers }, 'simulate');
        const topics = {
          rankerOutputs: config.kafka.topics.rankerOutputs,
          impressions: config.kafka.topics.impressions,
        };
        const admin = kafka.admin();
        await admin.connect();
        try {
          const partitions = await ensureSimTopics(admin, topics, {
            create: opts.createTopics === true,
            partitions: opts.partitions ?? config.kafka.partitions,
            replicationFactor: config.kafka.replicationFactor,
          });
          where = `kafka ${brokers.join(',')} (${partitions} partitions)`;
        } finally {
          await admin.disconnect();
        }
        sink = await KafkaSimSink.connect(kafka, topics, { truthDir: opts.out });
      } else {
        sink = new FileSimSink(opts.out as string, opts.format);
        where = `${opts.out} (${opts.format})`;
      }
      const summary = await simulate(simOpts, sink);
      printSummary(summary, where);
    });
}

function printSummary(s: SimSummary, where: string): void {
  const c = s.truth.counts;
  console.log(`simulated ${c.requests} requests (seed ${s.truth.seed}) into ${where}`);
  console.log(`  fates: ${FATES.map((f) => `${f} ${c.fates[f]}`).join(', ')}`);
  console.log(
    `  records: ranker outputs ${c.records.rankerOutputs}, impressions ${c.records.impressions}; malformed: ${Object.entries(
      c.malformed,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  console.log(`  shown ${c.shown}, clicks ${c.clicks} (CTR ${(c.clicks / Math.max(1, c.shown)).toFixed(4)})`);
  for (const o of s.outputs) {
    console.log(`  ${o.name}: ${o.records} records, ${(o.bytes / 1e6).toFixed(2)} MB`);
  }
  console.log(`  elapsed ${(s.elapsedMs / 1000).toFixed(2)} s`);
}
