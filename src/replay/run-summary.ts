/**
 * What a replay driver (file threads, Kafka) reports per partition once it stops. A module of its
 * own so a file replay thread loads only what it runs.
 */
import type { ReplayCheckpoint } from './checkpoint.ts';
import type { TaskRun } from './task-run.ts';

/** What a driver reports per partition once it stops. */
export interface RunSummary {
  checkpoint: ReplayCheckpoint;
  counters: ReturnType<TaskRun['counters']>;
  processed: number;
  open: number;
}

/** Closes a run, returning its summary. */
export async function summarize(run: TaskRun): Promise<RunSummary> {
  const s: RunSummary = {
    checkpoint: run.checkpoint,
    counters: run.counters(),
    processed: run.processed(),
    open: run.task.openRequests(),
  };
  await run.close();
  return s;
}
