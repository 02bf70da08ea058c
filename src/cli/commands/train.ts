import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { RankdistillError } from '../../errors.ts';
import type { PublishResult } from '../../snapshots/publisher.ts';
import { openTrainerSnapshots } from '../../snapshots/trainer.ts';
import { fileBatches, labelFiles } from '../../train/sources.ts';
import { Trainer, type TrainerEvent } from '../../train/trainer.ts';

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new RankdistillError('USAGE', `${flag}: expected a positive integer, found ${v}`);
  return n;
}

/** One JSON line per trainer event on stdout (checkpoints carry the consumed ranges). */
function log(e: TrainerEvent): void {
  console.log(JSON.stringify({ event: e.type, ...e, type: undefined }));
}

/** One JSON line per snapshot result (published / rejected with the gate's reasons). */
function logSnapshot(r: PublishResult): void {
  console.log(
    JSON.stringify({
      event: 'snapshot',
      version: r.version,
      status: r.status,
      reasons: r.reasons,
      dir: r.dir,
      announced: r.announced,
    }),
  );
}

/**
 * `rankdistill train --labels <dir-or-files...> --out <checkpoint-dir> [--epochs 1] [--max-examples N]`:
 * trains the student on label files, resuming from the newest checkpoint in --out.
 */
export function register(program: Command): void {
  program
    .command('train')
    .description('train the student on label files (resumes from the newest checkpoint in --out)')
    .requiredOption(
      '--labels <paths...>',
      'label files or directories (names contain pointwise/pairwise/listwise)',
    )
    .requiredOption('--out <dir>', 'checkpoint directory')
    .option('--epochs <n>', 'passes over the files', '1')
    .option('--max-examples <n>', 'stop after N training examples (counted across restarts)')
    .option(
      '--snapshots [dir]',
      'publish every checkpoint as a gated snapshot (dir: snapshots.dir of the config; registry <dir>/registry.sqlite when dir is given)',
    )
    .option('--announce', 'announce published snapshots on kafka.topics.snapshots (implies --snapshots)')
    .action(
      async (
        opts: {
          labels: string[];
          out: string;
          epochs: string;
          maxExamples?: string;
          snapshots?: string | boolean;
          announce?: boolean;
        },
        cmd: Command,
      ) => {
        const cfg = loadConfig({ file: cmd.optsWithGlobals<{ config?: string }>().config });
        if (typeof opts.snapshots === 'string')
          cfg.snapshots = {
            ...cfg.snapshots,
            dir: opts.snapshots,
            registry: join(opts.snapshots, 'registry.sqlite'),
          };
        // snapshots (docs/SNAPSHOTS.md "With the trainer"): opened before the trainer, which resumes
        // from the current snapshot's checkpoint when --out holds nothing newer
        const snapshots =
          opts.snapshots !== undefined || opts.announce
            ? openTrainerSnapshots(cfg, {
                out: opts.out,
                announce: opts.announce === true,
                onResult: logSnapshot,
              })
            : undefined;
        const epochs = positiveInt('--epochs', opts.epochs) ?? 1;
        const maxExamples = positiveInt('--max-examples', opts.maxExamples);
        const files = labelFiles(opts.labels);
        let trainer: Trainer | undefined;
        trainer = await Trainer.open({
          config: cfg.train,
          out: opts.out,
          onEvent: (e) => {
            log(e);
            if (e.type === 'checkpoint' && trainer && snapshots)
              snapshots.snaps.onCheckpoint(trainer.model, e.dir, e.metrics);
          },
        });
        let stop = false;
        const onSignal = () => {
          stop = true;
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        const batches = fileBatches(files, {
          epochs,
          startEpoch: trainer.currentEpoch,
          positions: trainer.positions(),
          onBadRecord: (path, offset, reason) =>
            console.log(JSON.stringify({ event: 'bad-record', path, offset, reason })),
        });
        async function* untilSignal() {
          for await (const b of batches) {
            yield b;
            if (stop) return;
          }
        }
        let summary: Awaited<ReturnType<Trainer['run']>>;
        try {
          summary = await trainer.run(untilSignal(), maxExamples === undefined ? {} : { maxExamples });
          if (snapshots) await snapshots.snaps.drain();
        } finally {
          await snapshots?.close();
        }
        console.log(JSON.stringify({ event: 'done', ...summary }));
      },
    );
}
