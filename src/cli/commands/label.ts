import type { Command } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { RankdistillError } from '../../errors.ts';
import type { FileFormat } from '../../io/files.ts';
import { labelFiles } from '../../pipeline/label-files.ts';

interface LabelOpts {
  in?: string;
  out?: string;
  format?: string;
  drain?: boolean;
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
        const res = await labelFiles({
          inDir: opts.in,
          outDir: opts.out,
          format: opts.format as FileFormat,
          config,
          // A file ends: its user expects every request labelled or told why not (drain).
          drain: opts.drain !== false,
        });
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
