/**
 * TensorFlow.js models in a snapshot, in the standard tfjs layout that `tf.loadLayersModel`
 * reads (what tfjs-node's `file://` handler writes): `model.json` (topology + a weights manifest
 * naming `weights.bin`) next to `weights.bin` (the concatenated little-endian weights).
 *
 * Any process with plain `@tensorflow/tfjs` loads it: read both files and call
 * `tf.loadLayersModel(tf.io.fromMemory({ modelTopology, weightSpecs, weightData }))`
 * (test/snapshots/interop.test.ts does exactly that in a child process with no rankdistill code).
 */
import * as tf from '@tensorflow/tfjs';
import { RankdistillError } from '../errors.ts';
import type { LoadedSnapshot, SnapshotFileInput } from './store.ts';

/**
 * Serialises a tfjs LayersModel into `<prefix>model.json` + `<prefix>weights.bin`.
 *
 * @example
 * const files = await layersModelFiles(userTower, 'model/user_tower/');
 * await pub.maybePublish({ files, models: { user_tower: 'model/user_tower/model.json' }, ... });
 */
export async function layersModelFiles(
  model: tf.LayersModel,
  prefix = 'model/',
): Promise<SnapshotFileInput[]> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  if (!captured) throw new RankdistillError('IO_FAILED', 'tfjs model save produced no artifacts');
  const a = captured;
  const weights =
    a.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(a.weightData);
  const modelJson: Record<string, unknown> = {
    modelTopology: a.modelTopology,
    format: a.format ?? 'layers-model',
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy ?? null,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs ?? [] }],
  };
  if (a.trainingConfig !== undefined) modelJson.trainingConfig = a.trainingConfig;
  if (a.userDefinedMetadata !== undefined) modelJson.userDefinedMetadata = a.userDefinedMetadata;
  return [
    { name: `${prefix}model.json`, data: Buffer.from(JSON.stringify(modelJson)) },
    { name: `${prefix}weights.bin`, data: new Uint8Array(weights) },
  ];
}

/**
 * Loads the tfjs model `name` of a loaded (checksum-verified) snapshot.
 *
 * @throws RankdistillError SNAPSHOT_NOT_FOUND when the snapshot exports no such model.
 * @example
 * const tower = await loadSnapshotModel(snap, 'user_tower');
 */
export async function loadSnapshotModel(snap: LoadedSnapshot, name: string): Promise<tf.LayersModel> {
  const path = snap.manifest.models[name];
  if (path === undefined)
    throw new RankdistillError(
      'SNAPSHOT_NOT_FOUND',
      `snapshot v${snap.version}: expected a tfjs model ${name}, found ${JSON.stringify(Object.keys(snap.manifest.models))}`,
    );
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(snap.file(path).toString('utf8')) as tf.io.ModelJSON;
  } catch (e) {
    throw notAModel(snap, path, `unparsable JSON (${(e as Error).message})`);
  }
  if (
    typeof json !== 'object' ||
    json === null ||
    !Array.isArray(json.weightsManifest) ||
    !json.modelTopology
  )
    throw notAModel(snap, path, 'no modelTopology / weightsManifest');
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) parts.push(snap.file(`${dir}${p}`));
  }
  const weightData = new Uint8Array(Buffer.concat(parts)).buffer;
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }),
  );
}

function notAModel(snap: LoadedSnapshot, path: string, found: string): RankdistillError {
  return new RankdistillError(
    'SNAPSHOT_CORRUPT',
    `snapshot v${snap.version}: file ${path}: expected a tfjs model.json, found ${found}`,
    { details: { file: path } },
  );
}
