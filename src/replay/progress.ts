/**
 * Replay progress: a one-line bar with rate and ETA when the stream is a terminal, plain log lines
 * (every few seconds) otherwise.
 *
 * Hand-rolled rather than `cli-progress`: one bar, one line, ~60 lines, and no new dependency in a
 * package.json several people edit at once; the rate is a moving window so the ETA follows the
 * current speed rather than the average since start.
 */

/** Where progress goes: a stream (stderr) with an optional TTY flag and width. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** A point of the run the bar shows. */
export interface ProgressState {
  /** Input records processed (this run and before a resume). */
  done: number;
  /** Input records in the range (null when unknown). */
  total: number | null;
}

const WINDOW_MS = 5_000;

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * @example
 * const bar = new Progress(process.stderr, { label: 'replay' });
 * bar.update({ done: 500, total: 2000 });
 * bar.finish({ done: 2000, total: 2000 });
 */
export class Progress {
  readonly #out: ProgressStream;
  readonly #label: string;
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #logEveryMs: number;
  readonly #samples: Array<[number, number]> = [];
  #lastDraw = 0;
  #lastLog = 0;

  constructor(
    out: ProgressStream,
    opts: { label?: string; now?: () => number; logEveryMs?: number; tty?: boolean } = {},
  ) {
    this.#out = out;
    this.#label = opts.label ?? 'replay';
    this.#tty = opts.tty ?? out.isTTY === true;
    this.#now = opts.now ?? Date.now;
    this.#logEveryMs = opts.logEveryMs ?? 5_000;
    this.#lastLog = this.#now();
  }

  /** Records per second over the last few seconds. */
  rate(): number {
    const s = this.#samples;
    if (s.length < 2) return 0;
    const [t0, d0] = s[0] as [number, number];
    const [t1, d1] = s[s.length - 1] as [number, number];
    return t1 > t0 ? ((d1 - d0) * 1000) / (t1 - t0) : 0;
  }

  /** The text of the bar for a state (no terminal control characters). */
  line(st: ProgressState, width = 80): string {
    const rate = this.rate();
    const left = st.total === null ? Number.NaN : Math.max(0, st.total - st.done);
    const eta = rate > 0 ? fmtDuration(left / rate) : '--:--';
    const pct = st.total === null || st.total === 0 ? null : Math.min(1, st.done / st.total);
    const counts = st.total === null ? fmtInt(st.done) : `${fmtInt(st.done)}/${fmtInt(st.total)}`;
    const tail = ` ${pct === null ? '' : `${(pct * 100).toFixed(1)}% `}${counts} records ${fmtInt(rate)}/s ETA ${eta}`;
    const barWidth = Math.max(10, Math.min(40, width - tail.length - this.#label.length - 4));
    const filled = pct === null ? 0 : Math.round(pct * barWidth);
    return `${this.#label} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]${tail}`;
  }

  /** Records a state; redraws the bar (at most 10 times a second) or logs a line now and then. */
  update(st: ProgressState): void {
    const t = this.#now();
    this.#samples.push([t, st.done]);
    while (this.#samples.length > 2 && (this.#samples[0] as [number, number])[0] < t - WINDOW_MS) {
      this.#samples.shift();
    }
    if (this.#tty) {
      if (t - this.#lastDraw < 100) return;
      this.#lastDraw = t;
      this.#out.write(`\r${this.line(st, this.#out.columns ?? 80)}\x1b[K`);
    } else if (t - this.#lastLog >= this.#logEveryMs) {
      this.#lastLog = t;
      this.#out.write(`${this.line(st)}\n`);
    }
  }

  /** Draws the last state and ends the line. */
  finish(st: ProgressState): void {
    this.#samples.push([this.#now(), st.done]);
    this.#out.write(this.#tty ? `\r${this.line(st, this.#out.columns ?? 80)}\x1b[K\n` : `${this.line(st)}\n`);
  }
}
