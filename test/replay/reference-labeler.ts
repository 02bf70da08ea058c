// The file labeler as it was before `label --in` ran on the replay engine: one JoinTask over the
// two files, generic labels (labelRequest), RecordWriter outputs. Kept as the independent
// reference the replay's outputs are compared with, byte for byte (the engine's column parsers,
// byte-level label writers, part files and final assembly are all different code).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WireFormat } from '../../src/contracts/codec.ts';
import { extensionOf, formatOf, RecordWriter, readRecords } from '../../src/io/files.ts';
import { inputFile } from '../../src/io/input-files.ts';
import { JoinTask, outputRecord, type RawInput } from '../../src/join/task.ts';
import type { OutputKind, Side, TaskOutput } from '../../src/join/types.ts';
import { labelRequest } from '../../src/labels/index.ts';
import type { LabelFilesOptions, LabelFilesResult } from '../../src/pipeline/label-files.ts';
import { sumCounters } from '../../src/pipeline/outcomes.ts';
import { SqliteJoinStore } from '../../src/store/sqlite-store.ts';

const PULL = 2048;
const STEP = 4096;

/** The sequential labeler (one JoinTask, generic labels, RecordWriter outputs). */
export async function labelFilesSequential(opts: LabelFilesOptions): Promise<LabelFilesResult> {
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
