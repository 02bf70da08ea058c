/**
 * `npm run bench:train`: training throughput of the student.
 *
 * - examples/s per backend (wasm, cpu; tensorflow when @tensorflow/tfjs-node is installed) for the
 *   two-tower d=32 (one hidden layer of 64 per tower), batch 1024, pointwise labels (20 candidates
 *   per request, top 5 positive) plus in-batch negatives with logQ correction (the default
 *   config); goal ≥ 50,000 examples/s on one core. Also the default config's hashed features
 *   (16 + 16 buckets) as a second figure.
 * - the same step at 10,000 vs 1,000,000 catalog items (the item table pre-grown to that size,
 *   candidates drawn from the whole catalog): goal ratio ≥ 0.8, i.e. the step cost does not depend
 *   on the catalog size (sparse row updates, no O(vocabulary) kernel).
 *
 * Throughput is measured in wall time and in process CPU time (the machine is shared; CPU time
 * is the fairer "one core" figure when other work competes for it): the wasm figures are given
 * both ways, `examples_per_s_*` (wall) and `examples_per_cpu_s_*` (per CPU-second). Never asserted.
 */
import * as tf from '@tensorflow/tfjs';
import { type BackendName, initBackend } from '../src/train/backend.ts';
import { toUnits, type Unit } from '../src/train/examples.ts';
import { FrequencyEstimator } from '../src/train/frequency.ts';
import { mulberry32 } from '../src/train/hash.ts';
import { StudentModel } from '../src/train/model.ts';
import { buildPlan, type LossOptions, trainStep } from '../src/train/step.ts';
import { SyntheticTeacher } from '../src/train/synthetic.ts';
import { type Figure, writeResult } from './lib.ts';

const BATCH = 1024;
const loss: LossOptions = {
  weights: { pointwise: 1, pairwise: 1, listwise: 1, negatives: 1 },
  listwiseLoss: 'listnet',
  groundTruthLambda: 0,
  inBatchNegatives: true,
  sampledNegatives: 0,
  maxAnchors: BATCH,
};

function units(items: number, steps: number, features: number, seed: number): Unit[][] {
  const t = new SyntheticTeacher({ users: 10_000, items, candidates: 20, k: 5, seed });
  const uo = { contextBuckets: features, itemFeatureBuckets: features, maxListLength: 50 };
  const all: Unit[] = [];
  while (all.length < steps * BATCH) for (const r of t.next(['pointwise'])) all.push(...toUnits(r, uo));
  const out: Unit[][] = [];
  for (let s = 0; s < steps; s++) out.push(all.slice(s * BATCH, (s + 1) * BATCH));
  return out;
}

interface Speed {
  wall: number;
  cpu: number;
  msPerStep: number;
}

/** A model with its pre-generated batches; `step(i)` trains batch i and times it. */
function runner(opts: { items: number; features: number; steps: number; pregrow: boolean }) {
  const model = new StudentModel({
    kind: 'two-tower',
    dim: 32,
    hidden: [64],
    contextBuckets: opts.features,
    itemFeatureBuckets: opts.features,
    optimizer: { kind: 'adam', learningRate: 0.01 },
  });
  if (opts.pregrow) for (let i = 0; i < opts.items; i++) model.itemRow(`i${i}`);
  const freq = new FrequencyEstimator(1 << 20);
  const rand = mulberry32(3);
  const batches = units(opts.items, opts.steps, opts.features, 5);
  let wallMs = 0;
  let cpuUs = 0;
  let examples = 0;
  return {
    step(i: number, timed: boolean): void {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const b = batches[i] as Unit[];
      trainStep(model, buildPlan(model, b, freq, loss, rand), loss);
      if (!timed) return;
      wallMs += performance.now() - t0;
      const c = process.cpuUsage(c0);
      cpuUs += c.user + c.system;
      examples += b.length;
    },
    speed(): Speed {
      return {
        wall: Math.round(examples / (wallMs / 1000)),
        cpu: Math.round(examples / (cpuUs / 1e6)),
        msPerStep: (wallMs * BATCH) / examples,
      };
    },
  };
}

/** Trains `warm` + `steps` batches; returns the speed of the measured ones; checks for leaks. */
function measure(opts: {
  items: number;
  features: number;
  warm: number;
  steps: number;
  pregrow: boolean;
}): Speed {
  const r = runner({ ...opts, steps: opts.warm + opts.steps });
  for (let s = 0; s < opts.warm; s++) r.step(s, false);
  const tensors = tf.memory().numTensors;
  for (let s = opts.warm; s < opts.warm + opts.steps; s++) r.step(s, true);
  if (tf.memory().numTensors !== tensors) throw new Error('tensor leak in the benchmark loop');
  return r.speed();
}

const figures: Record<string, Figure> = {};
// warm the JIT on the shared JS code (plan building, sparse updates) before anything is timed
await initBackend('wasm');
measure({ items: 10_000, features: 0, warm: 20, steps: 1, pregrow: false });

const speeds: Partial<Record<BackendName, Speed>> = {};
let tensorflowNote = '';
for (const backend of ['tensorflow', 'wasm', 'cpu'] as const) {
  try {
    await initBackend(backend);
  } catch (e) {
    if (backend === 'tensorflow') {
      tensorflowNote = `tensorflow backend unavailable: ${(e as Error).message.slice(0, 160)}`;
      console.log(tensorflowNote);
      continue;
    }
    throw e;
  }
  const slow = backend === 'cpu';
  const s = measure({
    items: 10_000,
    features: 0,
    warm: slow ? 2 : 20,
    steps: slow ? 5 : 150,
    pregrow: false,
  });
  speeds[backend] = s;
  console.log(
    `${backend}: ${s.wall} examples/s wall, ${s.cpu} per CPU-second, ${s.msPerStep.toFixed(1)} ms/step`,
  );
  figures[`examples_per_s_${backend}`] = {
    value: s.wall,
    unit: 'examples/s',
    goal: backend === 'cpu' ? 'baseline' : 50_000,
    note: `two-tower d=32 hidden [64], batch ${BATCH}, pointwise + in-batch negatives (logQ); ${s.cpu} examples per CPU-second; ${s.msPerStep.toFixed(1)} ms/step`,
  };
  if (backend === 'wasm')
    figures.examples_per_cpu_s_wasm = {
      value: s.cpu,
      unit: 'examples/CPU-s',
      goal: 50_000,
      note: 'as examples_per_s_wasm, per second of process CPU time (user + system)',
    };
}
const wasm = speeds.wasm;
const cpu = speeds.cpu;
if (wasm && cpu) {
  const f = figures.examples_per_s_wasm as Figure;
  f.baseline = cpu.wall;
  f.ratio = wasm.wall / cpu.wall;
}

await initBackend('wasm');
const full = measure({ items: 10_000, features: 16, warm: 20, steps: 150, pregrow: false });
figures.examples_per_s_wasm_features = {
  value: full.wall,
  unit: 'examples/s',
  goal: 50_000,
  note: `as examples_per_s_wasm with the default 16 context + 16 item feature buckets; ${full.cpu} per CPU-second`,
};
figures.examples_per_cpu_s_wasm_features = {
  value: full.cpu,
  unit: 'examples/CPU-s',
  goal: 50_000,
  note: 'as examples_per_s_wasm_features, per second of process CPU time (user + system)',
};

// catalog size: the two models' steps are interleaved so both see the same machine load
const smallRun = runner({ items: 10_000, features: 0, steps: 170, pregrow: true });
const largeRun = runner({ items: 1_000_000, features: 0, steps: 170, pregrow: true });
for (let s = 0; s < 170; s++) {
  smallRun.step(s, s >= 20);
  largeRun.step(s, s >= 20);
}
const small = smallRun.speed();
const large = largeRun.speed();
console.log(
  `catalog 10k: ${small.wall}/s (${small.cpu} per CPU-s); 1M: ${large.wall}/s (${large.cpu} per CPU-s)`,
);
figures.examples_per_s_10k_items = {
  value: small.wall,
  unit: 'examples/s',
  note: `${small.cpu} per CPU-second`,
};
figures.examples_per_s_1m_items = {
  value: large.wall,
  unit: 'examples/s',
  baseline: small.wall,
  ratio: large.wall / small.wall,
  goal: 'ratio >= 0.8',
  note: `${large.cpu} per CPU-second (CPU-time ratio ${(large.cpu / small.cpu).toFixed(3)}); the two catalogs' steps interleaved`,
};
if (tensorflowNote)
  figures.examples_per_s_tensorflow = { value: 0, unit: 'examples/s', note: tensorflowNote };

writeResult('train', figures, { backend: 'wasm' });
