/**
 * `rankdistill demo`: the whole job on the embedded default (files, no Kafka), in one process —
 *
 *   simulate a seeded world ─► <out>/sim            (ranker outputs + impressions, ground truth)
 *   label (file transport)  ─► <out>/labels         (pointwise / pairwise / listwise + dead letters)
 *   train the student       ─► <out>/checkpoints    (every checkpoint evaluated on the held-out slice)
 *   publish snapshots       ─► <out>/snapshots      (gated, registered, checksummed)
 *   report                  ─► <out>/report.txt, report.json, quality.svg
 *
 * The report compares the student's agreement with the teacher before training (the same model
 * at its random initialisation, over the same vocabulary) and after, on the same held-out requests,
 * against two references: most-popular (the 100 items clicked most in the training labels) and the
 * ceiling of the world (src/sim/oracle.ts: the retriever that knows the true affinities and the
 * candidate mix), drawn as flat lines in the plot.
 * Progress goes to stderr: one rewritten line on a terminal, plain lines otherwise.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { loadConfig } from '../../config/index.ts';
import type { Config, TrainConfig } from '../../config/schema.ts';
import { RankdistillError } from '../../errors.ts';
import type { FileFormat } from '../../io/files.ts';
import { FileSimSink } from '../../io/sim-sink.ts';
import { labelFiles } from '../../pipeline/label-files.ts';
import type { OutcomeCounts } from '../../pipeline/outcomes.ts';
import { DEFAULT_SIM, type ExpectedOutcomes, expectedOutcomes, FATES } from '../../sim/generate.ts';
import { CandidateSource } from '../../sim/mix.ts';
import { Oracle } from '../../sim/oracle.ts';
import { type SimSink, simulate } from '../../sim/simulate.ts';
import { createWorld, userIndex } from '../../sim/world.ts';
import type { PublishResult } from '../../snapshots/publisher.ts';
import { registryPathOf } from '../../snapshots/registry.ts';
import { loadSnapshotDir } from '../../snapshots/store.ts';
import { evaluateSnapshot, openTrainerSnapshots } from '../../snapshots/trainer.ts';
import { type EvalMetrics, evaluate } from '../../train/eval.ts';
import type { EvalRequest } from '../../train/examples.ts';
import { isHeldOut } from '../../train/hash.ts';
import type { StudentModel } from '../../train/model.ts';
import { fileBatches, labelFiles as trainLabelFiles } from '../../train/sources.ts';
import { modelFromConfig, Trainer } from '../../train/trainer.ts';
import { positiveInt } from '../options.ts';
import { lineChartSvg } from '../plot.ts';

/** Defaults chosen so the demo finishes in a few minutes on a 2-core machine. */
export const DEMO_DEFAULTS = {
  requests: 20_000,
  /** Fewer candidates per request than the simulator's 200: labels and training scale with it. */
  candidates: 50,
  out: './demo-out',
  /** Checkpoints (= snapshot candidates, = points of the quality curve) over the run. */
  checkpoints: 8,
};

interface DemoOpts {
  requests: number;
  users?: number;
  items?: number;
  candidates: number;
  seed: number;
  out: string;
  format: FileFormat;
  epochs: number;
}

type Agreement = { recall_at_100_of_top10: number; ndcg_at_10: number; eval_requests: number };

/** The machine-readable report (report.json). */
export interface DemoReport {
  format: 'rankdistill-demo-report/1';
  world: { seed: number; requests: number; users: number; items: number; candidates: number };
  /**
   * `fates`: what the simulator drew per request. `expected`: the outcome counts its truth
   * prescribes for a correct labeler (a duplicate request is also joined once, a malformed one
   * leaves its partner unmatched or an orphan), which `label.outcomes` must equal.
   */
  simulate: { seconds: number; records: number; fates: Record<string, number>; expected: ExpectedOutcomes };
  label: {
    seconds: number;
    outcomes: OutcomeCounts;
    labels: number;
    labelsPerSecond: number;
    inputRecordsPerSecond: number;
  };
  train: {
    seconds: number;
    backend: string;
    examples: number;
    steps: number;
    records: number;
    examplesPerSecond: number;
    checkpoints: number;
  };
  /**
   * `after` is the CURRENT snapshot's agreement (version `afterVersion`), the model that serves;
   * `finalModel` is the last trained model's, which the gate may have rejected.
   */
  agreement: { before: Agreement; after: Agreement; afterVersion: number | null; finalModel: Agreement };
  /** Recall of the teacher's top 10 in the top 100 of the references, on the same requests. */
  references: { mostPopular: number; ceiling: number; oracleDraws: number };
  /** Held-out agreement at each checkpoint; `eval_requests`: the set's size then (it grows at first). */
  curve: { examples: number; recall_at_100_of_top10: number; ndcg_at_10: number; eval_requests: number }[];
  /** Live quality (progressive validation) per serving snapshot version: training requests scored before training. */
  live: {
    version: number;
    requests: number;
    recall: number;
    ndcg: number;
    popRecall: number;
    popNdcg: number;
  }[];
  snapshots: {
    dir: string;
    registry: string;
    published: number[];
    rejected: { version: number; reasons: string[] }[];
    current: number | null;
  };
  files: { report: string; json: string; plot: string };
  /** Commands that work on this output, from the directory the demo ran in (printed last). */
  next: string[];
  seconds: number;
}

/** Progress on stderr: a rewritten line on a terminal, plain lines (at most one per 5 s) otherwise. */
class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private last = 0;
  private shown = false;

  update(text: string): void {
    const now = Date.now();
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns ?? 100) - 1)}`);
      this.shown = true;
    } else if (now - this.last >= 5000) {
      process.stderr.write(`${text}\n`);
      this.last = now;
    }
  }

  line(text: string): void {
    if (this.tty && this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
    process.stderr.write(`${text}\n`);
    this.last = Date.now();
  }
}

/**
 * The untrained student: the same model at its random initialisation, knowing the same users and
 * items (with the same item features) as `trained` — the "before" of the report.
 *
 * @example
 * const before = evaluate(untrainedTwin(trainer.model, cfg.train), trainer.heldOut.requests());
 */
export function untrainedTwin(trained: StudentModel, c: TrainConfig): StudentModel {
  const m = modelFromConfig(c);
  const F = c.itemFeatureBuckets;
  trained.items.ids.forEach((id, r) => {
    m.itemRow(id, F > 0 ? trained.itemFeatures.subarray(r * F, r * F + F) : undefined);
  });
  for (const id of trained.users.ids) m.users.row(id);
  return m;
}

const agreement = (m: Record<string, number | undefined>): Agreement => ({
  recall_at_100_of_top10: m.recall_at_100_of_top10 ?? 0,
  ndcg_at_10: m.ndcg_at_10 ?? 0,
  eval_requests: m.eval_requests ?? 0,
});

function dirBytes(dir: string): number {
  try {
    return readdirSync(dir).reduce((s, n) => s + statSync(join(dir, n)).size, 0);
  } catch {
    return 0;
  }
}

const secs = (ms: number) => Math.round(ms / 10) / 100;
const fmt = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : `${Math.round(x)}`;

/**
 * Runs the demo; writes the report files and returns the report.
 *
 * @example
 * const report = await runDemo({ ...opts, requests: 2000 }, loadConfig());
 */
export async function runDemo(o: DemoOpts, base: Config): Promise<DemoReport> {
  const started = Date.now();
  const progress = new Progress();
  const out = resolve(o.out);
  const dirs = {
    sim: join(out, 'sim'),
    labels: join(out, 'labels'),
    checkpoints: join(out, 'checkpoints'),
    snapshots: join(out, 'snapshots'),
  };
  // a fresh run every time (the trainer would otherwise resume): only the demo's own outputs go
  for (const d of Object.values(dirs)) rmSync(d, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });

  // 1. simulate
  const t0 = Date.now();
  const fileSink = new FileSimSink(dirs.sim, o.format);
  let written = 0;
  const sink: SimSink = {
    encoding: fileSink.encoding,
    write: (e) => {
      fileSink.write(e);
      if (++written % 5000 === 0) progress.update(`simulate: ${written} records`);
    },
    finish: (t, w) => fileSink.finish(t, w),
    abort: () => fileSink.abort(),
  };
  const sim = await simulate(
    {
      seed: o.seed,
      requests: o.requests,
      candidates: o.candidates,
      ...(o.users !== undefined ? { users: o.users } : {}),
      ...(o.items !== undefined ? { items: o.items } : {}),
      windowMs: base.join.windowMs,
      allowedLatenessMs: base.join.allowedLatenessMs,
    },
    sink,
  );
  const simSeconds = secs(Date.now() - t0);
  const p = sim.truth.params;
  progress.line(
    `simulate: ${sim.truth.counts.requests} requests (${p.users} users, ${p.items} items, ${p.candidates} candidates) → ${written} records in ${simSeconds} s`,
  );

  // 2. label (file transport)
  const t1 = Date.now();
  const ticker = setInterval(
    () =>
      progress.update(
        `label: ${secs(Date.now() - t1).toFixed(0)} s, ${(dirBytes(dirs.labels) / 1e6).toFixed(1)} MB of labels written`,
      ),
    500,
  );
  let labeled: Awaited<ReturnType<typeof labelFiles>>;
  try {
    labeled = await labelFiles({
      inDir: dirs.sim,
      outDir: dirs.labels,
      format: o.format,
      config: base,
      drain: true,
    });
  } finally {
    clearInterval(ticker);
  }
  const labelSeconds = secs(Date.now() - t1);
  const c = labeled.counts;
  const labels = c.pointwise + c.pairwise + c.listwise;
  progress.line(
    `label: ${c.joined} joined, ${c.unmatched} unmatched, ${c.deadLetters} dead letters → ${labels} labels in ${labelSeconds} s (${fmt(labels / Math.max(labelSeconds, 0.001))} labels/s)`,
  );

  // 3. train + 4. snapshots
  const t2 = Date.now();
  const cfg: Config = {
    ...base,
    snapshots: { ...base.snapshots, dir: dirs.snapshots, registry: join(dirs.snapshots, 'registry.sqlite') },
  };
  // about DEMO_DEFAULTS.checkpoints checkpoints over the run: units per request ≈ one per pointwise
  // candidate, per pair (≤ pairwise.maxPairs) and one list; held-out requests are not trained
  const pairs = Math.min(base.labels.pairwise.maxPairs, base.labels.pairwise.k * base.labels.pairwise.m);
  const perRequest =
    (base.labels.pointwise.enabled ? p.candidates : 0) +
    (base.labels.pairwise.enabled ? pairs : 0) +
    (base.labels.listwise.enabled ? 1 : 0);
  const expected = Math.max(1, c.listwise || c.pointwise || c.pairwise) * perRequest * o.epochs;
  cfg.train = {
    ...base.train,
    checkpointEveryExamples: Math.max(
      base.train.batchSize,
      Math.ceil((expected * (1 - base.train.heldOutPercent / 100)) / DEMO_DEFAULTS.checkpoints),
    ),
    checkpointEveryMs: 24 * 3600_000,
  };
  const results: PublishResult[] = [];
  const s = openTrainerSnapshots(cfg, { out: dirs.checkpoints, onResult: (r) => results.push(r) });
  const gauge = cfg.train.gauge.share > 0 ? { gauge: s.gauge } : {};
  const curve: DemoReport['curve'] = [];
  let trainer: Trainer | undefined;
  trainer = await Trainer.open({
    config: cfg.train,
    out: dirs.checkpoints,
    logEverySteps: 5,
    ...gauge,
    onEvent: (e) => {
      if (e.type === 'step')
        progress.update(
          `train: ${fmt(e.examples)} / ~${fmt(expected)} examples, loss ${e.loss.toFixed(4)}, ${results.length} snapshots`,
        );
      if (e.type === 'checkpoint' && trainer) {
        s.snaps.onCheckpoint(trainer.model, e.dir, e.metrics);
        curve.push({ examples: e.examples, ...pick(e.metrics), eval_requests: e.metrics.eval_requests ?? 0 });
        progress.line(
          `checkpoint ${e.seq}: ${fmt(e.examples)} examples, recall@100 of teacher top-10 ${(e.metrics.recall_at_100_of_top10 ?? 0).toFixed(3)}, NDCG@10 ${(e.metrics.ndcg_at_10 ?? 0).toFixed(3)}`,
        );
      }
    },
  });
  let summary: Awaited<ReturnType<Trainer['run']>>;
  try {
    summary = await trainer.run(
      fileBatches(trainLabelFiles([dirs.labels]), {
        epochs: o.epochs,
        startEpoch: 0,
        positions: [],
        chunk: 64,
      }),
    );
    await s.snaps.drain();
  } catch (e) {
    await s.close();
    throw e;
  }
  const trainSeconds = secs(Date.now() - t2);
  const heldOut = trainer.heldOut.requests();
  const before = agreement(evaluate(untrainedTwin(trainer.model, cfg.train), heldOut));
  const finalModel = agreement(trainer.evaluate());
  // what serves is the current snapshot, not the last model trained (the gate may have rejected it)
  const currentVersion = s.publisher.latestPublished()?.version ?? null;
  let after = finalModel;
  try {
    if (currentVersion !== null) {
      const m = evaluateSnapshot(s.publisher.loadSnapshot(currentVersion), heldOut);
      if (m !== null) after = agreement(m as unknown as EvalMetrics);
    }
  } finally {
    await s.close();
  }
  const live = [...s.gauge.byVersion()].map(([version, v]) => ({ version, ...v }));
  progress.update('references: most-popular and the ceiling of the world');
  const references = await referenceRecall(dirs.labels, heldOut, cfg.train, p);
  curve.unshift({
    examples: 0,
    recall_at_100_of_top10: before.recall_at_100_of_top10,
    ndcg_at_10: before.ndcg_at_10,
    eval_requests: before.eval_requests,
  });
  const published = results.filter((r) => r.status === 'published').map((r) => r.version);
  const rejected = results
    .filter((r) => r.status === 'rejected')
    .map((r) => ({ version: r.version, reasons: r.reasons }));

  // 5. report
  const files = {
    report: join(out, 'report.txt'),
    json: join(out, 'report.json'),
    plot: join(out, 'quality.svg'),
  };
  const report: DemoReport = {
    format: 'rankdistill-demo-report/1',
    world: { seed: o.seed, requests: o.requests, users: p.users, items: p.items, candidates: p.candidates },
    simulate: {
      seconds: simSeconds,
      records: written,
      fates: Object.fromEntries(FATES.map((f) => [f, sim.truth.counts.fates[f]])),
      expected: expectedOutcomes(sim.truth),
    },
    label: {
      seconds: labelSeconds,
      outcomes: c,
      labels,
      labelsPerSecond: labels / Math.max(labelSeconds, 0.001),
      inputRecordsPerSecond: (c.rankerOutputsIn + c.impressionsIn) / Math.max(labelSeconds, 0.001),
    },
    train: {
      seconds: trainSeconds,
      backend: trainer.backend.name,
      examples: summary.examples,
      steps: summary.steps,
      records: summary.records,
      examplesPerSecond: summary.examples / Math.max(trainSeconds, 0.001),
      checkpoints: summary.checkpoints,
    },
    agreement: { before, after, afterVersion: currentVersion, finalModel },
    references,
    curve,
    live,
    snapshots: {
      dir: dirs.snapshots,
      registry: registryPathOf(cfg.snapshots),
      published,
      rejected,
      current: published.at(-1) ?? null,
    },
    files,
    next: [],
    seconds: secs(Date.now() - started),
  };
  writeFileSync(
    files.plot,
    lineChartSvg(
      [
        {
          name: 'recall of teacher top-10 in student top-100',
          color: '#1f77b4',
          points: curve.map((q) => ({ x: q.examples, y: q.recall_at_100_of_top10 })),
        },
        {
          name: 'NDCG@10 against teacher grades',
          color: '#d62728',
          points: curve.map((q) => ({ x: q.examples, y: q.ndcg_at_10 })),
        },
        ...[
          { name: 'recall: most-popular top-100', color: '#000000', y: references.mostPopular },
          {
            name: 'recall: ceiling (true affinities + candidate mix)',
            color: '#9467bd',
            y: references.ceiling,
          },
        ].map((r) => ({
          name: r.name,
          color: r.color,
          points: [
            { x: 0, y: r.y },
            { x: Math.max(1, curve.at(-1)?.examples ?? 1), y: r.y },
          ],
        })),
      ],
      {
        title: `Student agreement with the teacher (held-out requests, ${p.items} items)${evalSetNote(curve)}`,
        xLabel: 'training examples seen',
        yLabel: 'agreement',
      },
    ),
  );
  report.next = nextCommands(report);
  const text = reportText(report);
  writeFileSync(files.report, text);
  writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

/** A path as the user would type it from the current directory, shell-quoted when it needs to be. */
function shellPath(p: string): string {
  const rel = relative(process.cwd(), p);
  const shown = rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? p : rel;
  return /^[\w./-]+$/.test(shown) ? shown : `'${shown.replaceAll("'", "'\\''")}'`;
}

/** The commands to run next on the demo's output: exact, from the current directory. */
function nextCommands(r: DemoReport): string[] {
  const cli = `node ${shellPath(fileURLToPath(new URL('../../../bin/rankdistill.mjs', import.meta.url)))}`;
  const snaps = `--snapshots ${shellPath(r.snapshots.dir)}`;
  const out = [`${cli} snapshots list ${snaps}`];
  if (r.snapshots.current !== null) {
    const v = r.snapshots.current;
    const user = loadSnapshotDir(join(r.snapshots.dir, `v${v}`)).table('users')?.ids[0] ?? 'u0';
    out.push(`${cli} snapshots show v${v} ${snaps}`, `${cli} recall ${snaps} --user ${user} --k 10`);
  }
  return out;
}

/** Whether the labeler's outcome counts are the ones the simulator's truth prescribes. */
function agrees(r: DemoReport): boolean {
  return Object.entries(r.simulate.expected).every(
    ([k, v]) => r.label.outcomes[k as keyof ExpectedOutcomes] === v,
  );
}

/**
 * Recall of the teacher's top 10 in the top 100 of most-popular (items by clicks in the training
 * pointwise labels: held-out and validation requests excluded) and of the world's oracle.
 */
async function referenceRecall(
  labelsDir: string,
  heldOut: readonly EvalRequest[],
  c: TrainConfig,
  p: SimTruthParams,
): Promise<DemoReport['references']> {
  const clicks = new Map<string, number>();
  for await (const b of fileBatches(trainLabelFiles([labelsDir]), {
    epochs: 1,
    startEpoch: 0,
    positions: [],
    chunk: 1024,
  }))
    for (const r of b.labels) {
      if (r.kind !== 'pointwise') continue;
      const id = r.value.request_id;
      if (isHeldOut(id, c.heldOutPercent) || isHeldOut(id, c.validationPercent, c.heldOutPercent)) continue;
      for (const it of r.value.items)
        if (it.clicked === true) clicks.set(it.item_id, (clicks.get(it.item_id) ?? 0) + 1);
    }
  const popular = new Set(
    [...clicks.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, 100)
      .map(([id]) => id),
  );
  const world = createWorld({
    seed: p.seed,
    users: p.users,
    items: p.items,
    dim: p.dim,
    categories: p.categories,
    zipf: p.zipf,
  });
  const oracleDraws = 200;
  const oracle = new Oracle(new CandidateSource(world, p.scenario, p.seed), {
    draws: oracleDraws,
    candidates: p.candidates,
    teacherNoise: p.teacherNoise,
    seed: p.seed,
  });
  let pop = 0;
  let ceiling = 0;
  for (const r of heldOut) {
    const top = r.teacher.slice(0, 10);
    const n = Math.max(1, top.length);
    pop += top.filter((id) => popular.has(id)).length / n;
    const u = userIndex(r.user);
    if (u >= 0) {
      const set = oracle.retrieve(u);
      ceiling += top.filter((id) => set.has(id)).length / n;
    }
  }
  const m = Math.max(1, heldOut.length);
  return { mostPopular: pop / m, ceiling: ceiling / m, oracleDraws };
}

type SimTruthParams = Awaited<ReturnType<typeof simulate>>['truth']['params'];

/** What the plot says of its held-out set: fixed, or growing over the first points. */
function evalSetNote(curve: DemoReport['curve']): string {
  const sizes = curve.slice(1).map((q) => q.eval_requests);
  const last = sizes.at(-1);
  if (last === undefined) return '';
  const firstFull = sizes.indexOf(last);
  return firstFull <= 0
    ? `; same ${last} requests at every point`
    : `; set grows ${sizes[0]}→${last} over the first ${firstFull + 1} points (gate compares like with like)`;
}

function pick(m: Record<string, number>): { recall_at_100_of_top10: number; ndcg_at_10: number } {
  return { recall_at_100_of_top10: m.recall_at_100_of_top10 ?? 0, ndcg_at_10: m.ndcg_at_10 ?? 0 };
}

/** The text report (report.txt, also printed). */
export function reportText(r: DemoReport): string {
  const c = r.label.outcomes;
  const w = r.world;
  const a = r.agreement;
  const f4 = (x: number) => x.toFixed(4);
  const delta = (x: number, y: number) => `${y >= x ? '+' : ''}${(y - x).toFixed(4)}`;
  const lines = [
    `rankdistill demo — seed ${w.seed}, ${w.requests} requests, ${w.users} users, ${w.items} items, ${w.candidates} candidates per request`,
    '',
    `simulate  ${r.simulate.records} records in ${r.simulate.seconds} s; fates: ${Object.entries(
      r.simulate.fates,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `          a correct labeler must count (truth): ${Object.entries(r.simulate.expected)
      .map(([k, v]) => `${k} ${v}`)
      .join(
        ', ',
      )} (a duplicate request also joins once; a malformed record leaves its partner unmatched or an orphan)`,
    `label     outcomes: ${agrees(r) ? 'as the truth prescribes' : 'DIFFER from the truth'}: joined ${c.joined}, unmatched ${c.unmatched} (labelled without clicks), orphans ${c.orphans}, late ${c.late}, duplicates ${c.duplicates}, malformed ${c.malformed}, invalid ${c.invalid} → dead letters ${c.deadLetters}`,
    `          labels: ${r.label.labels} (pointwise ${c.pointwise}, pairwise ${c.pairwise}, listwise ${c.listwise}) in ${r.label.seconds} s = ${fmt(r.label.labelsPerSecond)} labels/s (${fmt(r.label.inputRecordsPerSecond)} input records/s)`,
    `train     ${r.train.examples} examples (${r.train.records} label records, ${r.train.steps} steps) in ${r.train.seconds} s = ${fmt(r.train.examplesPerSecond)} examples/s on ${r.train.backend}; ${r.train.checkpoints} checkpoints`,
    '',
    `agreement with the teacher on ${a.after.eval_requests} held-out requests   untrained   ${a.afterVersion === null ? 'final model' : `current v${a.afterVersion}`.padStart(11)}   change`,
    `  recall of teacher top-10 in student top-100 (catalog) ${f4(a.before.recall_at_100_of_top10).padStart(9)}   ${f4(a.after.recall_at_100_of_top10).padStart(9)}   ${delta(a.before.recall_at_100_of_top10, a.after.recall_at_100_of_top10)}`,
    `  NDCG@10 of the candidates against teacher grades    ${f4(a.before.ndcg_at_10).padStart(9)}   ${f4(a.after.ndcg_at_10).padStart(9)}   ${delta(a.before.ndcg_at_10, a.after.ndcg_at_10)}`,
    ...(a.afterVersion !== null &&
    (a.finalModel.recall_at_100_of_top10 !== a.after.recall_at_100_of_top10 ||
      a.finalModel.ndcg_at_10 !== a.after.ndcg_at_10)
      ? [
          `  (the last model trained, not serving: recall ${f4(a.finalModel.recall_at_100_of_top10)}, NDCG@10 ${f4(a.finalModel.ndcg_at_10)})`,
        ]
      : []),
    '',
    `the ${a.afterVersion === null ? 'final model' : `current snapshot v${a.afterVersion}`}'s recall against the references on the same requests`,
    `  most-popular (100 most clicked items in the training labels)   ${f4(r.references.mostPopular)}   student ${(a.after.recall_at_100_of_top10 / Math.max(1e-9, r.references.mostPopular)).toFixed(2)}× of it`,
    `  ceiling (knows the true affinities and the candidate mix)      ${f4(r.references.ceiling)}   student at ${((100 * a.after.recall_at_100_of_top10) / Math.max(1e-9, r.references.ceiling)).toFixed(0)}% of it`,
    `  (the ceiling: ${r.references.oracleDraws} simulated requests per user, the 100 items most often in the teacher's top 10 — no retriever that does not see the request's candidate list can do much better)`,
    ...(r.live.length === 0
      ? []
      : [
          '',
          'live quality (progressive validation: training requests scored by the serving snapshot before training on them)',
          ...r.live.map(
            (l) =>
              `  v${l.version} on ${l.requests} requests: recall ${f4(l.recall)} NDCG@10 ${f4(l.ndcg)}   most-popular: recall ${f4(l.popRecall)} NDCG@10 ${f4(l.popNdcg)}`,
          ),
        ]),
    '',
    `snapshots published ${r.snapshots.published.length} (${r.snapshots.published.map((v) => `v${v}`).join(', ') || 'none'}), rejected ${r.snapshots.rejected.length}${r.snapshots.rejected.map((x) => `; v${x.version}: ${x.reasons.join(', ')}`).join('')}; current ${r.snapshots.current === null ? 'none' : `v${r.snapshots.current}`}`,
    `          ${r.snapshots.dir}`,
    `files     ${r.files.report}, ${r.files.json}, ${r.files.plot}`,
    `total     ${r.seconds} s`,
    '',
    'next      (from this directory; or set RANKDISTILL_SNAPSHOTS__DIR instead of --snapshots)',
    ...r.next.map((c) => `  ${c}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** Registers `rankdistill demo`. */
export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'the whole job on files, no Kafka: simulate a world, label, train the student, publish snapshots, report + quality plot',
    )
    .option('--requests <n>', 'requests to simulate', positiveInt, DEMO_DEFAULTS.requests)
    .option('--users <n>', `users (default ${DEFAULT_SIM.users})`, positiveInt)
    .option('--items <n>', `catalog items (default ${DEFAULT_SIM.items})`, positiveInt)
    .option(
      '--candidates <n>',
      'candidates the teacher scores per request',
      positiveInt,
      DEMO_DEFAULTS.candidates,
    )
    .option('--seed <n>', 'random seed of the world and traffic', positiveInt, DEFAULT_SIM.seed)
    .option('--epochs <n>', 'passes of the trainer over the labels', positiveInt, 1)
    .option(
      '--out <dir>',
      'output directory (its sim/, labels/, checkpoints/, snapshots/ are replaced)',
      DEMO_DEFAULTS.out,
    )
    .addOption(
      new Option('--format <format>', 'file format of records and labels')
        .choices(['avro', 'ndjson'])
        .default('avro'),
    )
    .action(async (opts: DemoOpts, cmd: Command) => {
      const config = loadConfig({ file: cmd.optsWithGlobals<{ config?: string }>().config });
      if (existsSync(opts.out) && !statSync(opts.out).isDirectory())
        throw new RankdistillError('USAGE', `--out ${opts.out}: expected a directory, found a file`);
      const report = await runDemo(opts, config);
      console.log(`\n${reportText(report)}`);
    });
}
