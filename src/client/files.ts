/**
 * `readLabelFiles`: label files (what `rankdistill label --in … --out …` writes, or any NDJSON /
 * Avro container file of a label contract) as an async iterator of typed labels, for trainers that
 * learn from a backfill instead of the live topics.
 *
 * Streaming is src/io/files.ts `readRecords` (a bounded read buffer, never the whole file in
 * memory); this module only picks the file, the contract of the kind and the policy for bad
 * records.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, RankdistillError } from '../errors.ts';
import { readRecords } from '../io/files.ts';
import {
  assertLabelKind,
  LABEL_CONTRACT,
  LabelDecodeError,
  type LabelKind,
  type LabelsByKind,
} from './types.ts';

/** Options of {@link readLabelFiles}. */
export interface ReadLabelFilesOptions {
  /**
   * A bad line or record: `throw` (default) rejects with a {@link LabelDecodeError} naming the file
   * and the offset (0-based line for NDJSON, record index for Avro); `skip-and-report` calls
   * `report` and goes on with the next record.
   */
  onInvalid?: 'throw' | 'skip-and-report';
  /** Called for every skipped record under `onInvalid: 'skip-and-report'`. */
  report?: (error: LabelDecodeError) => void;
}

const EXTENSIONS = ['ndjson', 'jsonl', 'avro'] as const;

/**
 * The label file of `kind`: `path` itself when it is a file, or `labels.<kind>.{ndjson,jsonl,avro}`
 * inside it when it is a directory (the labeler's file output).
 *
 * @throws RankdistillError IO_FAILED when `path` does not exist, USAGE when a directory holds none
 *   or several label files of the kind.
 * @example
 * labelFileOf('out', 'pairwise'); // 'out/labels.pairwise.ndjson'
 */
export function labelFileOf(path: string, kind: LabelKind): string {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (cause) {
    throw new RankdistillError('IO_FAILED', `cannot read label path ${path}: ${errorMessage(cause)}`, {
      cause,
      details: { path },
    });
  }
  if (!isDir) return path;
  const wanted = new Set(EXTENSIONS.map((ext) => `labels.${kind}.${ext}`));
  const found = readdirSync(path)
    .filter((f) => wanted.has(f))
    .sort();
  if (found.length !== 1) {
    throw new RankdistillError(
      'USAGE',
      `expected exactly one of ${[...wanted].join(', ')} in ${path}, found ${found.length === 0 ? 'none' : found.join(', ')}`,
      { details: { path, kind, found } },
    );
  }
  return join(path, found[0] as string);
}

/**
 * Streams the labels of one kind from a label file (or a labeler output directory), in file order.
 *
 * @throws LabelDecodeError on a bad record (unless `onInvalid: 'skip-and-report'`);
 *   RankdistillError IO_FAILED / FILE_FORMAT_INVALID / USAGE when the file cannot be read.
 * @example
 * for await (const l of readLabelFiles('out', 'listwise')) {
 *   trainListNet(l.items.map((i) => i.gain));
 * }
 */
export async function* readLabelFiles<K extends LabelKind>(
  path: string,
  kind: K,
  options: ReadLabelFilesOptions = {},
): AsyncGenerator<LabelsByKind[K], void, undefined> {
  assertLabelKind(kind);
  const file = labelFileOf(path, kind);
  for await (const r of readRecords(file, LABEL_CONTRACT[kind])) {
    if (r.result.ok) {
      yield r.result.value as LabelsByKind[K];
      continue;
    }
    const error = new LabelDecodeError(
      kind,
      { source: file, partition: -1, offset: String(r.offset) },
      r.result.error,
    );
    if ((options.onInvalid ?? 'throw') === 'throw') throw error;
    options.report?.(error);
  }
}
