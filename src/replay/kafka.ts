/**
 * The Kafka side of a replay (range input, topic output). Filled in by the next step.
 */
import { RankdistillError } from '../errors.ts';
import type { ReplayCheckpoint } from './checkpoint.ts';
import type { ReplayContext, RunSummary } from './replay.ts';
import type { ReplaySink } from './sinks.ts';

export async function replayKafka(_ctx: ReplayContext): Promise<RunSummary[]> {
  throw new RankdistillError('USAGE', 'replay from Kafka is not implemented yet');
}

export async function fileInputTopicSink(
  _ctx: ReplayContext,
): Promise<{ sink: (ck: ReplayCheckpoint) => ReplaySink; close: () => Promise<void> }> {
  throw new RankdistillError('USAGE', 'replay into topics is not implemented yet');
}
