/**
 * Outcome counts of a labeling run, summed over tasks, in the shape the CLI prints.
 */
import type { JoinCounters } from '../join/types.ts';

/** Flat per-outcome counts. */
export interface OutcomeCounts {
  rankerOutputsIn: number;
  impressionsIn: number;
  joined: number;
  unmatched: number;
  unmatchedDropped: number;
  orphans: number;
  late: number;
  duplicates: number;
  malformed: number;
  invalid: number;
  labelFailed: number;
  deadLetters: number;
  pointwise: number;
  pairwise: number;
  listwise: number;
}

/**
 * Sums task counters.
 *
 * @example
 * sumCounters([task0.counters, task1.counters]).joined;
 */
export function sumCounters(all: Iterable<JoinCounters>): OutcomeCounts {
  const s: OutcomeCounts = {
    rankerOutputsIn: 0,
    impressionsIn: 0,
    joined: 0,
    unmatched: 0,
    unmatchedDropped: 0,
    orphans: 0,
    late: 0,
    duplicates: 0,
    malformed: 0,
    invalid: 0,
    labelFailed: 0,
    deadLetters: 0,
    pointwise: 0,
    pairwise: 0,
    listwise: 0,
  };
  for (const c of all) {
    s.rankerOutputsIn += c.recordsIn.ranker;
    s.impressionsIn += c.recordsIn.impression;
    s.joined += c.joined;
    s.unmatched += c.unmatched;
    s.unmatchedDropped += c.unmatchedDropped;
    s.orphans += c.orphans;
    s.late += c.late;
    s.duplicates += c.duplicates;
    s.malformed += c.malformed;
    s.invalid += c.invalid;
    s.labelFailed += c.labelFailed;
    s.deadLetters += c.deadLetters;
    s.pointwise += c.labelsOut.pointwise;
    s.pairwise += c.labelsOut.pairwise;
    s.listwise += c.labelsOut.listwise;
  }
  return s;
}
