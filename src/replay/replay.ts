/**
 * `rankdistill replay`: rebuild labels from history with the live labeler's code.
 *
 *   files (--in)  ─┐                       ┌─► files (--out: NDJSON or Avro, atomic at the end)
 *                  ├─► TaskRun per partition├─► topics (--to-topics: one transaction per checkpoint)
 *   Kafka range  ──┘   (JoinTask + SQLite)  └─► counts only (--dry-run)
 *   (--from/--to)
 *
 * Every partition runs the same {@link JoinTask} as the labeling service (decode, validate,
 * event-time merge of the two partitions, join operator, labelRequest), so for the same input and
 * config the labels are the live service's, byte for byte. A replay is identified by a hash of its
 * arguments (input, range, output, the join/label config): its state directory and its consumer
 * group (`rankdistill-replay-<id>`) belong to it alone, so it never touches the live service's
 * offsets or state, and running the same command again continues an interrupted replay (or
 * reports that it is complete).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { extensionOf, type FileFormat, writeFileAtomic } from '../io/files.ts';
import { inputFile } from '../io/input-files.ts';
import { pidAlive } from '../io/pid.ts';
import type { OutputKind, Side } from '../join/types.ts';
import { logger } from '../log.ts';
import { type OutcomeCounts, sumCounters } from '../pipeline/outcomes.ts';
import { CheckpointFiles } from './checkpoint.ts';
import type { ReplayContext, ReplayOptions } from './context.ts';
import { countRecords } from './count.ts';
import { fileThreads, replayFileThreads, taskStorePath } from './file-threads.ts';
import type { RunSummary } from './run-summary.ts';

export type { ReplayContext, ReplayInput, ReplayOptions, ReplayOutput } from './context.ts';
export { type RunSummary, summarize } from './run-summary.ts';

import { assembleFinal } from './parts.ts';
import { NullSink, OUTPUT_KINDS, type OutputTopics, PartsSink, partPath } from './sinks.ts';

const SIDES: readonly Side[] = ['ranker', 'impression'];
const log = logger('replay');

/** Result of {@link replay}. */
export interface ReplayResult {
  id: string;
  groupId: string;
  status: 'complete' | 'interrupted' | 'already-complete';
  /** Counts per outcome over the whole replay (before a resume included). */
  counts: OutcomeCounts;
  /** Requests still open in a window (lone records waiting for their partner) at the end (0 with drain). */
  open: number;
  partitions: number;
  /** Input records processed. */
  processed: number;
  stateDir: string | null;
  files?: Record<OutputKind, string>;
  topics?: OutputTopics;
}

/**
 * The id of a replay: a hash of everything that decides its output, so the same command finds
 * its state again and a different one never shares it.
 *
 * @example
 * replayId({ config, input: { kind: 'files', dir: 'sim' }, output: { kind: 'dry' } }); // '3f2a9c01b7e4'
 */
export function replayId(
  opts: Pick<ReplayOptions, 'config' | 'input' | 'output' | 'drain' | 'partitions'>,
): string {
  const c = opts.config;
  const k = c.kafka;
  const input =
    opts.input.kind === 'files'
      ? { kind: 'files', dir: resolve(opts.input.dir), files: fileStamps(opts.input.dir) }
      : {
          kind: 'kafka',
          brokers: k.brokers,
          topics: [k.topics.rankerOutputs, k.topics.impressions],
          from: opts.input.from ?? null,
          to: opts.input.to ?? null,
          inputFormat: k.inputFormat,
        };
  const output =
    opts.output.kind === 'files'
      ? { kind: 'files', dir: resolve(opts.output.dir), format: opts.output.format }
      : opts.output;
  const partitions =
    opts.input.kind === 'files' && (opts.partitions ?? 1) !== 1 ? { partitions: opts.partitions } : {};
  const key = JSON.stringify({
    input,
    output,
    join: c.join,
    labels: c.labels,
    drain: opts.drain === true,
    ...partitions,
  });
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/**
 * Size and modification time of the input files, so a regenerated input directory starts a new
 * replay instead of resuming an old one over different records.
 */
function fileStamps(dir: string): Array<[string, number, number]> | null {
  try {
    return SIDES.map((side) => {
      const path = inputFile(dir, side);
      const st = statSync(path);
      return [basename(path), st.size, Math.floor(st.mtimeMs)];
    });
  } catch {
    return null; // replay() reports the missing input itself
  }
}

/** Output file per kind in an output directory (the file transport's names). */
export function outputFiles(dir: string, format: FileFormat): Record<OutputKind, string> {
  const ext = extensionOf(format);
  return {
    pointwise: join(dir, `labels.pointwise.${ext}`),
    pairwise: join(dir, `labels.pairwise.${ext}`),
    listwise: join(dir, `labels.listwise.${ext}`),
    deadLetter: join(dir, `dead-letter.${ext}`),
  };
}

interface CompleteFile {
  counts: OutcomeCounts;
  open: number;
  partitions: number;
  processed: number;
  files?: Record<OutputKind, string>;
  topics?: OutputTopics;
}

/**
 * Runs (or continues) a replay.
 *
 * @throws RankdistillError USAGE (bad arguments, a replay with the same id running), IO_FAILED,
 *   STATE_STORE_FAILED (damaged state), KAFKA_UNAVAILABLE, TOPIC_MISSING, COPARTITION_MISMATCH.
 * @example
 * const res = await replay({ config, input: { kind: 'files', dir: 'sim' },
 *   output: { kind: 'files', dir: 'labels', format: 'avro' } });
 * res.counts.joined;
 */
export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const dry = opts.output.kind === 'dry';
  const id = replayId(opts);
  const groupId = `rankdistill-replay-${id}`;
  if (opts.output.kind === 'topics') refuseLiveTopics(opts.config, opts.output.topics);
  const stateDir = dry
    ? mkdtempSync(join(tmpdir(), 'rankdistill-replay-dry-'))
    : resolve(opts.stateDir ?? join(opts.config.store.dir, `replay-${id}`));
  const completePath = join(stateDir, 'complete.json');
  if (!dry && existsSync(completePath)) {
    const c = JSON.parse(readFileSync(completePath, 'utf8')) as CompleteFile;
    return { id, groupId, status: 'already-complete', stateDir, ...c };
  }
  mkdirSync(stateDir, { recursive: true });
  const unlock = dry ? () => undefined : lock(stateDir);
  const checkpoints = dry ? null : new CheckpointFiles(join(stateDir, 'ckpt'));
  const checkpointEvery = opts.checkpointEvery ?? CHECKPOINT_EVERY;
  const format = opts.output.kind === 'files' ? opts.output.format : 'ndjson';
  const ctx: ReplayContext = {
    opts,
    id,
    groupId,
    stateDir,
    checkpoints,
    checkpointEvery,
    base: {
      config: opts.config,
      checkpoints,
      checkpointEvery,
      drain: opts.drain === true,
      ...(opts.now === undefined ? {} : { now: opts.now }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    },
    storePath: (p) => taskStorePath(stateDir, p),
    fileSink: (p, ck) =>
      opts.output.kind === 'files' ? PartsSink.open(stateDir, p, format, ck) : new NullSink(),
    progress: (runs, total) => {
      if (opts.onProgress === undefined) return;
      opts.onProgress({ done: runs.reduce((s, r) => s + r.processed(), 0), total });
    },
  };
  try {
    const runs =
      opts.input.kind === 'files' ? await replayFiles(ctx, opts.input.dir) : await replayKafkaInput(ctx);
    const counts = sumCounters(runs.map((r) => r.counters));
    const processed = runs.reduce((s, r) => s + r.processed, 0);
    const open = runs.reduce((s, r) => s + r.open, 0);
    opts.onProgress?.({ done: processed, total: null });
    const base = { id, groupId, counts, open, partitions: runs.length, processed };
    if (!runs.every((r) => r.checkpoint.done)) {
      return { ...base, status: 'interrupted', stateDir: dry ? null : stateDir };
    }
    if (dry) return { ...base, status: 'complete', stateDir: null };
    const done: CompleteFile = { counts, open, partitions: runs.length, processed };
    if (opts.output.kind === 'files') {
      const files = outputFiles(opts.output.dir, opts.output.format);
      // Side by side: each file's copy waits on reads, writes and its fsync, not on the CPU.
      await Promise.all(
        OUTPUT_KINDS.map((kind) =>
          assembleFinal(
            files[kind],
            runs.map((r, p) => ({
              path: partPath(stateDir, p, kind),
              length: r.checkpoint.parts?.[kind] ?? 0,
            })),
          ),
        ),
      );
      done.files = files;
    } else if (opts.output.kind === 'topics') {
      done.topics = opts.output.topics;
    }
    writeFileAtomic(completePath, JSON.stringify(done, null, 2));
    // The outputs are final: the bulky state (stores, parts) is no longer needed.
    await Promise.all([
      rm(join(stateDir, 'parts'), { recursive: true, force: true }),
      ...runs.flatMap((_r, p) =>
        ['', '-wal', '-shm'].map((s) => rm(`${ctx.storePath(p)}${s}`, { force: true })),
      ),
    ]);
    return { ...base, ...done, status: 'complete', stateDir };
  } finally {
    unlock();
    if (dry) rmSync(stateDir, { recursive: true, force: true });
  }
}

/**
 * Input records between checkpoints of a replay, unless asked otherwise. A checkpoint commits the
 * join state (SQLite: its open entries, each ranker output with its candidates) and fsyncs the
 * parts, or commits one Kafka transaction (topic output); every 5,000 records that took 10–15% of
 * a file replay at 200 candidates, and ~7% of the CPU of a Kafka → topics replay at 50. 50,000
 * records are a few seconds of work to redo after a crash. A topic replay checkpoints earlier once
 * its transaction holds MAX_HELD_BYTES of records (./sinks.ts), so memory stays bounded.
 */
export const CHECKPOINT_EVERY = 50_000;

/** Lazily loaded so a file replay never loads the Kafka driver. */
async function replayKafkaInput(ctx: ReplayContext): Promise<RunSummary[]> {
  const { replayKafka } = await import('./kafka.ts');
  return replayKafka(ctx);
}

/**
 * File input: `<dir>/ranker-outputs.<ext>` and `<dir>/impressions.<ext>`, read the way the file
 * transport reads them (same source names in dead letters, same raw formats), split into
 * `partitions` partitions by user id (./file-partitions.ts) run on `threads` threads.
 */
async function replayFiles(ctx: ReplayContext, dir: string): Promise<RunSummary[]> {
  const paths: Record<Side, string> = {
    ranker: inputFile(dir, 'ranker'),
    impression: inputFile(dir, 'impression'),
  };
  const partitions = ctx.opts.partitions ?? 1;
  // The progress total, counted meanwhile (null until known, or when a file cannot be counted).
  let total: number | null = null;
  const report = ctx.opts.onProgress;
  if (report !== undefined) {
    void Promise.all([countRecords(paths.ranker), countRecords(paths.impression)]).then(([rc, ic]) => {
      if (rc !== null && ic !== null) total = rc + ic;
    });
  }
  const onProgress = (done: number) => report?.({ done, total });
  let runs: RunSummary[];
  if (ctx.opts.output.kind === 'topics') {
    if (partitions !== 1) {
      throw new RankdistillError(
        'USAGE',
        `replay: files into topics run as one partition, found --partitions ${partitions}: give --partitions 1 or write files`,
      );
    }
    const { fileInputTopicSink } = await import('./kafka.ts');
    const t = await fileInputTopicSink(ctx);
    try {
      runs = await replayFileThreads(ctx, paths, 1, 1, onProgress, (_p, ck) => t.sink(ck));
    } finally {
      await t.close();
    }
  } else {
    runs = await replayFileThreads(
      ctx,
      paths,
      partitions,
      fileThreads(ctx.opts.threads, partitions),
      onProgress,
    );
  }
  if (ctx.opts.signal?.aborted) log.info('replay interrupted; run the same command to continue');
  return runs;
}

function refuseLiveTopics(config: Config, topics: OutputTopics): void {
  const t = config.kafka.topics;
  const live = new Set([
    t.pointwise,
    t.pairwise,
    t.listwise,
    t.deadLetter,
    t.rankerOutputs,
    t.impressions,
    t.changelog,
  ]);
  const clash = OUTPUT_KINDS.map((k) => topics[k]).filter((x) => live.has(x));
  if (clash.length > 0) {
    throw new RankdistillError(
      'USAGE',
      `replay output topics must differ from the live service's topics, found ${clash.join(', ')}: give --to-topics <prefix> or other topic names`,
      { details: { topics: clash } },
    );
  }
}

/**
 * A lock file so two replays with the same id never run at once; a lock left by a dead process
 * is taken over.
 */
function lock(stateDir: string): () => void {
  const path = join(stateDir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (e) {
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new RankdistillError(
          'USAGE',
          `a replay with the same arguments is running (pid ${pid}, state ${stateDir}): wait for it or stop it first`,
          { details: { pid, stateDir, error: errorMessage(e) } },
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new RankdistillError('IO_FAILED', `cannot take the replay lock ${path}`);
}
