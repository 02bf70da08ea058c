/**
 * The event-time join of RankerOutput and Impression by request_id (DESIGN.md "Join semantics").
 *
 * Modelled on Kafka Streams' `KStreamKStreamJoin`: one shared stream-time tracker per task, the
 * watermark = stream time − allowed lateness, a record is dropped as late when its own window has
 * closed, and lone records are expired (outer-join style) once the watermark passes their window.
 *
 * State keys: `r:<id>` pending RankerOutput, `i:<id>` pending Impression, `d:<id>` done marker
 * (`joined` or `unmatched`). Every mutation goes through the {@link JoinStateStore}, so the
 * SQLite store and its changelog see exactly what the operator decided. A store may expire done
 * markers lazily (the service keeps them in blocks, src/join/marker-blocks.ts): a marker whose
 * expiresAt is below the watermark counts as absent, as if the sweep had removed it.
 *
 * Worked timeline — window W = 10, allowed lateness L = 2 (watermark wm = streamTime − 2):
 *
 *   event      ts  streamTime  wm   decision
 *   R(a)        0       0      -2   no partner yet → pending r:a (expires when wm > 0 + 10)
 *   I(b)        3       3       1   no partner yet → pending i:b (expires when wm > 13)
 *   I(a)        9       9       7   r:a pending, |9 − 0| ≤ 10 → JOIN a: labels out now,
 *                                   delete r:a, marker d:a(joined) until wm > max(0, 9) + 10 = 19
 *   R(a) copy   0       9       7   0 + 10 ≥ 7 not late; d:a is joined → DUPLICATE, dropped
 *   R(c)        5       9       7   pending r:c (expires when wm > 15)
 *   R(d)       17      17      15   sweep: i:b (expiresAt 13 < 15) → ORPHAN dead letter;
 *                                   r:c (expiresAt 15) stays; pending r:d
 *   R(e)       18      18      16   sweep: r:c (15 < 16) → UNMATCHED labels (emitUnmatched),
 *                                   marker d:c(unmatched) until wm > 5 + 2·10 = 25
 *   I(c)       12      18      16   12 + 10 ≥ 16 not late; d:c is unmatched and |12 − 5| ≤ 10 →
 *                                   LATE dead letter: its ranker output's window already closed
 *   I(f)        3      18      16   3 + 10 < 16 → LATE dead letter (own window closed)
 *   R(g)       40      40      38   sweep: d:a (19), d:c (25), r:d (27), r:e (28) expire in
 *                                   (expiresAt, key) order → unmatched labels for d and e
 *
 * Edges: a pair exactly W apart joins (|Δ| ≤ W); W + 1 apart never does. A pending entry expires
 * exactly when a same-ts copy of it would be late (ts + W < wm), so copies never resurrect state.
 * The `unmatched` marker lives until wm > ts + 2W: any impression within W of the ranker output
 * is late by then. Out-of-window partners (|Δ| > W) are kept as two independent pending entries.
 *
 * Pure: no I/O, no clock.
 */
import { avroDecoderOrThrow, decode } from '../contracts/codec.ts';
import { parseImpressionColumns } from '../contracts/impression-columns.ts';
import type { Impression, RankerOutput } from '../contracts/index.ts';
import { jsonDecoderOrThrow, parseImpressionJson, parseRankerJson } from '../contracts/json-columns.ts';
import { parseRankerColumns } from '../contracts/ranker-columns.ts';
import { RankdistillError } from '../errors.ts';
import type {
  DoneEntry,
  JoinEffect,
  JoinInput,
  JoinStateStore,
  PendingEntry,
  RecordRef,
  Side,
  StateEntry,
} from './types.ts';

/** Window settings of the operator (the `join` config section). */
export interface JoinWindowConfig {
  windowMs: number;
  allowedLatenessMs: number;
  emitUnmatched: boolean;
}

const SWEEP_CHUNK = 512;
/**
 * Decoded records of the most recent pending entries are kept to skip decoding them again at join
 * time (partners usually arrive soon). Bounded by the records' wire bytes (decoded objects take a
 * few times more), oldest evicted first, so a window of a million lone records costs nothing here.
 * 32 MB holds ~1,700 requests of 200 candidates (19 KB each with features): the simulator's
 * partners arrive ~460 ranker outputs later (p50; p99 ~1,000), where 4 MB held ~200 and most
 * joins parsed their ranker output a second time.
 */
const DECODED_CACHE_BYTES = 32 << 20;
/**
 * ...and by age: an entry is forgotten once this many records were processed after it (a lone
 * record waits minutes for its window to close; decoding it again then costs little). Parsed
 * columns are views into shared slabs (src/contracts/column-slab.ts), so a long-cached entry
 * would also keep its slab alive: this bounds the slabs held to those of the latest records.
 */
const DECODED_CACHE_SPAN = 16_384;

function prefix(side: Side): string {
  return side === 'ranker' ? 'r:' : 'i:';
}

/**
 * Joins one task's records. Call {@link process} for each record in merged event-time order.
 *
 * @example
 * const op = new JoinOperator(new MemoryJoinStore(), { windowMs: 600_000, allowedLatenessMs: 30_000, emitUnmatched: true });
 * op.process(rankerInput); // []
 * op.process(impressionInput); // [{ type: 'joined', ranker, impression, rankerRef }]
 */
export class JoinOperator {
  readonly #store: JoinStateStore;
  readonly #cfg: JoinWindowConfig;
  readonly #decoded = new Map<string, { raw: Buffer; value: RankerOutput | Impression; seq: number }>();
  #decodedBytes = 0;
  /** Records processed so far (the cache's clock). */
  #seq = 0;

  /** Stored NDJSON lines are read back by the NDJSON column parsers (JoinTaskOptions.jsonColumns). */
  readonly #jsonColumns: boolean;

  constructor(store: JoinStateStore, cfg: JoinWindowConfig, jsonColumns = false) {
    this.#jsonColumns = jsonColumns;
    this.#store = store;
    this.#cfg = cfg;
  }

  /** The current watermark (stream time − allowed lateness), or null before any record. */
  watermark(): number | null {
    const st = this.#store.streamTime();
    return st === null ? null : st - this.#cfg.allowedLatenessMs;
  }

  /** Processes one record; returns what was decided (for it and for state it expired). */
  process(rec: JoinInput): JoinEffect[] {
    this.#seq++;
    const out: JoinEffect[] = [];
    const ts = rec.value.ts;
    const rid = rec.value.request_id;
    const w = this.#cfg.windowMs;
    const prev = this.#store.streamTime();
    if (prev === null || ts > prev) this.#store.setStreamTime(ts);
    const wm = (this.#store.streamTime() as number) - this.#cfg.allowedLatenessMs;

    if (ts + w < wm) {
      out.push({
        type: 'dead',
        reason: 'LATE',
        message: `${rec.side} event time ${ts} + window ${w} ms is before the watermark ${wm}: its window closed before it arrived`,
        ref: refOf(rec),
        requestId: rid,
      });
      this.sweep(wm, out);
      return out;
    }
    this.sweep(wm, out);

    const doneKey = `d:${rid}`;
    const found = this.#store.get(doneKey) as DoneEntry | undefined;
    // A marker below the watermark has expired: a store that expires markers lazily (in blocks,
    // src/join/marker-blocks.ts) still holds it; one that sweeps eagerly no longer does.
    const done = found !== undefined && found.expiresAt >= wm ? found : undefined;
    if (done !== undefined) {
      if (done.kind === 'joined' || rec.side === 'ranker') {
        out.push({ type: 'duplicate', side: rec.side, requestId: rid });
        return out;
      }
      // An impression for a ranker output already emitted unmatched.
      if (Math.abs(ts - done.ts) <= w) {
        out.push({
          type: 'dead',
          reason: 'LATE',
          message: `impression at ${ts} arrived after the window of its ranker output (ts ${done.ts}) closed; labels were emitted without ground truth`,
          ref: refOf(rec),
          requestId: rid,
        });
        return out;
      }
    }
    const key = prefix(rec.side) + rid;
    if (this.#store.get(key) !== undefined) {
      out.push({ type: 'duplicate', side: rec.side, requestId: rid });
      return out;
    }
    const otherSide: Side = rec.side === 'ranker' ? 'impression' : 'ranker';
    const otherKey = prefix(otherSide) + rid;
    const other = this.#store.get(otherKey) as PendingEntry | undefined;
    if (other !== undefined && Math.abs(ts - other.ts) <= w) {
      this.#store.delete(otherKey);
      const marker: DoneEntry = {
        kind: 'joined',
        ts: Math.max(ts, other.ts),
        expiresAt: Math.max(ts, other.ts) + w,
      };
      this.#store.put(doneKey, marker, found === undefined);
      if (rec.side === 'ranker') {
        out.push({
          type: 'joined',
          ranker: rec.value,
          impression: this.#decodePending<Impression>('Impression', otherKey, other),
          rankerRef: refOf(rec),
        });
      } else {
        out.push({
          type: 'joined',
          ranker: this.#decodePending<RankerOutput>('RankerOutput', otherKey, other),
          impression: rec.value,
          rankerRef: { source: other.source, key: other.key, raw: other.raw },
        });
      }
      return out;
    }
    this.#remember(key, rec.raw, rec.value);
    this.#store.put(
      key,
      {
        kind: 'pending',
        side: rec.side,
        ts,
        expiresAt: ts + w,
        source: rec.source,
        key: rec.key,
        format: rec.format,
        raw: rec.raw,
      },
      true,
    );
    return out;
  }

  /** Forgets decoded records kept for pending entries (after a rollback). */
  clearCache(): void {
    this.#decoded.clear();
    this.#decodedBytes = 0;
  }

  #remember(key: string, raw: Buffer, value: RankerOutput | Impression): void {
    this.#forget(key);
    this.#decoded.set(key, { raw, value, seq: this.#seq });
    this.#decodedBytes += raw.length;
    // Oldest first (insertion order): over the byte budget or the age span.
    for (const [k, e] of this.#decoded) {
      if (this.#decodedBytes <= DECODED_CACHE_BYTES && e.seq > this.#seq - DECODED_CACHE_SPAN) break;
      this.#forget(k);
    }
  }

  #forget(key: string): void {
    const hit = this.#decoded.get(key);
    if (hit === undefined) return;
    this.#decoded.delete(key);
    this.#decodedBytes -= hit.raw.length;
  }

  /** The decoded record of a pending entry: from the cache when it holds these very bytes. */
  #decodePending<T>(name: 'RankerOutput' | 'Impression', key: string, e: PendingEntry): T {
    const hit = this.#decoded.get(key);
    if (hit !== undefined) {
      this.#forget(key);
      if (hit.raw === e.raw || hit.raw.equals(e.raw)) return hit.value as T;
    }
    return decodePending<T>(name, e, this.#jsonColumns);
  }

  /** Expires every entry whose window closed before `wm`, in (expiresAt, key) order. */
  sweep(wm: number, out: JoinEffect[] = []): JoinEffect[] {
    for (;;) {
      const min = this.#store.minExpiresAt();
      if (min === null || min >= wm) return out;
      const batch = this.#store.expiring(wm, SWEEP_CHUNK);
      if (batch.length === 0) return out;
      for (const [key, entry] of batch) this.#expire(key, entry, out);
    }
  }

  #expire(key: string, entry: StateEntry, out: JoinEffect[]): void {
    this.#store.delete(key);
    if (entry.kind !== 'pending') return;
    if (entry.side === 'impression') this.#forget(key);
    const rid = key.slice(2);
    const ref: RecordRef = { source: entry.source, key: entry.key, raw: entry.raw };
    if (entry.side === 'impression') {
      out.push({
        type: 'dead',
        reason: 'ORPHAN',
        message: `no ranker output for request ${rid} arrived within ${this.#cfg.windowMs} ms of the impression (ts ${entry.ts})`,
        ref,
        requestId: rid,
      });
      return;
    }
    if (!this.#cfg.emitUnmatched) {
      out.push({ type: 'expired-unmatched-dropped', requestId: rid });
      return;
    }
    const w = this.#cfg.windowMs;
    this.#store.put(`d:${rid}`, { kind: 'unmatched', ts: entry.ts, expiresAt: entry.ts + 2 * w });
    out.push({
      type: 'unmatched',
      ranker: this.#decodePending<RankerOutput>('RankerOutput', key, entry),
      rankerRef: ref,
    });
  }
}

/** The record reference of a dead letter or a label's ranker output (built only when one is made). */
function refOf(rec: JoinInput): RecordRef {
  return { source: rec.source, key: rec.key, raw: rec.raw };
}

const decodeRankerOrThrow = avroDecoderOrThrow('RankerOutput');
const decodeImpressionOrThrow = avroDecoderOrThrow('Impression');
const decodeRankerJson = jsonDecoderOrThrow('RankerOutput');
const decodeImpressionJson = jsonDecoderOrThrow('Impression');

function decodePending<T>(name: 'RankerOutput' | 'Impression', e: PendingEntry, jsonColumns: boolean): T {
  if (e.format === 'json' && jsonColumns) {
    const cols =
      name === 'RankerOutput'
        ? parseRankerJson(e.raw, decodeRankerJson)
        : parseImpressionJson(e.raw, decodeImpressionJson);
    if (cols !== null) return cols as T;
  }
  if (e.format === 'avro') {
    // The column parsers read what labelling needs (ids, scores, positions, clicks) and skip the
    // rest; they take canonical bytes only, which is what every stored Avro record decoded from.
    const cols =
      name === 'RankerOutput'
        ? parseRankerColumns(e.raw, decodeRankerOrThrow)
        : parseImpressionColumns(e.raw, decodeImpressionOrThrow);
    if (cols !== null) return cols as T;
  }
  const r = decode(name, e.raw, e.format);
  if (!r.ok) {
    // Only records that decoded once are stored, so this is state corruption, not bad input.
    throw new RankdistillError('STATE_STORE_FAILED', `stored ${name} no longer decodes: ${r.error.message}`, {
      cause: r.error,
    });
  }
  return r.value as T;
}
