import { type Command, Option } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { RankdistillError } from '../../errors.ts';
import type { FileFormat } from '../../io/files.ts';
import { withKafkaAccess } from '../../kafka/access.ts';
import { aclsForRole } from '../../kafka/acls.ts';
import type { OutcomeCounts } from '../../pipeline/outcomes.ts';
import { Progress } from '../../replay/progress.ts';
import { type ReplayInput, type ReplayOutput, type ReplayResult, replay } from '../../replay/replay.ts';
import type { OutputTopics } from '../../replay/sinks.ts';
import { parseTime } from '../../replay/time.ts';
import { positiveInt } from '../options.ts';

interface ReplayOpts {
  in?: string;
  from?: string;
  to?: string;
  brokers?: string;
  out?: string;
  format: FileFormat;
  toTopics?: string;
  pointwiseTopic?: string;
  pairwiseTopic?: string;
  listwiseTopic?: string;
  deadLetterTopic?: string;
  dryRun?: boolean;
  drain?: boolean;
  stateDir?: string;
  checkpointEvery?: number;
  partitions?: number;
  threads?: number;
  progress: boolean;
}

/** The per-outcome counts a dry run prints (DESIGN.md outcome names). */
export function outcomeTable(c: OutcomeCounts): Record<string, number> {
  return {
    joined: c.joined,
    unmatched: c.unmatched,
    orphan: c.orphans,
    late: c.late,
    duplicate: c.duplicates,
    malformed: c.malformed + c.invalid,
    'malformed.undecodable': c.malformed,
    'malformed.invalid': c.invalid,
    'unmatched.dropped': c.unmatchedDropped,
    'label-failed': c.labelFailed,
  };
}

/**
 * `rankdistill replay`: rebuild labels from history with the live labeler's join and label code,
 * from files (--in) or a Kafka time range (--from/--to), into files (--out), new topics
 * (--to-topics) or nowhere (--dry-run). Ctrl-C stops at a checkpoint; the same command continues.
 */
export function register(program: Command): void {
  program
    .command('replay')
    .description(
      'rebuild labels from history with the live join/label code: from files (--in) or a Kafka time range (--from/--to), into files (--out), new topics (--to-topics) or counts only (--dry-run); Ctrl-C, then the same command continues',
    )
    .option(
      '--in <dir>',
      'input directory holding ranker-outputs.<ext> and impressions.<ext> (NDJSON or Avro)',
    )
    .option(
      '--from <time>',
      'Kafka input: first record timestamp, epoch ms or ISO-8601 (default: the beginning)',
    )
    .option(
      '--to <time>',
      'Kafka input: end record timestamp, exclusive (default: the end when first started)',
    )
    .option('--brokers <list>', 'comma-separated brokers (default: kafka.brokers of the config)')
    .option('--out <dir>', 'write labels.{pointwise,pairwise,listwise}.<ext> and dead-letter.<ext> here')
    .addOption(
      new Option('--format <format>', 'output file format').choices(['ndjson', 'avro']).default('ndjson'),
    )
    .option('--to-topics <prefix>', 'write to <prefix><live topic name> for each label kind and dead letters')
    .option('--pointwise-topic <topic>', 'output topic of pointwise labels (overrides --to-topics)')
    .option('--pairwise-topic <topic>', 'output topic of pairwise labels (overrides --to-topics)')
    .option('--listwise-topic <topic>', 'output topic of listwise labels (overrides --to-topics)')
    .option('--dead-letter-topic <topic>', 'output topic of dead letters (overrides --to-topics)')
    .option(
      '--dry-run',
      'count outcomes (joined, unmatched, orphan, late, duplicate, malformed) without writing',
    )
    .option(
      '--drain',
      'at the end of the input, close every open window (labels without clicks, orphans); default for --in files',
    )
    .option(
      '--no-drain',
      'leave requests still in their window open, as the live service does; default for a Kafka range (their partner may lie past --to)',
    )
    .option('--state-dir <dir>', 'replay state (checkpoints, join state) (default: <store.dir>/replay-<id>)')
    .option(
      '--checkpoint-every <n>',
      'input records between checkpoints (default 50000; topic output: one transaction each, also cut at 64 MiB of labels)',
      positiveInt,
    )
    .option(
      '--partitions <n>',
      'file input: split the records by user id into n partitions as a producer splits them into topic partitions (murmur2), each joined on its own as a topic partition is (default 1: the whole file is one partition, as `label --in`)',
      positiveInt,
    )
    .option(
      '--threads <n>',
      'file input: threads running the partitions (default: the cores, at most --partitions)',
      positiveInt,
    )
    .option('--no-progress', 'no progress bar / progress lines on stderr')
    .action(async (opts: ReplayOpts, cmd: Command) => {
      const file = cmd.optsWithGlobals<{ config?: string }>().config;
      let config = loadConfig({ file });
      if (opts.brokers !== undefined) {
        const brokers = opts.brokers
          .split(',')
          .map((b) => b.trim())
          .filter((b) => b.length > 0);
        config = { ...config, kafka: { ...config.kafka, brokers } };
      }
      const input = inputOf(opts);
      const output = outputOf(opts, config.kafka.topics);
      const bar = opts.progress ? new Progress(process.stderr, { label: 'replay' }) : undefined;
      const ac = new AbortController();
      const onSignal = () => {
        if (ac.signal.aborted) process.exit(130);
        process.stderr.write('\nreplay: stopping at the next checkpoint (Ctrl-C again to quit at once)\n');
        ac.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let last = { done: 0, total: null as number | null };
      let res: ReplayResult;
      try {
        const access = {
          kafka: config.kafka,
          grants: aclsForRole('replay', config, { replayTopicPrefix: opts.toTopics ?? 'replay.' }),
          role: 'replay',
        };
        res = await withKafkaAccess(access, () =>
          replay({
            config,
            input,
            output,
            drain: opts.drain ?? input.kind === 'files',
            ...(opts.stateDir === undefined ? {} : { stateDir: opts.stateDir }),
            ...(opts.checkpointEvery === undefined ? {} : { checkpointEvery: opts.checkpointEvery }),
            ...(opts.partitions === undefined ? {} : { partitions: opts.partitions }),
            ...(opts.threads === undefined ? {} : { threads: opts.threads }),
            signal: ac.signal,
            onProgress: (p) => {
              last = { done: p.done, total: p.total ?? last.total };
              bar?.update(last);
            },
          }),
        );
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      bar?.finish({ done: res.processed, total: res.status === 'interrupted' ? last.total : res.processed });
      // "complete" only when every request of the input was decided: open ones are not labelled.
      const status = res.open > 0 && res.status !== 'interrupted' ? 'ended-with-open-requests' : res.status;
      if (res.open > 0 && res.status !== 'interrupted')
        process.stderr.write(
          `replay: ${res.open} requests were still open in their join window at the end of the input and were not labelled (--drain closes them)\n`,
        );
      console.log(
        JSON.stringify(
          {
            status,
            id: res.id,
            groupId: res.groupId,
            partitions: res.partitions,
            processed: res.processed,
            outcomes: outcomeTable(res.counts),
            labels: {
              pointwise: res.counts.pointwise,
              pairwise: res.counts.pairwise,
              listwise: res.counts.listwise,
            },
            deadLetters: res.counts.deadLetters,
            open: res.open,
            ...(res.files === undefined ? {} : { files: res.files }),
            ...(res.topics === undefined ? {} : { topics: res.topics }),
            ...(res.stateDir === null ? {} : { stateDir: res.stateDir }),
          },
          null,
          2,
        ),
      );
      if (res.status === 'interrupted') process.exitCode = 130;
    });
}

function inputOf(opts: ReplayOpts): ReplayInput {
  if (opts.in !== undefined) {
    if (opts.from !== undefined || opts.to !== undefined) {
      throw new RankdistillError(
        'USAGE',
        'replay: --from/--to select a Kafka range; they do not apply to --in <dir>',
      );
    }
    return { kind: 'files', dir: opts.in };
  }
  if (opts.partitions !== undefined || opts.threads !== undefined) {
    throw new RankdistillError(
      'USAGE',
      'replay: --partitions/--threads split file input (--in); a Kafka range runs its topic partitions',
    );
  }
  const from = opts.from === undefined ? undefined : parseTime(opts.from, '--from');
  const to = opts.to === undefined ? undefined : parseTime(opts.to, '--to');
  if (from !== undefined && to !== undefined && to <= from) {
    throw new RankdistillError('USAGE', `replay: --to must be after --from, found from ${from} and to ${to}`);
  }
  return { kind: 'kafka', ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) };
}

function outputOf(
  opts: ReplayOpts,
  live: { pointwise: string; pairwise: string; listwise: string; deadLetter: string },
): ReplayOutput {
  const explicit = opts.pointwiseTopic ?? opts.pairwiseTopic ?? opts.listwiseTopic ?? opts.deadLetterTopic;
  const wantsTopics = opts.toTopics !== undefined || explicit !== undefined;
  const n = [opts.dryRun === true, opts.out !== undefined, wantsTopics].filter(Boolean).length;
  if (n !== 1) {
    throw new RankdistillError(
      'USAGE',
      `replay: give exactly one of --out <dir>, --to-topics <prefix> (or --*-topic), --dry-run; found ${n}`,
    );
  }
  if (opts.dryRun) return { kind: 'dry' };
  if (opts.out !== undefined) return { kind: 'files', dir: opts.out, format: opts.format };
  const prefix = opts.toTopics;
  const pick = (given: string | undefined, liveName: string, flag: string): string => {
    if (given !== undefined) return given;
    if (prefix === undefined)
      throw new RankdistillError('USAGE', `replay: give ${flag} or --to-topics <prefix>`);
    return `${prefix}${liveName}`;
  };
  const topics: OutputTopics = {
    pointwise: pick(opts.pointwiseTopic, live.pointwise, '--pointwise-topic'),
    pairwise: pick(opts.pairwiseTopic, live.pairwise, '--pairwise-topic'),
    listwise: pick(opts.listwiseTopic, live.listwise, '--listwise-topic'),
    deadLetter: pick(opts.deadLetterTopic, live.deadLetter, '--dead-letter-topic'),
  };
  return { kind: 'topics', topics };
}
