/**
 * Recall latency of a snapshot: exact top-100 by dot product over the item table
 * (src/snapshots/recall.ts, matrix-vector product + bounded min-heap) at 100k and 1M items, d = 32,
 * against the same-run baseline of computing every score and fully sorting the catalog. Also the
 * time to load + checksum-verify a 1M-item snapshot from disk (what a recall service pays on each
 * announcement).
 *
 *   npm run bench:recall
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPublisher } from '../src/snapshots/publisher.ts';
import { topK } from '../src/snapshots/recall.ts';
import { type Figure, quantile, writeResult } from './lib.ts';

const DIM = 32;
const K = 100;

function randomMatrix(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = ((x >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

/** Baseline: every score, then a full sort of the catalog, then the first k. */
function fullSort(matrix: Float32Array, dim: number, q: Float32Array, k: number): Int32Array {
  const n = matrix.length / dim;
  const scores = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (matrix[r * dim + j] as number) * (q[j] as number);
    scores[r] = s;
  }
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b);
  return Int32Array.from(idx.slice(0, k));
}

function time(reqs: number, fn: (q: Float32Array) => unknown): { p50: number; p99: number } {
  const lat: number[] = [];
  for (let i = 0; i < reqs; i++) {
    const q = randomMatrix(DIM, 1000 + i);
    const t0 = performance.now();
    fn(q);
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  return { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

const round = (x: number): number => Number(x.toFixed(3));
const figures: Record<string, Figure> = {};
for (const [label, n, reqs, baseReqs] of [
  ['100k', 100_000, 300, 30],
  ['1M', 1_000_000, 60, 8],
] as const) {
  const matrix = randomMatrix(n * DIM, 7);
  // warm-up (JIT) on both paths, then check they agree
  const q0 = randomMatrix(DIM, 1);
  const a = topK(matrix, DIM, q0, K).rows;
  const b = fullSort(matrix, DIM, q0, K);
  if (a.join() !== b.join()) throw new Error(`heap and full sort disagree at ${label}`);
  const heap = time(reqs, (q) => topK(matrix, DIM, q, K));
  const base = time(baseReqs, (q) => fullSort(matrix, DIM, q, K));
  for (const p of ['p50', 'p99'] as const) {
    figures[`top${K}_${label}_items_${p}`] = {
      value: round(heap[p]),
      unit: 'ms/request',
      baseline: round(base[p]),
      ratio: round(heap[p] / base[p]),
      note: `exact dot product d=${DIM} + bounded min-heap, ${reqs} requests; baseline: all scores + full sort, ${baseReqs} requests`,
    };
  }
  if (n === 1_000_000) {
    const root = mkdtempSync(join(tmpdir(), 'rd-bench-recall-'));
    try {
      const pub = openPublisher({
        dir: root,
        registry: join(root, 'registry.sqlite'),
        gateTolerance: 1,
        modelName: 'bench',
      });
      const ids = Array.from({ length: n }, (_, i) => `item-${i}`);
      let t0 = performance.now();
      await pub.maybePublish({
        files: [],
        items: { ids, dim: DIM, vectors: matrix },
        model: { kind: 'two-tower', dim: DIM, params: n * DIM },
        offsets: [],
        metrics: {},
        parentVersion: null,
      });
      figures.write_snapshot_1M_items = {
        value: round(performance.now() - t0),
        unit: 'ms',
        note: 'encode, fsync, sha256, rename',
      };
      t0 = performance.now();
      const snap = pub.loadSnapshot('latest');
      snap.table('items');
      figures.load_verify_snapshot_1M_items = {
        value: round(performance.now() - t0),
        unit: 'ms',
        note: 'read, sha256-verify, decode',
      };
      await pub.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
}
// the machine is shared: record how busy it was, so absolute numbers can be read (ratios are same-run)
figures.load_average_1min = {
  value: round(loadavg()[0] ?? 0),
  unit: 'runnable processes',
  note: 'os.loadavg() at the end of the run',
};
writeResult('recall', figures);
