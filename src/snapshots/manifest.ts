/**
 * The snapshot manifest (`manifest.json`, written last into the snapshot directory): what the
 * snapshot is (version, parent, model kind and size), what it consumed (offsets to resume from),
 * how it scored (held-out metrics) and the sha256 and size of every other file.
 *
 * The manifest cannot hold its own checksum; the registry and the announcement do (they list
 * `manifest.json` with its sha256 next to the other files).
 *
 * Pure: no fs.
 */

import { RankdistillError } from '../errors.ts';
import type { GateSummary } from './gate.ts';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'rankdistill-snapshot/1';

/** One file of a snapshot with its checksum (the SnapshotFile contract, camel-cased). */
export interface FileEntry {
  name: string;
  sha256: string;
  bytes: number;
}

/** Next offset to consume on one input partition. */
export interface PartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}

/** Kind and size of the student. */
export interface ModelDescription {
  /** `two-tower` or `fm`. */
  kind: string;
  /** Embedding dimension of the exported tables (the dot-product space). */
  dim: number;
  /** Number of trained parameters. */
  params: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  createdAt: number;
  parentVersion: number | null;
  model: ModelDescription & { numItems: number; numUsers: number };
  /** Offsets to resume from: the next offset to consume per input partition. */
  offsets: PartitionOffset[];
  /** Held-out metrics (higher is better unless the name ends in `loss`). */
  metrics: Record<string, number>;
  /** Header file of each embedding table, by table name (`items`, optionally `users`). */
  tables: Record<string, string>;
  /** model.json of each exported TensorFlow.js model, by model name (e.g. `user_tower`). */
  models: Record<string, string>;
  /** Every file of the snapshot except the manifest itself. */
  files: FileEntry[];
  /** Free-form facts from the trainer (backend, examples seen, config digest, ...). */
  extra: Record<string, unknown>;
  /** The gate's decision, effect size and interval (src/snapshots/gate.ts); absent in older snapshots. */
  gate?: GateSummary;
  /**
   * Live quality (progressive validation, src/train/gauge.ts) of the snapshot that was serving when
   * this one was cut: `version` is that snapshot's; absent when nothing was serving.
   */
  live?: Record<string, number>;
}

function corrupt(message: string): RankdistillError {
  return new RankdistillError('SNAPSHOT_CORRUPT', `snapshot file ${MANIFEST_FILE}: ${message}`, {
    details: { file: MANIFEST_FILE },
  });
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and checks a manifest.
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT naming manifest.json and the bad field.
 * @example
 * const m = parseManifest(readFileSync(join(dir, 'manifest.json')));
 */
export function parseManifest(bytes: Uint8Array): Manifest {
  let m: unknown;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw corrupt(`expected JSON, found unparsable text (${(e as Error).message})`);
  }
  if (!isObj(m)) throw corrupt('expected a JSON object');
  if (m.format !== MANIFEST_FORMAT)
    throw corrupt(`expected format ${MANIFEST_FORMAT}, found ${JSON.stringify(m.format)}`);
  if (!Number.isInteger(m.version) || (m.version as number) < 1)
    throw corrupt(`expected a positive integer version, found ${JSON.stringify(m.version)}`);
  if (!Array.isArray(m.files)) throw corrupt('expected a files array');
  for (const f of m.files) {
    if (
      !isObj(f) ||
      typeof f.name !== 'string' ||
      typeof f.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(f.sha256) ||
      !Number.isInteger(f.bytes)
    )
      throw corrupt(`expected files of {name, sha256 (64 hex), bytes}, found ${JSON.stringify(f)}`);
  }
  if (!isObj(m.model) || typeof m.model.kind !== 'string' || !Number.isInteger(m.model.dim))
    throw corrupt(`expected model {kind, dim, ...}, found ${JSON.stringify(m.model)}`);
  if (!Array.isArray(m.offsets)) throw corrupt('expected an offsets array');
  if (!isObj(m.metrics) || !isObj(m.tables) || !isObj(m.models))
    throw corrupt('expected metrics, tables and models objects');
  return m as unknown as Manifest;
}

/**
 * Checks a snapshot-relative file name: forward slashes, no `..`, no absolute path, not the
 * manifest, so a file can never land outside its snapshot directory.
 *
 * @throws RankdistillError TRAIN_INPUT_INVALID.
 * @example
 * checkFileName('model/user_tower/model.json'); // ok
 */
export function checkFileName(name: string): void {
  const parts = name.split('/');
  if (
    name.length === 0 ||
    name.startsWith('/') ||
    name.includes('\\') ||
    parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith('.tmp-')) ||
    name === MANIFEST_FILE
  )
    throw new RankdistillError(
      'TRAIN_INPUT_INVALID',
      `snapshot file name: expected a relative path without '..', empty parts or '\\' (and not ${MANIFEST_FILE}), found ${JSON.stringify(name)}`,
    );
}
