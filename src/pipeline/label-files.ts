/**
 * The file transport of the labeler (the embedded default): the same join task as the Kafka
 * service, over `<in>/ranker-outputs.<ext>` and `<in>/impressions.<ext>` (NDJSON or Avro container
 * files; each file is partition 0 of its input), writing
 * `<out>/labels.pointwise.<ext>`, `labels.pairwise.<ext>`, `labels.listwise.<ext>` and
 * `dead-letter.<ext>`.
 *
 * The two files are merged by event time exactly as the Kafka service merges two partitions (a
 * file at its end is "caught up"), so the same records give the same labels through both
 * transports. Like the service, requests whose window is still open when the input ends are not
 * decided (their count is reported as `open`) unless `drain` is set, which advances the watermark
 * past every window at the end — what a backfill of a closed log wants.
 *
 * It runs on the replay engine (a replay into a temporary state directory): state lives in
 * SQLite stores there, so large inputs do not grow the JS heap.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { RankdistillError } from '../errors.ts';
import type { FileFormat } from '../io/files.ts';
import type { OutputKind } from '../join/types.ts';
import { replay } from '../replay/replay.ts';
import type { OutcomeCounts } from './outcomes.ts';

/** Options of {@link labelFiles}. */
export interface LabelFilesOptions {
  inDir: string;
  outDir: string;
  /** Output format (default ndjson). */
  format?: FileFormat;
  config: Config;
  /** At the end of input, expire every open request (unmatched labels, orphans). Default false. */
  drain?: boolean;
  /** Wall clock of dead-letter times (default Date.now). */
  now?: () => number;
  /**
   * Partitions the records are split into by user id (default 1: the files are one partition,
   * as one topic partition; more changes the watermarks, hence which late records are late).
   */
  partitions?: number;
  /** Threads running the partitions (default: the cores, at most `partitions`). */
  threads?: number;
  /** Called as records are processed (total: the input files' record count, or null). */
  onProgress?: (p: { done: number; total: number | null }) => void;
  /** Stops the run at its next checkpoint; the outputs are then removed and it throws ABORTED. */
  signal?: AbortSignal;
}

/** Result of {@link labelFiles}. */
export interface LabelFilesResult {
  counts: OutcomeCounts;
  /** Requests still open in their window (lone records waiting for their partner) at the end of input. */
  open: number;
  /** Output file per kind. */
  files: Record<OutputKind, string>;
}

/**
 * Labels the records of two input files, on the replay engine (src/replay): the Avro column
 * parsers and byte-level label writers, the split into `partitions` by user id on `threads`
 * threads, part files assembled into the final files. Same bytes as a replay of the same files
 * (it is one), and as the Kafka service's labels for the same records (test/integration).
 * Its state (stores, checkpoints, parts) lives in a temporary directory removed at the end: a
 * `label --in` is not resumable, a `replay` is.
 *
 * @example
 * const { counts } = await labelFiles({ inDir: 'sim', outDir: 'labels', config: loadConfig() });
 * console.log(counts.joined);
 */
export async function labelFiles(opts: LabelFilesOptions): Promise<LabelFilesResult> {
  const stateDir = mkdtempSync(join(tmpdir(), 'rankdistill-label-'));
  try {
    const res = await replay({
      config: opts.config,
      input: { kind: 'files', dir: opts.inDir },
      output: { kind: 'files', dir: opts.outDir, format: opts.format ?? 'ndjson' },
      stateDir,
      drain: opts.drain === true,
      partitions: opts.partitions ?? 1,
      ...(opts.threads === undefined ? {} : { threads: opts.threads }),
      ...(opts.now === undefined ? {} : { now: opts.now }),
      ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
    if (res.status === 'interrupted') {
      // Not resumable (its state is temporary): partial label files must not pass for a result.
      for (const f of Object.values(res.files ?? {})) rmSync(f, { force: true });
      throw new RankdistillError(
        'ABORTED',
        `labelling ${opts.inDir} was stopped after ${res.processed} input records; its outputs were removed (use \`rankdistill replay\` for a resumable run)`,
      );
    }
    if (res.status !== 'complete' || res.files === undefined) {
      throw new RankdistillError('STATE_STORE_FAILED', `labelling ${opts.inDir} ended ${res.status}`);
    }
    return { counts: res.counts, open: res.open, files: res.files };
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}
