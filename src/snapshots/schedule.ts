/**
 * When to snapshot: every `everyExamples` examples or every `everyMs` milliseconds, whichever comes
 * first (train.checkpointEveryExamples / train.checkpointEveryMs). Pure; the trainer owns the clock.
 */
export class SnapshotSchedule {
  private examples = 0;
  private last: number;
  private readonly everyExamples: number;
  private readonly everyMs: number;

  /** @example const s = new SnapshotSchedule(200_000, 60_000, Date.now()); */
  constructor(everyExamples: number, everyMs: number, now: number) {
    this.everyExamples = everyExamples;
    this.everyMs = everyMs;
    this.last = now;
  }

  /**
   * Counts `n` more examples; true when a snapshot is due (then call {@link done}).
   *
   * @example
   * if (schedule.add(batch.length, Date.now())) { await publish(); schedule.done(Date.now()); }
   */
  add(n: number, now: number): boolean {
    this.examples += n;
    return this.examples >= this.everyExamples || (this.examples > 0 && now - this.last >= this.everyMs);
  }

  /** A snapshot was taken at `now`: start counting again. */
  done(now: number): void {
    this.examples = 0;
    this.last = now;
  }
}
