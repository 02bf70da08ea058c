// Shared fixtures of the snapshot tests: a deterministic, model-free PublishInput.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PublishInput } from '../../src/snapshots/publisher.ts';
import type { VectorTable } from '../../src/snapshots/table.ts';

export function tempRoot(prefix = 'rd-snap-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A table of `rows` ids `<prefix><r>` with values seeded by `seed`. */
export function table(rows: number, dim: number, prefix = 'item-', seed = 1): VectorTable {
  const vectors = new Float32Array(rows * dim);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < vectors.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    vectors[i] = ((x >>> 0) / 4294967296) * 2 - 1;
  }
  return { ids: Array.from({ length: rows }, (_, r) => `${prefix}${r}`), dim, vectors };
}

export function publishInput(over: Partial<PublishInput> = {}, seed = 1): PublishInput {
  return {
    files: [
      { name: 'model/user_tower/model.json', data: Buffer.from('{"fake":true}') },
      { name: 'model/user_tower/weights.bin', data: new Uint8Array(64).fill(seed & 0xff) },
      { name: 'checkpoint/optimizer.bin', data: new Uint8Array(128).fill(7) },
    ],
    items: table(50, 8, 'item-', seed),
    users: table(10, 8, 'user-', seed + 100),
    models: { user_tower: 'model/user_tower/model.json' },
    model: { kind: 'two-tower', dim: 8, params: 1234 },
    offsets: [
      { topic: 'labels.pointwise', partition: 0, offset: 100 * seed },
      { topic: 'labels.pointwise', partition: 1, offset: 50 * seed },
    ],
    metrics: { recall_at_100_of_top10: 0.5, ndcg_at_10: 0.6, auc: 0.7 },
    parentVersion: null,
    ...over,
  };
}
