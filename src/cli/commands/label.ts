import type { Command } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { isRankdistillError, RankdistillError } from '../../errors.ts';
import type { FileFormat } from '../../io/files.ts';
import { labelFiles } from '../../pipeline/label-files.ts';
import { Progress } from '../../replay/progress.ts';
import { positiveInt } from '../options.ts';

interface LabelOpts {
  in?: string;
  out?: string;
  format?: string;
  drain?: boolean;
  partitions?: number;
  threads?: number;
  progress: boolean;
}

/**
 * `rankdistill label`: the labeling service. Kafka mode by default (config `kafka.*`); with
 * `--in <dir> --out <dir>` the file transport over `<in>/ranker-outputs.*` and `<in>/impressions.*`,
 * which drains at the end of the input unless `--no-drain` (then the open count goes to stderr).
 */
export function register(program: Command): void {
  program
    .command('label')
    .description(
      'join ranker outputs with impressions and emit labels: from Kafka (default) or, with --in/--out, from files',
    )
    .option(
      '--in <dir>',
      'input directory holding ranker-outputs.<ext> and impressions.<ext> (file transport)',
    )
    .option(
      '--out <dir>',
      'output directory for labels.{pointwise,pairwise,listwise}.<ext> and dead-letter.<ext>',
    )
    .option('--format <format>', 'output file format: ndjson or avro', 'ndjson')
    .option(
      '--no-drain',
      'file transport: leave requests still in their join window at the end of the input open, unlabelled, as the Kafka service does (default: close every window at the end: labels without clicks, orphans dead-lettered)',
    )
    .option(
      '--partitions <n>',
      'file transport: split the records by user id into n partitions, each joined as a topic partition is (default 1: each file is one partition; more changes the watermarks, hence which records are late)',
      positiveInt,
    )
    .option(
      '--threads <n>',
      'file transport: threads running the partitions (default: the cores, at most --partitions)',
      positiveInt,
    )
    .option('--no-progress', 'file transport: no progress (records, rate, ETA) on stderr')
    .action(async (opts: LabelOpts, cmd: Command) => {
      const file = cmd.optsWithGlobals<{ config?: string }>().config;
      const config = loadConfig({ file });
      if (opts.in !== undefined || opts.out !== undefined) {
        if (opts.in === undefined || opts.out === undefined) {
          throw new RankdistillError('USAGE', 'the file transport needs both --in <dir> and --out <dir>');
        }
        if (opts.format !== 'ndjson' && opts.format !== 'avro') {
          throw new RankdistillError('USAGE', `--format must be ndjson or avro, found ${opts.format}`);
        }
        const started = Date.now();
        const bar = opts.progress ? new Progress(process.stderr, { label: 'label' }) : undefined;
        // A signal stops the run at its next checkpoint; labelFiles then removes the partial outputs.
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        let last = { done: 0, total: null as number | null };
        let res: Awaited<ReturnType<typeof labelFiles>>;
        try {
          res = await labelFiles({
            inDir: opts.in,
            outDir: opts.out,
            format: opts.format as FileFormat,
            config,
            // A file ends: its user expects every request labelled or told why not (drain).
            drain: opts.drain !== false,
            ...(opts.partitions === undefined ? {} : { partitions: opts.partitions }),
            ...(opts.threads === undefined ? {} : { threads: opts.threads }),
            signal: stop.signal,
            onProgress: (p) => {
              last = { done: p.done, total: p.total ?? last.total };
              bar?.update(last);
            },
          });
        } catch (e) {
          if (!stop.signal.aborted || !isRankdistillError(e, 'ABORTED')) throw e;
          process.stderr.write(`\nlabel: stopped by a signal: ${e.message}\n`);
          process.exitCode = 130;
          return;
        } finally {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
        bar?.finish({ done: last.done, total: last.done });
        if (res.open > 0)
          console.error(
            `label: ${res.open} requests were still open in their join window at the end of the input and were not labelled (--no-drain)`,
          );
        console.log(
          JSON.stringify(
            { ...res.counts, open: res.open, seconds: (Date.now() - started) / 1000, files: res.files },
            null,
            2,
          ),
        );
        return;
      }
      // Signals are ours from here (before the service's modules load, which takes a while): one
      // during start-up stops the start cleanly (bin/rankdistill.mjs exits 0 on one before this).
      const stop = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => stop.abort(sig);
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        const { runLabelService } = await import('../../pipeline/run-label-service.ts');
        await runLabelService(config, stop.signal);
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    });
}
