// Shared plumbing of the replay tests: a small simulated run in files, its expected outcome counts
// (from truth.json), and file outputs read back as (id → bytes) per kind.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, configSchema } from '../../src/config/schema.ts';
import { type FileFormat, readRecords } from '../../src/io/files.ts';
import { FileSimSink } from '../../src/io/sim-sink.ts';
import type { SimTruth } from '../../src/sim/generate.ts';
import { simulate } from '../../src/sim/simulate.ts';

export function testConfig(over: Record<string, unknown> = {}): Config {
  return configSchema.parse({ metrics: { enabled: false }, ...over });
}

/** Simulates `requests` requests into `<dir>` (about 2 h of event time at rate 0.4/s). */
export async function simFiles(
  dir: string,
  requests: number,
  format: FileFormat,
  seed = 5,
): Promise<SimTruth> {
  await simulate(
    { seed, requests, candidates: 20, items: 2_000, users: 300, rate: 0.4 },
    new FileSimSink(dir, format),
  );
  return JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as SimTruth;
}

/** What a labeler must decide for a simulated run, from truth.json (windows all closed). */
export function truthOutcomes(t: SimTruth): Record<string, number> {
  const c = { joined: 0, unmatched: 0, orphan: 0, late: 0, duplicate: 0, malformed: 0 };
  for (const r of Object.values(t.requests)) {
    if (r.expect.labels === 'matched') c.joined++;
    if (r.expect.labels === 'unmatched') c.unmatched++;
    c.duplicate += r.expect.duplicates;
    for (const d of r.expect.deadLetters) {
      if (d === 'LATE') c.late++;
      else if (d === 'ORPHAN') c.orphan++;
      else if (d === 'MALFORMED' || d === 'INVALID') c.malformed++;
    }
  }
  return c;
}

/** Label kinds of the file outputs. */
export const LABEL_FILES = ['labels.pointwise', 'labels.pairwise', 'labels.listwise'] as const;
const CONTRACT = {
  'labels.pointwise': 'PointwiseLabels',
  'labels.pairwise': 'PairwiseLabels',
  'labels.listwise': 'ListwiseLabels',
} as const;

/** The records of a label file as id → raw bytes (Avro record bytes or NDJSON line), duplicates kept. */
export async function labelFile(
  dir: string,
  kind: (typeof LABEL_FILES)[number],
  ext: string,
): Promise<Array<[string, Buffer]>> {
  const out: Array<[string, Buffer]> = [];
  for await (const r of readRecords(join(dir, `${kind}.${ext}`), CONTRACT[kind])) {
    if (!r.result.ok) throw r.result.error;
    out.push([r.result.value.id, Buffer.from(r.raw)]);
  }
  return out;
}

/** Dead letters of an output directory without their wall-clock `time`, in file order. */
export async function deadLetters(dir: string, ext: string): Promise<string[]> {
  const out: string[] = [];
  for await (const r of readRecords(join(dir, `dead-letter.${ext}`), 'DeadLetter')) {
    if (!r.result.ok) throw r.result.error;
    const { time: _t, raw, key, ...rest } = r.result.value;
    out.push(JSON.stringify({ ...rest, raw: raw.toString('base64'), key: key?.toString('base64') ?? null }));
  }
  return out;
}
