/**
 * Replay checkpoints, one sequence per partition task.
 *
 * A checkpoint k of partition p is the JSON file `<state>/ckpt/p<p>-<k>.json` (input positions,
 * part file lengths, counters, whether the partition is finished) *and* the task's SQLite store
 * committed with checkpoint number k. The SQLite commit is the commit point:
 *
 *   1. fsync the part files (their lengths go into the JSON)
 *   2. write p<p>-<k>.json atomically
 *   3. (topic output) commit the Kafka transaction: outputs + input offsets of the replay group
 *   4. commit SQLite with checkpoint k   ← from here on, checkpoint k is the one to resume from
 *
 * A crash before 4 leaves SQLite at k−1, whose JSON still exists (older files are pruned only
 * after 4), so a resume always finds a state, positions and part lengths that belong together.
 * Files with a higher number than the store's are leftovers of a crash between 2 and 4.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, RankdistillError } from '../errors.ts';
import { writeFileAtomic } from '../io/files.ts';
import { emptyCounters, type JoinCounters, type OutputKind, type Side } from '../join/types.ts';

/** Bytes persisted per output kind (file output), see ./parts.ts. */
export type PartLengths = Record<OutputKind, number>;

/** What a partition task has done up to checkpoint k. */
export interface ReplayCheckpoint {
  k: number;
  partition: number;
  /** Next input offset to read per side (record index / line for files). */
  positions: Record<Side, number>;
  /** Part file lengths (file output), or null. */
  parts: PartLengths | null;
  /**
   * Bytes of each part's tail file of this checkpoint (the open Avro block, see ./parts.ts); 0 or
   * absent: none. Written by part format 2.
   */
  tails?: PartLengths;
  /** Format of the part files: 2 (final bytes, tails). Absent: 1, length-framed records. */
  partFormat?: number;
  /** Task counters up to this checkpoint (so totals survive a resume). */
  counters: JoinCounters;
  /** The partition's range is fully processed (and drained when asked). */
  done: boolean;
}

/** Zero part lengths. */
export function emptyParts(): PartLengths {
  return { pointwise: 0, pairwise: 0, listwise: 0, deadLetter: 0 };
}

/**
 * The checkpoint files of a replay state directory.
 *
 * @example
 * const ck = new CheckpointFiles('state/ckpt');
 * ck.write({ k: 1, partition: 0, positions: { ranker: 10, impression: 12 }, parts: null, counters, done: false });
 * ck.read(0, 1)?.positions.ranker; // 10
 */
export class CheckpointFiles {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  #path(p: number, k: number): string {
    return join(this.dir, `p${p}-${k}.json`);
  }

  /** Writes checkpoint `c.k` of partition `c.partition` atomically (temp, fsync, rename). */
  write(c: ReplayCheckpoint): void {
    writeFileAtomic(this.#path(c.partition, c.k), JSON.stringify(c));
  }

  /**
   * Checkpoint k of partition p, or undefined when k = 0 (nothing committed yet).
   *
   * @throws RankdistillError STATE_STORE_FAILED when the store says k but the file is gone.
   */
  read(p: number, k: number): ReplayCheckpoint | undefined {
    if (k === 0) return undefined;
    const path = this.#path(p, k);
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as ReplayCheckpoint;
    } catch (cause) {
      throw new RankdistillError(
        'STATE_STORE_FAILED',
        `replay checkpoint ${path} cannot be read (${errorMessage(cause)}) although the task's store was committed with it: delete the state directory to start over`,
        { cause, details: { path } },
      );
    }
  }

  /** Deletes the files of partition p other than checkpoint k. */
  prune(p: number, k: number): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    const re = new RegExp(`^p${p}-(\\d+)\\.json$`);
    for (const n of names) {
      const m = re.exec(n);
      if (m !== null && Number(m[1]) !== k) rmSync(join(this.dir, n), { force: true });
    }
  }
}

/** The checkpoint a fresh partition starts from. */
export function initialCheckpoint(
  partition: number,
  positions: Record<Side, number>,
  withParts: boolean,
): ReplayCheckpoint {
  return {
    k: 0,
    partition,
    positions: { ...positions },
    parts: withParts ? emptyParts() : null,
    counters: emptyCounters(),
    done: false,
  };
}
