/**
 * Label sources of the trainer: label files (NDJSON or Avro, read by src/io/files.ts) turned into
 * {@link LabelBatch}es, resuming at recorded positions. Kafka comes later through the same seam.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ContractName } from '../contracts/schemas.ts';
import { RankdistillError } from '../errors.ts';
import { readRecords } from '../io/files.ts';
import type { SourcePosition } from './checkpoint.ts';
import type { LabelKind, LabelRecord } from './examples.ts';
import type { LabelBatch } from './trainer.ts';

export interface LabelFile {
  path: string;
  kind: LabelKind;
}

const CONTRACT: Record<LabelKind, ContractName> = {
  pointwise: 'PointwiseLabels',
  pairwise: 'PairwiseLabels',
  listwise: 'ListwiseLabels',
};

/** The label kind named in a file name (`labels.pointwise.ndjson`), if any. */
export function kindOfFile(path: string): LabelKind | undefined {
  const m = /(pointwise|pairwise|listwise)/i.exec(basename(path));
  return m === null ? undefined : ((m[1] as string).toLowerCase() as LabelKind);
}

/**
 * Label files from paths (files, or directories whose .ndjson/.jsonl/.avro files are taken), with
 * their kind from the file name; absolute paths, sorted, so positions are stable across runs.
 *
 * @throws RankdistillError USAGE when a path holds no label file or a name names no kind.
 * @example
 * labelFiles(['out/labels']); // [{ path: '/abs/out/labels/labels.listwise.ndjson', kind: 'listwise' }, ...]
 */
export function labelFiles(paths: readonly string[]): LabelFile[] {
  const out: LabelFile[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    let files: string[];
    try {
      files = statSync(abs).isDirectory()
        ? readdirSync(abs)
            .filter((f) => /\.(ndjson|jsonl|avro)$/i.test(f) && kindOfFile(f) !== undefined)
            .map((f) => join(abs, f))
        : [abs];
    } catch (e) {
      throw new RankdistillError('USAGE', `--labels ${p}: expected a file or directory, found none`, {
        cause: e,
      });
    }
    for (const f of files) {
      const kind = kindOfFile(f);
      if (kind === undefined)
        throw new RankdistillError(
          'USAGE',
          `${f}: expected a label file whose name contains pointwise, pairwise or listwise`,
        );
      out.push({ path: f, kind });
    }
  }
  if (out.length === 0)
    throw new RankdistillError('USAGE', `--labels ${paths.join(' ')}: expected label files, found none`);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface FileBatchOptions {
  /** Passes over the files. */
  epochs: number;
  /** Epoch to start in (the resumed trainer's). */
  startEpoch: number;
  /** Next offset per file in `startEpoch` (absent: 0). */
  positions: readonly SourcePosition[];
  /** Records per batch per file (files are interleaved round-robin) [256]. */
  chunk?: number;
  /** Called for every undecodable record (consumed, not trained). */
  onBadRecord?: (path: string, offset: number, reason: string) => void;
}

/**
 * Interleaves the files round-robin, `chunk` records at a time, epoch after epoch, skipping what
 * the positions say was consumed. Each batch covers offsets [offset, next) of one file.
 *
 * @example
 * for await (const b of fileBatches(labelFiles(['labels/']), { epochs: 1, startEpoch: 0, positions: [] })) trainer.consume(b);
 */
export async function* fileBatches(
  files: readonly LabelFile[],
  o: FileBatchOptions,
): AsyncGenerator<LabelBatch> {
  const chunk = o.chunk ?? 256;
  for (let epoch = o.startEpoch; epoch < o.epochs; epoch++) {
    const start = new Map<string, number>();
    if (epoch === o.startEpoch)
      for (const p of o.positions) if (p.epoch === epoch) start.set(p.source, p.next);
    const open = files.map((f) => ({
      f,
      it: readRecords(f.path, CONTRACT[f.kind])[Symbol.asyncIterator](),
      pos: start.get(f.path) ?? 0,
      done: false,
    }));
    while (open.some((s) => !s.done)) {
      for (const s of open) {
        if (s.done) continue;
        const labels: LabelRecord[] = [];
        const from = s.pos;
        let n = 0;
        while (n < chunk) {
          const r = await s.it.next();
          if (r.done) {
            s.done = true;
            break;
          }
          const rec = r.value;
          if (rec.offset < s.pos) continue; // consumed before the restart
          n++;
          s.pos = rec.offset + 1;
          if (rec.result.ok) labels.push({ kind: s.f.kind, value: rec.result.value } as LabelRecord);
          else o.onBadRecord?.(s.f.path, rec.offset, rec.result.error.message);
        }
        if (s.pos > from) yield { source: s.f.path, epoch, offset: from, next: s.pos, labels };
      }
    }
  }
}
