/**
 * NDJSON label output (issue #26): CPU per request of writing the label records of real simulator
 * requests as NDJSON lines, and the NDJSON files → files replay they are part of.
 *
 * - writers: the same label records (labelRequest on the first BENCH_LABEL_JSON_SAMPLE [1,000]
 *   joined requests) written by `Buffer.from(JSON.stringify(r))`, by the generic jsonBytes
 *   (src/io/json-bytes.ts, the replay's writer before src/labels/json.ts) and by labelJson;
 *   rounds alternated, least CPU per request kept.
 * - replay: `replay()` NDJSON files → NDJSON files (1 partition, 1 thread) against `readRecords`
 *   of both input files (read + decode), alternated, CPU seconds and wall seconds of each.
 *
 * Workload: the simulator, seed 3, BENCH_LABEL_JSON_REQUESTS [10,000] requests of 200 candidates,
 * default fates. BENCH_LABEL_JSON_TRIALS [3] replay trials. Writes bench/results/label-json.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.ts';
import type { Impression, RankerOutput } from '../src/contracts/index.ts';
import { readRecords } from '../src/io/files.ts';
import { jsonBytes } from '../src/io/json-bytes.ts';
import { FileSimSink } from '../src/io/sim-sink.ts';
import { labelRequest } from '../src/labels/index.ts';
import { labelJson } from '../src/labels/json.ts';
import { replay } from '../src/replay/replay.ts';
import { simulate } from '../src/sim/simulate.ts';
import { type Figure, writeResult } from './lib.ts';

const REQUESTS = Number(process.env.BENCH_LABEL_JSON_REQUESTS ?? 10_000);
const SAMPLE = Number(process.env.BENCH_LABEL_JSON_SAMPLE ?? 1_000);
const TRIALS = Number(process.env.BENCH_LABEL_JSON_TRIALS ?? 3);
const CANDIDATES = 200;

const work = mkdtempSync(join(tmpdir(), 'rd-bench-label-json-'));
const dir = join(work, 'sim');

/** CPU seconds and wall seconds of `fn`. */
async function timed(fn: () => Promise<unknown> | unknown): Promise<{ cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1e6, wall: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function writers(figures: Record<string, Figure>): Promise<string> {
  const rankers: RankerOutput[] = [];
  for await (const r of readRecords(join(dir, 'ranker-outputs.ndjson'), 'RankerOutput')) {
    if (r.result.ok) rankers.push(r.result.value);
    if (rankers.length >= SAMPLE) break;
  }
  const ids = new Set(rankers.map((r) => r.request_id));
  const imps = new Map<string, Impression>();
  for await (const r of readRecords(join(dir, 'impressions.ndjson'), 'Impression')) {
    if (r.result.ok && ids.has(r.result.value.request_id))
      imps.set(r.result.value.request_id, r.result.value);
  }
  const cfg = configSchema.parse({ metrics: { enabled: false } }).labels;
  const recs: Array<{ name: string; value: unknown }> = [];
  for (const r of rankers) {
    const l = labelRequest({ ranker: r, impression: imps.get(r.request_id) ?? null }, cfg);
    recs.push({ name: 'PointwiseLabels', value: l.pointwise });
    recs.push({ name: 'PairwiseLabels', value: l.pairwise });
    recs.push({ name: 'ListwiseLabels', value: l.listwise });
  }
  const variants: Record<string, (name: string, v: unknown) => Buffer | null> = {
    stringify: (_, v) => Buffer.from(JSON.stringify(v)),
    jsonBytes: (_, v) => jsonBytes(v),
    labelJson: (name, v) => labelJson(name, v),
  };
  let bytes = 0;
  for (const { name, value } of recs) {
    const b = labelJson(name, value);
    if (b === null || !b.equals(Buffer.from(JSON.stringify(value))))
      throw new Error(`labelJson differs on ${name}`);
    bytes += b.length + 1;
  }
  const best: Record<string, number> = {};
  let sink = 0;
  for (let round = 0; round < 9; round++) {
    for (const [k, f] of Object.entries(variants)) {
      const t = await timed(() => {
        for (const { name, value } of recs) sink += (f(name, value) as Buffer).length;
      });
      best[k] = Math.min(best[k] ?? Number.POSITIVE_INFINITY, (t.cpu * 1e6) / rankers.length);
    }
  }
  if (sink === 0) throw new Error('nothing written');
  const us = (k: string) => best[k] as number;
  figures.ndjson_label_write_us_per_request = {
    value: Number(us('labelJson').toFixed(1)),
    unit: 'µs CPU/request',
    baseline: Number(us('jsonBytes').toFixed(1)),
    ratio: us('jsonBytes') / us('labelJson'),
    note: `writing the 3 label records of one ${CANDIDATES}-candidate request (${Math.round(bytes / rankers.length)} bytes of NDJSON) with labelJson vs the generic jsonBytes (baseline); JSON.stringify + Buffer.from ${us('stringify').toFixed(1)} µs; ${rankers.length} requests, least CPU of 9 alternated rounds`,
  };
  return `writers: labelJson ${us('labelJson').toFixed(1)} µs/request, jsonBytes ${us('jsonBytes').toFixed(1)}, JSON.stringify ${us('stringify').toFixed(1)}`;
}

async function replays(figures: Record<string, Figure>): Promise<string> {
  const config = configSchema.parse({ metrics: { enabled: false }, store: { dir: join(work, 'state') } });
  const base: Array<{ cpu: number; wall: number }> = [];
  const runs: Array<{ cpu: number; wall: number }> = [];
  for (let t = 0; t < TRIALS; t++) {
    base.push(
      await timed(async () => {
        let n = 0;
        for await (const r of readRecords(join(dir, 'ranker-outputs.ndjson'), 'RankerOutput'))
          if (r.result.ok) n++;
        for await (const r of readRecords(join(dir, 'impressions.ndjson'), 'Impression'))
          if (r.result.ok) n++;
        if (n === 0) throw new Error('nothing decoded');
      }),
    );
    const out = join(work, `out-${t}`);
    const state = join(work, `state-${t}`);
    runs.push(
      await timed(async () => {
        const res = await replay({
          config,
          input: { kind: 'files', dir },
          output: { kind: 'files', dir: out, format: 'ndjson' },
          stateDir: state,
          partitions: 1,
          threads: 1,
        });
        if (res.status !== 'complete') throw new Error(`replay ${res.status}`);
      }),
    );
    rmSync(out, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
  const minCpu = (xs: Array<{ cpu: number }>) => Math.min(...xs.map((x) => x.cpu));
  const minWall = (xs: Array<{ wall: number }>) => Math.min(...xs.map((x) => x.wall));
  const f2 = (xs: Array<{ cpu: number; wall: number }>) =>
    xs.map((x) => `${x.cpu.toFixed(2)}/${x.wall.toFixed(2)}`).join(', ');
  figures.ndjson_replay_cpu_s = {
    value: Number(minCpu(runs).toFixed(2)),
    unit: 's CPU',
    baseline: Number(minCpu(base).toFixed(2)),
    ratio: minCpu(base) / minCpu(runs),
    goal: 0.8,
    note: `NDJSON files → NDJSON files, 1 partition, 1 thread, ${REQUESTS} requests × ${CANDIDATES} candidates, vs readRecords (read + decode) of both files (baseline), alternated; ratio = baseline CPU / replay CPU (rate ratio); trials CPU/wall s ${f2(runs)} vs ${f2(base)}; wall ratio ${(minWall(base) / minWall(runs)).toFixed(2)}`,
  };
  return `replay: ${minCpu(runs).toFixed(2)} s CPU vs read+decode ${minCpu(base).toFixed(2)} s (${(minCpu(base) / minCpu(runs)).toFixed(2)})`;
}

async function main(): Promise<void> {
  const figures: Record<string, Figure> = {};
  await simulate({ seed: 3, requests: REQUESTS, candidates: CANDIDATES }, new FileSimSink(dir, 'ndjson'));
  try {
    console.log(await writers(figures));
    console.log(await replays(figures));
    writeResult('label-json', figures);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
