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
 * State lives in a throwaway SQLite store, so large replays do not grow the JS heap.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { WireFormat } from '../contracts/codec.ts';
import { RankdistillError } from '../errors.ts';
import { extensionOf, type FileFormat, formatOf, RecordWriter, readRecords } from '../io/files.ts';
import { JoinTask, outputRecord, type RawInput } from '../join/task.ts';
import type { OutputKind, Side, TaskOutput } from '../join/types.ts';
import { labelRequest } from '../labels/index.ts';
import { SqliteJoinStore } from '../store/sqlite-store.ts';
import { type OutcomeCounts, sumCounters } from './outcomes.ts';

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
}

/** Result of {@link labelFiles}. */
export interface LabelFilesResult {
  counts: OutcomeCounts;
  /** Requests still open in their window (lone records waiting for their partner) at the end of input. */
  open: number;
  /** Output file per kind. */
  files: Record<OutputKind, string>;
}

const INPUT_BASENAMES: Record<Side, string> = { ranker: 'ranker-outputs', impression: 'impressions' };
const PULL = 2048;
const STEP = 4096;

/**
 * The input file of one side in `dir`.
 *
 * @throws RankdistillError USAGE when there is none or more than one.
 * @example
 * inputFile('sim-out', 'ranker'); // 'sim-out/ranker-outputs.ndjson'
 */
export function inputFile(dir: string, side: Side): string {
  const base = INPUT_BASENAMES[side];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (cause) {
    throw new RankdistillError('USAGE', `cannot read the input directory ${dir}: ${String(cause)}`, {
      cause,
    });
  }
  const hits = names.filter((n) => /^(.+)\.(ndjson|jsonl|avro)$/.exec(n)?.[1] === base).sort();
  if (hits.length !== 1) {
    throw new RankdistillError(
      'USAGE',
      `expected exactly one ${base}.ndjson|.jsonl|.avro in ${dir}, found ${hits.length === 0 ? 'none' : hits.join(', ')}`,
    );
  }
  return join(dir, hits[0] as string);
}

/**
 * Labels the records of two input files.
 *
 * @example
 * const { counts } = await labelFiles({ inDir: 'sim', outDir: 'labels', config: loadConfig() });
 * console.log(counts.joined);
 */
export async function labelFiles(opts: LabelFilesOptions): Promise<LabelFilesResult> {
  const cfg = opts.config;
  const fmt = opts.format ?? 'ndjson';
  const ext = extensionOf(fmt);
  const paths: Record<Side, string> = {
    ranker: inputFile(opts.inDir, 'ranker'),
    impression: inputFile(opts.inDir, 'impression'),
  };
  const rawFormat = (p: string): WireFormat => (formatOf(p) === 'avro' ? 'avro' : 'json');
  const files: Record<OutputKind, string> = {
    pointwise: join(opts.outDir, `labels.pointwise.${ext}`),
    pairwise: join(opts.outDir, `labels.pairwise.${ext}`),
    listwise: join(opts.outDir, `labels.listwise.${ext}`),
    deadLetter: join(opts.outDir, `dead-letter.${ext}`),
  };
  const writers = {
    pointwise: RecordWriter.open(files.pointwise, 'PointwiseLabels', fmt),
    pairwise: RecordWriter.open(files.pairwise, 'PairwiseLabels', fmt),
    listwise: RecordWriter.open(files.listwise, 'ListwiseLabels', fmt),
    deadLetter: RecordWriter.open(files.deadLetter, 'DeadLetter', fmt),
  };
  const tmp = mkdtempSync(join(tmpdir(), 'rankdistill-label-'));
  const store = SqliteJoinStore.open(join(tmp, 'task-0.sqlite'));
  const labelsCfg = cfg.labels;
  const task = new JoinTask({
    partition: 0,
    topics: { ranker: paths.ranker, impression: paths.impression },
    store,
    join: cfg.join,
    label: (req) => labelRequest(req, labelsCfg),
    inputFormat: 'avro',
    rawFormat: { ranker: rawFormat(paths.ranker), impression: rawFormat(paths.impression) },
    now: opts.now ?? Date.now,
  });
  const write = (outs: TaskOutput[]) => {
    for (const out of outs) {
      const o = outputRecord(out);
      switch (o.kind) {
        case 'pointwise':
          writers.pointwise.write(o.value);
          break;
        case 'pairwise':
          writers.pairwise.write(o.value);
          break;
        case 'listwise':
          writers.listwise.write(o.value);
          break;
        case 'deadLetter':
          writers.deadLetter.write(o.value);
          break;
      }
    }
  };
  const iters = {
    ranker: readRecords(paths.ranker, 'RankerOutput'),
    impression: readRecords(paths.impression, 'Impression'),
  };
  const ended: Record<Side, boolean> = { ranker: false, impression: false };
  const pull = async (side: Side) => {
    const chunk: RawInput[] = [];
    while (chunk.length < PULL) {
      const n = await iters[side].next();
      if (n.done) {
        ended[side] = true;
        task.setCaughtUp(side, true);
        break;
      }
      chunk.push({ offset: n.value.offset, key: null, raw: n.value.raw, decoded: n.value.result });
    }
    task.push(side, chunk);
  };
  let ok = false;
  try {
    store.begin();
    for (;;) {
      const { outputs, processed } = task.step(STEP);
      write(outputs);
      if (processed > 0) {
        store.commit();
        store.begin();
        continue;
      }
      let pulled = false;
      for (const side of ['ranker', 'impression'] as const) {
        if (task.buffered(side) === 0 && !ended[side]) {
          await pull(side);
          pulled = true;
        }
      }
      if (!pulled) break;
    }
    if (opts.drain) write(task.drain());
    store.commit();
    for (const w of Object.values(writers)) await w.close();
    ok = true;
    return { counts: sumCounters([task.counters]), open: task.openRequests(), files };
  } finally {
    if (!ok) for (const w of Object.values(writers)) await w.abort().catch(() => undefined);
    store.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}
