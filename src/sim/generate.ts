/**
 * The traffic generator: requests of the synthetic world scored by a teacher, shown to users,
 * clicked, and emitted as the two input streams in ARRIVAL order, with a ground truth of every
 * request's fate. Pure: no I/O; all randomness from seeded streams (./rng.ts).
 *
 * Per request i (random stream "requests"; its draws never depend on the fate rates, so the same
 * seed gives the same requests whatever the rates):
 *   1. event time t_i: Poisson arrivals, gaps ~ Exp(1000/rate ms);
 *   2. a user, a device, and C candidates: 30% by popularity, 40% from the user's top categories,
 *      the rest uniform (sampled, never scoring the catalogue: O(C·dim) per request) — or, with
 *      `scenario: 'realistic'`, heavy-tailed user activity and candidates mostly from a noisy
 *      personalised retriever (./mix.ts);
 *   3. teacher score = true affinity + N(0, teacherNoise²); objectives ctr/like/dwell are noisy
 *      affine functions of the affinity; items sorted by score desc (ties by candidate index);
 *   4. impression at t_i + U[0, jitterMs): the top `shown` after a re-rank allowing at most
 *      `maxPerCategory` items per category; click ~ Bernoulli(sigmoid(affinity)·exam(pos)),
 *      exam(pos) = 1/log2(pos+1) (the DCG discount as a position-bias model).
 * Fates (random stream "fates"): duplicate, late, orphan, unmatched, malformed at their rates,
 * joined otherwise. Arrival = event time + U[0, disorderMs) (small out-of-orderness); a duplicate
 * copy arrives U(0, dupDelayMs] after the original.
 *
 * Late records, worked timeline (window W = 600 s, lateness L = 30 s, margin M = 60 s): request i
 * arrives in the stream at its natural time t_i but its event time is t_i − (W + L + M). When it
 * arrives, the partition's stream time is ≈ t_i, so the watermark is ≈ t_i − L and its window ended
 * at ts + W = t_i − L − M: closed by M ≈ 60 s of event time → LATE, however the keys are partitioned
 * (each partition has seen a record within the last M at 200 req/s). Only one record of a late
 * request is emitted (its partner belonged to a part of the log before this one); the first
 * `lateWarmup` requests are never late, so every partition has a stream time by then.
 */
import type { Impression, RankedItem, RankerOutput, ShownItem } from '../contracts/types.gen.ts';
import { RankdistillError } from '../errors.ts';
import { type MalformedKind, type MalformedSpec, malformedReason, type RecordEncoding } from './malformed.ts';
import { CandidateSource, REALISTIC, type Scenario } from './mix.ts';
import { Rng } from './rng.ts';
import { createWorld, DEFAULT_WORLD, itemId, trueAffinity, userId, type World } from './world.ts';

/** Every knob of a simulation. */
export interface SimOptions {
  seed: number;
  /** Who sends requests and where candidates come from (./mix.ts); realistic also means zipf 0.7. */
  scenario: Scenario;
  /** Requests to simulate. */
  requests: number;
  users: number;
  items: number;
  dim: number;
  categories: number;
  zipf: number;
  /** Candidates scored per request. */
  candidates: number;
  /** Items shown per request (the impression). */
  shown: number;
  /** Re-rank rule: at most this many shown items per category. */
  maxPerCategory: number;
  /** Requests per second of event time. */
  rate: number;
  /** Impression event time − ranker event time ~ U[0, jitterMs). */
  jitterMs: number;
  /** Arrival − event time ~ U[0, disorderMs): out-of-orderness within a stream. */
  disorderMs: number;
  /** A duplicate copy arrives up to this long after the original. */
  dupDelayMs: number;
  dupRate: number;
  lateRate: number;
  orphanRate: number;
  unmatchedRate: number;
  malformedRate: number;
  /** Join window of the labeler (join.windowMs). */
  windowMs: number;
  /** Allowed lateness of the labeler (join.allowedLatenessMs). */
  allowedLatenessMs: number;
  /** How far past window + lateness a late record's event time lies. */
  lateMarginMs: number;
  /** The first requests are never late (every partition needs a stream time first). */
  lateWarmup: number;
  /** Std of the teacher's error on the affinity (0 = a perfect teacher). */
  teacherNoise: number;
  /** Event time of the start of the simulated clock, epoch ms. */
  startTs: number;
  modelVersion: string;
}

export const DEFAULT_SIM: SimOptions = {
  seed: 7,
  scenario: 'default',
  requests: 20_000,
  ...DEFAULT_WORLD,
  candidates: 200,
  shown: 10,
  maxPerCategory: 2,
  rate: 200,
  jitterMs: 5_000,
  disorderMs: 1_000,
  dupDelayMs: 3_000,
  dupRate: 0.01,
  lateRate: 0.01,
  orphanRate: 0.01,
  unmatchedRate: 0.01,
  malformedRate: 0.01,
  windowMs: 600_000,
  allowedLatenessMs: 30_000,
  lateMarginMs: 60_000,
  lateWarmup: 100,
  teacherNoise: 0.5,
  startTs: 1_700_000_000_000,
  modelVersion: 'teacher-v1',
};

/**
 * Defaults filled in and every option checked.
 *
 * @throws RankdistillError USAGE naming the bad option.
 * @example
 * const o = resolveSimOptions({ seed: 1, requests: 500 });
 */
export function resolveSimOptions(partial: Partial<SimOptions> = {}): SimOptions {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  const scenario = defined.scenario === 'realistic' ? { zipf: REALISTIC.zipf } : {};
  const o: SimOptions = { ...DEFAULT_SIM, ...scenario, ...defined };
  const bad = (k: string, want: string) =>
    new RankdistillError(
      'USAGE',
      `simulate: ${k} must be ${want}, found ${JSON.stringify((o as never)[k])}`,
      {
        details: { option: k },
      },
    );
  for (const k of ['users', 'items', 'dim', 'categories', 'candidates', 'shown', 'maxPerCategory'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw bad(k, 'a positive integer');
  }
  for (const k of [
    'requests',
    'jitterMs',
    'disorderMs',
    'dupDelayMs',
    'windowMs',
    'allowedLatenessMs',
    'lateMarginMs',
    'lateWarmup',
    'startTs',
  ] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 0) throw bad(k, 'a non-negative integer');
  }
  if (!Number.isSafeInteger(o.seed)) throw bad('seed', 'an integer');
  if (o.scenario !== 'default' && o.scenario !== 'realistic') throw bad('scenario', 'default or realistic');
  if (!(o.rate > 0) || !Number.isFinite(o.rate)) throw bad('rate', 'a positive number');
  // bounds of the packed sort keys in RequestMaker.make: |score| < 53,687 and C < 2^22
  if (!(o.teacherNoise >= 0 && o.teacherNoise <= 100)) throw bad('teacherNoise', 'a number in [0, 100]');
  if (o.candidates >= KEY_SPAN) throw bad('candidates', `below ${KEY_SPAN}`);
  if (!(o.zipf >= 0) || !Number.isFinite(o.zipf)) throw bad('zipf', 'a number >= 0');
  const rates = ['dupRate', 'lateRate', 'orphanRate', 'unmatchedRate', 'malformedRate'] as const;
  for (const k of rates) if (!(o[k] >= 0 && o[k] <= 1)) throw bad(k, 'a probability in [0, 1]');
  const sum = rates.reduce((s, k) => s + o[k], 0);
  if (sum > 1) {
    throw new RankdistillError('USAGE', `simulate: the fate rates must sum to at most 1, found ${sum}`);
  }
  if (o.candidates > o.items) throw bad('candidates', `at most items (${o.items})`);
  if (o.shown > o.candidates) throw bad('shown', `at most candidates (${o.candidates})`);
  return o;
}

/** What happens to a request. */
export type Fate = 'joined' | 'duplicate' | 'late' | 'orphan' | 'unmatched' | 'malformed';
export const FATES: readonly Fate[] = ['joined', 'duplicate', 'late', 'orphan', 'unmatched', 'malformed'];

export type SimStream = 'rankerOutputs' | 'impressions';
type SideName = 'ranker' | 'impression';

/** One record of an output stream, in arrival order. */
export type SimEmission = EmissionBase &
  (
    | { stream: 'rankerOutputs'; name: 'RankerOutput'; record: RankerOutput }
    | { stream: 'impressions'; name: 'Impression'; record: Impression }
  );

interface EmissionBase {
  /** Arrival time (simulated wall clock, ms): the order of the streams. */
  arrival: number;
  /** Creation sequence number: breaks arrival ties deterministically. */
  seq: number;
  requestId: string;
  /** Message key: the user id. */
  key: string;
  /** True for the second copy of a duplicated record. */
  copy: boolean;
  /** When set, the record is emitted as these malformed bytes instead of `record`. */
  malformed: MalformedSpec | null;
}

/** Ground truth of one request. */
export interface RequestTruth {
  fate: Fate;
  user: string;
  /** Event time of the ranker output (shifted into the past for late requests). */
  ts: number;
  /** Copies of the ranker output / impression in the streams (valid or malformed). */
  ranker: number;
  impression: number;
  /** duplicate: which record has a second copy; late: which record arrives late. */
  side?: SideName;
  malformed?: { side: SideName; kind: MalformedKind; reason: 'MALFORMED' | 'INVALID' };
  /**
   * What a labeler with the simulated window/lateness should do (emitUnmatched on): labels
   * matched / unmatched / none, the dead-letter reasons in no particular order, duplicates dropped.
   */
  expect: { labels: 'matched' | 'unmatched' | 'none'; deadLetters: string[]; duplicates: number };
}

/** Ground truth of a simulation (truth.json). */
export interface SimTruth {
  format: 'rankdistill-sim-truth/1';
  seed: number;
  /** Encoding of the records: decides the reason class of nan-score records. */
  encoding: RecordEncoding;
  params: SimOptions;
  counts: {
    requests: number;
    fates: Record<Fate, number>;
    records: Record<SimStream, number>;
    malformed: Record<MalformedKind, number>;
    duplicates: number;
    shown: number;
    clicks: number;
    /** Event time span [first, last] of the natural clock. */
    firstTs: number;
    lastTs: number;
  };
  /** Every request, by request id, in generation order. */
  requests: Record<string, RequestTruth>;
}

/** Request id of request `i` of a run with `seed`. */
export function requestId(seed: number, i: number): string {
  return `r${seed}-${i}`;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** Rounds to 4 decimals (smaller files; -0 becomes 0 so JSON and Avro agree). */
const r4 = (x: number) => Math.round(x * 1e4) / 1e4 || 0;

/** Sort keys of the teacher's order (see RequestMaker.make). */
const KEY_SPAN = 2 ** 22;
const KEY_OFFSET = 2 ** 29;

/** Min-heap of emissions by (arrival, seq). */
class ArrivalHeap {
  #a: SimEmission[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): SimEmission | undefined {
    return this.#a[0];
  }
  push(e: SimEmission): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): SimEmission | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(x: SimEmission, y: SimEmission): boolean {
  return x.arrival < y.arrival || (x.arrival === y.arrival && x.seq < y.seq);
}

/**
 * A simulation run: iterate {@link Simulation.emissions} once (records in arrival order), then
 * read {@link Simulation.truth}.
 *
 * @example
 * const sim = new Simulation(resolveSimOptions({ requests: 100 }), 'json');
 * for (const e of sim.emissions()) write(e);
 * const truth = sim.truth();
 */
export class Simulation {
  readonly opts: SimOptions;
  readonly world: World;
  readonly encoding: RecordEncoding;
  #truth: SimTruth | undefined;

  constructor(opts: SimOptions, encoding: RecordEncoding, world?: World) {
    this.opts = opts;
    this.encoding = encoding;
    this.world =
      world ??
      createWorld({
        seed: opts.seed,
        users: opts.users,
        items: opts.items,
        dim: opts.dim,
        categories: opts.categories,
        zipf: opts.zipf,
      });
  }

  /** The ground truth; available once emissions() has been iterated to the end. */
  truth(): SimTruth {
    if (this.#truth === undefined) {
      throw new RankdistillError('USAGE', 'simulation truth is available only after all emissions were read');
    }
    return this.#truth;
  }

  /** The records of both streams, merged in arrival order. */
  *emissions(): Generator<SimEmission> {
    const o = this.opts;
    const w = this.world;
    const C = o.candidates;
    const maker = new RequestMaker(o, w);
    const fates = new Rng(o.seed, 'fates');
    const heap = new ArrivalHeap();
    let seq = 0;
    const lateShift = o.windowMs + o.allowedLatenessMs + o.lateMarginMs;
    const rateCum = [o.dupRate, o.lateRate, o.orphanRate, o.unmatchedRate, o.malformedRate].reduce<number[]>(
      (acc, r) => {
        acc.push((acc.at(-1) ?? 0) + r);
        return acc;
      },
      [],
    );
    const fateOrder: Fate[] = ['duplicate', 'late', 'orphan', 'unmatched', 'malformed'];

    const truth: SimTruth = {
      format: 'rankdistill-sim-truth/1',
      seed: o.seed,
      encoding: this.encoding,
      params: { ...o },
      counts: {
        requests: o.requests,
        fates: { joined: 0, duplicate: 0, late: 0, orphan: 0, unmatched: 0, malformed: 0 },
        records: { rankerOutputs: 0, impressions: 0 },
        malformed: { garbage: 0, truncated: 0, 'nan-score': 0 },
        duplicates: 0,
        shown: 0,
        clicks: 0,
        firstTs: o.startTs,
        lastTs: o.startTs,
      },
      requests: {},
    };

    for (let i = 0; i < o.requests; i++) {
      const { natural, u, device, items, shown, clicks, jitter } = maker.make(i);
      if (i === 0) truth.counts.firstTs = natural;
      truth.counts.lastTs = natural;
      truth.counts.shown += shown.length;
      truth.counts.clicks += clicks;

      // -- the fate (independent stream)
      const x = fates.next();
      let fate: Fate = 'joined';
      for (let f = 0; f < rateCum.length; f++) {
        if (x < rateCum[f]!) {
          fate = fateOrder[f]!;
          break;
        }
      }
      if (fate === 'late' && i < o.lateWarmup) fate = 'joined';
      const side: SideName = fates.next() < 0.5 ? 'ranker' : 'impression';
      const dR = Math.floor(fates.next() * o.disorderMs);
      const dI = Math.floor(fates.next() * o.disorderMs);
      const dDup = 1 + Math.floor(fates.next() * o.dupDelayMs);

      const shift = fate === 'late' ? lateShift : 0;
      const tsR = natural - shift;
      const tsI = natural + jitter - shift;
      const rid = requestId(o.seed, i);
      const uid = userId(u);
      const hour = (((tsR / 3_600_000) % 24) + 24) % 24;
      const ranker: RankerOutput = {
        request_id: rid,
        user_id: uid,
        ts: tsR,
        model_version: o.modelVersion,
        context: {
          hour_sin: r4(Math.sin((2 * Math.PI * hour) / 24)),
          hour_cos: r4(Math.cos((2 * Math.PI * hour) / 24)),
          device,
        },
        items,
      };
      const impression: Impression = { request_id: rid, user_id: uid, ts: tsI, items: shown };

      let malformed: MalformedSpec | null = null;
      let malformedSide: SideName = side;
      if (fate === 'malformed') {
        const kinds: MalformedKind[] =
          side === 'ranker' ? ['garbage', 'truncated', 'nan-score'] : ['garbage', 'truncated'];
        const kind = kinds[fates.int(kinds.length)]!;
        let bytes: Buffer | null = null;
        if (kind === 'garbage') {
          bytes = fates.bytes(16 + fates.int(48));
          bytes[0] = 0xff;
          for (let b = 1; b < bytes.length; b++) if (bytes[b] === 0x0a || bytes[b] === 0x0d) bytes[b] = 0x21;
        }
        malformed = { kind, bytes, keep: 0.2 + 0.6 * fates.next(), item: fates.int(C) };
        malformedSide = side;
        truth.counts.malformed[kind]++;
      }

      const push = (s: SideName, arrival: number, copy: boolean, bad: MalformedSpec | null) => {
        const base = { arrival, seq: seq++, requestId: rid, key: uid, copy, malformed: bad };
        if (s === 'ranker') {
          heap.push({ ...base, stream: 'rankerOutputs', name: 'RankerOutput', record: ranker });
          truth.counts.records.rankerOutputs++;
        } else {
          heap.push({ ...base, stream: 'impressions', name: 'Impression', record: impression });
          truth.counts.records.impressions++;
        }
      };
      const arrR = natural + dR;
      const arrI = natural + jitter + dI;
      let copiesR = 0;
      let copiesI = 0;
      const emitR = fate !== 'orphan' && !(fate === 'late' && side === 'impression');
      const emitI = fate !== 'unmatched' && !(fate === 'late' && side === 'ranker');
      if (emitR) {
        push('ranker', arrR, false, malformed !== null && malformedSide === 'ranker' ? malformed : null);
        copiesR++;
      }
      if (emitI) {
        push(
          'impression',
          arrI,
          false,
          malformed !== null && malformedSide === 'impression' ? malformed : null,
        );
        copiesI++;
      }
      if (fate === 'duplicate') {
        if (side === 'ranker') {
          push('ranker', arrR + dDup, true, null);
          copiesR++;
        } else {
          push('impression', arrI + dDup, true, null);
          copiesI++;
        }
        truth.counts.duplicates++;
      }

      truth.counts.fates[fate]++;
      const entry: RequestTruth = {
        fate,
        user: uid,
        ts: tsR,
        ranker: copiesR,
        impression: copiesI,
        expect: expectation(fate, side, malformed, this.encoding),
      };
      if (fate === 'duplicate' || fate === 'late') entry.side = side;
      if (malformed !== null) {
        entry.malformed = {
          side: malformedSide,
          kind: malformed.kind,
          reason: malformedReason(malformed.kind, this.encoding),
        };
      }
      truth.requests[rid] = entry;

      // Everything generated later arrives at or after `natural`: release what arrived by then.
      while (heap.size > 0 && heap.peek()!.arrival <= natural) yield heap.pop()!;
    }
    while (heap.size > 0) yield heap.pop()!;
    this.#truth = truth;
  }
}

/** One request of the world before its fate: the teacher's list and the shown items. */
interface MadeRequest {
  /** Natural event time of the request (before any late shift). */
  natural: number;
  u: number;
  device: number;
  items: RankedItem[];
  shown: ShownItem[];
  clicks: number;
  /** Impression event time − ranker event time. */
  jitter: number;
}

/**
 * Makes requests from the "requests" random stream, with preallocated scratch (a stamp per item
 * for O(1) candidate dedupe, typed arrays for scores) and per-item constants shared by every
 * record (ids, frozen feature maps).
 */
class RequestMaker {
  readonly #o: SimOptions;
  readonly #w: World;
  readonly #req: Rng;
  readonly #stamp: Int32Array;
  readonly #cand: Int32Array;
  readonly #aff: Float64Array;
  readonly #score: Float64Array;
  readonly #ctr: Float64Array;
  readonly #like: Float64Array;
  readonly #dwell: Float64Array;
  readonly #order: number[];
  readonly #keys: Float64Array;
  readonly #taken: Uint8Array;
  readonly #catCount: Int32Array;
  readonly #ids: string[];
  readonly #features: Readonly<Record<string, number>>[];
  readonly #source: CandidateSource;
  readonly #sink: { add(j: number): boolean; has(j: number): boolean; size: number };
  #i = 0;
  #clock = 0;
  #n = 0;

  constructor(o: SimOptions, w: World) {
    const C = o.candidates;
    this.#o = o;
    this.#w = w;
    this.#req = new Rng(o.seed, 'requests');
    this.#stamp = new Int32Array(w.items).fill(-1);
    this.#cand = new Int32Array(C);
    this.#aff = new Float64Array(C);
    this.#score = new Float64Array(C);
    this.#ctr = new Float64Array(C);
    this.#like = new Float64Array(C);
    this.#dwell = new Float64Array(C);
    this.#order = Array.from({ length: C }, (_, k) => k);
    this.#keys = new Float64Array(C);
    this.#taken = new Uint8Array(C);
    this.#catCount = new Int32Array(w.categories);
    this.#ids = Array.from({ length: w.items }, (_, j) => itemId(j));
    this.#features = Array.from({ length: w.items }, (_, j) =>
      Object.freeze({ pop: r4(w.itemPopZ[j]!), cat: w.itemCategory[j]!, fresh: r4(w.itemFresh[j]!) }),
    );
    this.#source = new CandidateSource(w, o.scenario, o.seed);
    const self = this;
    this.#sink = {
      add: (j) => this.#add(this.#i, j),
      has: (j) => this.#stamp[j] === this.#i,
      get size() {
        return self.#n;
      },
    };
  }

  #add(i: number, j: number): boolean {
    if (this.#stamp[j] === i) return false;
    this.#stamp[j] = i;
    this.#cand[this.#n++] = j;
    return true;
  }

  make(i: number): MadeRequest {
    const o = this.#o;
    const w = this.#w;
    const req = this.#req;
    const C = o.candidates;
    const M = o.shown;
    const cand = this.#cand;
    const aff = this.#aff;
    const score = this.#score;
    const order = this.#order;

    this.#clock += req.exponential(1000 / o.rate);
    const natural = o.startTs + Math.floor(this.#clock);
    const u = this.#source.pickUser(req);
    const device = req.int(3);

    // -- candidates: the scenario's mix (./mix.ts), deduplicated by a stamp per item
    this.#n = 0;
    this.#i = i;
    this.#source.fill(u, req, this.#sink, C);

    // -- the teacher: noisy affinity, sorted desc
    const noise = o.teacherNoise;
    for (let k = 0; k < C; k++) {
      const a = trueAffinity(w, u, cand[k]!);
      aff[k] = a;
      score[k] = r4(a + noise * req.normal());
      this.#ctr[k] = a + 0.5 * noise * req.normal();
      this.#like[k] = 0.7 * a + 0.5 + 1.2 * noise * req.normal();
      this.#dwell[k] = 0.5 * a + 1 + 1.2 * noise * req.normal();
    }
    // Sort by score desc, ties by candidate index, as one native numeric sort of packed keys:
    // scores have 4 decimals, so (−score·1e4 + 2^29)·2^22 + k is an exact integer < 2^53.
    const keys = this.#keys;
    for (let k = 0; k < C; k++) keys[k] = (Math.round(-score[k]! * 1e4) + KEY_OFFSET) * KEY_SPAN + k;
    keys.sort();
    for (let r = 0; r < C; r++) order[r] = keys[r]! % KEY_SPAN;
    const items: RankedItem[] = [];
    for (let r = 0; r < C; r++) {
      const k = order[r]!;
      const j = cand[k]!;
      items.push({
        item_id: this.#ids[j]!,
        score: score[k]!,
        objectives: { ctr: r4(this.#ctr[k]!), like: r4(this.#like[k]!), dwell: r4(this.#dwell[k]!) },
        features: this.#features[j]!,
      });
    }

    // -- the front end: re-rank (≤ maxPerCategory per category), top M, position-biased clicks
    const catCount = this.#catCount;
    const taken = this.#taken;
    catCount.fill(0);
    taken.fill(0);
    const shownRanks: number[] = [];
    for (let r = 0; r < C && shownRanks.length < M; r++) {
      const c = w.itemCategory[cand[order[r]!]!]!;
      if (catCount[c]! < o.maxPerCategory) {
        catCount[c]!++;
        taken[r] = 1;
        shownRanks.push(r);
      }
    }
    for (let r = 0; r < C && shownRanks.length < M; r++) if (taken[r] === 0) shownRanks.push(r);
    let clicks = 0;
    const shown: ShownItem[] = [];
    for (let p = 0; p < shownRanks.length; p++) {
      const k = order[shownRanks[p]!]!;
      const a = aff[k]!;
      // examination(pos) = 1 / log2(pos + 1), pos = p + 1
      const clicked = req.next() < sigmoid(a) / Math.log2(p + 2);
      const dwellMs = clicked ? Math.round(1_000 + req.exponential(20_000 * sigmoid(a))) : null;
      const liked = clicked && req.next() < sigmoid(0.8 * a);
      if (clicked) clicks++;
      shown.push({
        item_id: this.#ids[cand[k]!]!,
        position: p + 1,
        clicked,
        dwell_ms: dwellMs,
        actions: liked ? ['like'] : null,
      });
    }
    const jitter = Math.floor(req.next() * o.jitterMs);
    return { natural, u, device, items, shown, clicks, jitter };
  }
}

function expectation(
  fate: Fate,
  side: SideName,
  malformed: MalformedSpec | null,
  encoding: RecordEncoding,
): RequestTruth['expect'] {
  switch (fate) {
    case 'joined':
      return { labels: 'matched', deadLetters: [], duplicates: 0 };
    case 'duplicate':
      return { labels: 'matched', deadLetters: [], duplicates: 1 };
    case 'unmatched':
      return { labels: 'unmatched', deadLetters: [], duplicates: 0 };
    case 'orphan':
      return { labels: 'none', deadLetters: ['ORPHAN'], duplicates: 0 };
    case 'late':
      return { labels: 'none', deadLetters: ['LATE'], duplicates: 0 };
    case 'malformed': {
      const reason = malformedReason(malformed?.kind ?? 'garbage', encoding);
      // A bad ranker output leaves its impression an orphan; a bad impression leaves the ranker
      // output unmatched (labels without ground truth).
      return side === 'ranker'
        ? { labels: 'none', deadLetters: [reason, 'ORPHAN'], duplicates: 0 }
        : { labels: 'unmatched', deadLetters: [reason], duplicates: 0 };
    }
  }
}

/** What a correct labeler must count for a simulated run (every window closed): see {@link expectedOutcomes}. */
export interface ExpectedOutcomes {
  joined: number;
  unmatched: number;
  orphans: number;
  late: number;
  duplicates: number;
  malformed: number;
  invalid: number;
}

/**
 * The labeler's outcome counts a run's truth prescribes, with every window closed (drain). They
 * differ from the fates, which say what the simulator drew per request: a `duplicate` request is
 * also joined (once), a `malformed` one leaves its partner unmatched or an orphan.
 *
 * @example
 * expectedOutcomes(sim.truth).joined === fates.joined + fates.duplicate; // true
 */
export function expectedOutcomes(truth: Pick<SimTruth, 'requests'>): ExpectedOutcomes {
  const c: ExpectedOutcomes = {
    joined: 0,
    unmatched: 0,
    orphans: 0,
    late: 0,
    duplicates: 0,
    malformed: 0,
    invalid: 0,
  };
  for (const r of Object.values(truth.requests)) {
    if (r.expect.labels === 'matched') c.joined++;
    else if (r.expect.labels === 'unmatched') c.unmatched++;
    c.duplicates += r.expect.duplicates;
    for (const d of r.expect.deadLetters) {
      if (d === 'ORPHAN') c.orphans++;
      else if (d === 'LATE') c.late++;
      else if (d === 'INVALID') c.invalid++;
      else c.malformed++;
    }
  }
  return c;
}
