/**
 * A file replay on several threads: the partitions of the split (./file-partitions.ts) spread
 * over `threads` worker threads (partition p on thread p mod threads), each running its
 * partitions with its own stores, checkpoints and part files in the replay's state directory.
 * The parent only starts them, sums their progress and collects their summaries; the final files
 * are assembled from the parts in partition order as for one thread, so the output is the same
 * bytes whatever the thread count. Threads start as the labeler's stream threads do
 * (src/pipeline/label-thread-boot.mjs registers tsx in the thread).
 *
 * A thread that fails makes the replay fail (the others are stopped at a checkpoint); running the
 * same command again continues from the checkpoints, as after an interrupt.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import { type ErrorCode, RankdistillError } from '../errors.ts';
import type { FileFormat } from '../io/files.ts';
import type { Side } from '../join/types.ts';
import { CheckpointFiles, type ReplayCheckpoint } from './checkpoint.ts';
import type { ReplayContext } from './context.ts';
import { runFilePartitions } from './file-partitions.ts';
import type { RunSummary } from './run-summary.ts';
import { NullSink, PartsSink, type ReplaySink } from './sinks.ts';

/** What a file replay thread gets (structured-cloned into it). */
export interface FileThreadData {
  entry: string;
  config: Config;
  paths: Record<Side, string>;
  partitions: number;
  mine: number[];
  stateDir: string;
  /** Output format of the part files, or null for a dry run (nothing written). */
  format: FileFormat | null;
  checkpoints: boolean;
  checkpointEvery: number;
  drain: boolean;
}

/** Thread → parent. */
export type FileThreadMessage =
  | { type: 'progress'; processed: number }
  | { type: 'done'; summaries: RunSummary[] }
  | { type: 'failed'; code: ErrorCode; message: string; details: Record<string, unknown> };

/** Parent → thread. */
export type FileThreadRequest = { type: 'stop' };

/** The SQLite file of partition p's join state in a replay state directory. */
export function taskStorePath(stateDir: string, p: number): string {
  return join(stateDir, `task-${p}.sqlite`);
}

/** Threads of a file replay: the cores by default, never more than the partitions. */
export function fileThreads(requested: number | undefined, partitions: number): number {
  return Math.max(1, Math.min(requested ?? availableParallelism(), partitions));
}

/** The partitions thread `w` of `threads` runs. */
function partitionsOf(w: number, threads: number, partitions: number): number[] {
  return Array.from({ length: partitions }, (_, p) => p).filter((p) => p % threads === w);
}

/** Sink factory of a thread: part files, or nothing (dry run). */
export function fileSinkFor(stateDir: string, format: FileFormat | null) {
  return (p: number, ck: ReplayCheckpoint) =>
    format === null ? new NullSink() : PartsSink.open(stateDir, p, format, ck);
}

/**
 * Runs the partitions of a file replay on `threads` threads (in this thread when 1); returns the
 * summaries in partition order.
 */
export async function replayFileThreads(
  ctx: ReplayContext,
  paths: Record<Side, string>,
  partitions: number,
  threads: number,
  onProgress: (processed: number) => void,
  sink: (p: number, ck: ReplayCheckpoint) => ReplaySink = ctx.fileSink,
): Promise<RunSummary[]> {
  const o = ctx.opts;
  if (threads <= 1) {
    return runFilePartitions({
      config: o.config,
      paths,
      partitions,
      mine: partitionsOf(0, 1, partitions),
      checkpoints: ctx.checkpoints,
      checkpointEvery: ctx.checkpointEvery,
      drain: o.drain === true,
      storePath: ctx.storePath,
      sink,
      onProgress,
      ...(o.now === undefined ? {} : { now: o.now }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
  }
  const format = o.output.kind === 'files' ? o.output.format : null;
  const processed = new Array<number>(threads).fill(0);
  const workers: Worker[] = [];
  const onAbort = () => stopAll();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const compiled = import.meta.url.endsWith('.js');
  const running = Array.from({ length: threads }, (_, w) => {
    const data: FileThreadData = {
      entry: new URL('./file-thread-worker.ts', import.meta.url).href,
      config: o.config,
      paths,
      partitions,
      mine: partitionsOf(w, threads, partitions),
      stateDir: ctx.stateDir,
      format,
      checkpoints: ctx.checkpoints !== null,
      checkpointEvery: ctx.checkpointEvery,
      drain: o.drain === true,
    };
    // Compiled (dist/*.js), a thread starts on the compiled worker directly; from the sources, on
    // the .mjs that registers tsx first (as the label service's threads do).
    const worker = new Worker(
      compiled
        ? new URL('./file-thread-worker.js', import.meta.url)
        : new URL('../pipeline/label-thread-boot.mjs', import.meta.url),
      { workerData: data, execArgv: [] },
    );
    workers.push(worker);
    return new Promise<RunSummary[]>((resolve, reject) => {
      let settled = false;
      worker.on('message', (m: FileThreadMessage) => {
        if (m.type === 'progress') {
          processed[w] = m.processed;
          onProgress(processed.reduce((s, x) => s + x, 0));
        } else if (m.type === 'done') {
          settled = true;
          resolve(m.summaries);
        } else {
          settled = true;
          reject(new RankdistillError(m.code, m.message, { details: m.details }));
          stopAll();
        }
      });
      worker.on('error', (e) => {
        settled = true;
        reject(
          new RankdistillError('THREAD_FAILED', `replay thread ${w} failed: ${e.message}`, { cause: e }),
        );
        stopAll();
      });
      worker.on('exit', (code) => {
        if (!settled) {
          reject(new RankdistillError('THREAD_FAILED', `replay thread ${w} exited with code ${code}`));
          stopAll();
        }
      });
    });
  });
  function stopAll(): void {
    for (const wk of workers) wk.postMessage({ type: 'stop' } satisfies FileThreadRequest);
  }
  if (o.signal?.aborted) stopAll();
  try {
    const results = await Promise.allSettled(running);
    const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad !== undefined) throw bad.reason;
    return results
      .flatMap((r) => (r as PromiseFulfilledResult<RunSummary[]>).value)
      .sort((a, b) => a.checkpoint.partition - b.checkpoint.partition);
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await Promise.all(workers.map((wk) => wk.terminate().catch(() => undefined)));
  }
}

/** Opens the checkpoint files of a thread (the parent's are not shared across threads). */
export function threadCheckpoints(d: FileThreadData): CheckpointFiles | null {
  return d.checkpoints ? new CheckpointFiles(join(d.stateDir, 'ckpt')) : null;
}
