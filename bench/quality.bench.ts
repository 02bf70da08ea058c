/**
 * `npm run bench:quality`: how well students of each label kind agree with the teacher, on the
 * simulator's world (src/sim) labelled by the label generators (src/labels, default config).
 *
 * Rows (all evaluated by src/train/eval.ts on the same held-out 5% of requests):
 *   random              an untrained two-tower (random vectors)
 *   most-popular        items ranked by their click count in the training impressions
 *   clicks-only         the student trained on shown items' clicks only (no teacher)
 *   pointwise / pairwise / listwise / all three   distilled students
 *   teacher             the teacher's own order (recall and NDCG are 1 by definition; its AUC on
 *                       clicks is the reference)
 * Metrics: recall of the teacher top 10 in the student's top 100 over the whole catalog, NDCG@10
 * of the student's order of the candidates against the teacher grades, and per-request click AUC.
 * Every student: two-tower d=32, hidden [64], Adam 0.01, in-batch negatives with logQ, the same
 * number of epochs over the same requests; batches hold ~2048 scored items whatever the kind.
 * Never asserted.
 */

import { labelsSchema, trainSchema } from '../src/config/schema.ts';
import type { Impression, RankerOutput } from '../src/contracts/types.gen.ts';
import { labelRequest } from '../src/labels/index.ts';
import { resolveSimOptions, Simulation } from '../src/sim/index.ts';
import { initBackend } from '../src/train/backend.ts';
import { auc, type EvalMetrics, evaluate, ndcgAt } from '../src/train/eval.ts';
import {
  type EvalRequest,
  HeldOut,
  type LabelKind,
  type LabelRecord,
  toUnits,
  type Unit,
} from '../src/train/examples.ts';
import { FrequencyEstimator } from '../src/train/frequency.ts';
import { isHeldOut, mulberry32 } from '../src/train/hash.ts';
import { buildPlan, trainStep } from '../src/train/step.ts';
import { lossOptions, modelFromConfig } from '../src/train/trainer.ts';
import { type Figure, writeResult } from './lib.ts';

const REQUESTS = Number(process.env.QUALITY_REQUESTS ?? 10_000);
const EPOCHS = Number(process.env.QUALITY_EPOCHS ?? 2);
const SLOTS = 2048;

const backend = await initBackend('auto');
const t0 = performance.now();
const sim = new Simulation(
  resolveSimOptions({
    seed: 7,
    requests: REQUESTS,
    candidates: 50,
    dupRate: 0,
    lateRate: 0,
    orphanRate: 0,
    unmatchedRate: 0,
    malformedRate: 0,
  }),
  'json',
);
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
  train.push(...recs);
  for (const s of impressions.get(id)?.items ?? [])
    if (s.clicked) clicks.set(s.item_id, (clicks.get(s.item_id) ?? 0) + 1);
}
const evalSet = held.requests();
console.log(
  `world: ${sim.world.items} items, ${sim.world.users} users; ${rankers.size} requests, ${evalSet.length} held out; labelled in ${((performance.now() - t0) / 1000).toFixed(1)} s; backend ${backend.name}`,
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

function trainStudent(units: Unit[]): {
  model: ReturnType<typeof modelFromConfig>;
  seconds: number;
  steps: number;
} {
  const model = modelFromConfig(cfg);
  const loss = lossOptions(cfg);
  const freq = new FrequencyEstimator(cfg.frequencyBuckets, cfg.frequencyAlpha);
  const rand = mulberry32(11);
  const start = performance.now();
  let steps = 0;
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
        trainStep(model, buildPlan(model, batch, freq, loss, rand), loss);
        steps++;
        batch = [];
        slots = 0;
      }
    }
    if (batch.length > 0) {
      trainStep(model, buildPlan(model, batch, freq, loss, rand), loss);
      steps++;
    }
  }
  return { model, seconds: (performance.now() - start) / 1000, steps };
}

/** Metrics of a fixed item scorer (most-popular, teacher order) computed like eval.ts. */
function staticMetrics(
  score: (r: EvalRequest, item: string) => number,
  catalogTop: Set<string> | null,
): EvalMetrics {
  let recall = 0;
  let ndcg = 0;
  let aucSum = 0;
  let aucN = 0;
  for (const r of evalSet) {
    const top = r.teacher.slice(0, 10);
    recall += catalogTop === null ? 1 : top.filter((i) => catalogTop.has(i)).length / Math.max(1, top.length);
    const order = [...r.teacher].sort((a, b) => score(r, b) - score(r, a));
    ndcg += ndcgAt(order, r.grades, 10);
    const shown = r.teacher.filter((i) => r.clicks.has(i));
    const a = auc(
      shown.map((i) => score(r, i)),
      shown.map((i) => r.clicks.get(i) === true),
    );
    if (!Number.isNaN(a)) {
      aucSum += a;
      aucN++;
    }
  }
  const n = evalSet.length;
  return { recall_at_100_of_top10: recall / n, ndcg_at_10: ndcg / n, auc: aucSum / aucN, eval_requests: n };
}

const rows: Record<string, EvalMetrics> = {};
const notes: Record<string, string> = {};
{
  const untrained = modelFromConfig(cfg);
  // the untrained model must know the catalog to retrieve from it
  for (const r of train) {
    if (r.kind !== 'listwise') continue;
    for (const it of r.value.items) untrained.itemRow(it.item_id);
  }
  rows.random = evaluate(untrained, evalSet);
}
{
  const popular = [...clicks.entries()].sort((a, b) => b[1] - a[1]).map(([id]) => id);
  rows['most-popular'] = staticMetrics((_r, i) => clicks.get(i) ?? 0, new Set(popular.slice(0, 100)));
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
  const { model, seconds, steps } = trainStudent(units);
  rows[name] = evaluate(model, evalSet);
  notes[name] = `${units.length} units × ${EPOCHS} epochs, ${steps} steps, ${seconds.toFixed(1)} s`;
  console.log(`${name}: ${JSON.stringify(rows[name])} (${notes[name]})`);
}
rows.teacher = staticMetrics((r, i) => -r.teacher.indexOf(i), null);

console.log('\n| student | recall@100 of teacher top 10 | NDCG@10 | click AUC |');
console.log('|---|---|---|---|');
for (const [name, m] of Object.entries(rows))
  console.log(
    `| ${name} | ${m.recall_at_100_of_top10.toFixed(3)} | ${m.ndcg_at_10.toFixed(3)} | ${(m.auc ?? Number.NaN).toFixed(3)} |`,
  );

const figures: Record<string, Figure> = {};
for (const [name, m] of Object.entries(rows)) {
  const key = name.replace(/[^a-z0-9]+/g, '_');
  figures[`${key}.recall_at_100_of_top10`] = {
    value: Number(m.recall_at_100_of_top10.toFixed(4)),
    unit: 'fraction',
    baseline: Number((rows.random?.recall_at_100_of_top10 ?? 0).toFixed(4)),
    ...(notes[name] ? { note: notes[name] } : {}),
  };
  figures[`${key}.ndcg_at_10`] = { value: Number(m.ndcg_at_10.toFixed(4)), unit: 'ndcg' };
  if (m.auc !== undefined) figures[`${key}.auc`] = { value: Number(m.auc.toFixed(4)), unit: 'auc' };
}
writeResult('quality', figures, { backend: backend.name });
