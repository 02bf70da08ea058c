import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeAvro, decodeJson } from '../../src/contracts/codec.ts';
import { avroType } from '../../src/contracts/schemas.ts';
import type { Impression, RankerOutput } from '../../src/contracts/types.gen.ts';
import { isRankdistillError } from '../../src/errors.ts';
import {
  FATES,
  resolveSimOptions,
  type SimEmission,
  type SimOptions,
  type SimTruth,
  Simulation,
} from '../../src/sim/generate.ts';
import { malformedBytes } from '../../src/sim/malformed.ts';
import { itemIndex, trueAffinity, userIndex } from '../../src/sim/world.ts';

function run(opts: Partial<SimOptions>, encoding: 'json' | 'avro' = 'avro') {
  const sim = new Simulation(resolveSimOptions(opts), encoding);
  const out: SimEmission[] = [...sim.emissions()];
  return { sim, out, truth: sim.truth() as SimTruth };
}

/** 3000 requests, small lists, high rates: the fate machinery, fast. */
const rates = {
  seed: 11,
  requests: 3000,
  candidates: 30,
  shown: 8,
  users: 300,
  items: 2000,
  dupRate: 0.05,
  lateRate: 0.05,
  orphanRate: 0.05,
  unmatchedRate: 0.05,
  malformedRate: 0.05,
};

describe('fates', () => {
  const { out, truth, sim } = run(rates);
  const o = sim.opts;

  test('the configured rates roughly hold (4 sigma)', () => {
    const n = o.requests;
    for (const [fate, p] of [
      ['duplicate', o.dupRate],
      ['orphan', o.orphanRate],
      ['unmatched', o.unmatchedRate],
      ['malformed', o.malformedRate],
      // late requests are drawn only after the warm-up
      ['late', (o.lateRate * (n - o.lateWarmup)) / n],
    ] as const) {
      const got = truth.counts.fates[fate];
      const sd = Math.sqrt(n * p * (1 - p));
      assert.ok(Math.abs(got - n * p) < 4 * sd, `${fate}: ${got} vs ${n * p} ± ${4 * sd}`);
    }
    assert.equal(
      FATES.reduce((s, f) => s + truth.counts.fates[f], 0),
      n,
    );
    assert.equal(Object.keys(truth.requests).length, n);
  });

  test("every request's fate in the truth is consistent with the streams", () => {
    const by = new Map<string, SimEmission[]>();
    for (const e of out) by.set(e.requestId, [...(by.get(e.requestId) ?? []), e]);
    for (const [rid, t] of Object.entries(truth.requests)) {
      const es = by.get(rid) ?? [];
      const rs = es.filter((e) => e.stream === 'rankerOutputs');
      const is = es.filter((e) => e.stream === 'impressions');
      assert.equal(rs.length, t.ranker, rid);
      assert.equal(is.length, t.impression, rid);
      const bad = es.filter((e) => e.malformed !== null);
      switch (t.fate) {
        case 'joined':
          assert.deepEqual([rs.length, is.length, bad.length], [1, 1, 0], rid);
          assert.deepEqual(t.expect, { labels: 'matched', deadLetters: [], duplicates: 0 });
          break;
        case 'duplicate': {
          const twice = t.side === 'ranker' ? rs : is;
          assert.equal(twice.length, 2, rid);
          assert.equal(rs.length + is.length, 3, rid);
          assert.equal(twice[0]!.record, twice[1]!.record, 'the copy is the same record');
          assert.equal(twice.filter((e) => e.copy).length, 1);
          assert.ok(twice[1]!.arrival > twice[0]!.arrival, 'the copy arrives after the original');
          assert.equal(bad.length, 0);
          break;
        }
        case 'orphan':
          assert.deepEqual([rs.length, is.length], [0, 1], rid);
          assert.deepEqual(t.expect.deadLetters, ['ORPHAN']);
          break;
        case 'unmatched':
          assert.deepEqual([rs.length, is.length], [1, 0], rid);
          assert.equal(t.expect.labels, 'unmatched');
          break;
        case 'late': {
          assert.equal(rs.length + is.length, 1, rid);
          const e = es[0]!;
          assert.equal(e.stream === 'rankerOutputs' ? 'ranker' : 'impression', t.side);
          assert.ok(
            e.record.ts + o.windowMs + o.allowedLatenessMs < e.arrival - o.lateMarginMs / 2,
            'emitted far after its window closed',
          );
          break;
        }
        case 'malformed': {
          assert.deepEqual([rs.length, is.length, bad.length], [1, 1, 1], rid);
          assert.equal(bad[0]!.stream === 'rankerOutputs' ? 'ranker' : 'impression', t.malformed?.side);
          assert.equal(bad[0]!.malformed?.kind, t.malformed?.kind);
          assert.equal(t.expect.labels, t.malformed?.side === 'ranker' ? 'none' : 'unmatched');
          break;
        }
      }
    }
    assert.equal(out.filter((e) => e.stream === 'rankerOutputs').length, truth.counts.records.rankerOutputs);
    assert.equal(out.filter((e) => e.stream === 'impressions').length, truth.counts.records.impressions);
  });

  test('arrival order: non-decreasing, event time plus bounded out-of-orderness', () => {
    for (let k = 1; k < out.length; k++) {
      const a = out[k - 1]!;
      const b = out[k]!;
      assert.ok(a.arrival < b.arrival || (a.arrival === b.arrival && a.seq < b.seq));
    }
    for (const e of out) {
      const t = truth.requests[e.requestId]!;
      if (t.fate === 'late' || e.copy) continue;
      const lag = e.arrival - e.record.ts;
      assert.ok(lag >= 0 && lag < o.disorderMs, `lag ${lag}`);
    }
    // the streams really are out of order in event time somewhere
    const rts = out.filter((e) => e.stream === 'rankerOutputs' && !e.copy).map((e) => e.record.ts);
    assert.ok(rts.some((ts, k) => k > 0 && ts < rts[k - 1]!));
  });

  test('late records are late under the join rule, however the keys are partitioned', () => {
    for (const partitions of [1, 4]) {
      const streamTime = new Array<number>(partitions).fill(Number.NEGATIVE_INFINITY);
      const part = (key: string) => (partitions === 1 ? 0 : userIndex(key) % partitions);
      let lateSeen = 0;
      for (const e of out) {
        const p = part(e.key);
        const t = truth.requests[e.requestId]!;
        const wm = streamTime[p]! - o.allowedLatenessMs;
        const isLate = e.record.ts + o.windowMs < wm;
        assert.equal(isLate, t.fate === 'late', `${e.requestId} (${t.fate}) with ${partitions} partitions`);
        if (isLate) lateSeen++;
        streamTime[p] = Math.max(streamTime[p]!, e.record.ts);
      }
      assert.equal(lateSeen, truth.counts.fates.late);
    }
  });

  test('good records are valid contract records; malformed bytes do not decode (nan-score: only in Avro)', () => {
    const ro = avroType('RankerOutput');
    const im = avroType('Impression');
    let nan = 0;
    for (const e of out) {
      if (e.malformed === null) {
        assert.ok((e.stream === 'rankerOutputs' ? ro : im).isValid(e.record));
        continue;
      }
      const json = malformedBytes(e.name, e.record, e.malformed, 'json');
      assert.equal(decodeJson(e.name, json).ok, false, `${e.malformed.kind} json`);
      assert.equal(json.includes(0x0a), false, 'one NDJSON line');
      const bin = malformedBytes(e.name, e.record, e.malformed, 'avro');
      const d = e.name === 'RankerOutput' ? decodeAvro('RankerOutput', bin) : decodeAvro('Impression', bin);
      if (e.malformed.kind === 'nan-score') {
        nan++;
        assert.ok(d.ok && (d.value as RankerOutput).items.some((it) => Number.isNaN(it.score)));
        assert.equal(truth.requests[e.requestId]!.malformed?.reason, 'INVALID');
      } else {
        assert.equal(d.ok, false, `${e.malformed.kind} avro`);
        assert.equal(truth.requests[e.requestId]!.malformed?.reason, 'MALFORMED');
      }
    }
    assert.ok(nan > 0, 'the mix has nan-score records');
    assert.ok(truth.counts.malformed.garbage > 0 && truth.counts.malformed.truncated > 0);
  });

  test('request content does not depend on the fate rates', () => {
    const other = run({ ...rates, dupRate: 0, lateRate: 0, malformedRate: 0.2 });
    const a = new Map(
      out.filter((e) => e.stream === 'rankerOutputs' && !e.malformed).map((e) => [e.requestId, e]),
    );
    let compared = 0;
    for (const e of other.out) {
      if (e.stream !== 'rankerOutputs' || e.malformed !== null) continue;
      const mine = a.get(e.requestId);
      if (mine === undefined || truth.requests[e.requestId]!.fate === 'late') continue;
      assert.deepEqual(e.record, mine.record);
      compared++;
    }
    assert.ok(compared > 2000);
  });
});

describe('teacher and users', () => {
  const { out, sim } = run({ seed: 5, requests: 400, users: 500, items: 3000 });
  const w = sim.world;
  const rankers = out.filter((e) => e.stream === 'rankerOutputs' && e.malformed === null && !e.copy);
  const imps = out.filter((e) => e.stream === 'impressions' && e.malformed === null && !e.copy);

  test('ranker outputs: default ~200 unique candidates sorted by score desc, with objectives, features, context', () => {
    for (const e of rankers) {
      const r = e.record as RankerOutput;
      assert.equal(r.items.length, 200);
      assert.equal(new Set(r.items.map((i) => i.item_id)).size, 200);
      for (let k = 1; k < r.items.length; k++) assert.ok(r.items[k - 1]!.score >= r.items[k]!.score);
      assert.deepEqual(Object.keys(r.items[0]!.objectives ?? {}), ['ctr', 'like', 'dwell']);
      assert.ok(r.items[0]!.features !== null && 'pop' in r.items[0]!.features);
      assert.ok(r.context !== null && 'hour_sin' in r.context && 'device' in r.context);
    }
  });

  test("the teacher's order correlates with the true affinity but is not perfect", () => {
    let sum = 0;
    let perfect = 0;
    for (const e of rankers) {
      const r = e.record as RankerOutput;
      const u = userIndex(r.user_id);
      const aff = r.items.map((it) => trueAffinity(w, u, itemIndex(it.item_id)));
      const rho = spearman(
        r.items.map((_, k) => -k),
        aff,
      );
      sum += rho;
      if (rho > 0.9999) perfect++;
    }
    const mean = sum / rankers.length;
    assert.ok(mean > 0.8, `mean Spearman ${mean}`);
    assert.ok(mean < 0.99, `mean Spearman ${mean} (too perfect)`);
    assert.equal(perfect, 0);
  });

  test('impressions: re-ranked (at most 2 per category), clicks position-biased', () => {
    const clicks = new Array<number>(11).fill(0);
    const shown = new Array<number>(11).fill(0);
    for (const e of imps) {
      const m = e.record as Impression;
      assert.equal(m.items.length, 10);
      assert.deepEqual(
        m.items.map((i) => i.position),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      const per = new Map<number, number>();
      for (const it of m.items) {
        const c = w.itemCategory[itemIndex(it.item_id)]!;
        per.set(c, (per.get(c) ?? 0) + 1);
        shown[it.position]!++;
        if (it.clicked) clicks[it.position]!++;
        assert.equal(it.dwell_ms === null, !it.clicked);
      }
      assert.ok(Math.max(...per.values()) <= 2);
    }
    const ctr = (p: number) => clicks[p]! / shown[p]!;
    assert.ok(ctr(1) > ctr(10) * 1.5, `CTR@1 ${ctr(1)} vs CTR@10 ${ctr(10)}`);
    assert.ok(ctr(1) > ctr(5) && ctr(5) > ctr(10));
  });
});

test('bad options are USAGE errors naming the option', () => {
  for (const [o, name] of [
    [{ requests: -1 }, 'requests'],
    [{ rate: 0 }, 'rate'],
    [{ dupRate: 1.5 }, 'dupRate'],
    [{ candidates: 10, items: 5 }, 'candidates'],
    [{ orphanRate: 0.6, unmatchedRate: 0.6 }, 'sum'],
  ] as const) {
    assert.throws(
      () => resolveSimOptions(o as Partial<SimOptions>),
      (e: unknown) => isRankdistillError(e, 'USAGE') && e.message.includes(name),
    );
  }
});

function ranks(xs: number[]): number[] {
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!);
  const r = new Array<number>(xs.length);
  idx.forEach((i, k) => {
    r[i] = k;
  });
  return r;
}

function spearman(a: number[], b: number[]): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  const mean = (n - 1) / 2;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < n; i++) {
    num += (ra[i]! - mean) * (rb[i]! - mean);
    da += (ra[i]! - mean) ** 2;
    db += (rb[i]! - mean) ** 2;
  }
  return num / Math.sqrt(da * db);
}
