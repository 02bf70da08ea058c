/**
 * Trainer checkpoints: model + optimizer state + frequency estimate + consumed offsets, written
 * atomically so a trainer killed at any moment resumes from the newest complete one and neither
 * skips nor repeats a label range.
 *
 * Layout of `<out>/ckpt-<seq, 8 digits>/`:
 *   state.json   — format, seq, parent, model spec, positions (next offset per source and epoch),
 *                  ranges consumed since the parent checkpoint, totals, metrics, block index
 *   params.bin   — every Float32/Uint32/Float64 block (tables, dense weights, optimizer slots,
 *                  the frequency arrays) back to back, little-endian, located by the block index
 *   users.json / items.json — row → id of the two tables
 *   eval.json    — (optional) the held-out evaluation requests, so a resumed trainer evaluates on
 *                  the same set (src/train/examples.ts HeldOut). Checkpoints written before it
 *                  existed have none: the trainer then starts a new set (and its identity in the
 *                  metrics tells the snapshot gate the set changed). The format name stays /1:
 *                  the file and `evalSet` are additions that older readers ignore.
 *
 * Written to `<out>/.tmp-ckpt-<seq>-<pid>`, each file fsynced, renamed into place, the parent
 * directory fsynced. A directory without state.json or still named .tmp-* is never read. The item
 * table + tower weights are what a snapshot exports (src/snapshots: item vectors for the ANN index
 * and tfjs LayersModels of the towers; see {@link StudentModel.itemVectors}).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, RankdistillError } from '../errors.ts';
import { fsyncDir, writeFileSynced } from '../io/durable.ts';
import type { FrequencyEstimator } from './frequency.ts';
import type { ModelSpec, StudentModel } from './model.ts';

export const CHECKPOINT_FORMAT = 'rankdistill-train-checkpoint/1';

/** A half-open range of record offsets [from, to) of one source consumed in one epoch. */
export interface ConsumedRange {
  source: string;
  epoch: number;
  from: number;
  to: number;
}

/** Next offset to consume of a source in an epoch. */
export interface SourcePosition {
  source: string;
  epoch: number;
  next: number;
}

interface BlockRef {
  name: string;
  type: 'f32' | 'u32' | 'f64';
  /** Byte offset in params.bin. */
  offset: number;
  length: number;
}

export interface CheckpointState {
  format: string;
  seq: number;
  parent: number | null;
  createdAt: number;
  spec: ModelSpec;
  optimizer: string;
  epoch: number;
  positions: SourcePosition[];
  /** Ranges consumed since the parent checkpoint (the test of exactly-once walks this chain). */
  ranges: ConsumedRange[];
  totals: { examples: number; steps: number; records: number };
  metrics: Record<string, number>;
  /** Identity of the evaluation set stored in eval.json (absent in older checkpoints). */
  evalSet?: { requests: number; hash: number };
  /**
   * The exposure prior of the served score (absent in older checkpoints: beta 0): its weight, the
   * validation requests it was chosen on and each tried beta's validation recall.
   */
  prior?: { beta: number; validationRequests?: number; validationRecall?: Record<string, number> };
  freq: { buckets: number; alpha: number; step: number; ringPos: number; ring: string[] };
  blocks: BlockRef[];
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
}

const NAME = /^ckpt-(\d{8})$/;

/** Sequence numbers of the complete checkpoints under `out`, ascending. */
export function listCheckpoints(out: string): number[] {
  let names: string[];
  try {
    names = readdirSync(out);
  } catch {
    return [];
  }
  const seqs: number[] = [];
  for (const n of names) {
    const m = NAME.exec(n);
    if (m === null) continue;
    try {
      readFileSync(join(out, n, 'state.json'));
      seqs.push(Number(m[1]));
    } catch {
      // incomplete: ignored
    }
  }
  return seqs.sort((a, b) => a - b);
}

export function checkpointDir(out: string, seq: number): string {
  return join(out, `ckpt-${String(seq).padStart(8, '0')}`);
}

const writeSynced = writeFileSynced;

type Block = { name: string; data: Float32Array | Uint32Array | Float64Array };

function modelBlocks(model: StudentModel, freq: FrequencyEstimator): Block[] {
  const blocks: Block[] = [];
  for (const [side, t] of [
    ['users', model.users],
    ['items', model.items],
  ] as const) {
    const s = t.state();
    blocks.push(
      { name: `${side}/values`, data: s.values },
      { name: `${side}/slot1`, data: s.slot1 },
      { name: `${side}/slot2`, data: s.slot2 },
      { name: `${side}/steps`, data: s.steps },
    );
  }
  blocks.push({
    name: 'items/features',
    data: model.itemFeatures.subarray(0, model.items.size * model.opts.itemFeatureBuckets),
  });
  for (const p of model.dense) {
    const s = p.state();
    blocks.push(
      { name: `dense/${p.name}/values`, data: s.values },
      { name: `dense/${p.name}/slot1`, data: s.slot1 },
      { name: `dense/${p.name}/slot2`, data: s.slot2 },
      { name: `dense/${p.name}/steps`, data: s.steps },
    );
  }
  const f = freq.state();
  blocks.push({ name: 'freq/lastSeen', data: f.lastSeen }, { name: 'freq/gap', data: f.gap });
  return blocks;
}

/**
 * Writes checkpoint `seq` atomically and returns its directory.
 *
 * @throws RankdistillError IO_FAILED when the directory cannot be written.
 * @example
 * const dir = writeCheckpoint(out, { ...stateWithoutBlocks, seq: 3 }, model, freq);
 */
export function writeCheckpoint(
  out: string,
  state: Omit<CheckpointState, 'blocks' | 'format' | 'freq' | 'spec'>,
  model: StudentModel,
  freq: FrequencyEstimator,
  files: readonly { name: string; data: string | Uint8Array }[] = [],
): string {
  const final = checkpointDir(out, state.seq);
  const tmp = join(out, `.tmp-ckpt-${String(state.seq).padStart(8, '0')}-${process.pid}`);
  try {
    mkdirSync(out, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const blocks = modelBlocks(model, freq);
    const refs: BlockRef[] = [];
    let bytes = 0;
    for (const b of blocks) {
      const type = b.data instanceof Float32Array ? 'f32' : b.data instanceof Uint32Array ? 'u32' : 'f64';
      refs.push({ name: b.name, type, offset: bytes, length: b.data.length });
      bytes += b.data.byteLength;
      bytes = Math.ceil(bytes / 8) * 8; // keep every block aligned for zero-copy reads
    }
    const bin = new Uint8Array(bytes);
    blocks.forEach((b, i) => {
      bin.set(new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength), refs[i]?.offset);
    });
    writeSynced(join(tmp, 'params.bin'), bin);
    writeSynced(join(tmp, 'users.json'), JSON.stringify(model.users.ids));
    writeSynced(join(tmp, 'items.json'), JSON.stringify(model.items.ids));
    for (const f of files) {
      if (!/^[a-z][a-z0-9_.-]*$/.test(f.name) || RESERVED.has(f.name))
        throw new Error(
          `extra file name: expected [a-z][a-z0-9_.-]* other than ${[...RESERVED].join(', ')}, found ${JSON.stringify(f.name)}`,
        );
      writeSynced(join(tmp, f.name), f.data);
    }
    const f = freq.state();
    const full: CheckpointState = {
      format: CHECKPOINT_FORMAT,
      ...state,
      spec: model.spec(),
      freq: { buckets: freq.buckets, alpha: freq.alpha, step: f.step, ringPos: f.ringPos, ring: f.ring },
      blocks: refs,
    };
    writeSynced(join(tmp, 'state.json'), `${JSON.stringify(full, null, 1)}\n`);
    fsyncDir(tmp);
    renameSync(tmp, final);
    fsyncDir(out);
    return final;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new RankdistillError('IO_FAILED', `writing checkpoint ${final}: ${errorMessage(e)}`, { cause: e });
  }
}

const RESERVED = new Set(['state.json', 'params.bin', 'users.json', 'items.json']);

/**
 * An optional file of a checkpoint (e.g. `eval.json`), or undefined when it has none.
 *
 * @example
 * const text = readCheckpointFile(latestCheckpoint(out)!, 'eval.json');
 */
export function readCheckpointFile(ck: LoadedCheckpoint, name: string): Buffer | undefined {
  try {
    return readFileSync(join(ck.dir, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RankdistillError('SNAPSHOT_CORRUPT', `checkpoint ${ck.dir}: ${name}: ${errorMessage(e)}`, {
      cause: e,
    });
  }
}

/** Reads the state of checkpoint `seq`. */
export function readCheckpointState(out: string, seq: number): CheckpointState {
  const dir = checkpointDir(out, seq);
  try {
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as CheckpointState;
    if (s.format !== CHECKPOINT_FORMAT)
      throw new Error(`expected format ${CHECKPOINT_FORMAT}, found ${String(s.format)}`);
    return s;
  } catch (e) {
    throw new RankdistillError('SNAPSHOT_CORRUPT', `checkpoint ${dir}: ${errorMessage(e)}`, { cause: e });
  }
}

/** The newest complete checkpoint under `out`, if any. */
export function latestCheckpoint(out: string): LoadedCheckpoint | undefined {
  const seqs = listCheckpoints(out);
  const seq = seqs[seqs.length - 1];
  if (seq === undefined) return undefined;
  return { dir: checkpointDir(out, seq), state: readCheckpointState(out, seq) };
}

/**
 * Restores model and frequency estimate from a checkpoint (the model must have been built with
 * the checkpoint's spec).
 *
 * @throws RankdistillError SNAPSHOT_CORRUPT when a block is missing or has the wrong size.
 * @example
 * const ck = latestCheckpoint(out); if (ck) restoreCheckpoint(ck, model, freq);
 */
export function restoreCheckpoint(ck: LoadedCheckpoint, model: StudentModel, freq: FrequencyEstimator): void {
  const bin = readFileSync(join(ck.dir, 'params.bin'));
  const buf = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const byName = new Map(ck.state.blocks.map((b) => [b.name, b]));
  const get = <T extends 'f32' | 'u32' | 'f64'>(
    name: string,
    type: T,
  ): T extends 'f32' ? Float32Array : T extends 'u32' ? Uint32Array : Float64Array => {
    const b = byName.get(name);
    if (b === undefined || b.type !== type)
      throw new RankdistillError('SNAPSHOT_CORRUPT', `checkpoint ${ck.dir}: block ${name} (${type}) missing`);
    const C = type === 'f32' ? Float32Array : type === 'u32' ? Uint32Array : Float64Array;
    return new C(buf, b.offset, b.length) as never;
  };
  const ids = (f: string) => JSON.parse(readFileSync(join(ck.dir, f), 'utf8')) as string[];
  for (const [side, t, file] of [
    ['users', model.users, 'users.json'],
    ['items', model.items, 'items.json'],
  ] as const) {
    t.restore(ids(file), {
      values: get(`${side}/values`, 'f32'),
      slot1: get(`${side}/slot1`, 'f32'),
      slot2: get(`${side}/slot2`, 'f32'),
      steps: get(`${side}/steps`, 'u32'),
    });
  }
  const feats = get('items/features', 'f32');
  model.itemFeatures = new Float32Array(Math.max(feats.length, 1024 * model.opts.itemFeatureBuckets));
  model.itemFeatures.set(feats);
  for (const p of model.dense) {
    p.restore({
      values: Float32Array.from(get(`dense/${p.name}/values`, 'f32')),
      slot1: Float32Array.from(get(`dense/${p.name}/slot1`, 'f32')),
      slot2: Float32Array.from(get(`dense/${p.name}/slot2`, 'f32')),
      steps: get(`dense/${p.name}/steps`, 'u32'),
    });
  }
  const f = ck.state.freq;
  freq.restore({
    step: f.step,
    ringPos: f.ringPos,
    ring: f.ring,
    lastSeen: Float64Array.from(get('freq/lastSeen', 'f64')),
    gap: Float64Array.from(get('freq/gap', 'f64')),
  });
  // the served score of this checkpoint: its prior over the restored frequency estimate
  model.prior = { beta: ck.state.prior?.beta ?? 0, logQ: (id) => freq.logQ(id) };
}

/** Deletes all but the newest `keep` checkpoints (keep 0: delete none). */
export function pruneCheckpoints(out: string, keep: number): void {
  if (keep <= 0) return;
  const seqs = listCheckpoints(out);
  for (const s of seqs.slice(0, Math.max(0, seqs.length - keep)))
    rmSync(checkpointDir(out, s), { recursive: true, force: true });
}
