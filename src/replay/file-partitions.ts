/**
 * The partitions of a file replay that one thread runs: input files split by user id into
 * `partitions` partitions as a producer would split them into topic partitions
 * (./partitioning.ts), each partition a {@link TaskRun} with its own store, checkpoints and part
 * files, exactly as the partitions of a Kafka replay.
 *
 * Every thread reads both files whole and keeps the records of its partitions: splitting walks
 * the bytes (Avro) or finds the `user_id` field in the line (NDJSON), and only a thread's own
 * records are decoded, so the decode, join and label work divides among the threads. A record
 * without a readable user id (malformed) belongs to partition 0, as a dead letter there.
 *
 * Since a partition's records, order and checkpoints do not depend on which thread runs it or on
 * how many threads there are, the output files (parts concatenated in partition order) are the
 * same bytes for any thread count.
 */
import type { Config } from '../config/schema.ts';
import type { WireFormat } from '../contracts/codec.ts';
import { RankdistillError } from '../errors.ts';
import { formatOf } from '../io/files.ts';
import { type RecordBatch, readRecordBatches } from '../io/record-batches.ts';
import type { RawInput } from '../join/task.ts';
import type { Side } from '../join/types.ts';
import type { CheckpointFiles, ReplayCheckpoint } from './checkpoint.ts';
import { partitionOfKey } from './partitioning.ts';
import { type RunSummary, summarize } from './run-summary.ts';
import type { ReplaySink } from './sinks.ts';
import { TaskRun } from './task-run.ts';

const SIDES: readonly Side[] = ['ranker', 'impression'];
const PULL = 2048;

/** What {@link runFilePartitions} needs. */
export interface FilePartitionsArgs {
  config: Config;
  paths: Record<Side, string>;
  /** Partitions of the split (all threads). */
  partitions: number;
  /** The partitions this thread runs. */
  mine: readonly number[];
  checkpoints: CheckpointFiles | null;
  checkpointEvery: number;
  drain: boolean;
  storePath: (p: number) => string;
  sink: (p: number, ck: ReplayCheckpoint) => ReplaySink;
  now?: () => number;
  signal?: AbortSignal;
  /** Called after every step with the records processed by this thread's partitions. */
  onProgress?: (processed: number) => void;
}

/** The key bytes of an NDJSON line's `user_id` string, or null when none is found. */
export function ndjsonUserId(line: Buffer): Buffer | null {
  const at = line.indexOf('"user_id"');
  if (at < 0) return null;
  let p = at + 9;
  const ws = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
  while (ws(line[p])) p++;
  if (line[p] !== 0x3a) return null; // ':'
  p++;
  while (ws(line[p])) p++;
  if (line[p] !== 0x22) return null; // '"'
  const start = p + 1;
  let escaped = false;
  for (p = start; p < line.length; p++) {
    const c = line[p];
    if (c === 0x5c) {
      escaped = true;
      p++;
    } else if (c === 0x22) {
      if (!escaped) return line.subarray(start, p);
      try {
        return Buffer.from(JSON.parse(line.subarray(start - 1, p + 1).toString('utf8')) as string, 'utf8');
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** The key bytes of a plain Avro RankerOutput / Impression (its second string), or null. */
function avroUserId(buf: Buffer, start: number, end: number): Buffer | null {
  let p = start;
  for (let field = 0; field < 2; field++) {
    let n = 0;
    let mul = 1;
    let b: number;
    let k = 0;
    do {
      if (p >= end || k++ > 4) return null;
      b = buf[p++] as number;
      n += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    if (n % 2 !== 0) return null; // negative length
    const len = n / 2;
    if (p + len > end) return null;
    if (field === 1) return buf.subarray(p, p + len);
    p += len;
  }
  return null;
}

/**
 * Pushes the records of a batch from offset `from` on (those before were processed before a
 * resume); returns how many.
 */
export function pushAfter(run: TaskRun, side: Side, b: RecordBatch, from: number): number {
  if ('records' in b) {
    const first = b.records[0];
    const recs =
      first !== undefined && first.offset < from ? b.records.filter((r) => r.offset >= from) : b.records;
    run.push(side, recs);
    return recs.length;
  }
  const { offsets, ranges } = b.columns;
  let i = 0;
  while (i < offsets.length && (offsets[i] as number) < from) i++;
  if (i === offsets.length) return 0;
  run.pushColumns(
    side,
    i === 0
      ? b.columns
      : { buf: b.columns.buf, offsets: offsets.subarray(i), ranges: ranges.subarray(4 * i) },
  );
  return offsets.length - i;
}

function partitionOfRecord(r: RawInput, partitions: number): number {
  let key: Buffer | null;
  if (r.decoded === undefined) key = ndjsonUserId(r.raw);
  else key = r.decoded.ok ? Buffer.from(r.decoded.value.user_id, 'utf8') : null;
  return key === null ? 0 : partitionOfKey(key, partitions);
}

/**
 * Runs (or continues) this thread's partitions of a file replay until done or aborted.
 *
 * @throws RankdistillError as {@link TaskRun.open} and the file reader.
 */
export async function runFilePartitions(a: FilePartitionsArgs): Promise<RunSummary[]> {
  const rawFormat = (p: string): WireFormat => (formatOf(p) === 'avro' ? 'avro' : 'json');
  const runs = new Map<number, TaskRun>();
  const progress = () => {
    if (a.onProgress === undefined) return;
    let n = 0;
    for (const r of runs.values()) n += r.processed();
    a.onProgress(n);
  };
  try {
    for (const p of a.mine) {
      runs.set(
        p,
        TaskRun.open({
          partition: p,
          config: a.config,
          storePath: a.storePath(p),
          checkpoints: a.checkpoints,
          checkpointEvery: a.checkpointEvery,
          drain: a.drain,
          sources: a.paths,
          inputFormat: 'avro',
          rawFormat: { ranker: rawFormat(a.paths.ranker), impression: rawFormat(a.paths.impression) },
          start: { ranker: 0, impression: 0 },
          end: { ranker: Number.POSITIVE_INFINITY, impression: Number.POSITIVE_INFINITY },
          sink: (ck) => a.sink(p, ck),
          // NDJSON lines are pushed undecoded: the task's NDJSON column parsers read them.
          jsonColumns: true,
          onStep: progress,
          ...(a.now === undefined ? {} : { now: a.now }),
          ...(a.signal === undefined ? {} : { signal: a.signal }),
        }),
      );
    }
  } catch (e) {
    for (const r of runs.values()) await r.close().catch(() => undefined);
    throw e;
  }
  const list = [...runs.values()];
  const iters = {
    ranker: readRecordBatches(a.paths.ranker, 'RankerOutput', PULL, { decodeLines: false }),
    impression: readRecordBatches(a.paths.impression, 'Impression', PULL, { decodeLines: false }),
  };
  const ended: Record<Side, boolean> = { ranker: false, impression: false };
  const route = (side: Side, b: RecordBatch): number => {
    if ('records' in b) {
      const by = new Map<number, RawInput[]>();
      for (const r of b.records) {
        const p = partitionOfRecord(r, a.partitions);
        const run = runs.get(p);
        if (run === undefined || run.done) continue;
        // Undecoded lines are read at the merge's head: by the NDJSON column parsers, or decoded
        // in full when they refuse the line.
        const l = by.get(p);
        if (l === undefined) by.set(p, [r]);
        else l.push(r);
      }
      let n = 0;
      for (const [p, recs] of by) {
        const run = runs.get(p) as TaskRun;
        n += pushAfter(run, side, { records: recs }, run.fetch[side]);
      }
      return n;
    }
    const { buf, offsets, ranges } = b.columns;
    if (a.partitions === 1) {
      const run = runs.get(0);
      return run === undefined || run.done ? 0 : pushAfter(run, side, b, run.fetch[side]);
    }
    const count = offsets.length;
    const of = new Int32Array(count);
    const per = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      const key = avroUserId(buf, ranges[4 * i] as number, ranges[4 * i + 1] as number);
      const p = key === null ? 0 : partitionOfKey(key, a.partitions);
      of[i] = p;
      if (runs.has(p)) per.set(p, (per.get(p) ?? 0) + 1);
    }
    let n = 0;
    for (const [p, size] of per) {
      const run = runs.get(p) as TaskRun;
      if (run.done) continue;
      const o = new Float64Array(size);
      const rg = new Int32Array(4 * size);
      let j = 0;
      for (let i = 0; i < count; i++) {
        if (of[i] !== p) continue;
        o[j] = offsets[i] as number;
        rg.set(ranges.subarray(4 * i, 4 * i + 4), 4 * j);
        j++;
      }
      n += pushAfter(run, side, { columns: { buf, offsets: o, ranges: rg } }, run.fetch[side]);
    }
    return n;
  };
  const pull = async (side: Side) => {
    let read = 0;
    while (read < PULL) {
      const n = await iters[side].next();
      if (n.done) {
        ended[side] = true;
        for (const r of list) r.setEnded(side);
        return;
      }
      read += 'records' in n.value ? n.value.records.length : n.value.columns.offsets.length;
      route(side, n.value);
    }
  };
  try {
    while (!list.every((r) => r.done)) {
      if (a.signal?.aborted) {
        for (const r of list) await r.flush();
        break;
      }
      for (const r of list) await r.pump();
      progress();
      // Let the event loop turn once per round: reads of cached files resolve as microtasks only,
      // so a thread's 'stop' message (Ctrl-C, SIGTERM) would otherwise wait for the end of its input.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (list.every((r) => r.done) || a.signal?.aborted) continue;
      let pulled = false;
      for (const side of SIDES) {
        if (!ended[side] && list.some((r) => !r.done && r.wants(side))) {
          await pull(side);
          pulled = true;
        }
      }
      if (!pulled) {
        throw new RankdistillError(
          'STATE_STORE_FAILED',
          'replay made no progress with both inputs buffered: this is a bug, please report it',
        );
      }
    }
    const out: RunSummary[] = [];
    for (const r of list) out.push(await summarize(r));
    return out;
  } catch (e) {
    for (const r of list) await r.close().catch(() => undefined);
    throw e;
  } finally {
    for (const side of SIDES) await iters[side].return(undefined).catch(() => undefined);
  }
}
