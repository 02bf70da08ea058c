/**
 * `npm run bench:quality`: how well students of each label kind agree with the teacher and with the
 * truth, against most-popular and against the ceiling the world allows, on the simulator's worlds
 * (src/sim) labelled by the label generators (src/labels, default config).
 *
 * Worlds (QUALITY_WORLDS, both by default):
 *   default    the simulator's original world: 5k users × 20k items, 20k requests (~4 per user),
 *              candidates 30% by popularity, 40% from the user's top 3 categories, 30% uniform
 *   realistic  src/sim/mix.ts: heavy-tailed user activity (log-normal, median ~20 requests per user,
 *              the most active several hundred), candidates 60% from a noisy personalised retriever,
 *              20% by popularity, 20% exploration; Zipf 0.7
 * Every request has 50 candidates. Requests are split by hash of their id like the trainer does:
 * held out (train.heldOutPercent, the first 1,000 evaluated), validation (train.validationPercent,
 * the slice after it: beta is chosen there, never on the evaluated requests), the rest trained on.
 *
 * Rows (all evaluated on the same held-out requests):
 *   random              an untrained two-tower (random vectors) that knows the catalog
 *   most-popular        items ranked by their click count in the training impressions
 *   clicks-only         the student trained on shown items' clicks only (no teacher)
 *   pointwise / pairwise / listwise / all three   distilled students
 *   teacher             the simulator's teacher (true affinity + N(0, teacherNoise²)): recall 1 by
 *                       definition (it ranks the catalog too)
 *   oracle              the ceiling of candidate-list recall: it knows the true affinities and the
 *                       world's candidate mix; per user, QUALITY_ORACLE_DRAWS Monte Carlo requests
 *                       (candidates drawn by the simulator's own src/sim/mix.ts, teacher noise
 *                       included), its top 100 = the 100 items most often in the teacher's top 10.
 *                       Whole catalog: the top 100 by true affinity. Candidate order: true affinity.
 * Each student appears twice: `β=0` (the plain two-tower score) and `β=b` (the served score with the
 * exposure prior b·logQ(item), b chosen on the validation requests from train.priorBetaGrid, as the
 * trainer does at every checkpoint).
 * Columns:
 *   cand recall     share of the teacher's top 10 of the request's CANDIDATE LIST in the student's
 *                   top 100 over the whole catalog (src/train/eval.ts, the snapshot gate's metric)
 *   catalog recall  share of the teacher's top 10 over the WHOLE CATALOG (the simulated teacher
 *                   scores every item for the request's user) in the student's top 100
 *   NDCG true       NDCG@10 of the student's order of the candidates against grades from the TRUE
 *                   affinity (true ranks 1–5 → 5, 6–10 → 4, …, like the listwise buckets)
 *   NDCG teach      the same against the teacher's grades
 *   click AUC       per-request AUC of scores for clicked vs shown-not-clicked items
 *   scoring         wall time per request for the top 100 over the catalog (served user vectors,
 *                   one matrix product per 64 requests, top-k; tfjs backend below)
 * Seeds: seed 1 trains every row; seeds 2..QUALITY_SEEDS (a new world, labels and training seed each)
 * train the key rows (clicks-only, all three) again, so the spread between seeds is shown next to
 * every gap. A gain counts only when it is larger than that spread.
 * The plot (bench/results/quality.svg) follows the seed-1 students of each world along their
 * training (x: requests seen, epochs × requests; the held-out set is fixed from the start) with
 * most-popular and the oracle as flat lines. Never asserted.
 *
 * `all three + history` (realistic world by default, QUALITY_HISTORY_WORLDS) is the behaviour user
 * tower (train.historyLength 20): the mean item embedding of the user's last 20 positives before
 * the request, as the trainer attaches it (src/train/history.ts), besides the user id and context.
 *
 * Knobs (env): QUALITY_WORLDS [default,realistic], QUALITY_SEEDS [3], QUALITY_EPOCHS [2],
 * QUALITY_POINTS [5], QUALITY_ORACLE_DRAWS [500], QUALITY_USERS [5000] / QUALITY_REQUESTS [20000]
 * (default world), QUALITY_R_USERS [1000] / QUALITY_R_REQUESTS [50000] / QUALITY_R_EPOCHS [1]
 * (realistic world), QUALITY_ITEMS [20000] (both), QUALITY_HISTORY_WORLDS [realistic], QUALITY_TAG
 * (result files quality-<TAG>.*), QUALITY_SEED_FROM [1] (start at a later seed: key rows only), QUALITY_STUDENTS (comma-separated
 * student rows to train, default all). Run time on the 2-core dev box (shared): ~25 min per world at the
 * defaults; QUALITY_SEEDS=1 QUALITY_POINTS=0 for a quick look.
 */

import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { lineChartSvg } from '../src/cli/plot.ts';
import { labelsSchema, trainSchema } from '../src/config/schema.ts';
import type { Impression, RankerOutput } from '../src/contracts/types.gen.ts';
import { labelRequest } from '../src/labels/index.ts';
import {
  CandidateSource,
  itemIndex,
  Oracle,
  Rng,
  resolveSimOptions,
  type Scenario,
  Simulation,
  trueAffinity,
  userIndex,
  type World,
} from '../src/sim/index.ts';
import { initBackend } from '../src/train/backend.ts';
import { auc, chooseBeta, evaluate, ndcgAt } from '../src/train/eval.ts';
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
import { fnv1a, mulberry32 } from '../src/train/hash.ts';
import { HistoryStore, recordItems } from '../src/train/history.ts';
import type { StudentModel } from '../src/train/model.ts';
import { buildPlan, trainStep } from '../src/train/step.ts';
import { lossOptions, modelFromConfig } from '../src/train/trainer.ts';
import { type Figure, writeResult } from './lib.ts';

const env = process.env;
const WORLDS = (env.QUALITY_WORLDS ?? 'default,realistic').split(',') as Scenario[];
const SEEDS = Number(env.QUALITY_SEEDS ?? 3);
/** First seed run (>1: only the key rows, e.g. to add seeds to an earlier run). */
const SEED_FROM = Number(env.QUALITY_SEED_FROM ?? 1);
const POINTS = Number(env.QUALITY_POINTS ?? 5);
const ORACLE_DRAWS = Number(env.QUALITY_ORACLE_DRAWS ?? 500);
const ITEMS = Number(env.QUALITY_ITEMS ?? 20_000);
const SIZES: Record<Scenario, { users: number; requests: number; epochs: number }> = {
  default: {
    users: Number(env.QUALITY_USERS ?? 5_000),
    requests: Number(env.QUALITY_REQUESTS ?? 20_000),
    epochs: Number(env.QUALITY_EPOCHS ?? 2),
  },
  realistic: {
    users: Number(env.QUALITY_R_USERS ?? 1_000),
    requests: Number(env.QUALITY_R_REQUESTS ?? 50_000),
    epochs: Number(env.QUALITY_R_EPOCHS ?? 1),
  },
};
const CANDIDATES = 50;
/** Suffix of the result files (quality<TAG>.json/.md/.svg), so worlds can run as separate processes. */
const TAG = env.QUALITY_TAG ? `-${env.QUALITY_TAG}` : '';
const SLOTS = 2048;

const backend = await initBackend('auto');
const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
const labelsCfg = labelsSchema.parse({});
const cfg = trainSchema.parse({});
const uo = {
  contextBuckets: cfg.contextBuckets,
  itemFeatureBuckets: cfg.itemFeatureBuckets,
  maxListLength: cfg.maxListLength,
};

/** One labelled world: training labels, the evaluated and validation requests and their truths. */
interface Data {
  scenario: Scenario;
  seed: number;
  world: World;
  source: CandidateSource;
  teacherNoise: number;
  train: LabelRecord[];
  trainRequests: number;
  clicks: Map<string, number>;
  evalSet: EvalRequest[];
  trueSet: EvalRequest[];
  validation: EvalRequest[];
  /** Per evaluated request: the teacher's top 10 over the whole catalog. */
  catalogTop10: string[][];
  activity: { median: number; p90: number; max: number; mean: number };
}

function prepare(scenario: Scenario, seed: number): Data {
  const size = SIZES[scenario];
  const opts = resolveSimOptions({
    seed,
    scenario,
    users: size.users,
    items: ITEMS,
    requests: size.requests,
    candidates: CANDIDATES,
    dupRate: 0,
    lateRate: 0,
    orphanRate: 0,
    unmatchedRate: 0,
    malformedRate: 0,
  });
  const sim = new Simulation(opts, 'json');
  const world = sim.world;
  const rankers = new Map<string, RankerOutput>();
  const impressions = new Map<string, Impression>();
  for (const e of sim.emissions()) {
    if (e.malformed !== null || e.copy) continue;
    if (e.stream === 'rankerOutputs') rankers.set(e.requestId, e.record);
    else impressions.set(e.requestId, e.record);
  }
  const held = new HeldOut(cfg.heldOutPercent, 1_000, cfg.contextBuckets);
  const val = new HeldOut(
    cfg.validationPercent,
    cfg.validationRequests,
    cfg.contextBuckets,
    cfg.heldOutPercent,
  );
  const train: LabelRecord[] = [];
  const clicks = new Map<string, number>();
  const perUser = new Map<string, number>();
  let trainRequests = 0;
  for (const [id, ranker] of rankers) {
    perUser.set(ranker.user_id, (perUser.get(ranker.user_id) ?? 0) + 1);
    const l = labelRequest({ ranker, impression: impressions.get(id) ?? null }, labelsCfg);
    const recs: LabelRecord[] = [];
    if (l.pointwise) recs.push({ kind: 'pointwise', value: l.pointwise });
    if (l.pairwise) recs.push({ kind: 'pairwise', value: l.pairwise });
    if (l.listwise) recs.push({ kind: 'listwise', value: l.listwise });
    let out = false;
    for (const r of recs) out = held.offer(r) || val.offer(r) || out;
    if (out) continue;
    trainRequests++;
    train.push(...recs);
    for (const s of impressions.get(id)?.items ?? [])
      if (s.clicked) clicks.set(s.item_id, (clicks.get(s.item_id) ?? 0) + 1);
  }
  const evalSet = held.requests();
  const trueSet = evalSet.map((r) => {
    const u = userIndex(r.user);
    const byTruth = [...r.teacher]
      .map((id) => ({ id, a: trueAffinity(world, u, itemIndex(id)) }))
      .sort((a, b) => b.a - a.a);
    return { ...r, grades: new Map(byTruth.map((x, i) => [x.id, gradeFromRank(i + 1)])) };
  });
  // the teacher over the whole catalog: true affinity + its noise, for every item
  const rng = new Rng(seed, 'catalog-teacher');
  const catalogTop10 = evalSet.map((r) => {
    const u = userIndex(r.user);
    const s = new Float64Array(world.items);
    for (let j = 0; j < world.items; j++) s[j] = trueAffinity(world, u, j) + opts.teacherNoise * rng.normal();
    return topIndices(s, 10).map((j) => `i${j}`);
  });
  const counts = [...perUser.values()].sort((a, b) => a - b);
  const q = (p: number) => counts[Math.min(counts.length - 1, Math.floor(p * counts.length))] ?? 0;
  return {
    scenario,
    seed,
    world,
    source: new CandidateSource(world, scenario, seed),
    teacherNoise: opts.teacherNoise,
    train,
    trainRequests,
    clicks,
    evalSet,
    trueSet,
    validation: val.requests(),
    catalogTop10,
    activity: { median: q(0.5), p90: q(0.9), max: q(1), mean: rankers.size / Math.max(1, perUser.size) },
  };
}

/** Indices of the k largest values, best first (insertion into a sorted top list: O(n·k) worst, ~O(n)). */
function topIndices(s: Float64Array, k: number): number[] {
  const top: number[] = [];
  for (let j = 0; j < s.length; j++) {
    const v = s[j] as number;
    if (top.length === k && v <= (s[top[k - 1] as number] as number)) continue;
    let i = top.length < k ? top.length : k - 1;
    if (top.length < k) top.push(j);
    while (i > 0 && (s[top[i - 1] as number] as number) < v) {
      top[i] = top[i - 1] as number;
      i--;
    }
    top[i] = j;
  }
  return top;
}

/**
 * The training units of some label kinds (or clicks only). With `history`, each request's units
 * carry the user's history before it (its own items left out) as the trainer attaches it, and the
 * store ends with every training record observed (what evaluation reads).
 */
function unitsOf(data: Data, kinds: readonly LabelKind[] | 'clicks', history?: HistoryStore): Unit[] {
  const out: Unit[] = [];
  for (const r of data.train) {
    if (history !== undefined) {
      const before = out.length;
      pushUnits(r, kinds, out);
      const h = history.before(r.value.user_id, recordItems(r), r.value.request_id);
      for (let i = before; i < out.length; i++) (out[i] as Unit).req.history = h;
      history.observe(r);
    } else pushUnits(r, kinds, out);
  }
  return out;
}

function pushUnits(r: LabelRecord, kinds: readonly LabelKind[] | 'clicks', out: Unit[]): void {
  if (kinds === 'clicks') {
    if (r.kind !== 'pointwise') return;
    for (const u of toUnits(r, uo)) {
      if (u.kind !== 'point' || u.known === 0) continue;
      out.push({ ...u, target: u.clicked, weight: 1, positive: u.clicked === 1 });
    }
  } else if (kinds.includes(r.kind)) out.push(...toUnits(r, uo));
}

const cost = (u: Unit) => (u.kind === 'point' ? 1 : u.kind === 'pair' ? 2 : u.items.length);

interface Metrics {
  cand: number;
  catalog: number;
  ndcgTrue: number;
  ndcgTeacher: number;
  auc: number;
  scoringMs: number;
}
interface Row {
  name: string;
  beta?: number;
  m: Metrics;
  note?: string;
}

/** Wall time per request of the top 100 over the catalog, 64 requests per matrix product. */
function scoringMs(model: StudentModel, requests: readonly EvalRequest[]): number {
  const d = model.servedDim;
  const Fc = model.opts.contextBuckets;
  const start = performance.now();
  const itemsT = tf.tidy(() => tf.transpose(tf.tensor2d(model.servedItemVectors(), [model.items.size, d])));
  for (let s = 0; s < requests.length; s += 64) {
    const part = requests.slice(s, s + 64);
    const ctx = new Float32Array(part.length * Fc);
    part.forEach((r, i) => {
      ctx.set(r.ctx, i * Fc);
    });
    const uv = model.servedUserVectors(
      Int32Array.from(part, (r) => model.users.find(r.user)),
      ctx,
    );
    tf.tidy(() => tf.topk(tf.matMul(tf.tensor2d(uv, [part.length, d]), itemsT), 100).indices.dataSync());
  }
  itemsT.dispose();
  return (performance.now() - start) / requests.length;
}

/** A student's metrics with the served score at `beta` (the prior over its frequency estimate). */
function studentMetrics(data: Data, model: StudentModel, freq: FrequencyEstimator, beta: number): Metrics {
  model.prior = { beta, logQ: (id) => freq.logQ(id) };
  let catalog = 0;
  const m = evaluate(model, data.evalSet, {
    onTop: (k, retrieved) => {
      catalog += hits(data.catalogTop10[k] ?? [], retrieved) / 10;
    },
  });
  const t = evaluate(model, data.trueSet);
  return {
    cand: m.recall_at_100_of_top10,
    catalog: catalog / data.evalSet.length,
    ndcgTrue: t.ndcg_at_10,
    ndcgTeacher: m.ndcg_at_10,
    auc: m.auc ?? Number.NaN,
    scoringMs: scoringMs(model, data.evalSet),
  };
}

function hits(ids: readonly string[], set: ReadonlySet<string>): number {
  let h = 0;
  for (const id of ids) if (set.has(id)) h++;
  return h;
}

/** Metrics of a fixed item scorer (most-popular, teacher, oracle) computed like eval.ts. */
function staticMetrics(
  data: Data,
  score: (r: EvalRequest, item: string) => number,
  retrieved: ((k: number) => ReadonlySet<string>) | null,
  catalogRetrieved: ((k: number) => ReadonlySet<string>) | null,
): Metrics {
  let cand = 0;
  let catalog = 0;
  let ndcg = 0;
  let ndcgTrue = 0;
  let aucSum = 0;
  let aucN = 0;
  data.evalSet.forEach((r, k) => {
    const top = r.teacher.slice(0, 10);
    cand += retrieved === null ? 1 : hits(top, retrieved(k)) / Math.max(1, top.length);
    catalog += catalogRetrieved === null ? 1 : hits(data.catalogTop10[k] ?? [], catalogRetrieved(k)) / 10;
    const order = [...r.teacher]
      .map((id) => ({ id, s: score(r, id), h: fnv1a(id, 0x71e) }))
      .sort((a, b) => b.s - a.s || a.h - b.h)
      .map((x) => x.id);
    ndcg += ndcgAt(order, r.grades, 10);
    ndcgTrue += ndcgAt(order, (data.trueSet[k] as EvalRequest).grades, 10);
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
  const n = data.evalSet.length;
  return {
    cand: cand / n,
    catalog: catalog / n,
    ndcgTrue: ndcgTrue / n,
    ndcgTeacher: ndcg / n,
    auc: aucSum / aucN,
    scoringMs: 0,
  };
}

/** The oracle's retrieved sets (src/sim/oracle.ts), per evaluated request; ms per request. */
function oracleSets(data: Data): { cand: (k: number) => ReadonlySet<string>; ms: number } {
  const start = performance.now();
  const oracle = new Oracle(data.source, {
    draws: ORACLE_DRAWS,
    candidates: CANDIDATES,
    teacherNoise: data.teacherNoise,
    seed: data.seed,
  });
  const sets = data.evalSet.map((r) => oracle.retrieve(userIndex(r.user)));
  return {
    cand: (k) => sets[k] as ReadonlySet<string>,
    ms: (performance.now() - start) / data.evalSet.length,
  };
}

interface CurvePoint {
  requestsSeen: number;
  cand: number;
  ndcgTrue: number;
}

function trainStudent(
  data: Data,
  units: Unit[],
  seed: number,
  points: number,
  history?: HistoryStore,
): { model: StudentModel; freq: FrequencyEstimator; seconds: number; steps: number; curve: CurvePoint[] } {
  const model = modelFromConfig({ ...cfg, seed, historyLength: history === undefined ? 0 : HISTORY_LENGTH });
  model.history = history ?? null;
  const loss = lossOptions(cfg);
  const freq = new FrequencyEstimator(cfg.frequencyBuckets, cfg.frequencyAlpha);
  const logQ = (id: string) => freq.logQ(id);
  const rand = mulberry32(11 * seed);
  const epochs = SIZES[data.scenario].epochs;
  const total = units.length * epochs;
  const every = points > 0 ? Math.max(1, Math.ceil(total / points)) : Number.POSITIVE_INFINITY;
  const curve: CurvePoint[] = [];
  let seen = 0;
  let nextPoint = every;
  let trainMs = 0;
  let steps = 0;
  const point = () => {
    // the served score at the beta the trainer would choose now (validation requests)
    chooseBeta(model, logQ, data.validation, cfg.priorBetaGrid);
    curve.push({
      requestsSeen: Math.round((seen / units.length) * data.trainRequests),
      cand: evaluate(model, data.evalSet).recall_at_100_of_top10,
      ndcgTrue: evaluate(model, data.trueSet).ndcg_at_10,
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
  for (let e = 0; e < epochs; e++) {
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
  if (points > 0 && curve.at(-1)?.requestsSeen !== Math.round((seen / units.length) * data.trainRequests))
    point();
  return { model, freq, seconds: trainMs / 1000, steps, curve };
}

const ALL: LabelKind[] = ['pointwise', 'pairwise', 'listwise'];
const STUDENTS: [string, readonly LabelKind[] | 'clicks', boolean][] = [
  ['clicks-only', 'clicks', false],
  ['pointwise', ['pointwise'], false],
  ['pairwise', ['pairwise'], false],
  ['listwise', ['listwise'], false],
  ['all three', ALL, false],
  // the behaviour user tower (train.historyLength 20): recent positives pooled + user id + context
  ['all three + history', ALL, true],
];
const HISTORY_LENGTH = 20;
const KEY = new Set(['clicks-only', 'all three']);
/** Students trained on seed 1 (default: all). */
const ONLY = env.QUALITY_STUDENTS ? new Set(env.QUALITY_STUDENTS.split(',')) : null;
const HISTORY_WORLDS = new Set((env.QUALITY_HISTORY_WORLDS ?? 'realistic').split(','));

/** Every row of one world and seed (only the key rows after seed 1). */
function runWorld(
  scenario: Scenario,
  seed: number,
): { data: Data; rows: Row[]; curves: Record<string, CurvePoint[]> } {
  const tl = performance.now();
  const data = prepare(scenario, seed);
  const a = data.activity;
  console.log(
    `[${scenario} seed ${seed}] ${data.world.items} items, ${data.world.users} users, ${data.trainRequests} training / ${data.evalSet.length} evaluated / ${data.validation.length} validation requests; requests per user median ${a.median}, p90 ${a.p90}, max ${a.max}, mean ${a.mean.toFixed(1)}; prepared in ${((performance.now() - tl) / 1000).toFixed(1)} s (${elapsed()})`,
  );
  const rows: Row[] = [];
  const curves: Record<string, CurvePoint[]> = {};
  const full = seed === 1;
  if (full) {
    const untrained = modelFromConfig(cfg);
    for (const r of data.train) {
      if (r.kind !== 'listwise') continue;
      for (const it of r.value.items) untrained.itemRow(it.item_id);
    }
    rows.push({
      name: 'random',
      beta: 0,
      m: studentMetrics(data, untrained, new FrequencyEstimator(16, 0.01), 0),
    });
  }
  {
    const popular = new Set(
      [...data.clicks.entries()]
        .sort((x, y) => y[1] - x[1])
        .slice(0, 100)
        .map(([id]) => id),
    );
    rows.push({
      name: 'most-popular',
      m: staticMetrics(
        data,
        (_r, i) => data.clicks.get(i) ?? 0,
        () => popular,
        () => popular,
      ),
    });
  }
  for (const [name, kinds, withHistory] of STUDENTS) {
    if (!full && !KEY.has(name)) continue;
    if (ONLY !== null && !ONLY.has(name)) continue;
    if (withHistory && !HISTORY_WORLDS.has(scenario)) continue;
    const history = withHistory ? new HistoryStore({ length: HISTORY_LENGTH, topK: 5 }) : undefined;
    const units = unitsOf(data, kinds, history);
    const { model, freq, seconds, steps, curve } = trainStudent(
      data,
      units,
      seed,
      full ? POINTS : 0,
      history,
    );
    if (full) curves[name] = curve;
    const note = `${units.length} units × ${SIZES[scenario].epochs} epochs, ${steps} steps, ${seconds.toFixed(1)} s of training`;
    const chosen = chooseBeta(model, (id) => freq.logQ(id), data.validation, cfg.priorBetaGrid);
    rows.push({ name, beta: 0, m: studentMetrics(data, model, freq, 0), note });
    rows.push({
      name,
      beta: chosen.beta,
      m: studentMetrics(data, model, freq, chosen.beta),
      note: `validation recall by beta ${JSON.stringify(chosen.recall, (_k, v) => (typeof v === 'number' ? Number(v.toFixed(3)) : v))}`,
    });
    const [r0, rb] = rows.slice(-2) as [Row, Row];
    console.log(
      `[${scenario} seed ${seed}] ${name}: cand recall ${r0.m.cand.toFixed(3)} (β=0) / ${rb.m.cand.toFixed(3)} (β=${chosen.beta}), catalog ${r0.m.catalog.toFixed(3)} / ${rb.m.catalog.toFixed(3)}, NDCG true ${r0.m.ndcgTrue.toFixed(3)} / ${rb.m.ndcgTrue.toFixed(3)}; ${note} (${elapsed()})`,
    );
  }
  if (full) {
    const ts = performance.now();
    let sink = 0;
    for (const r of data.evalSet) {
      const u = userIndex(r.user);
      for (const id of r.teacher) sink += trueAffinity(data.world, u, itemIndex(id));
    }
    const ms = (performance.now() - ts) / data.evalSet.length;
    if (sink === 42) console.log('');
    rows.push({
      name: 'teacher',
      m: { ...staticMetrics(data, (r, i) => -r.teacher.indexOf(i), null, null), scoringMs: ms },
    });
  }
  {
    const oracle = oracleSets(data);
    const { world } = data;
    const byAffinity = data.evalSet.map((r) => {
      const u = userIndex(r.user);
      const s = new Float64Array(world.items);
      for (let j = 0; j < world.items; j++) s[j] = trueAffinity(world, u, j);
      return new Set(topIndices(s, 100).map((j) => `i${j}`));
    });
    const m = staticMetrics(
      data,
      (r, i) => trueAffinity(world, userIndex(r.user), itemIndex(i)),
      oracle.cand,
      (k) => byAffinity[k] as Set<string>,
    );
    rows.push({ name: 'oracle', m: { ...m, scoringMs: oracle.ms }, note: `${ORACLE_DRAWS} draws per user` });
  }
  const fixed = rows.filter((r) => r.name === 'most-popular' || r.name === 'oracle');
  console.log(
    `[${scenario} seed ${seed}] ${fixed.map((r) => `${r.name}: cand recall ${r.m.cand.toFixed(3)}, catalog ${r.m.catalog.toFixed(3)}, NDCG true ${r.m.ndcgTrue.toFixed(3)}`).join('; ')} — done (${elapsed()})`,
  );
  return { data, rows, curves };
}

const label = (r: Row) => (r.beta === undefined ? r.name : `${r.name} (β=${r.beta})`);
const f3 = (x: number) => (Number.isNaN(x) ? '–' : x.toFixed(3));

function table(rows: readonly Row[], base: number): string[] {
  const lines = [
    '| model | cand recall | × most-popular | catalog recall | NDCG@10 true | NDCG@10 teacher | click AUC | scoring / request |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows)
    lines.push(
      `| ${label(r)} | ${f3(r.m.cand)} | ${(r.m.cand / base).toFixed(2)} | ${f3(r.m.catalog)} | ${f3(r.m.ndcgTrue)} | ${f3(r.m.ndcgTeacher)} | ${f3(r.m.auc)} | ${r.m.scoringMs < 0.001 ? '~0' : `${r.m.scoringMs.toFixed(3)} ms`} |`,
    );
  return lines;
}

const stat = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
};

const figures: Record<string, Figure> = {};
const md: string[] = [];
const panels: string[] = [];
const colors: Record<string, string> = {
  'clicks-only': '#7f7f7f',
  pointwise: '#1f77b4',
  pairwise: '#ff7f0e',
  listwise: '#2ca02c',
  'all three': '#d62728',
  'all three + history': '#8c564b',
  'most-popular': '#000000',
  oracle: '#9467bd',
};
for (const scenario of WORLDS) {
  const perSeed: Row[][] = [];
  let first: { data: Data; rows: Row[]; curves: Record<string, CurvePoint[]> } | undefined;
  for (let seed = SEED_FROM; seed <= SEEDS; seed++) {
    const r = runWorld(scenario, seed);
    perSeed.push(r.rows);
    first ??= r;
  }
  if (first === undefined) continue;
  const pop = first.rows.find((r) => r.name === 'most-popular') as Row;
  const oracle = first.rows.find((r) => r.name === 'oracle') as Row;
  const a = first.data.activity;
  md.push(
    `### ${scenario} world (seed ${SEED_FROM})`,
    '',
    `${first.data.world.items.toLocaleString('en-US')} items, ${first.data.world.users.toLocaleString('en-US')} users, ${first.data.trainRequests.toLocaleString('en-US')} training requests (requests per user: median ${a.median}, p90 ${a.p90}, max ${a.max}), ${first.data.evalSet.length} evaluated, ${first.data.validation.length} validation; ${SIZES[scenario].epochs} epoch(s).`,
    '',
    ...table(first.rows, pop.m.cand),
    '',
  );
  // seed-to-seed spread of the key rows
  const names = [...new Set(perSeed.flat().map(label))];
  const spread = [
    `### ${scenario} world: seeds ${SEED_FROM}–${SEEDS} (mean ± sd [min–max]; each seed a new world, labels and training)`,
    '',
    '| model | cand recall | × most-popular | catalog recall | NDCG@10 true |',
    '|---|---|---|---|---|',
  ];
  for (const name of names) {
    const rs = perSeed
      .map((rows) => ({
        row: rows.find((r) => label(r) === name),
        pop: rows.find((r) => r.name === 'most-popular'),
      }))
      .filter((x): x is { row: Row; pop: Row } => x.row !== undefined && x.pop !== undefined);
    if (rs.length < 2) continue;
    const s = (f: (x: { row: Row; pop: Row }) => number) => {
      const st = stat(rs.map(f));
      return `${st.mean.toFixed(3)} ± ${st.sd.toFixed(3)} [${st.min.toFixed(3)}–${st.max.toFixed(3)}]`;
    };
    spread.push(
      `| ${name} | ${s((x) => x.row.m.cand)} | ${s((x) => x.row.m.cand / x.pop.m.cand)} | ${s((x) => x.row.m.catalog)} | ${s((x) => x.row.m.ndcgTrue)} |`,
    );
    const key = `${scenario}.${name.replace(/[^a-z0-9]+/gi, '_')}`;
    const c = stat(rs.map((x) => x.row.m.cand));
    figures[`${key}.cand_recall.seeds`] = {
      value: Number(c.mean.toFixed(4)),
      unit: 'fraction',
      note: `${rs.length} seeds, sd ${c.sd.toFixed(4)}, range ${c.min.toFixed(4)}–${c.max.toFixed(4)}`,
    };
  }
  md.push(...spread, '');
  for (const r of first.rows) {
    const key = `${scenario}.${label(r).replace(/[^a-z0-9]+/gi, '_')}`;
    figures[`${key}.cand_recall`] = {
      value: Number(r.m.cand.toFixed(4)),
      unit: 'fraction',
      baseline: Number(pop.m.cand.toFixed(4)),
      ratio: Number((r.m.cand / pop.m.cand).toFixed(3)),
      ...(r.note ? { note: r.note } : {}),
    };
    figures[`${key}.catalog_recall`] = {
      value: Number(r.m.catalog.toFixed(4)),
      unit: 'fraction',
      baseline: Number(pop.m.catalog.toFixed(4)),
    };
    figures[`${key}.ndcg_at_10_true`] = { value: Number(r.m.ndcgTrue.toFixed(4)), unit: 'ndcg' };
    figures[`${key}.ndcg_at_10_teacher`] = { value: Number(r.m.ndcgTeacher.toFixed(4)), unit: 'ndcg' };
    if (!Number.isNaN(r.m.auc)) figures[`${key}.auc`] = { value: Number(r.m.auc.toFixed(4)), unit: 'auc' };
    figures[`${key}.scoring_ms_per_request`] = { value: Number(r.m.scoringMs.toFixed(4)), unit: 'ms' };
  }
  // the plot: students along their training, most-popular and the oracle as flat lines
  const xs = Object.values(first.curves).flatMap((c) => c.map((p) => p.requestsSeen));
  const xMax = Math.max(1, ...xs);
  const flat = (name: string, y: number) => ({
    name,
    color: colors[name] ?? '#000',
    points: [
      { x: 0, y },
      { x: xMax, y },
    ],
  });
  const rand = first.rows.find((r) => r.name === 'random');
  panels.push(
    lineChartSvg(
      [
        ...Object.entries(first.curves).map(([name, c]) => ({
          name,
          color: colors[name] ?? '#000',
          points: [{ x: 0, y: rand?.m.cand ?? 0 }].concat(c.map((p) => ({ x: p.requestsSeen, y: p.cand }))),
        })),
        flat('most-popular', pop.m.cand),
        flat('oracle', oracle.m.cand),
      ],
      {
        title: `${scenario} world: teacher top 10 (candidate list) in student top 100 of ${first.data.world.items.toLocaleString('en-US')} items`,
        xLabel: 'training requests seen (epochs × requests); held-out set fixed',
        yLabel: 'recall',
      },
    ),
  );
}

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="${420 * panels.length}" viewBox="0 0 720 ${420 * panels.length}">\n${panels.map((p, i) => p.replace('<svg ', `<svg x="0" y="${420 * i}" `)).join('')}</svg>\n`;
const svgPath = new URL(`./results/quality${TAG}.svg`, import.meta.url);
writeFileSync(svgPath, svg);
writeFileSync(new URL(`./results/quality${TAG}.md`, import.meta.url), `${md.join('\n')}\n`);
console.log(`\n${md.join('\n')}\n`);
figures.run = {
  value: Number(((performance.now() - t0) / 1000).toFixed(0)),
  unit: 's',
  note: `worlds ${WORLDS.join(',')}, ${SEEDS} seeds, ${ORACLE_DRAWS} oracle draws per user`,
};
writeResult(`quality${TAG}`, figures, { backend: backend.name });
console.log(`plot: ${svgPath.pathname}`);
