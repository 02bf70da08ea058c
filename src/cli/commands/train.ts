import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/index.ts';
import { errorMessage, RankdistillError } from '../../errors.ts';
import { withKafkaAccess } from '../../kafka/access.ts';
import { aclsForRole } from '../../kafka/acls.ts';
import { createKafka } from '../../kafka/client.ts';
import { type MetricsServer, serveMetrics, TrainerMetrics } from '../../metrics/index.ts';
import type { PublishResult } from '../../snapshots/publisher.ts';
import { openTrainerSnapshots } from '../../snapshots/trainer.ts';
import type { GaugeEvent, ProgressiveGauge } from '../../train/gauge.ts';
import { KafkaLabelSource } from '../../train/kafka-source.ts';
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
      ...(r.note === undefined ? {} : { note: r.note }),
      dir: r.dir,
      // a rejected snapshot is never announced (r.announced says whether older ones were flushed)
      announced: r.status === 'published' && r.announced,
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
    .description(
      'train the student on label files (--labels) or the label topics (--kafka); resumes from the newest checkpoint in --out',
    )
    .option('--labels <paths...>', 'label files or directories (names contain pointwise/pairwise/listwise)')
    .option(
      '--kafka',
      'consume kafka.topics.pointwise/pairwise/listwise (read_committed), resuming at the checkpoint offsets; snapshots announced',
    )
    .option(
      '--brokers <list>',
      'with --kafka: comma-separated brokers (default: kafka.brokers of the config)',
    )
    .option(
      '--idle-exit-ms <ms>',
      'with --kafka: finish after this long without new labels (default: run until a signal)',
    )
    .requiredOption('--out <dir>', 'checkpoint directory')
    .option('--epochs <n>', 'passes over the files', '1')
    .option('--max-examples <n>', 'stop after N training examples (counted across restarts)')
    .option(
      '--snapshots [dir]',
      'publish every checkpoint as a gated snapshot (dir: snapshots.dir of the config; registry <dir>/registry.sqlite when dir is given)',
    )
    .option('--announce', 'announce published snapshots on kafka.topics.snapshots (implies --snapshots)')
    .option('--no-announce', 'with --kafka: publish snapshots without announcing them')
    .action(
      async (
        opts: {
          labels?: string[];
          kafka?: boolean;
          brokers?: string;
          idleExitMs?: string;
          out: string;
          epochs: string;
          maxExamples?: string;
          snapshots?: string | boolean;
          announce?: boolean;
        },
        cmd: Command,
      ) => {
        const cfg = loadConfig({ file: cmd.optsWithGlobals<{ config?: string }>().config });
        if ((opts.labels === undefined) === (opts.kafka !== true))
          throw new RankdistillError('USAGE', 'train: give either --labels <paths...> or --kafka');
        if (opts.brokers !== undefined)
          cfg.kafka = { ...cfg.kafka, brokers: opts.brokers.split(',').map((b) => b.trim()) };
        if (typeof opts.snapshots === 'string')
          cfg.snapshots = {
            ...cfg.snapshots,
            dir: opts.snapshots,
            registry: join(opts.snapshots, 'registry.sqlite'),
          };
        // snapshots (docs/SNAPSHOTS.md "With the trainer"): opened before the trainer, which resumes
        // from the current snapshot's checkpoint when --out holds nothing newer
        // the live gauge (progressive validation) on the trainer's /metrics
        const metrics = new TrainerMetrics();
        let gaugeRef: ProgressiveGauge | undefined;
        const onGauge = (e: GaugeEvent) => {
          if (e.type === 'drop') {
            metrics.drops.inc();
            console.log(JSON.stringify({ event: 'live-quality-drop', level: 'warn', ...e, type: undefined }));
          }
          const l = gaugeRef?.live();
          if (l) metrics.update(l);
        };
        const snapshots =
          opts.snapshots !== undefined || opts.announce || opts.kafka
            ? openTrainerSnapshots(cfg, {
                out: opts.out,
                announce: opts.announce === true || (opts.kafka === true && opts.announce !== false),
                onResult: logSnapshot,
                onGauge,
              })
            : undefined;
        gaugeRef = snapshots?.gauge;
        // the long-running trainer (--kafka) serves /metrics; a port in use costs the endpoint, not
        // the training (said in one line)
        let server: MetricsServer | undefined;
        if (opts.kafka && snapshots && cfg.metrics.enabled)
          try {
            server = await serveMetrics(
              metrics.registry,
              cfg.train.metricsPort,
              () => true,
              cfg.metrics.host,
            );
            console.log(JSON.stringify({ event: 'metrics', port: server.port }));
          } catch (e) {
            console.log(
              JSON.stringify({
                event: 'metrics-unavailable',
                level: 'warn',
                error: `train.metricsPort ${cfg.train.metricsPort}: ${errorMessage(e)}`,
              }),
            );
          }
        const epochs = positiveInt('--epochs', opts.epochs) ?? 1;
        const maxExamples = positiveInt('--max-examples', opts.maxExamples);
        const idleExitMs = positiveInt('--idle-exit-ms', opts.idleExitMs);
        const files = opts.labels === undefined ? [] : labelFiles(opts.labels);
        let source: KafkaLabelSource | undefined;
        let trainer: Trainer | undefined;
        // A failed open must not leave the snapshots' announcer (a Kafka producer) or the /metrics
        // server holding the process alive: close them and fail.
        const closeSnapshotsAndThrow = async (e: unknown): Promise<never> => {
          await snapshots?.close().catch(() => undefined);
          await server?.close().catch(() => undefined);
          throw e;
        };
        trainer = await Trainer.open({
          config: cfg.train,
          out: opts.out,
          ...(snapshots && cfg.train.gauge.share > 0 ? { gauge: snapshots.gauge } : {}),
          onEvent: (e) => {
            log(e);
            const live = e.type === 'checkpoint' ? snapshots?.gauge.live() : undefined;
            if (live) console.log(JSON.stringify({ event: 'live', ...live }));
            if (e.type === 'checkpoint' && trainer && snapshots)
              snapshots.snaps.onCheckpoint(trainer.model, e.dir, e.metrics);
            if (e.type === 'checkpoint' && trainer && source) {
              source.markCheckpointed();
              void source.commit(trainer.positions());
            }
          },
        }).catch(closeSnapshotsAndThrow);
        let stop = false;
        const onSignal = () => {
          stop = true;
          source?.stop();
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        // A refused ACL or credentials is reported naming the permission (docs/OPERATIONS.md).
        const access = { kafka: cfg.kafka, grants: aclsForRole('trainer', cfg), role: 'trainer' };
        if (opts.kafka) {
          const t = cfg.kafka.topics;
          source = await withKafkaAccess(access, () =>
            KafkaLabelSource.open({
              kafka: createKafka(cfg.kafka, 'trainer'),
              groupId: cfg.train.groupId,
              topics: { pointwise: t.pointwise, pairwise: t.pairwise, listwise: t.listwise },
              format: cfg.kafka.outputFormat,
              positions: trainer.positions(),
              sessionTimeoutMs: cfg.kafka.sessionTimeoutMs,
              ...(idleExitMs === undefined ? {} : { idleExitMs }),
              onBadRecord: (src, offset, reason) =>
                console.log(JSON.stringify({ event: 'bad-record', source: src, offset, reason })),
              onEvent: (e) =>
                console.log(JSON.stringify({ event: `kafka-${e.type}`, ...e, type: undefined })),
            }).catch(closeSnapshotsAndThrow),
          );
        }
        const batches =
          source?.batches() ??
          fileBatches(files, {
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
          summary = await withKafkaAccess(access, () =>
            (trainer as Trainer).run(untilSignal(), maxExamples === undefined ? {} : { maxExamples }),
          );
          if (snapshots) await snapshots.snaps.drain();
          if (source && trainer) await source.commit(trainer.positions());
        } finally {
          await source?.close();
          await snapshots?.close();
          await server?.close();
        }
        console.log(JSON.stringify({ event: 'done', ...summary }));
      },
    );
}
