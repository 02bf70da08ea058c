/**
 * The file transport's input as batches for a join task: NDJSON lines decoded (a task cannot
 * decode JSON lazily), Avro records left as bytes for the task's column parsers.
 *
 * Why: `readRecords` decodes every Avro record into objects and copies its bytes, then the task
 * threw the objects away when labelling from columns (the live service's path). Here an Avro block
 * of a file written with our schema is split by walking its bytes (src/contracts/avro-skip.ts) into
 * {@link RawColumns} over the block, and the task decodes a record when the merge reaches it, as
 * it does for a Kafka fetch. What the skipper does not accept (another writer schema, a record it
 * cannot walk and every later record of its block) goes through `readRecords`' block decoder, so
 * records, offsets and errors are the same as `readRecords` gives.
 */
import { compileSkipper, type Skipper } from '../contracts/avro-skip.ts';
import { decodeJson } from '../contracts/codec.ts';
import type { Impression, RankerOutput } from '../contracts/index.ts';
import { type ContractName, schemaJson } from '../contracts/schemas.ts';
import type { RawColumns, RawInput } from '../join/task.ts';
import { avroItems, blockRecords, type FileRecord, fileChunks, formatOf, ndjsonLines } from './files.ts';

/** Records decoded by the reader, or Avro records left as bytes (decoded by the task). */
export type RecordBatch = { records: RawInput[] } | { columns: RawColumns };

/** Input contracts of the file transport. */
export type InputContract = 'RankerOutput' | 'Impression';

const skippers = new Map<ContractName, Skipper>();

function skipperOf(name: ContractName): Skipper {
  let s = skippers.get(name);
  if (s === undefined) {
    s = compileSkipper(schemaJson(name));
    skippers.set(name, s);
  }
  return s;
}

function toRaw(r: FileRecord<RankerOutput | Impression>): RawInput {
  return { offset: r.offset, key: null, raw: r.raw, decoded: r.result as NonNullable<RawInput['decoded']> };
}

/**
 * Streams an input file (format from its extension) as batches of about `size` records or more,
 * in offset order. With `decodeLines: false`, NDJSON lines come without `decoded` (for a caller
 * that decodes only some of them, with decodeJson).
 *
 * @throws RankdistillError as `readRecords`.
 * @example
 * for await (const b of readRecordBatches('sim/ranker-outputs.avro', 'RankerOutput', 2048)) {
 *   if ('columns' in b) task.pushColumns('ranker', b.columns); else task.push('ranker', b.records);
 * }
 */
export async function* readRecordBatches(
  path: string,
  name: InputContract,
  size: number,
  opts: { decodeLines?: boolean } = {},
): AsyncGenerator<RecordBatch> {
  const chunks = fileChunks(path);
  let records: RawInput[] = [];
  if (formatOf(path) === 'ndjson') {
    const decodeLines = opts.decodeLines !== false;
    for await (const l of ndjsonLines(chunks)) {
      records.push(
        decodeLines
          ? { offset: l.offset, key: null, raw: l.raw, decoded: decodeJson(name, l.raw) as never }
          : { offset: l.offset, key: null, raw: l.raw },
      );
      if (records.length >= size) {
        yield { records };
        records = [];
      }
    }
    if (records.length > 0) yield { records };
    return;
  }
  const skip = skipperOf(name);
  for await (const x of avroItems(chunks, name, path)) {
    if (!('block' in x)) {
      records.push(toRaw(x));
      continue;
    }
    const { st, block, count } = x;
    if (st.writer !== undefined) {
      // Another writer schema: records are resolved into ours by decoding.
      for (const r of blockRecords(st, block, count)) records.push(toRaw(r));
      if (records.length >= size) {
        yield { records };
        records = [];
      }
      continue;
    }
    const offsets = new Float64Array(count);
    const ranges = new Int32Array(4 * count);
    let p = 0;
    let n = 0;
    for (; n < count; n++) {
      const end = skip(block, p, block.length);
      if (end < 0 || (n === count - 1 && end !== block.length)) break;
      offsets[n] = st.index + n;
      ranges[4 * n] = p;
      ranges[4 * n + 1] = end;
      ranges[4 * n + 2] = -1;
      p = end;
    }
    if (n > 0) {
      if (records.length > 0) {
        yield { records };
        records = [];
      }
      st.index += n;
      yield {
        columns: {
          buf: block,
          offsets: n === count ? offsets : offsets.subarray(0, n),
          ranges: n === count ? ranges : ranges.subarray(0, 4 * n),
        },
      };
    }
    if (n < count || (count === 0 && block.length > 0)) {
      for (const r of blockRecords(st, block, count - n, p)) records.push(toRaw(r));
    }
  }
  if (records.length > 0) yield { records };
}
