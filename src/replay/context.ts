/**
 * The options of a replay and the per-run plumbing its drivers share ({@link ReplayContext}):
 * types only, in a module of their own so the drivers (file threads, Kafka) need not import
 * replay.ts, which imports them.
 */
import type { Config } from '../config/schema.ts';
import type { FileFormat } from '../io/files.ts';
import type { CheckpointFiles, ReplayCheckpoint } from './checkpoint.ts';
import type { OutputTopics, ReplaySink } from './sinks.ts';
import type { TaskRun, TaskRunOptions } from './task-run.ts';

/** Where a replay reads. Times are Kafka record timestamps in epoch ms (`to` exclusive). */
export type ReplayInput = { kind: 'files'; dir: string } | { kind: 'kafka'; from?: number; to?: number };

/** Where a replay writes. */
export type ReplayOutput =
  | { kind: 'files'; dir: string; format: FileFormat }
  | { kind: 'topics'; topics: OutputTopics }
  | { kind: 'dry' };

/** Options of `replay()` (replay.ts). */
export interface ReplayOptions {
  config: Config;
  input: ReplayInput;
  output: ReplayOutput;
  /** Expire every open window at the end of the range (default false, as the live service). */
  drain?: boolean;
  /** State directory (default `<store.dir>/replay-<id>`). */
  stateDir?: string;
  /** Input records per checkpoint (default CHECKPOINT_EVERY; a topic replay also at MAX_HELD_BYTES of records). */
  checkpointEvery?: number;
  /** Stop at the next record boundary, commit a checkpoint and return `interrupted`. */
  signal?: AbortSignal;
  /**
   * File input: partitions the records are split into by user id, as a producer would split them
   * into topic partitions (default 1). Part of the replay's identity: it decides the output.
   */
  partitions?: number;
  /** File input: threads running the partitions (default: the cores, at most `partitions`). */
  threads?: number;
  /** Called as records are processed. */
  onProgress?: (p: { done: number; total: number | null }) => void;
  /** Wall clock of dead-letter times (default Date.now). */
  now?: () => number;
}

/** Per-run plumbing shared by the file and Kafka drivers. */
export interface ReplayContext {
  opts: ReplayOptions;
  id: string;
  groupId: string;
  stateDir: string;
  checkpoints: CheckpointFiles | null;
  checkpointEvery: number;
  /** TaskRun options common to every partition. */
  base: Pick<TaskRunOptions, 'config' | 'checkpoints' | 'checkpointEvery' | 'drain'> & {
    now?: () => number;
    signal?: AbortSignal;
  };
  storePath(p: number): string;
  /** Sink for partition p (file and dry outputs; the Kafka driver makes topic sinks). */
  fileSink(p: number, ck: ReplayCheckpoint): ReplaySink;
  progress(runs: readonly TaskRun[], total: number | null): void;
}
