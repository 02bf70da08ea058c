/**
 * `npm run bench:quality`: how well students of each label kind agree with the teacher and with the
 * truth, on the simulator's world (src/sim) labelled by the label generators (src/labels, default
 * config).
 *
 * Rows (all evaluated on the same held-out requests: the first 1,000 of the 5% hash slice):
 *   random              an untrained two-tower (random vectors) that knows the catalog
 *   most-popular        items ranked by their click count in the training impressions
 *   clicks-only         the student trained on shown items' clicks only (no teacher)
 *   pointwise / pairwise / listwise / all three   distilled students
 *   teacher             the simulator's teacher: true affinity + N(0, teacherNoise²) noise, its
 *                       own order (recall 1 by definition)
 * Columns:
 *   recall      recall of the teacher's top 10 in the student's top 100 over the WHOLE catalog
 *               (src/train/eval.ts)
 *   NDCG true   NDCG@10 of the student's order of the request's candidates against grades from the
 *               TRUE affinity (src/sim createWorld/trueAffinity): candidates ranked by true
 *               affinity, graded like the listwise buckets (true ranks 1–5 → 5, 6–10 → 4, …, 0)
 *   NDCG teach  the same against the teacher's grades (what the gate measures)
 *   click AUC   per-request AUC of scores for clicked vs shown-not-clicked items
 *   params      trained values (dense + table rows in use); most-popular: one count per item;
 *               teacher: the world's latent vectors + item biases it scores with
 *   scoring     wall time per request to produce the top 100 over the catalog (user tower, one
 *               matrix product per 64 requests, top-k; tfjs backend below); teacher: scoring its
 *               candidate list (the simulated teacher is a cheap stand-in for a real fine ranker)
 * Every student: two-tower d=32, hidden [64], Adam 0.01, in-batch negatives with logQ, the same
 * number of epochs over the same requests; batches hold ~2048 scored items whatever the kind.
 * Each student is evaluated at QUALITY_POINTS points along its training: the curve goes to
 * bench/results/quality.svg (x: training requests seen, epochs × requests). Never asserted.
 *
 * Knobs: QUALITY_USERS [5000], QUALITY_ITEMS [20000], QUALITY_REQUESTS [20000], QUALITY_EPOCHS [2],
 * QUALITY_POINTS [6].
 */

import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { lineChartSvg } from '../src/cli/plot.ts';
import { labelsSchema, trainSchema } from '../src/config/schema.ts';
import type { Impression, RankerOutput } from '../src/contracts/types.gen.ts';
import { labelRequest } from '../src/labels/index.ts';
import { itemIndex, resolveSimOptions, Simulation, trueAffinity, userIndex } from '../src/sim/index.ts';
import { initBackend } from '../src/train/backend.ts';
import { auc, type EvalMetrics, evaluate, ndcgAt } from '../src/train/eval.ts';
import {
  type EvalRequest,
  gradeFromRank,
  HeldOut,
  type LabelKind,
  type LabelRecord,
  toUnits,
  type Unit,
} from '../src/train/examples.ts';
import { FrequencyEstimator } from '../src/train/frequency.ts';
import { fnv1a, isHeldOut, mulberry32 } from '../src/train/hash.ts';
import type { StudentModel } from '../src/train/model.ts';
import { buildPlan, trainStep } from '../src/train/step.ts';
import { lossOptions, modelFromConfig } from '../src/train/trainer.ts';
import { type Figure, writeResult } from './lib.ts';

const USERS = Number(process.env.QUALITY_USERS ?? 5_000);
const ITEMS = Number(process.env.QUALITY_ITEMS ?? 20_000);
const REQUESTS = Number(process.env.QUALITY_REQUESTS ?? 20_000);
const EPOCHS = Number(process.env.QUALITY_EPOCHS ?? 2);
const POINTS = Number(process.env.QUALITY_POINTS ?? 6);
const CANDIDATES = 50;
const SLOTS = 2048;

const backend = await initBackend('auto');
const t0 = performance.now();
const sim = new Simulation(
  resolveSimOptions({
    seed: 7,
    users: USERS,
    items: ITEMS,
    requests: REQUESTS,
    candidates: CANDIDATES,
    dupRate: 0,
    lateRate: 0,
    orphanRate: 0,
    unmatchedRate: 0,
    malformedRate: 0,
  }),
  'json',
);
const world = sim.world;
const rankers = new Map<string, RankerOutput>();
const impressions = new Map<string, Impression>();
for (const e of sim.emissions()) {
  if (e.malformed !== null || e.copy) continue;
  if (e.stream === 'rankerOutputs') rankers.set(e.requestId, e.record);
  else impressions.set(e.requestId, e.record);
}
const labelsCfg = labelsSchema.parse({});
const train: LabelRecord[] = [];
const cfg = trainSchema.parse({});
const held = new HeldOut(cfg.heldOutPercent, 1_000, cfg.contextBuckets);
const clicks = new Map<string, number>();
let trainRequests = 0;
for (const [id, ranker] of rankers) {
  const l = labelRequest({ ranker, impression: impressions.get(id) ?? null }, labelsCfg);
  const recs: LabelRecord[] = [];
  if (l.pointwise) recs.push({ kind: 'pointwise', value: l.pointwise });
  if (l.pairwise) recs.push({ kind: 'pairwise', value: l.pairwise });
  if (l.listwise) recs.push({ kind: 'listwise', value: l.listwise });
  if (isHeldOut(id, cfg.heldOutPercent)) {
    for (const r of recs) held.offer(r);
    continue;
  }
  trainRequests++;
  train.push(...recs);
  for (const s of impressions.get(id)?.items ?? [])
    if (s.clicked) clicks.set(s.item_id, (clicks.get(s.item_id) ?? 0) + 1);
}
const evalSet = held.requests();

/** The eval requests with grades from the TRUE affinity: candidates by true affinity, bucketed. */
const trueSet: EvalRequest[] = evalSet.map((r) => {
  const u = userIndex(r.user);
  const byTruth = [...r.teacher]
    .map((id) => ({ id, a: trueAffinity(world, u, itemIndex(id)) }))
    .sort((a, b) => b.a - a.a);
  return { ...r, grades: new Map(byTruth.map((x, i) => [x.id, gradeFromRank(i + 1)])) };
});
console.log(
  `world: ${world.items} items, ${world.users} users; ${rankers.size} requests (${trainRequests} for training, ${evalSet.length} evaluated), ${CANDIDATES} candidates each; labelled in ${((performance.now() - t0) / 1000).toFixed(1)} s; backend ${backend.name}`,
);

const uo = {
  contextBuckets: cfg.contextBuckets,
  itemFeatureBuckets: cfg.itemFeatureBuckets,
  maxListLength: cfg.maxListLength,
};

function unitsOf(kinds: readonly LabelKind[] | 'clicks'): Unit[] {
  const out: Unit[] = [];
  for (const r of train) {
    if (kinds === 'clicks') {
      if (r.kind !== 'pointwise') continue;
      for (const u of toUnits(r, uo)) {
        if (u.kind !== 'point' || u.known === 0) continue;
        out.push({ ...u, target: u.clicked, weight: 1, positive: u.clicked === 1 });
      }
    } else if (kinds.includes(r.kind)) out.push(...toUnits(r, uo));
  }
  return out;
}

const cost = (u: Unit) => (u.kind === 'point' ? 1 : u.kind === 'pair' ? 2 : u.items.length);

/** NDCG@10 of the student's order of each request's candidates (ties broken as in eval.ts). */
function candidateNdcg(model: StudentModel, requests: readonly EvalRequest[]): number {
  const d = model.outDim;
  const Fc = model.opts.contextBuckets;
  const itemVecs = model.itemVectors();
  const rows = Int32Array.from(requests, (r) => model.users.find(r.user));
  const ctx = new Float32Array(requests.length * Fc);
  requests.forEach((r, i) => {
    ctx.set(r.ctx, i * Fc);
  });
  const uv = model.userVectors(rows, ctx);
  let sum = 0;
  requests.forEach((r, i) => {
    const order = r.teacher
      .map((id) => {
        const row = model.items.find(id);
        let s = Number.NEGATIVE_INFINITY;
        if (row >= 0) {
          s = 0;
          for (let k = 0; k < d; k++) s += (uv[i * d + k] as number) * (itemVecs[row * d + k] as number);
        }
        return { id, s, h: fnv1a(id, 0x71e) };
      })
      .sort((a, b) => b.s - a.s || a.h - b.h)
      .map((x) => x.id);
    sum += ndcgAt(order, r.grades, 10);
  });
  return sum / Math.max(1, requests.length);
}

/** Wall time per request of the top 100 over the catalog, 64 requests per matrix product. */
function scoringMs(model: StudentModel, requests: readonly EvalRequest[]): number {
  const d = model.outDim;
  const Fc = model.opts.contextBuckets;
  const start = performance.now();
  const itemVecs = model.itemVectors();
  const M = model.items.size;
  const itemsT = tf.tidy(() => tf.transpose(tf.tensor2d(itemVecs, [M, d])));
  for (let s = 0; s < requests.length; s += 64) {
    const part = requests.slice(s, s + 64);
    const ctx = new Float32Array(part.length * Fc);
    part.forEach((r, i) => {
      ctx.set(r.ctx, i * Fc);
    });
    const uv = model.userVectors(
      Int32Array.from(part, (r) => model.users.find(r.user)),
      ctx,
    );
    tf.tidy(() => tf.topk(tf.matMul(tf.tensor2d(uv, [part.length, d]), itemsT), 100).indices.dataSync());
  }
  itemsT.dispose();
  return (performance.now() - start) / requests.length;
}

interface Row {
  m: EvalMetrics;
  ndcgTrue: number;
  params: number;
  scoringMs: number;
  note?: string;
}
interface CurvePoint {
  requestsSeen: number;
  recall: number;
  ndcgTrue: number;
  ndcgTeacher: number;
}

function measure(model: StudentModel): Row {
  return {
    m: evaluate(model, evalSet),
    ndcgTrue: candidateNdcg(model, trueSet),
    params: model.paramCount(),
    scoringMs: scoringMs(model, evalSet),
  };
}

function trainStudent(units: Unit[]): {
  model: StudentModel;
  seconds: number;
  steps: number;
  curve: CurvePoint[];
} {
  const model = modelFromConfig(cfg);
  const loss = lossOptions(cfg);
  const freq = new FrequencyEstimator(cfg.frequencyBuckets, cfg.frequencyAlpha);
  const rand = mulberry32(11);
  // evaluation points: every `total / POINTS` units (over all epochs)
  const total = units.length * EPOCHS;
  const every = Math.max(1, Math.ceil(total / POINTS));
  const curve: CurvePoint[] = [];
  let seen = 0;
  let nextPoint = every;
  let trainMs = 0;
  let steps = 0;
  const point = () => {
    const m = evaluate(model, evalSet);
    curve.push({
      requestsSeen: Math.round((seen / units.length) * trainRequests),
      recall: m.recall_at_100_of_top10,
      ndcgTrue: candidateNdcg(model, trueSet),
      ndcgTeacher: m.ndcg_at_10,
    });
  };
  const step = (batch: Unit[]) => {
    const s = performance.now();
    trainStep(model, buildPlan(model, batch, freq, loss, rand), loss);
    trainMs += performance.now() - s;
    steps++;
    seen += batch.length;
    if (seen >= nextPoint) {
      point();
      nextPoint += every;
    }
  };
  for (let e = 0; e < EPOCHS; e++) {
    for (let i = units.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = units[i] as Unit;
      units[i] = units[j] as Unit;
      units[j] = t;
    }
    let batch: Unit[] = [];
    let slots = 0;
    for (const u of units) {
      batch.push(u);
      slots += cost(u);
      if (slots >= SLOTS) {
        step(batch);
        batch = [];
        slots = 0;
      }
    }
    if (batch.length > 0) step(batch);
  }
  if (curve.at(-1)?.requestsSeen !== Math.round((seen / units.length) * trainRequests)) point();
  return { model, seconds: trainMs / 1000, steps, curve };
}

/** Metrics of a fixed item scorer (most-popular, teacher order) computed like eval.ts. */
function staticMetrics(
  score: (r: EvalRequest, item: string) => number,
  catalogTop: Set<string> | null,
): { m: EvalMetrics; ndcgTrue: number } {
  let recall = 0;
  let ndcg = 0;
  let ndcgTrue = 0;
  let aucSum = 0;
  let aucN = 0;
  evalSet.forEach((r, k) => {
    const top = r.teacher.slice(0, 10);
    recall += catalogTop === null ? 1 : top.filter((i) => catalogTop.has(i)).length / Math.max(1, top.length);
    const order = [...r.teacher]
      .map((id) => ({ id, s: score(r, id), h: fnv1a(id, 0x71e) }))
      .sort((a, b) => b.s - a.s || a.h - b.h)
      .map((x) => x.id);
    ndcg += ndcgAt(order, r.grades, 10);
    ndcgTrue += ndcgAt(order, (trueSet[k] as EvalRequest).grades, 10);
    const shown = r.teacher.filter((i) => r.clicks.has(i));
    const a = auc(
      shown.map((i) => score(r, i)),
      shown.map((i) => r.clicks.get(i) === true),
    );
    if (!Number.isNaN(a)) {
      aucSum += a;
      aucN++;
    }
  });
  const n = evalSet.length;
  return {
    m: { recall_at_100_of_top10: recall / n, ndcg_at_10: ndcg / n, auc: aucSum / aucN, eval_requests: n },
    ndcgTrue: ndcgTrue / n,
  };
}

const rows: Record<string, Row> = {};
const curves: Record<string, CurvePoint[]> = {};
{
  const untrained = modelFromConfig(cfg);
  // the untrained model must know the catalog to retrieve from it
  for (const r of train) {
    if (r.kind !== 'listwise') continue;
    for (const it of r.value.items) untrained.itemRow(it.item_id);
  }
  rows.random = measure(untrained);
}
{
  const popular = [...clicks.entries()].sort((a, b) => b[1] - a[1]).map(([id]) => id);
  const s = staticMetrics((_r, i) => clicks.get(i) ?? 0, new Set(popular.slice(0, 100)));
  // serving most-popular is a constant list: its cost is the (tiny) lookup
  rows['most-popular'] = { ...s, params: clicks.size, scoringMs: 0 };
}
const students: [string, readonly LabelKind[] | 'clicks'][] = [
  ['clicks-only', 'clicks'],
  ['pointwise', ['pointwise']],
  ['pairwise', ['pairwise']],
  ['listwise', ['listwise']],
  ['all three', ['pointwise', 'pairwise', 'listwise']],
];
for (const [name, kinds] of students) {
  const units = unitsOf(kinds);
  const { model, seconds, steps, curve } = trainStudent(units);
  curves[name] = curve;
  const note = `${units.length} units × ${EPOCHS} epochs, ${steps} steps, ${seconds.toFixed(1)} s of training`;
  rows[name] = { ...measure(model), note };
  console.log(
    `${name}: recall ${rows[name].m.recall_at_100_of_top10.toFixed(3)}, NDCG true ${rows[name].ndcgTrue.toFixed(3)} (${note}; ${((performance.now() - t0) / 1000).toFixed(0)} s elapsed)`,
  );
}
{
  const s = staticMetrics((r, i) => -r.teacher.indexOf(i), null);
  // the teacher scores its candidate list: true affinity + noise per candidate
  const start = performance.now();
  let sink = 0;
  for (const r of evalSet) {
    const u = userIndex(r.user);
    for (const id of r.teacher) sink += trueAffinity(world, u, itemIndex(id));
  }
  const ms = (performance.now() - start) / evalSet.length;
  if (sink === 42) console.log('');
  rows.teacher = { ...s, params: world.users * world.dim + world.items * (world.dim + 1), scoringMs: ms };
}

const header =
  '| model | recall of teacher top 10 in top 100 | NDCG@10 vs true affinity | NDCG@10 vs teacher grades | click AUC | parameters | scoring time / request |';
const lines = [header, '|---|---|---|---|---|---|---|'];
for (const [name, r] of Object.entries(rows))
  lines.push(
    `| ${name} | ${r.m.recall_at_100_of_top10.toFixed(3)} | ${r.ndcgTrue.toFixed(3)} | ${r.m.ndcg_at_10.toFixed(3)} | ${(r.m.auc ?? Number.NaN).toFixed(3)} | ${r.params.toLocaleString('en-US')} | ${r.scoringMs < 0.001 ? '~0' : `${r.scoringMs.toFixed(3)} ms`} |`,
  );
console.log(`\n${lines.join('\n')}\n`);

// the plot: two panels stacked in one SVG, both drawn by src/cli/plot.ts
const colors: Record<string, string> = {
  'clicks-only': '#7f7f7f',
  pointwise: '#1f77b4',
  pairwise: '#ff7f0e',
  listwise: '#2ca02c',
  'all three': '#d62728',
};
const panel = (metric: 'recall' | 'ndcgTrue', title: string, yLabel: string) =>
  lineChartSvg(
    Object.entries(curves).map(([name, c]) => ({
      name,
      color: colors[name] ?? '#000',
      // every student starts as the untrained (random) model
      points: [
        { x: 0, y: metric === 'recall' ? rows.random!.m.recall_at_100_of_top10 : rows.random!.ndcgTrue },
      ].concat(c.map((p) => ({ x: p.requestsSeen, y: p[metric] }))),
    })),
    { title, xLabel: 'training requests seen (epochs × requests)', yLabel },
  );
const top = panel(
  'recall',
  `Recall: teacher top 10 in student top 100 of ${world.items.toLocaleString('en-US')} items (most-popular ${rows['most-popular']!.m.recall_at_100_of_top10.toFixed(2)})`,
  'recall',
);
const bottom = panel(
  'ndcgTrue',
  `NDCG@10 of the candidates against the true affinity (teacher ${rows.teacher!.ndcgTrue.toFixed(2)})`,
  'NDCG@10',
);
const inner = (svg: string, y: number) => svg.replace('<svg ', `<svg x="0" y="${y}" `);
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="840" viewBox="0 0 720 840">\n${inner(top, 0)}${inner(bottom, 420)}</svg>\n`;
const svgPath = new URL('./results/quality.svg', import.meta.url);
writeFileSync(svgPath, svg);
writeFileSync(new URL('./results/quality.md', import.meta.url), `${lines.join('\n')}\n`);

const figures: Record<string, Figure> = {};
for (const [name, r] of Object.entries(rows)) {
  const key = name.replace(/[^a-z0-9]+/g, '_');
  figures[`${key}.recall_at_100_of_top10`] = {
    value: Number(r.m.recall_at_100_of_top10.toFixed(4)),
    unit: 'fraction',
    baseline: Number((rows.random?.m.recall_at_100_of_top10 ?? 0).toFixed(4)),
    ...(r.note ? { note: r.note } : {}),
  };
  figures[`${key}.ndcg_at_10_true`] = {
    value: Number(r.ndcgTrue.toFixed(4)),
    unit: 'ndcg',
    baseline: Number((rows['clicks-only']?.ndcgTrue ?? 0).toFixed(4)),
  };
  figures[`${key}.ndcg_at_10_teacher`] = { value: Number(r.m.ndcg_at_10.toFixed(4)), unit: 'ndcg' };
  if (r.m.auc !== undefined) figures[`${key}.auc`] = { value: Number(r.m.auc.toFixed(4)), unit: 'auc' };
  figures[`${key}.params`] = { value: r.params, unit: 'values' };
  figures[`${key}.scoring_ms_per_request`] = { value: Number(r.scoringMs.toFixed(4)), unit: 'ms' };
}
figures.world = {
  value: world.items,
  unit: 'items',
  note: `${world.users} users, ${rankers.size} requests (${trainRequests} train, ${evalSet.length} eval), ${CANDIDATES} candidates, ${EPOCHS} epochs, ${((performance.now() - t0) / 1000).toFixed(0)} s total`,
};
for (const [name, c] of Object.entries(curves))
  c.forEach((p, i) => {
    const key = name.replace(/[^a-z0-9]+/g, '_');
    figures[`curve.${key}.${i}`] = {
      value: Number(p.recall.toFixed(4)),
      unit: 'recall',
      note: `requests seen ${p.requestsSeen}; NDCG true ${p.ndcgTrue.toFixed(4)}; NDCG teacher ${p.ndcgTeacher.toFixed(4)}`,
    };
  });
writeResult('quality', figures, { backend: backend.name });
console.log(`plot: ${svgPath.pathname}`);
