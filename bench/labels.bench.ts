/**
 * Throughput of the pure label generators (`labelRequest`), DESIGN.md figure of record "labels".
 *
 * Workload: matched requests (teacher output + impression of 10 shown items, 2 clicks) with 200
 * or 20 candidates, ids like "item-0012345", 4 item features, 3 context features — the shape of
 * the simulator's traffic. A pool of 64 distinct requests is cycled so the strings are not all
 * one object, yet stay in cache as they would right after decoding.
 *
 * Baselines, same run: structuredClone of the input RankerOutput (the cost of merely copying the
 * request) and encodeAvro of it; the "decode+label" figure is measured against decodeAvro alone.
 * Each figure is the best of 7 timed trials (the machine is shared; the best trial is the least
 * disturbed), in wall-clock requests/s on one thread; `cpu` figures divide by process CPU time.
 */
import { labelsSchema } from '../src/config/schema.ts';
import { decodeAvro, encodeAvro, type Impression, type RankerOutput } from '../src/contracts/index.ts';
import { type JoinedRequest, labelRequest } from '../src/labels/index.ts';
import { type Figure, writeResult } from './lib.ts';

const POOL = 64;
const TRIALS = 7;
const TRIAL_MS = 250;

function request(n: number, seq: number): JoinedRequest {
  const request_id = `req-${String(seq).padStart(8, '0')}`;
  const user_id = `user-${seq % 997}`;
  const items = Array.from({ length: n }, (_, i) => ({
    item_id: `item-${String((seq * 7919 + i * 104729) % 10_000_000).padStart(7, '0')}`,
    score: 4 - (8 * i) / n + ((seq + i) % 5) * 1e-3,
    objectives: null,
    features: { price: (i % 50) + 0.5, age_days: i % 30, ctr7d: 0.01 * (i % 7), cat: i % 12 },
  }));
  const ranker: RankerOutput = {
    request_id,
    user_id,
    ts: 1_700_000_000_000 + seq,
    model_version: 'teacher-2024-06-01',
    context: { hour: seq % 24, device: seq % 3, country: seq % 40 },
    items,
  };
  const shown = Math.min(10, n);
  const impression: Impression = {
    request_id,
    user_id,
    ts: ranker.ts + 1500,
    items: Array.from({ length: shown }, (_, k) => ({
      item_id: items[(k * 3) % n]!.item_id,
      position: k + 1,
      clicked: k === 1 || k === 4,
      dwell_ms: k === 1 ? 3200 : null,
      actions: null,
    })),
  };
  return { ranker, impression };
}

declare const gc: (() => void) | undefined;

interface Rate {
  wall: number;
  cpu: number;
}

/** Best-of-trials requests/s of `fn` over the pool. */
function measure(fn: (i: number) => unknown): Rate {
  let sink = 0;
  const run = (ms: number): Rate => {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const deadline = t0 + BigInt(ms) * 1_000_000n;
    while (process.hrtime.bigint() < deadline) {
      for (let k = 0; k < 256; k++, n++) if (fn(n % POOL) !== undefined) sink++;
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    return { wall: n / wall, cpu: n / ((c.user + c.system) / 1e6) };
  };
  run(TRIAL_MS); // warm-up: JIT and caches
  let best: Rate = { wall: 0, cpu: 0 };
  for (let t = 0; t < TRIALS; t++) {
    if (typeof gc === 'function') gc();
    const r = run(TRIAL_MS);
    if (r.wall > best.wall) best = { wall: r.wall, cpu: Math.max(best.cpu, r.cpu) };
    else best.cpu = Math.max(best.cpu, r.cpu);
  }
  if (sink < 0) console.log(sink);
  return best;
}

const round = (x: number) => Math.round(x);
const figures: Record<string, Figure> = {};
const defaults = labelsSchema.parse({});
const only = (kind: 'pointwise' | 'pairwise' | 'listwise' | 'none') =>
  labelsSchema.parse({
    pointwise: { enabled: kind === 'pointwise' },
    pairwise: { enabled: kind === 'pairwise' },
    listwise: { enabled: kind === 'listwise' },
  });
const heavy = labelsSchema.parse({
  teacher: { orderSource: 'impression' },
  pointwise: { weighting: 'exponential', softTargets: true },
  pairwise: { strategy: 'sampled', weightByDeltaNdcg: true },
  listwise: { scheme: 'logit-quantiles' },
});

for (const n of [200, 20]) {
  const pool = Array.from({ length: POOL }, (_, i) => request(n, i + 1));
  const bytes = pool.map((r) => encodeAvro('RankerOutput', r.ranker));
  const imps = pool.map((r) => r.impression);

  const clone = measure((i) => structuredClone(pool[i]!.ranker));
  const encode = measure((i) => encodeAvro('RankerOutput', pool[i]!.ranker));
  const all = measure((i) => labelRequest(pool[i]!, defaults));
  figures[`requests_per_s_${n}_all_defaults`] = {
    value: round(all.wall),
    unit: 'requests/s',
    baseline: round(clone.wall),
    ratio: all.wall / clone.wall,
    ...(n === 200 ? { goal: 50_000 } : {}),
    note: `all three kinds, default config, matched requests of ${n} candidates; baseline: structuredClone of the RankerOutput`,
  };
  figures[`requests_per_cpu_s_${n}_all_defaults`] = {
    value: round(all.cpu),
    unit: 'requests/cpu-s',
    baseline: round(clone.cpu),
    ratio: all.cpu / clone.cpu,
    note: 'same, divided by process CPU time (less sensitive to a shared machine)',
  };
  figures[`encodeAvro_per_s_${n}`] = {
    value: round(encode.wall),
    unit: 'requests/s',
    note: 'baseline: encodeAvro of the RankerOutput',
  };
  if (n === 200) {
    for (const kind of ['pointwise', 'pairwise', 'listwise', 'none'] as const) {
      const cfg = only(kind);
      const r = measure((i) => labelRequest(pool[i]!, cfg));
      figures[`requests_per_s_${n}_${kind}_only`] = {
        value: round(r.wall),
        unit: 'requests/s',
        baseline: round(clone.wall),
        ratio: r.wall / clone.wall,
        note:
          kind === 'none'
            ? 'every kind disabled: validation + teacher view only'
            : `only ${kind} enabled (includes validation + teacher view)`,
      };
    }
    const h = measure((i) => labelRequest(pool[i]!, heavy));
    figures[`requests_per_s_${n}_heavy`] = {
      value: round(h.wall),
      unit: 'requests/s',
      baseline: round(clone.wall),
      ratio: h.wall / clone.wall,
      note: 'impression order, exponential + soft targets, sampled pairs with |dNDCG|, logit-quantiles',
    };
    const dec = measure((i) => decodeAvro('RankerOutput', bytes[i]!));
    const decLabel = measure((i) => {
      const d = decodeAvro('RankerOutput', bytes[i]!);
      return d.ok ? labelRequest({ ranker: d.value, impression: imps[i]! }, defaults) : undefined;
    });
    figures[`decode_and_label_per_s_${n}`] = {
      value: round(decLabel.wall),
      unit: 'requests/s',
      baseline: round(dec.wall),
      ratio: decLabel.wall / dec.wall,
      note: 'decodeAvro + labelRequest (fresh strings every time) vs decodeAvro alone',
    };
  }
}

// Machine reference: CPU time of a trivial integer loop. On an unloaded modern x86 core this is
// about 0.3 ns/iteration; a larger value means the shared machine is slowing every figure above.
{
  let acc = 0;
  const c0 = process.cpuUsage();
  for (let i = 0; i < 200_000_000; i++) acc = (acc + i) | 0;
  const c = process.cpuUsage(c0);
  figures.calibration_int_loop = {
    value: Number((((c.user + c.system) * 1000) / 200_000_000).toFixed(3)),
    unit: 'ns/iteration',
    note: `trivial add loop (acc ${acc & 1}); ~0.3 on an idle modern core: divide to compare machines`,
  };
}

writeResult('labels', figures);
